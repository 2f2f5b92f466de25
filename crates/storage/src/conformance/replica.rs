//! Checks of a replica's storage: local writes with their outbox rows, delivery states, the
//! master's answers.

use offline_sync_model::{AckOutcome, CommitOp, DocumentId, Hlc, Message, Op, ShipId};
use serde_json::json;

use crate::{Error, NewDeadLetter, OutboxState, Page, ReplicaBatch, Storage, TopicOffset};

use super::*;

pub async fn replica_local_writes_append_outbox_rows(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    let create = create(id, json!({"title": "a", "n": 1}));
    let w = s.local_write(&ship(), &create, Hlc::default(), 10).await.unwrap();
    assert_eq!(w.seq, Some(1));
    assert!(matches!(
        s.local_write(&ship(), &create, Hlc::default(), 10).await,
        Err(crate::Error::AlreadyExists)
    ));
    // An update to the values already there appends nothing; a change appends the next seq.
    for (title, at, seq) in [("a", 11, None), ("b", 12, Some(2))] {
        let retitle = update(id, json!({"title": title}));
        let w = s
            .local_write(&ship(), &retitle, Hlc::default(), at)
            .await
            .unwrap();
        assert_eq!(w.seq, seq, "title {title}");
    }
    let bad = update(id, json!({"documentId": "x"}));
    assert!(matches!(
        s.local_write(&ship(), &bad, Hlc::default(), 12).await,
        Err(crate::Error::Invalid { .. })
    ));
    let missing = delete(DocumentId::new_v7());
    assert!(matches!(
        s.local_write(&ship(), &missing, Hlc::default(), 12).await,
        Err(crate::Error::NotFound)
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

pub async fn outbox_rows_move_from_pending_to_sent_to_acked(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    for i in 0..3 {
        let w = if i == 0 {
            create(id, json!({"n": i}))
        } else {
            update(id, json!({"n": i}))
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
    let ahead = |csn| commit(csn, None, id, CommitOp::Patch, json!({"n": 9}));
    let skipping = ReplicaBatch::read(
        vec![Message::Commit(ahead(2))],
        vec![],
        TopicOffset::new("master-updates", 0, 7),
    );
    assert!(matches!(
        s.replica_apply(&ship(), &skipping, 350).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(s.replica_progress().await.unwrap().applied_csn, 0);
    assert_eq!(s.offset("master-updates", 0).await.unwrap(), None);

    // The master's echo of seq 2 answers row 2 only: every row gets its own answer, and one
    // left unanswered below it is another change under a seq the master used (a restored
    // database), never taken as applied.
    let echo = commit(1, Some(2), id, CommitOp::Patch, json!({"n": 1}));
    let batch = ReplicaBatch::read(
        vec![Message::Commit(echo)],
        vec![],
        TopicOffset::new("master-updates", 0, 1),
    );
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

pub async fn replica_acks_gap_duplicate_and_rejection(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    s.local_write(&ship(), &create(id, json!({"a": 1})), Hlc::default(), 1)
        .await
        .unwrap();
    s.local_write(&ship(), &update(id, json!({"a": 2})), Hlc::default(), 1)
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
    let batch = ReplicaBatch::read(
        vec![
            other,
            ack(2, AckOutcome::Gap { expected: 2 }),
            // Row 1's echo answers it; the duplicate answer after it then changes nothing.
            echo(1, 1, id),
            ack(1, AckOutcome::Duplicate { last_seq: 1 }),
        ],
        vec![NewDeadLetter {
            topic: "master-updates".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload: b"{oops".to_vec(),
            reason: "malformed json".into(),
        }],
        TopicOffset::new("master-updates", 0, 8),
    );
    let out = s.replica_apply(&ship(), &batch, 3).await.unwrap();
    assert_eq!((out.acked, out.resend, out.restored_below), (1, 1, None));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.sent), (1, 0));
    let (dl, _) = s.dead_letters(None, Page::default()).await.unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].letter.payload, b"{oops".to_vec());

    let rejected = ReplicaBatch::read(
        vec![
            ack(
                2,
                AckOutcome::Rejected {
                    reason: "not synced".into(),
                },
            ),
            ack(9, AckOutcome::Duplicate { last_seq: 9 }),
        ],
        vec![],
        TopicOffset::new("master-updates", 0, 10),
    );
    let out = s.replica_apply(&ship(), &rejected, 4).await.unwrap();
    assert_eq!(out.restored_below, Some(9));
    let stats = s.outbox_stats().await.unwrap();
    assert_eq!((stats.unacked(), stats.rejected), (0, 1));
    assert!(s.replica_doc(&ct(), id).await.unwrap().unwrap().marks.is_empty());

    // A database restored from a backup reuses seqs the master already applied: the
    // duplicate answer must not acknowledge the new write behind the reused seq.
    let w = update(id, json!({"a": 3}));
    assert_eq!(
        s.local_write(&ship(), &w, Hlc::default(), 5).await.unwrap().seq,
        Some(3)
    );
    let restored = ReplicaBatch::read(
        vec![ack(3, AckOutcome::Duplicate { last_seq: 40 })],
        vec![NewDeadLetter {
            topic: "master-updates".into(),
            partition: 0,
            offset: 10,
            key: None,
            payload: vec![0, 1, 2],
            reason: "unknown variant `\u{0}` with a NUL".into(),
        }],
        TopicOffset::new("master-updates", 0, 11),
    );
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

pub async fn outbox_lists_newest_first_by_state_with_total(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    s.local_write(&ship(), &create(id, json!({"n": 0})), Hlc::default(), 100)
        .await
        .unwrap();
    for n in 1..5 {
        let w = update(id, json!({"n": n}));
        s.local_write(&ship(), &w, Hlc::default(), 100 + n).await.unwrap();
    }
    s.outbox_mark_sent(1, 3, 200).await.unwrap();
    let seqs = |rows: &[crate::OutboxEntry]| rows.iter().map(|r| r.change.seq).collect::<Vec<_>>();

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

/// A batch from `master-updates` applies its commits in order, each on what the ones before
/// it left: several commits to one document in one batch, a delete, and a batch after it.
pub async fn a_batch_of_commits_sees_its_own_changes_in_order(s: &dyn Storage) {
    let (a, b) = (DocumentId::new_v7(), DocumentId::new_v7());
    let commit = |csn, id, op, f| Message::Commit(super::commit(csn, None, id, op, f));
    let batch =
        |messages, next| ReplicaBatch::read(messages, vec![], TopicOffset::new("master-updates", 0, next));
    let first = batch(
        vec![
            commit(1, a, CommitOp::Put, json!({"a": 1, "b": 1})),
            commit(2, a, CommitOp::Patch, json!({"b": 2})),
            commit(3, b, CommitOp::Put, json!({"x": 1})),
            commit(4, b, CommitOp::Delete, json!({})),
            commit(5, a, CommitOp::Patch, json!({"c": 3})),
        ],
        5,
    );
    let applied = s.replica_apply(&ship(), &first, 100).await.unwrap();
    assert_eq!((applied.commits, applied.skipped), (5, 0));
    let doc = s.replica_doc(&ct(), a).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(json!({"a": 1, "b": 2, "c": 3})));
    assert_eq!((doc.deleted, doc.base_version), (false, 5));
    let gone = s.replica_doc(&ct(), b).await.unwrap().unwrap();
    assert_eq!((gone.deleted, gone.base_version), (true, 4));

    let second = batch(vec![commit(6, a, CommitOp::Patch, json!({"a": 9}))], 6);
    s.replica_apply(&ship(), &second, 200).await.unwrap();
    let doc = s.replica_doc(&ct(), a).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(json!({"a": 9, "b": 2, "c": 3})));
    assert_eq!(s.replica_progress().await.unwrap().applied_csn, 6);

    // A batch larger than one round of the storage's own: a document created early is
    // patched on through the later commits, each seeing the one before.
    let c = DocumentId::new_v7();
    let mut messages = vec![commit(7, c, CommitOp::Put, json!({"first": true, "n": 7}))];
    messages.extend((8..=1_206).map(|csn| commit(csn, c, CommitOp::Patch, json!({"n": csn}))));
    let applied = s
        .replica_apply(&ship(), &batch(messages, 1_206), 300)
        .await
        .unwrap();
    assert_eq!(applied.commits, 1_200);
    let doc = s.replica_doc(&ct(), c).await.unwrap().unwrap();
    assert_eq!(doc.fields, fields(json!({"first": true, "n": 1_206})));
    assert_eq!(doc.base_version, 1_206);
}

/// A batch of echoes answers each outbox row with its own outcome, and a duplicate
/// acknowledgement of a row its echo answered earlier in the same batch is taken as the
/// repeat it is, not as a sign of a restored database: no row is renumbered.
pub async fn a_batch_of_echoes_answers_each_row_with_its_own_outcome(s: &dyn Storage) {
    let (a, b) = three_sent_writes(s).await;
    let duplicate = Message::Ack(offline_sync_model::Ack {
        ship: ship(),
        seq: 1,
        outcome: AckOutcome::Duplicate { last_seq: 3 },
    });
    let messages = vec![echo(1, 1, a), echo(2, 2, a), duplicate, echo(3, 3, b)];
    let batch = ReplicaBatch::read(messages, vec![], TopicOffset::new("master-updates", 0, 4));
    let applied = s.replica_apply(&ship(), &batch, 30).await.unwrap();
    assert_eq!((applied.acked, applied.renumbered), (3, 0));
    let (rows, _) = s.outbox(&ship(), None, Page::all()).await.unwrap();
    let answers: Vec<(u64, OutboxState, Option<String>)> = rows
        .into_iter()
        .map(|r| (r.change.seq, r.state, r.outcome))
        .collect();
    let answered = |seq: u64| (seq, OutboxState::Acked, Some(format!("applied at csn {seq}")));
    assert_eq!(answers, [answered(3), answered(2), answered(1)]);
    assert_eq!(s.outbox_stats().await.unwrap().last_seq, 3);
}

/// An echo that changes no field saves only the document's version and marks: a content
/// change made earlier in the same batch stays, and the version moves on every document.
pub async fn an_echo_that_changes_nothing_keeps_what_the_batch_changed_before_it(s: &dyn Storage) {
    let (a, b) = three_sent_writes(s).await;
    // The master added field m to a (a policy of its own); seq 2's echo then changes nothing.
    let messages = vec![
        Message::Commit(commit(1, Some(1), a, CommitOp::Put, json!({"n": 1, "m": 5}))),
        Message::Commit(commit(2, Some(2), a, CommitOp::Patch, json!({"n": 2}))),
        Message::Commit(commit(3, Some(3), b, CommitOp::Put, json!({"n": 3}))),
    ];
    let batch = ReplicaBatch::read(messages, vec![], TopicOffset::new("master-updates", 0, 3));
    s.replica_apply(&ship(), &batch, 30).await.unwrap();
    let doc_a = s.replica_doc(&ct(), a).await.unwrap().unwrap();
    assert_eq!(doc_a.fields, fields(json!({"n": 2, "m": 5})));
    assert_eq!((doc_a.base_version, doc_a.marks.len()), (2, 0));
    let doc_b = s.replica_doc(&ct(), b).await.unwrap().unwrap();
    assert_eq!(doc_b.fields, fields(json!({"n": 3})));
    assert_eq!((doc_b.base_version, doc_b.marks.len()), (3, 0));
}

/// Creates document a (seq 1) and updates it (seq 2), creates b (seq 3), and sends all three.
async fn three_sent_writes(s: &dyn Storage) -> (DocumentId, DocumentId) {
    let (a, b) = (DocumentId::new_v7(), DocumentId::new_v7());
    let writes = [
        create(a, json!({"n": 1})),
        update(a, json!({"n": 2})),
        create(b, json!({"n": 3})),
    ];
    for (n, w) in writes.iter().enumerate() {
        s.local_write(&ship(), w, Hlc::default(), 10 + n as u64)
            .await
            .unwrap();
    }
    s.outbox_mark_sent(1, 3, 20).await.unwrap();
    (a, b)
}
