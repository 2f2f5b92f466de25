//! Checks of the master's storage: batches applied once, conflicts, commits broadcast in
//! order, pages of its state for a resync.

use offline_sync_model::{
    AckOutcome, CommitOp, ConflictKind, ConflictStatus, ContentType, DocumentId, Heartbeat, Hlc, Message, Op,
    Policies, ShipId, Strategy, decode,
};
use serde_json::json;

use crate::{ConflictFilter, Error, MasterBatch, Page, Published, Storage};

use super::*;

/// `batch` applied under the default policies at `now_ms`.
async fn apply(s: &dyn Storage, batch: &MasterBatch, now_ms: u64) -> crate::MasterApplied {
    s.master_apply(batch, &Policies::default(), now_ms).await.unwrap()
}

pub async fn master_applies_a_batch_exactly_once(s: &dyn Storage) {
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
    let out = apply(s, &batch, 1_000).await;
    assert_eq!((out.committed, out.duplicates, out.conflicts), (2, 0, 0));
    let doc = s.master_doc(&ct(), id).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(json!({"title": "t2", "body": "b"})));
    assert_eq!(doc.version, 2);
    assert_eq!(s.last_csn().await.unwrap(), 2);
    assert_eq!(s.offset("ship-updates", 0).await.unwrap(), Some(2));
    let msgs = published(s).await;
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
    let out = apply(s, &batch, 2_000).await;
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
    apply(s, &back, 7_000).await;
    let record = s.ships().await.unwrap().remove(0);
    assert_eq!((record.online_since_ms, record.resync), (Some(7_000), None));
    assert_eq!(s.master_doc(&ct(), id).await.unwrap().unwrap().version, 2);
    let msgs = published(s).await;
    assert!(
        msgs.iter()
            .all(|m| matches!(m, Message::Ack(a) if a.outcome == AckOutcome::Duplicate { last_seq: 2 }))
    );

    // A change arriving before the one it follows is refused with the seq needed next.
    let gap = MasterBatch {
        changes: vec![change(5, id, Op::Delete, json!({}), 2)],
        ..MasterBatch::default()
    };
    assert_eq!(apply(s, &gap, 3_000).await.gaps, 1);
    assert!(
        matches!(&published(s).await[0], Message::Ack(a) if a.outcome == AckOutcome::Gap { expected: 3 })
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

/// A batch larger than any statement or round of the implementation: 1,200 changes over 100
/// documents, each document created then edited eleven times, a hundred changes apart; one
/// edit is refused halfway. Every change sees the ones before it, the refused change's
/// document is restored to what the batch had made of it by then, and the commits go out in
/// CSN order.
pub async fn a_large_batch_sees_its_own_changes_in_order(s: &dyn Storage) {
    const DOCS: u64 = 100;
    const CHANGES: u64 = 1_200;
    const REFUSED: u64 = 700;
    let ids: Vec<DocumentId> = (0..DOCS).map(|_| DocumentId::new_v7()).collect();
    let mut batch = MasterBatch {
        offsets: vec![offset(1_200)],
        ..MasterBatch::default()
    };
    for seq in 1..=CHANGES {
        let id = ids[usize::try_from((seq - 1) % DOCS).unwrap()];
        let c = if seq <= DOCS {
            change(seq, id, Op::Create, json!({"n": 0, "title": "t"}), 0)
        } else {
            change(seq, id, Op::Update, json!({"n": seq}), 0)
        };
        if seq == REFUSED {
            batch.rejected.push((c, "refused by a test".into()));
        } else {
            batch.changes.push(c);
        }
    }
    let out = apply(s, &batch, 1_000).await;
    assert_eq!(
        (out.committed, out.rejected, out.duplicates, out.gaps),
        (CHANGES - 1, 1, 0, 0)
    );

    let mut msgs = Vec::new();
    loop {
        let rows = s.unpublished(500).await.unwrap();
        let Some(last) = rows.last() else { break };
        s.mark_published(last.id, None).await.unwrap();
        msgs.extend(rows.iter().map(|b| decode(&b.payload).unwrap()));
    }
    let csns: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Commit(c) => Some(c.csn),
            _ => None,
        })
        .collect();
    assert_eq!(
        csns,
        (1..=CHANGES).collect::<Vec<_>>(),
        "one commit a CSN, in order"
    );
    // Document 99 was created at seq 100 and set to 600 at seq 600 before seq 700 was refused.
    let restore = msgs
        .iter()
        .find_map(|m| match m {
            Message::Commit(c) if c.seq.is_none() => Some(c),
            _ => None,
        })
        .expect("the refused change's document is committed again");
    assert_eq!(restore.id, ids[99]);
    assert_eq!(restore.fields, fields(json!({"n": 600, "title": "t"})));
    assert!(msgs.iter().any(
        |m| matches!(m, Message::Ack(a) if a.seq == REFUSED && matches!(a.outcome, AckOutcome::Rejected { .. }))
    ));

    for (k, id) in ids.iter().enumerate() {
        let doc = s.master_doc(&ct(), *id).await.unwrap().unwrap();
        let last = u64::try_from(k).unwrap() + 1_101;
        assert_eq!(
            doc.fields,
            fields(json!({"n": last, "title": "t"})),
            "document {k}"
        );
    }
    assert_eq!(s.ships().await.unwrap()[0].last_seq, CHANGES);
}

