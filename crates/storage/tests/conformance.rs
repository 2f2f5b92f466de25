//! The storage conformance suite, run against SQLite and a real PostgreSQL (127.0.0.1:5432;
//! each test creates its own database and fails when the server is missing).

#![allow(clippy::unwrap_used)]

use offline_sync_model::{
    AckOutcome, Change, CommitOp, ConflictKind, ConflictStatus, ContentType, DocumentId, Fields, Heartbeat,
    Hlc, LocalWrite, Message, Op, Policies, ShipId, Strategy, decode,
};
use offline_sync_storage::{
    ConflictFilter, DeadLetterCounts, DeadLetterStatus, Error, MasterBatch, NewDeadLetter, OutboxState, Page,
    Published, ReplicaBatch, SeaStorage, Storage, TopicOffset,
};
use serde_json::json;

fn ct() -> ContentType {
    ContentType::new("api::article.article").unwrap()
}

fn ship() -> ShipId {
    ShipId::new("ship-1").unwrap()
}

fn fields(v: serde_json::Value) -> Fields {
    v.as_object().unwrap().clone()
}

/// The master's commit of this ship's change `seq` at `csn`, written with `Hlc::default()`.
fn echo(seq: u64, csn: u64, id: DocumentId) -> Message {
    Message::Commit(offline_sync_model::Commit {
        csn,
        origin: offline_sync_model::Origin::Ship(ship()),
        seq: Some(seq),
        ct: ct(),
        id,
        op: CommitOp::Patch,
        fields: fields(json!({})),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    })
}

fn change(seq: u64, id: DocumentId, op: Op, f: serde_json::Value, base: u64) -> Change {
    Change {
        resent: false,
        ship: ship(),
        seq,
        ct: ct(),
        id,
        op,
        fields: fields(f),
        base,
        unseen: Default::default(),
        hlc: Hlc { ms: seq, c: 0 },
    }
}

fn offset(next: i64) -> TopicOffset {
    TopicOffset {
        topic: "ship-updates".into(),
        partition: 0,
        next,
    }
}

async fn published(s: &SeaStorage) -> Vec<Message> {
    let rows = s.unpublished(1000).await.unwrap();
    if let Some(last) = rows.last() {
        s.mark_published(last.id, None).await.unwrap();
    }
    rows.iter().map(|b| decode(&b.payload).unwrap()).collect()
}

pub async fn replica_local_writes_append_outbox_rows(s: SeaStorage) {
    let id = DocumentId::new_v7();
    let create = LocalWrite::Create {
        content_type: ct(),
        id,
        fields: fields(json!({"title": "a", "n": 1})),
    };
    let w = s.local_write(&ship(), &create, Hlc::default(), 10).await.unwrap();
    assert_eq!(w.seq, Some(1));
    assert!(matches!(
        s.local_write(&ship(), &create, Hlc::default(), 10).await,
        Err(offline_sync_storage::Error::AlreadyExists)
    ));
    let same = LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(json!({"title": "a"})),
    };
    assert_eq!(
        s.local_write(&ship(), &same, Hlc::default(), 11)
            .await
            .unwrap()
            .seq,
        None
    );
    let update = LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(json!({"title": "b"})),
    };
    assert_eq!(
        s.local_write(&ship(), &update, Hlc::default(), 12)
            .await
            .unwrap()
            .seq,
        Some(2)
    );
    let bad = LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(json!({"documentId": "x"})),
    };
    assert!(matches!(
        s.local_write(&ship(), &bad, Hlc::default(), 12).await,
        Err(offline_sync_storage::Error::Invalid { .. })
    ));
    let missing = LocalWrite::Delete {
        content_type: ct(),
        id: DocumentId::new_v7(),
    };
    assert!(matches!(
        s.local_write(&ship(), &missing, Hlc::default(), 12).await,
        Err(offline_sync_storage::Error::NotFound)
    ));

    let doc = s.replica_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(json!({"title": "b", "n": 1})));
    assert_eq!(doc.marks.len(), 2);

    let rows = s.outbox_unsent(&ship(), 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.change.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(rows[0].change.op, Op::Create);
    assert_eq!(rows[1].change.fields, fields(json!({"title": "b"})));
    assert_eq!(rows[1].state, OutboxState::Pending);
    let (docs, total) = s.documents(Some(&ct()), Page::default()).await.unwrap();
    assert_eq!((docs.len(), total), (1, 1));
    assert_eq!(s.replica_progress().await.unwrap().last_seq, 2);
}

