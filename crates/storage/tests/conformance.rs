//! The storage conformance suite, run against SQLite and a real PostgreSQL (127.0.0.1:5432;
//! each test creates its own database and fails when the server is missing).

#![allow(clippy::unwrap_used)]

use offline_sync_model::{
    AckOutcome, Change, CommitOp, ConflictKind, ConflictStatus, ContentType, DocumentId, Fields, Heartbeat,
    Hlc, LocalWrite, Message, Op, Policies, ShipId, Strategy, decode,
};
use offline_sync_storage::{
    MasterBatch, NewDeadLetter, OutboxState, Page, ReplicaBatch, SeaStorage, Storage, TopicOffset,
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

fn change(seq: u64, id: DocumentId, op: Op, f: serde_json::Value, base: u64) -> Change {
    Change {
        ship: ship(),
        seq,
        ct: ct(),
        id,
        op,
        fields: fields(f),
        base,
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
        s.mark_published(last.id).await.unwrap();
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

    // The master's echo of seq 2 acknowledges rows 1 and 2.
    let echo = offline_sync_model::Commit {
        csn: 5,
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
    };
    let applied = s.replica_apply(&ship(), &batch, 400).await.unwrap();
    assert_eq!(applied.acked, 2);
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!(stats.unacked(), 1);
    assert_eq!(stats.first_unacked_seq, Some(3));
    // Seq 3 is still pending, so field n keeps the local value.
    let doc = s.replica_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(doc.fields["n"], json!(2));
    assert_eq!(doc.base_version, 5);
    assert_eq!(s.offset("master-updates", 0).await.unwrap(), Some(1));
    // Applying the same batch again changes nothing.
    let again = s.replica_apply(&ship(), &batch, 500).await.unwrap();
    assert_eq!((again.commits, again.skipped, again.acked), (0, 1, 0));
    assert_eq!(s.replica_progress().await.unwrap().applied_csn, 5);
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
    };
    let out = s.replica_apply(&ship(), &batch, 3).await.unwrap();
    assert_eq!((out.acked, out.resend, out.restored_below), (1, 1, None));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.sent), (1, 0));
    let dl = s.dead_letters(Page::default()).await.unwrap();
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
    };
    let out = s.replica_apply(&ship(), &restored, 6).await.unwrap();
    assert_eq!(out.restored_below, Some(40));
    assert_eq!(
        s.outbox_stats().await.unwrap().unacked(),
        1,
        "the new write stays unanswered"
    );
    let letters = s.dead_letters(Page::default()).await.unwrap();
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

    // The same batch again: nothing applied twice, duplicates acknowledged.
    let out = s.master_apply(&batch, &Policies::default(), 2_000).await.unwrap();
    assert_eq!((out.committed, out.duplicates), (0, 2));
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
        .conflicts(Some(ConflictStatus::Open), Page::default())
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
        s.conflicts(Some(ConflictStatus::Open), Page::default())
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
    s.mark_published(rows[0].id).await.unwrap();
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
    let ack = Message::Ack(offline_sync_model::Ack {
        ship: ship(),
        seq: 1,
        outcome: AckOutcome::Duplicate { last_seq: 1 },
    });
    let batch = ReplicaBatch {
        messages: vec![ack],
        dead_letters: vec![],
        offset: TopicOffset {
            topic: "master-updates".into(),
            partition: 0,
            next: 1,
        },
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
    s.mark_published(first[0].id).await.unwrap();

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

macro_rules! storage_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            async fn make(label: &'static str) -> SeaStorage {
                let make = $make;
                make(label).await
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