pub async fn overlapping_edits_make_one_conflict_that_resolves(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    let create = create(id, json!({"title": "m0", "body": "b"}));
    s.master_write(&create, Hlc::default(), 1).await.unwrap();
    let edit = update(id, json!({"title": "m1"}));
    let (_, commit) = s.master_write(&edit, Hlc::default(), 2).await.unwrap();
    assert_eq!(commit.unwrap().csn, 2);

    let first = MasterBatch {
        changes: vec![change(1, id, Op::Update, json!({"title": "s1", "body": "b2"}), 1)],
        ..Default::default()
    };
    let out = apply(s, &first, 3).await;
    assert_eq!(out.conflicts, 1);
    let second = MasterBatch {
        changes: vec![change(2, id, Op::Update, json!({"title": "s2"}), 3)],
        ..Default::default()
    };
    apply(s, &second, 4).await;
    let open = open_conflicts(s).await;
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
        Err(crate::Error::Invalid { .. })
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
        Err(crate::Error::Conflict { .. })
    ));
    let stored = s.conflict(c.id).await.unwrap().unwrap();
    assert_eq!(stored.resolution, Some(Strategy::KeepShip));
    assert_eq!(stored.resolved_csn, Some(commit.csn));
    assert!(open_conflicts(s).await.is_empty());
    assert!(matches!(
        s.resolve_conflict(999, &Strategy::KeepShip, Hlc::default(), 6)
            .await,
        Err(crate::Error::NotFound)
    ));
}