pub async fn outbox_rows_move_from_pending_to_sent_to_acked(s: SeaStorage) {
    let id = DocumentId::new_v7();
    for i in 0..3 {
        let w = if i == 0 {
            LocalWrite::Create {
                content_type: ct(),
                id,
                fields: fields(json!({"n": i})),
            }
        } else {
            LocalWrite::Update {
                content_type: ct(),
                id,
                fields: fields(json!({"n": i})),
            }
        };
        s.local_write(&ship(), &w, Hlc::default(), 100 + i).await.unwrap();
    }
    s.outbox_mark_sent(1, 2, 200).await.unwrap();
    s.outbox_mark_sent(1, 2, 300).await.unwrap();
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.sent, stats.last_seq), (1, 2, 3));
    assert_eq!(stats.oldest_sent_at_ms, Some(200));
    assert_eq!(stats.first_unacked_seq, Some(1));
    assert_eq!(stats.oldest_unacked_at_ms, Some(100));
    assert_eq!(s.outbox_resend(2).await.unwrap(), 1);
    assert_eq!(s.outbox_unsent(&ship(), 10).await.unwrap().len(), 2);

    // A commit that does not follow the applied CSN is refused whole: commits are gapless.
    let ahead = |csn| offline_sync_model::Commit {
        csn,
        origin: offline_sync_model::Origin::Master,
        seq: None,
        ct: ct(),
        id,
        op: CommitOp::Patch,
        fields: fields(json!({"n": 9})),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    };
    let skipping = ReplicaBatch {
        messages: vec![Message::Commit(ahead(2))],
        dead_letters: vec![],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 7,
        },
        sensitive: Default::default(),
        synced: None,
    };
    assert!(matches!(
        s.replica_apply(&ship(), &skipping, 350).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(s.replica_progress().await.unwrap().applied_csn, 0);
    assert_eq!(s.offset("master-updates", 0).await.unwrap(), None);

    // The master's echo of seq 2 answers row 2 only: every row gets its own answer, and one
    // left unanswered below it is another change under a seq the master used (a restored
    // database), never taken as applied.
    let echo = offline_sync_model::Commit {
        csn: 1,
        origin: offline_sync_model::Origin::Ship(ship()),
        seq: Some(2),
        ct: ct(),
        id,
        op: CommitOp::Patch,
        fields: fields(json!({"n": 1})),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    };
    let batch = ReplicaBatch {
        messages: vec![Message::Commit(echo)],
        dead_letters: vec![],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 1,
        },
        sensitive: Default::default(),
        synced: None,
    };
    let applied = s.replica_apply(&ship(), &batch, 400).await.unwrap();
    assert_eq!(applied.acked, 1);
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!(stats.unacked(), 2);
    assert_eq!(stats.first_unacked_seq, Some(1));
    // Seq 3 is still pending, so field n keeps the local value.
    let doc = s.replica_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(doc.fields["n"], json!(2));
    assert_eq!(doc.base_version, 1);
    assert_eq!(s.offset("master-updates", 0).await.unwrap(), Some(1));
    // Applying the same batch again changes nothing.
    let again = s.replica_apply(&ship(), &batch, 500).await.unwrap();
    assert_eq!((again.commits, again.skipped, again.acked), (0, 1, 0));
    assert_eq!(s.replica_progress().await.unwrap().applied_csn, 1);
}

pub async fn replica_acks_gap_duplicate_and_rejection(s: SeaStorage) {
    let id = DocumentId::new_v7();
    s.local_write(
        &ship(),
        &LocalWrite::Create {
            content_type: ct(),
            id,
            fields: fields(json!({"a": 1})),
        },
        Hlc::default(),
        1,
    )
    .await
    .unwrap();
    s.local_write(
        &ship(),
        &LocalWrite::Update {
            content_type: ct(),
            id,
            fields: fields(json!({"a": 2})),
        },
        Hlc::default(),
        1,
    )
    .await
    .unwrap();
    s.outbox_mark_sent(1, 2, 2).await.unwrap();
    let ack = |seq, outcome| {
        Message::Ack(offline_sync_model::Ack {
            ship: ship(),
            seq,
            outcome,
        })
    };
    let other = Message::Ack(offline_sync_model::Ack {
        ship: ShipId::new("other").unwrap(),
        seq: 1,
        outcome: AckOutcome::Duplicate { last_seq: 1 },
    });
    let batch = ReplicaBatch {
        messages: vec![
            other,
            ack(2, AckOutcome::Gap { expected: 2 }),
            // Row 1's echo answers it; the duplicate answer after it then changes nothing.
            echo(1, 1, id),
            ack(1, AckOutcome::Duplicate { last_seq: 1 }),
        ],
        dead_letters: vec![NewDeadLetter {
            topic: "master-updates".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload: b"{oops".to_vec(),
            reason: "malformed json".into(),
        }],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 8,
        },
        sensitive: Default::default(),
        synced: None,
    };
    let out = s.replica_apply(&ship(), &batch, 3).await.unwrap();
    assert_eq!((out.acked, out.resend, out.restored_below), (1, 1, None));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.sent), (1, 0));
    let (dl, _) = s.dead_letters(None, Page::default()).await.unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].letter.payload, b"{oops".to_vec());

    let rejected = ReplicaBatch {
        messages: vec![
            ack(
                2,
                AckOutcome::Rejected {
                    reason: "not synced".into(),
                },
            ),
            ack(9, AckOutcome::Duplicate { last_seq: 9 }),
        ],
        dead_letters: vec![],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 10,
        },
        sensitive: Default::default(),
        synced: None,
    };
    let out = s.replica_apply(&ship(), &rejected, 4).await.unwrap();
    assert_eq!(out.restored_below, Some(9));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.unacked(), stats.rejected), (0, 1));
    assert!(s.replica_doc(&ct(), id).await.unwrap().unwrap().marks.is_empty());

    // A database restored from a backup reuses seqs the master already applied: the
    // duplicate answer must not acknowledge the new write behind the reused seq.
    let w = LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(json!({"a": 3})),
    };
    assert_eq!(
        s.local_write(&ship(), &w, Hlc::default(), 5).await.unwrap().seq,
        Some(3)
    );
    let restored = ReplicaBatch {
        messages: vec![ack(3, AckOutcome::Duplicate { last_seq: 40 })],
        dead_letters: vec![NewDeadLetter {
            topic: "master-updates".into(),
            partition: 0,
            offset: 10,
            key: None,
            payload: vec![0, 1, 2],
            reason: "unknown variant `\u{0}` with a NUL".into(),
        }],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 11,
        },
        sensitive: Default::default(),
        synced: None,
    };
    let out = s.replica_apply(&ship(), &restored, 6).await.unwrap();
    assert_eq!((out.restored_below, out.renumbered), (Some(40), 1));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!(
        (stats.unacked(), stats.first_unsent_seq, stats.last_seq),
        (1, Some(41), 41),
        "the new write stays unanswered, renumbered above the master's last seq, to be sent"
    );
    let doc = s.replica_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(
        doc.marks.get("a"),
        Some(&offline_sync_model::Mark::Pending { seq: 41 }),
        "its mark follows it"
    );
    let (letters, _) = s.dead_letters(None, Page::default()).await.unwrap();
    assert!(
        letters[0].letter.reason.contains("\\u{0}"),
        "{:?}",
        letters[0].letter.reason
    );
}