pub async fn master_local_writes_are_broadcast_in_commit_order(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    s.master_write(&create(id, json!({"a": 1})), Hlc::default(), 1)
        .await
        .unwrap();
    let (_, none) = s
        .master_write(&update(id, json!({"a": 1})), Hlc::default(), 2)
        .await
        .unwrap();
    assert!(none.is_none(), "a write that changes nothing commits nothing");
    s.master_write(&delete(id), Hlc::default(), 3).await.unwrap();
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

/// The open conflicts, newest first.
async fn open_conflicts(s: &dyn Storage) -> Vec<offline_sync_model::Conflict> {
    s.conflicts(
        &ConflictFilter::status(Some(ConflictStatus::Open)),
        Page::default(),
    )
    .await
    .unwrap()
}

/// How many conflicts there are in all, open and resolved.
async fn conflict_counts(s: &dyn Storage) -> [u64; 3] {
    let mut counts = [0; 3];
    for (n, status) in [None, Some(ConflictStatus::Open), Some(ConflictStatus::Resolved)]
        .into_iter()
        .enumerate()
    {
        counts[n] = s.count_conflicts(&ConflictFilter::status(status)).await.unwrap();
    }
    counts
}

pub async fn conflicts_are_counted_by_status(s: &dyn Storage) {
    assert_eq!(conflict_counts(s).await, [0, 0, 0]);
    // Two documents the master edits while the ship edits the same field of each.
    let ids = [DocumentId::new_v7(), DocumentId::new_v7()];
    for id in ids {
        let create = create(id, json!({"title": "m0"}));
        s.master_write(&create, Hlc::default(), 1).await.unwrap();
    }
    let base = s.last_csn().await.unwrap();
    for id in ids {
        let edit = update(id, json!({"title": "m1"}));
        s.master_write(&edit, Hlc::default(), 2).await.unwrap();
    }
    // The first ship change kept its title through a master write it did not take in.
    let mut kept = change(1, ids[0], Op::Update, json!({"title": "s1"}), base);
    kept.unseen.fields.insert("title".into(), 1);
    let batch = MasterBatch {
        changes: vec![kept, change(2, ids[1], Op::Update, json!({"title": "s1"}), base)],
        ..Default::default()
    };
    assert_eq!(apply(s, &batch, 3).await.conflicts, 2);
    assert_eq!(conflict_counts(s).await, [2, 2, 0]);

    let open = open_conflicts(s).await;
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
    assert_eq!(conflict_counts(s).await, [2, 1, 1]);

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

pub async fn the_master_serves_its_state_in_pages_from_a_published_point(s: &dyn Storage) {
    let mut ids: Vec<DocumentId> = (0..5).map(|_| DocumentId::new_v7()).collect();
    ids.sort_by_key(|id| id.to_string());
    for (n, id) in ids.iter().enumerate() {
        s.master_write(&create(*id, json!({"n": n})), Hlc::default(), 1)
            .await
            .unwrap();
    }
    s.master_write(&delete(ids[1]), Hlc::default(), 2).await.unwrap();
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
    s.mark_published(rows[2].id, Some(at(3, 5))).await.unwrap();
    assert_eq!(
        s.published().await.unwrap(),
        at(3, 5),
        "answers published after the commit move the offset on"
    );
    s.mark_published(rows[2].id, Some(at(3, 4))).await.unwrap();
    assert_eq!(s.published().await.unwrap(), at(3, 5));
    s.mark_published(rows[5].id, Some(at(6, 12))).await.unwrap();
    assert_eq!(s.published().await.unwrap(), at(6, 12));
    assert!(s.unpublished(10).await.unwrap().is_empty());
}

/// A write made against a version is refused in its own transaction when the document moved
/// on (`Stale`) or is gone (`NotFound`), on both roles' writes; nothing is written then.
pub async fn conditional_writes_check_the_version_they_were_made_against(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    let (doc, _) = s
        .master_write(&create(id, json!({"n": 1})), Hlc::default(), 1)
        .await
        .unwrap();
    let set = |n: i64| update(id, json!({ "n": n }));
    let (moved, _) = s
        .master_write_if(&set(2), Some(doc.version), Hlc::default(), 2)
        .await
        .unwrap();
    match s
        .master_write_if(&set(3), Some(doc.version), Hlc::default(), 3)
        .await
    {
        Err(Error::Stale { expected, current }) => {
            assert_eq!((expected, current), (doc.version, moved.version))
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(
        s.document(&ct(), id).await.unwrap().unwrap().fields["n"],
        json!(2)
    );
    s.master_write(&delete(id), Hlc::default(), 4).await.unwrap();
    assert!(matches!(
        s.master_write_if(&set(4), Some(moved.version), Hlc::default(), 5)
            .await,
        Err(Error::NotFound)
    ));

    let ship_doc = DocumentId::new_v7();
    let first = create(ship_doc, json!({"n": 1}));
    s.local_write(&ship(), &first, Hlc::default(), 6).await.unwrap();
    let second = update(ship_doc, json!({"n": 2}));
    let queued = s.outbox(&ship(), None, Page::all()).await.unwrap().1;
    match s
        .local_write_if(&ship(), &second, Some(7), Hlc::default(), 7)
        .await
    {
        Err(Error::Stale {
            expected: 7,
            current: 0,
        }) => {}
        other => panic!("expected Stale at base version 0, got {other:?}"),
    }
    assert_eq!(
        s.outbox(&ship(), None, Page::all()).await.unwrap().1,
        queued,
        "nothing queued"
    );
    s.local_write_if(&ship(), &second, Some(0), Hlc::default(), 8)
        .await
        .unwrap();
}

pub async fn broadcasts_are_published_by_a_position_that_only_moves_forward(s: &dyn Storage) {
    for n in 0..3 {
        s.master_write(
            &create(DocumentId::new_v7(), json!({ "n": n })),
            Hlc::default(),
            1,
        )
        .await
        .unwrap();
    }
    let rows = s.unpublished(10).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(s.unpublished_count(10).await.unwrap(), 3);
    assert_eq!(
        s.unpublished_count(2).await.unwrap(),
        2,
        "counted up to the limit"
    );

    s.mark_published(rows[1].id, None).await.unwrap();
    s.mark_published(rows[0].id, None).await.unwrap();
    let rest = s.unpublished(10).await.unwrap();
    assert_eq!(rest.len(), 1, "marking an earlier row again moves nothing back");
    assert_eq!(rest[0].id, rows[2].id);
    assert_eq!(s.unpublished_count(10).await.unwrap(), 1);

    s.mark_published(rows[2].id, None).await.unwrap();
    assert_eq!(
        s.prune(2).await.unwrap(),
        6,
        "every published broadcast is pruned, with the change feed's events of the same writes"
    );
    s.master_write(&create(DocumentId::new_v7(), json!({})), Hlc::default(), 3)
        .await
        .unwrap();
    let next = s.unpublished(10).await.unwrap();
    assert_eq!(
        next.len(),
        1,
        "a broadcast written after the table was emptied is not passed over"
    );
    assert!(next[0].id > rows[2].id, "ids are never handed out again");
}