pub async fn master_applies_a_batch_exactly_once(s: SeaStorage) {
    let id = DocumentId::new_v7();
    let batch = MasterBatch {
        changes: vec![
            change(1, id, Op::Create, json!({"title": "t", "body": "b"}), 0),
            change(2, id, Op::Update, json!({"title": "t2"}), 0),
        ],
        heartbeats: vec![Heartbeat {
            ship: ship(),
            pending: 4,
            oldest_unacked_ms: Some(9),
            applied_csn: 0,
            last_seq: 2,
            sent_seq: 0,
            answered_seq: None,
            resync: Some("running: 3 of 10 documents".into()),
        }],
        offsets: vec![offset(2)],
        ..MasterBatch::default()
    };
    let out = s.master_apply(&batch, &Policies::default(), 1_000).await.unwrap();
    assert_eq!((out.committed, out.duplicates, out.conflicts), (2, 0, 0));
    let doc = s.master_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(json!({"title": "t2", "body": "b"})));
    assert_eq!(doc.version, 2);
    assert_eq!(s.last_csn().await.unwrap(), 2);
    assert_eq!(s.offset("ship-updates", 0).await.unwrap(), Some(2));
    let msgs = published(&s).await;
    assert_eq!(msgs.len(), 2);
    assert!(
        matches!(&msgs[0], Message::Commit(c) if c.op == CommitOp::Put && c.csn == 1 && c.seq == Some(1))
    );

    let record = s.ships().await.unwrap().remove(0);
    assert_eq!(record.resync.as_deref(), Some("running: 3 of 10 documents"));
    assert_eq!(record.online_since_ms, Some(1_000));

    // The same batch again: nothing applied twice, duplicates acknowledged. Heard from
    // within the offline threshold, the ship's stay online goes on; after a longer silence
    // a new one starts.
    let batch = MasterBatch {
        offline_after_ms: Some(5_000),
        ..batch
    };
    let out = s.master_apply(&batch, &Policies::default(), 2_000).await.unwrap();
    assert_eq!((out.committed, out.duplicates), (0, 2));
    assert_eq!(s.ships().await.unwrap()[0].online_since_ms, Some(1_000));
    let back = MasterBatch {
        heartbeats: vec![Heartbeat {
            resync: None,
            ..batch.heartbeats[0].clone()
        }],
        offline_after_ms: Some(5_000),
        ..MasterBatch::default()
    };
    s.master_apply(&back, &Policies::default(), 7_000).await.unwrap();
    let record = s.ships().await.unwrap().remove(0);
    assert_eq!((record.online_since_ms, record.resync), (Some(7_000), None));
    assert_eq!(s.master_doc(&ct(), id).await.unwrap().unwrap().version, 2);
    let msgs = published(&s).await;
    assert!(
        msgs.iter()
            .all(|m| matches!(m, Message::Ack(a) if a.outcome == AckOutcome::Duplicate { last_seq: 2 }))
    );

    // A change arriving before the one it follows is refused with the seq needed next.
    let gap = MasterBatch {
        changes: vec![change(5, id, Op::Delete, json!({}), 2)],
        ..MasterBatch::default()
    };
    assert_eq!(
        s.master_apply(&gap, &Policies::default(), 3_000)
            .await
            .unwrap()
            .gaps,
        1
    );
    assert!(
        matches!(&published(&s).await[0], Message::Ack(a) if a.outcome == AckOutcome::Gap { expected: 3 })
    );

    let ships = s.ships().await.unwrap();
    assert_eq!(ships.len(), 1);
    assert_eq!(
        (ships[0].last_seq, ships[0].changes_applied, ships[0].pending),
        (2, 2, 4)
    );
    assert_eq!(ships[0].last_seen_ms, Some(3_000));
    assert_eq!(ships[0].registered_at_ms, 1_000);
}

pub async fn overlapping_edits_make_one_conflict_that_resolves(s: SeaStorage) {
    let id = DocumentId::new_v7();
    let create = LocalWrite::Create {
        content_type: ct(),
        id,
        fields: fields(json!({"title": "m0", "body": "b"})),
    };
    s.master_write(&create, Hlc::default(), 1).await.unwrap();
    let edit = LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(json!({"title": "m1"})),
    };
    let (_, commit) = s.master_write(&edit, Hlc::default(), 2).await.unwrap();
    assert_eq!(commit.unwrap().csn, 2);

    let first = MasterBatch {
        changes: vec![change(1, id, Op::Update, json!({"title": "s1", "body": "b2"}), 1)],
        ..Default::default()
    };
    let out = s.master_apply(&first, &Policies::default(), 3).await.unwrap();
    assert_eq!(out.conflicts, 1);
    let second = MasterBatch {
        changes: vec![change(2, id, Op::Update, json!({"title": "s2"}), 3)],
        ..Default::default()
    };
    s.master_apply(&second, &Policies::default(), 4).await.unwrap();
    let open = s
        .conflicts(
            &ConflictFilter::status(Some(ConflictStatus::Open)),
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        open.len(),
        1,
        "a later change to the same field updates the open conflict"
    );
    let c = &open[0];
    assert_eq!(c.draft.kind, ConflictKind::UpdateUpdate);
    assert_eq!(c.draft.ship_values, fields(json!({"title": "s2"})));
    assert_eq!(c.draft.master_values, fields(json!({"title": "m1"})));
    assert_eq!(c.draft.ship_seq, 2);
    let doc = s.master_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(
        doc.fields,
        fields(json!({"title": "m1", "body": "b2"})),
        "the other field merged at once"
    );

    let bad = Strategy::Merge {
        merge_data: fields(json!({"nope": 1})),
    };
    assert!(matches!(
        s.resolve_conflict(c.id, &bad, Hlc::default(), 5).await,
        Err(offline_sync_storage::Error::Invalid { .. })
    ));
    let (resolved, commit) = s
        .resolve_conflict(c.id, &Strategy::KeepShip, Hlc::default(), 5)
        .await
        .unwrap();
    assert_eq!(resolved.status, ConflictStatus::Resolved);
    assert_eq!(commit.resolves, Some(c.id));
    assert_eq!(commit.op, CommitOp::Put);
    assert_eq!(
        s.master_doc(&ct(), id).await.unwrap().unwrap().fields["title"],
        json!("s2")
    );
    assert!(matches!(
        s.resolve_conflict(c.id, &Strategy::KeepMaster, Hlc::default(), 6)
            .await,
        Err(offline_sync_storage::Error::Conflict { .. })
    ));
    let stored = s.conflict(c.id).await.unwrap().unwrap();
    assert_eq!(stored.resolution, Some(Strategy::KeepShip));
    assert_eq!(stored.resolved_csn, Some(commit.csn));
    assert!(
        s.conflicts(
            &ConflictFilter::status(Some(ConflictStatus::Open)),
            Page::default()
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(matches!(
        s.resolve_conflict(999, &Strategy::KeepShip, Hlc::default(), 6)
            .await,
        Err(offline_sync_storage::Error::NotFound)
    ));
}

pub async fn master_local_writes_are_broadcast_in_commit_order(s: SeaStorage) {
    let id = DocumentId::new_v7();
    s.master_write(
        &LocalWrite::Create {
            content_type: ct(),
            id,
            fields: fields(json!({"a": 1})),
        },
        Hlc::default(),
        1,
    )
    .await
    .unwrap();
    let (_, none) = s
        .master_write(
            &LocalWrite::Update {
                content_type: ct(),
                id,
                fields: fields(json!({"a": 1})),
            },
            Hlc::default(),
            2,
        )
        .await
        .unwrap();
    assert!(none.is_none(), "a write that changes nothing commits nothing");
    s.master_write(
        &LocalWrite::Delete {
            content_type: ct(),
            id,
        },
        Hlc::default(),
        3,
    )
    .await
    .unwrap();
    assert!(s.document(&ct(), id).await.unwrap().unwrap().deleted);
    assert_eq!(s.documents(None, Page::default()).await.unwrap().1, 0);
    let rows = s.unpublished(1).await.unwrap();
    assert_eq!(rows.len(), 1);
    s.mark_published(rows[0].id, None).await.unwrap();
    let rest = s.unpublished(10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].id > rows[0].id);
    assert!(
        matches!(decode(&rest[0].payload).unwrap(), Message::Commit(c) if c.op == CommitOp::Delete && c.csn == 2)
    );
}

pub async fn retention_prunes_only_answered_rows(s: SeaStorage) {
    let id = DocumentId::new_v7();
    let w = |n: i64| LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(json!({"n": n})),
    };
    s.local_write(
        &ship(),
        &LocalWrite::Create {
            content_type: ct(),
            id,
            fields: fields(json!({"n": 0})),
        },
        Hlc::default(),
        1,
    )
    .await
    .unwrap();
    s.local_write(&ship(), &w(1), Hlc::default(), 2).await.unwrap();
    s.outbox_mark_sent(1, 2, 3).await.unwrap();
    let batch = ReplicaBatch {
        messages: vec![echo(1, 1, id)],
        dead_letters: vec![],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 1,
        },
        sensitive: Default::default(),
        synced: None,
    };
    s.replica_apply(&ship(), &batch, 10).await.unwrap();
    s.master_write(
        &LocalWrite::Create {
            content_type: ct(),
            id: DocumentId::new_v7(),
            fields: fields(json!({})),
        },
        Hlc::default(),
        10,
    )
    .await
    .unwrap();
    s.master_write(
        &LocalWrite::Create {
            content_type: ct(),
            id: DocumentId::new_v7(),
            fields: fields(json!({})),
        },
        Hlc::default(),
        10,
    )
    .await
    .unwrap();
    let first = s.unpublished(1).await.unwrap();
    s.mark_published(first[0].id, None).await.unwrap();

    assert_eq!(s.prune(10).await.unwrap(), 0, "nothing is older than the cut-off");
    assert_eq!(
        s.prune(11).await.unwrap(),
        2,
        "the acked outbox row and the published broadcast"
    );
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.sent, stats.last_seq), (1, 2), "the unanswered row stays");
    assert_eq!(
        s.unpublished(10).await.unwrap().len(),
        1,
        "the unpublished broadcast stays"
    );
    assert_eq!(
        s.replica_doc(&ct(), id).await.unwrap().unwrap().fields["n"],
        json!(1)
    );
    assert_eq!(s.prune(11).await.unwrap(), 0);
}

fn letter(offset: i64) -> NewDeadLetter {
    NewDeadLetter {
        topic: "ship-updates".into(),
        partition: 0,
        offset,
        key: Some(format!("k{offset}").into_bytes()),
        payload: format!("garbage {offset}").into_bytes(),
        reason: format!("bad record {offset}"),
    }
}

/// Stores dead letters with offsets `1..=n` at `now_ms`; returns their ids, oldest first.
async fn store_dead_letters(s: &SeaStorage, n: i64, now_ms: u64) -> Vec<u64> {
    let batch = MasterBatch {
        dead_letters: (1..=n).map(letter).collect(),
        ..MasterBatch::default()
    };
    s.master_apply(&batch, &Policies::default(), now_ms)
        .await
        .unwrap();
    let (all, _) = s.dead_letters(None, Page::all()).await.unwrap();
    let mut ids: Vec<u64> = all.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    ids
}

pub async fn dead_letters_list_by_status_with_totals(s: SeaStorage) {
    assert_eq!(s.dead_letter_counts().await.unwrap(), DeadLetterCounts::default());
    let ids = store_dead_letters(&s, 4, 10).await;
    assert_eq!(ids.len(), 4);

    let (all, total) = s.dead_letters(None, Page::all()).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(
        all.iter().map(|l| l.letter.offset).collect::<Vec<_>>(),
        vec![4, 3, 2, 1],
        "newest first"
    );
    assert!(
        all.iter()
            .all(|l| l.status == DeadLetterStatus::Pending && l.handled_at_ms.is_none())
    );
    let (page, total) = s.dead_letters(None, Page { offset: 1, limit: 2 }).await.unwrap();
    assert_eq!(total, 4, "the total counts every match, not the page");
    assert_eq!(
        page.iter().map(|l| l.letter.offset).collect::<Vec<_>>(),
        vec![3, 2]
    );

    let one = s.dead_letter(ids[1]).await.unwrap().unwrap();
    assert_eq!(one.letter, letter(2));
    assert_eq!((one.created_at_ms, one.status), (10, DeadLetterStatus::Pending));
    assert_eq!(s.dead_letter(ids[3] + 1000).await.unwrap(), None);
    assert_eq!(s.dead_letter(u64::MAX).await.unwrap(), None);

    s.settle_dead_letter(ids[0], DeadLetterStatus::Resolved, 20)
        .await
        .unwrap();
    s.settle_dead_letter(ids[1], DeadLetterStatus::Discarded, 21)
        .await
        .unwrap();
    s.settle_dead_letter(ids[2], DeadLetterStatus::Discarded, 22)
        .await
        .unwrap();
    assert_eq!(
        s.dead_letter_counts().await.unwrap(),
        DeadLetterCounts {
            pending: 1,
            resolved: 1,
            discarded: 2,
            ..DeadLetterCounts::default()
        }
    );
    let (pending, total) = s
        .dead_letters(Some(DeadLetterStatus::Pending), Page::all())
        .await
        .unwrap();
    assert_eq!((pending.len(), total), (1, 1));
    assert_eq!(pending[0].id, ids[3]);
    let (retried, total) = s
        .dead_letters(Some(DeadLetterStatus::Resolved), Page::all())
        .await
        .unwrap();
    assert_eq!((retried.len(), total), (1, 1));
    assert_eq!(retried[0].id, ids[0]);
    let (discarded, total) = s
        .dead_letters(Some(DeadLetterStatus::Discarded), Page { offset: 0, limit: 1 })
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(discarded.iter().map(|l| l.id).collect::<Vec<_>>(), vec![ids[2]]);
}

pub async fn settling_a_dead_letter_happens_once(s: SeaStorage) {
    let ids = store_dead_letters(&s, 3, 10).await;

    let retried = s
        .settle_dead_letter(ids[0], DeadLetterStatus::Resolved, 20)
        .await
        .unwrap();
    assert_eq!(retried.status, DeadLetterStatus::Resolved);
    assert_eq!((retried.created_at_ms, retried.handled_at_ms), (10, Some(20)));
    assert_eq!(retried.letter, letter(1));
    assert_eq!(s.dead_letter(ids[0]).await.unwrap(), Some(retried.clone()));

    let discarded = s
        .settle_dead_letter(ids[1], DeadLetterStatus::Discarded, 30)
        .await
        .unwrap();
    assert_eq!(
        (discarded.status, discarded.handled_at_ms),
        (DeadLetterStatus::Discarded, Some(30))
    );

    for status in [DeadLetterStatus::Resolved, DeadLetterStatus::Discarded] {
        assert!(matches!(
            s.settle_dead_letter(ids[0], status, 40).await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            s.settle_dead_letter(ids[1], status, 40).await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            s.settle_dead_letter(ids[2] + 1000, status, 40).await,
            Err(Error::NotFound)
        ));
    }
    assert_eq!(
        s.dead_letter(ids[0]).await.unwrap(),
        Some(retried),
        "a refused settle changes nothing"
    );
    assert!(matches!(
        s.settle_dead_letter(ids[2], DeadLetterStatus::Pending, 40).await,
        Err(Error::Invalid { .. })
    ));
    let still = s.dead_letter(ids[2]).await.unwrap().unwrap();
    assert_eq!(
        (still.status, still.handled_at_ms),
        (DeadLetterStatus::Pending, None)
    );
    assert_eq!(
        s.dead_letter_counts().await.unwrap(),
        DeadLetterCounts {
            pending: 1,
            resolved: 1,
            discarded: 1,
            ..DeadLetterCounts::default()
        }
    );
}

pub async fn automatic_retries_are_due_counted_and_exhausted(s: SeaStorage) {
    let ids = store_dead_letters(&s, 2, 10).await;
    let due = |now| {
        let s = s.clone();
        async move {
            s.due_dead_letters(now, 10)
                .await
                .unwrap()
                .iter()
                .map(|l| l.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(10).await, ids, "pending letters are due at once");
    let failed = s.dead_letter_failed(ids[0], Some(100)).await.unwrap();
    assert_eq!(
        (failed.status, failed.attempts, failed.next_retry_at_ms),
        (DeadLetterStatus::Retrying, 1, Some(100))
    );
    assert_eq!(due(99).await, vec![ids[1]], "not before its time");
    assert_eq!(due(100).await, ids);
    let exhausted = s.dead_letter_failed(ids[0], None).await.unwrap();
    assert_eq!(
        (exhausted.status, exhausted.attempts, exhausted.next_retry_at_ms),
        (DeadLetterStatus::Exhausted, 2, None)
    );
    assert_eq!(
        due(u64::MAX / 2).await,
        vec![ids[1]],
        "an exhausted letter waits for an operator"
    );
    assert_eq!(
        s.dead_letter_counts().await.unwrap(),
        DeadLetterCounts {
            pending: 1,
            exhausted: 1,
            ..DeadLetterCounts::default()
        }
    );
    // An operator may still retry (resolve) or discard an exhausted letter.
    let resolved = s
        .settle_dead_letter(ids[0], DeadLetterStatus::Resolved, 200)
        .await
        .unwrap();
    assert_eq!(
        (resolved.status, resolved.handled_at_ms),
        (DeadLetterStatus::Resolved, Some(200))
    );
    let unchanged = s.dead_letter_failed(ids[0], Some(300)).await.unwrap();
    assert_eq!(unchanged, resolved, "a settled letter is not retried any more");
}

pub async fn retention_prunes_dead_letters_by_when_they_were_handled(s: SeaStorage) {
    // All three arrived long before any cut-off used below.
    let ids = store_dead_letters(&s, 3, 1).await;
    s.settle_dead_letter(ids[0], DeadLetterStatus::Discarded, 100)
        .await
        .unwrap();
    s.settle_dead_letter(ids[1], DeadLetterStatus::Resolved, 500)
        .await
        .unwrap();

    assert_eq!(s.prune(100).await.unwrap(), 0, "nothing was handled before 100");
    assert_eq!(
        s.prune(300).await.unwrap(),
        1,
        "only the letter handled before the cut-off"
    );
    assert_eq!(s.dead_letter(ids[0]).await.unwrap(), None);
    assert!(
        s.dead_letter(ids[1]).await.unwrap().is_some(),
        "handled after the cut-off, though it arrived long before"
    );
    assert_eq!(s.prune(10_000).await.unwrap(), 1);
    assert_eq!(s.dead_letter(ids[1]).await.unwrap(), None);
    let pending = s.dead_letter(ids[2]).await.unwrap().unwrap();
    assert_eq!(
        pending.status,
        DeadLetterStatus::Pending,
        "pending letters are kept"
    );
    assert_eq!(s.dead_letters(None, Page::all()).await.unwrap().1, 1);
}

pub async fn outbox_lists_newest_first_by_state_with_total(s: SeaStorage) {
    let id = DocumentId::new_v7();
    s.local_write(
        &ship(),
        &LocalWrite::Create {
            content_type: ct(),
            id,
            fields: fields(json!({"n": 0})),
        },
        Hlc::default(),
        100,
    )
    .await
    .unwrap();
    for n in 1..5 {
        let w = LocalWrite::Update {
            content_type: ct(),
            id,
            fields: fields(json!({"n": n})),
        };
        s.local_write(&ship(), &w, Hlc::default(), 100 + n).await.unwrap();
    }
    s.outbox_mark_sent(1, 3, 200).await.unwrap();
    let seqs =
        |rows: &[offline_sync_storage::OutboxEntry]| rows.iter().map(|r| r.change.seq).collect::<Vec<_>>();

    let (all, total) = s.outbox(&ship(), None, Page::all()).await.unwrap();
    assert_eq!((seqs(&all), total), (vec![5, 4, 3, 2, 1], 5));
    assert!(all.iter().all(|r| r.change.ship == ship() && r.change.id == id));
    assert_eq!(all[4].change.op, Op::Create);
    assert_eq!(all[0].change.fields, fields(json!({"n": 4})));
    assert_eq!((all[0].created_at_ms, all[0].sent_at_ms), (104, None));

    let (sent, total) = s
        .outbox(&ship(), Some(OutboxState::Sent), Page::all())
        .await
        .unwrap();
    assert_eq!((seqs(&sent), total), (vec![3, 2, 1], 3));
    assert!(
        sent.iter()
            .all(|r| r.state == OutboxState::Sent && r.sent_at_ms == Some(200))
    );
    let (pending, total) = s
        .outbox(&ship(), Some(OutboxState::Pending), Page::all())
        .await
        .unwrap();
    assert_eq!((seqs(&pending), total), (vec![5, 4], 2));
    let (acked, total) = s
        .outbox(&ship(), Some(OutboxState::Acked), Page::all())
        .await
        .unwrap();
    assert_eq!((acked.len(), total), (0, 0));

    let (page, total) = s
        .outbox(&ship(), None, Page { offset: 1, limit: 2 })
        .await
        .unwrap();
    assert_eq!((seqs(&page), total), (vec![4, 3], 5));
    let (page, total) = s
        .outbox(&ship(), Some(OutboxState::Sent), Page { offset: 2, limit: 5 })
        .await
        .unwrap();
    assert_eq!((seqs(&page), total), (vec![1], 3));
}

pub async fn conflicts_are_counted_by_status(s: SeaStorage) {
    for status in [None, Some(ConflictStatus::Open), Some(ConflictStatus::Resolved)] {
        assert_eq!(
            s.count_conflicts(&ConflictFilter::status(status)).await.unwrap(),
            0
        );
    }
    // Two documents the master edits while the ship edits the same field of each.
    let ids = [DocumentId::new_v7(), DocumentId::new_v7()];
    for id in ids {
        let create = LocalWrite::Create {
            content_type: ct(),
            id,
            fields: fields(json!({"title": "m0"})),
        };
        s.master_write(&create, Hlc::default(), 1).await.unwrap();
    }
    let base = s.last_csn().await.unwrap();
    for id in ids {
        let edit = LocalWrite::Update {
            content_type: ct(),
            id,
            fields: fields(json!({"title": "m1"})),
        };
        s.master_write(&edit, Hlc::default(), 2).await.unwrap();
    }
    // The first ship change kept its title through a master write it did not take in.
    let mut kept = change(1, ids[0], Op::Update, json!({"title": "s1"}), base);
    kept.unseen.fields.insert("title".into(), 1);
    let batch = MasterBatch {
        changes: vec![kept, change(2, ids[1], Op::Update, json!({"title": "s1"}), base)],
        ..Default::default()
    };
    assert_eq!(
        s.master_apply(&batch, &Policies::default(), 3)
            .await
            .unwrap()
            .conflicts,
        2
    );
    assert_eq!(s.count_conflicts(&ConflictFilter::default()).await.unwrap(), 2);
    assert_eq!(
        s.count_conflicts(&ConflictFilter::status(Some(ConflictStatus::Open)))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.count_conflicts(&ConflictFilter::status(Some(ConflictStatus::Resolved)))
            .await
            .unwrap(),
        0
    );

    let open = s
        .conflicts(
            &ConflictFilter::status(Some(ConflictStatus::Open)),
            Page::default(),
        )
        .await
        .unwrap();
    let bases: Vec<_> = open
        .iter()
        .map(|c| (c.document_id, c.draft.base_of("title")))
        .collect();
    assert!(
        bases.contains(&(ids[0], 1)) && bases.contains(&(ids[1], base)),
        "each field at the base the ship had for it: {bases:?}"
    );
    s.resolve_conflict(open[0].id, &Strategy::KeepMaster, Hlc::default(), 4)
        .await
        .unwrap();
    assert_eq!(s.count_conflicts(&ConflictFilter::default()).await.unwrap(), 2);
    assert_eq!(
        s.count_conflicts(&ConflictFilter::status(Some(ConflictStatus::Open)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.count_conflicts(&ConflictFilter::status(Some(ConflictStatus::Resolved)))
            .await
            .unwrap(),
        1
    );

    // Filters by ship and content type, in the database, with the status.
    let by = |ship: Option<&str>, content_type: Option<&str>| ConflictFilter {
        status: Some(ConflictStatus::Open),
        ship: ship.map(|s| ShipId::new(s).unwrap()),
        content_type: content_type.map(|c| ContentType::new(c).unwrap()),
    };
    let ours = ship();
    assert_eq!(
        s.count_conflicts(&by(Some(ours.as_str()), None)).await.unwrap(),
        1
    );
    assert_eq!(s.count_conflicts(&by(Some("other-ship"), None)).await.unwrap(), 0);
    assert_eq!(
        s.count_conflicts(&by(None, Some(ct().as_str()))).await.unwrap(),
        1
    );
    assert_eq!(
        s.count_conflicts(&by(None, Some("api::crew.crew")))
            .await
            .unwrap(),
        0
    );
    let listed = s
        .conflicts(&by(Some(ours.as_str()), Some(ct().as_str())), Page::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].draft.ship, ours);

    // The commits of one document, newest first, up to a CSN: what a conflict's base held.
    let at_base = s.document_commits(&ct(), ids[1], base, 10).await.unwrap();
    assert_eq!(at_base.len(), 1, "{at_base:?}");
    assert_eq!(at_base[0].fields["title"], json!("m0"));
    let all = s.document_commits(&ct(), ids[1], u64::MAX / 2, 10).await.unwrap();
    assert_eq!(all[0].fields["title"], json!("m1"));
    assert!(all.windows(2).all(|w| w[0].csn > w[1].csn));
    assert!(all.iter().all(|c| c.id == ids[1]));

    // Every commit counted in its minute, and when it was made.
    let last = s.last_csn().await.unwrap();
    assert_eq!(s.changes_per_minute(0).await.unwrap(), vec![(0, last)]);
    assert_eq!(s.changes_per_minute(60_000).await.unwrap(), vec![]);
    let times = s.commit_times(&[1, 3, last + 1]).await.unwrap();
    assert_eq!(times, [(1, 1), (3, 2)].into_iter().collect());
    assert!(s.commit_times(&[]).await.unwrap().is_empty());
}

pub async fn ping_answers_and_a_closed_pool_is_unavailable(s: SeaStorage) {
    let took = s.ping().await.unwrap();
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    let dyn_storage: &dyn Storage = &s;
    dyn_storage.ping().await.unwrap();

    s.clone().close().await.unwrap();
    match s.ping().await {
        Err(e @ Error::Unavailable(_)) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

pub async fn keys_are_kept_once_and_the_audit_log_is_pruned_by_age(s: SeaStorage) {
    use offline_sync_model::SigningKey;
    use offline_sync_storage::{KeySource, KeyStatus, NewAuditEntry, PeerKey};

    let first = s.signing_seed([1; 32], 5).await.unwrap();
    assert_eq!(first, [1; 32], "a new node keeps the key it made");
    assert_eq!(
        s.signing_seed([2; 32], 6).await.unwrap(),
        first,
        "and never another"
    );

    let pin = |seed: u8, status| PeerKey {
        signer: "ship-a".into(),
        key: SigningKey::from_seed([seed; 32]).public(),
        status,
        source: KeySource::FirstContact,
        first_seen_ms: 10,
        updated_at_ms: 10,
    };
    assert_eq!(
        s.pin_peer_key(&pin(1, KeyStatus::Pending)).await.unwrap(),
        pin(1, KeyStatus::Pending)
    );
    assert_eq!(
        s.pin_peer_key(&pin(2, KeyStatus::Trusted)).await.unwrap(),
        pin(1, KeyStatus::Pending),
        "a first-contact pin never replaces a stored row"
    );
    let mut approved = pin(2, KeyStatus::Trusted);
    approved.source = KeySource::Admin;
    approved.updated_at_ms = 20;
    s.save_peer_key(&approved).await.unwrap();
    assert_eq!(
        s.peer_keys().await.unwrap(),
        vec![approved],
        "an admin's decision replaces it"
    );

    let entry = |at_ms: u64, action: &str| NewAuditEntry {
        at_ms,
        role: "admin".into(),
        action: action.into(),
        target: "dead letter 1".into(),
        detail: json!({"status": "retried"}),
    };
    s.audit(&entry(100, "retry")).await.unwrap();
    s.audit(&entry(200, "discard")).await.unwrap();
    let (log, total) = s.audit_log(Page::default()).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(log[0].entry, entry(200, "discard"), "newest first");
    assert_eq!(
        s.prune_audit(100).await.unwrap(),
        0,
        "nothing is older than the cut-off"
    );
    assert_eq!(s.prune_audit(150).await.unwrap(), 1);
    let (log, total) = s.audit_log(Page::default()).await.unwrap();
    assert_eq!((total, log[0].entry.action.as_str()), (1, "discard"));
}

pub async fn the_master_serves_its_state_in_pages_from_a_published_point(s: SeaStorage) {
    let write = |id, f| LocalWrite::Create {
        content_type: ct(),
        id,
        fields: fields(f),
    };
    let mut ids: Vec<DocumentId> = (0..5).map(|_| DocumentId::new_v7()).collect();
    ids.sort_by_key(|id| id.to_string());
    for (n, id) in ids.iter().enumerate() {
        s.master_write(&write(*id, json!({"n": n})), Hlc::default(), 1)
            .await
            .unwrap();
    }
    s.master_write(
        &LocalWrite::Delete {
            content_type: ct(),
            id: ids[1],
        },
        Hlc::default(),
        2,
    )
    .await
    .unwrap();
    assert_eq!(
        s.published().await.unwrap(),
        Published::default(),
        "nothing published yet"
    );

    // Everything above CSN 0, two at a time: tombstones included, each document once.
    let mut seen = vec![];
    let mut from = None;
    loop {
        let page = s.snapshot(0, from.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        from = page.last().map(|d| (d.content_type.clone(), d.id));
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
    assert!(
        seen[1].deleted && seen[1].version == 6,
        "the tombstone with its CSN"
    );
    // Only what changed above a replica's applied CSN.
    let above = s.snapshot(4, None, 10).await.unwrap();
    assert_eq!(
        above.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ids[1], ids[4]]
    );

    let rows = s.unpublished(10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.csn).collect::<Vec<_>>(),
        (1..=6).map(Some).collect::<Vec<_>>()
    );
    let at = |csn, next_offset| Published { csn, next_offset };
    s.mark_published(rows[2].id, Some(at(3, 3))).await.unwrap();
    assert_eq!(s.published().await.unwrap(), at(3, 3));
    s.mark_published(rows[2].id, Some(at(2, 9))).await.unwrap();
    assert_eq!(
        s.published().await.unwrap(),
        at(3, 3),
        "an older commit never moves it back"
    );
    s.mark_published(rows[5].id, Some(at(6, 12))).await.unwrap();
    assert_eq!(s.published().await.unwrap(), at(6, 12));
    assert!(s.unpublished(10).await.unwrap().is_empty());
}

macro_rules! storage_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            async fn make(label: &'static str) -> SeaStorage {
                let make = $make;
                make(label).await
            }

            #[tokio::test]
            async fn the_master_serves_its_state_in_pages_from_a_published_point() {
                super::the_master_serves_its_state_in_pages_from_a_published_point(make("snapshot").await)
                    .await;
            }

            #[tokio::test]
            async fn replica_local_writes_append_outbox_rows() {
                super::replica_local_writes_append_outbox_rows(make("local_writes").await).await;
            }

            #[tokio::test]
            async fn outbox_rows_move_from_pending_to_sent_to_acked() {
                super::outbox_rows_move_from_pending_to_sent_to_acked(make("outbox").await).await;
            }

            #[tokio::test]
            async fn replica_acks_gap_duplicate_and_rejection() {
                super::replica_acks_gap_duplicate_and_rejection(make("acks").await).await;
            }

            #[tokio::test]
            async fn master_applies_a_batch_exactly_once() {
                super::master_applies_a_batch_exactly_once(make("master_apply").await).await;
            }

            #[tokio::test]
            async fn overlapping_edits_make_one_conflict_that_resolves() {
                super::overlapping_edits_make_one_conflict_that_resolves(make("conflicts").await).await;
            }

            #[tokio::test]
            async fn retention_prunes_only_answered_rows() {
                super::retention_prunes_only_answered_rows(make("retention").await).await;
            }

            #[tokio::test]
            async fn dead_letters_list_by_status_with_totals() {
                super::dead_letters_list_by_status_with_totals(make("dead_letter_list").await).await;
            }

            #[tokio::test]
            async fn settling_a_dead_letter_happens_once() {
                super::settling_a_dead_letter_happens_once(make("dead_letter_settle").await).await;
            }

            #[tokio::test]
            async fn automatic_retries_are_due_counted_and_exhausted() {
                super::automatic_retries_are_due_counted_and_exhausted(make("dead_letter_auto").await).await;
            }

            #[tokio::test]
            async fn retention_prunes_dead_letters_by_when_they_were_handled() {
                super::retention_prunes_dead_letters_by_when_they_were_handled(
                    make("dead_letter_retention").await,
                )
                .await;
            }

            #[tokio::test]
            async fn outbox_lists_newest_first_by_state_with_total() {
                super::outbox_lists_newest_first_by_state_with_total(make("outbox_list").await).await;
            }

            #[tokio::test]
            async fn keys_are_kept_once_and_the_audit_log_is_pruned_by_age() {
                super::keys_are_kept_once_and_the_audit_log_is_pruned_by_age(make("keys_audit").await).await;
            }

            #[tokio::test]
            async fn conflicts_are_counted_by_status() {
                super::conflicts_are_counted_by_status(make("conflict_count").await).await;
            }

            #[tokio::test]
            async fn ping_answers_and_a_closed_pool_is_unavailable() {
                super::ping_answers_and_a_closed_pool_is_unavailable(make("ping").await).await;
            }

            #[tokio::test]
            async fn master_local_writes_are_broadcast_in_commit_order() {
                super::master_local_writes_are_broadcast_in_commit_order(make("broadcasts").await).await;
            }
        }
    };
}

storage_suite!(sqlite, |_label: &'static str| async move {
    SeaStorage::connect("sqlite::memory:").await.unwrap()
});
storage_suite!(postgres, |label: &'static str| async move {
    let url = offline_sync_storage::testing::fresh_postgres(label)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 is required");
    SeaStorage::connect(&url).await.unwrap()
});

#[tokio::test]
async fn migrations_are_idempotent_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = SeaStorage::sqlite_url(&dir.path().join("node.db"));
    let s = SeaStorage::connect(&url).await.unwrap();
    let id = DocumentId::new_v7();
    s.local_write(
        &ship(),
        &LocalWrite::Create {
            content_type: ct(),
            id,
            fields: fields(json!({"a": 1})),
        },
        Hlc::default(),
        1,
    )
    .await
    .unwrap();
    s.close().await.unwrap();
    let again = SeaStorage::connect(&url).await.unwrap();
    assert_eq!(
        again.replica_doc(&ct(), id).await.unwrap().unwrap().fields["a"],
        json!(1)
    );
    assert_eq!(again.backend(), "sqlite");
}
