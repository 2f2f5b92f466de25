//! Checks of the change feed: every change of a document's content the node applied, in
//! order, and nothing else.

use offline_sync_model::{CommitOp, DocumentId, Hlc, Message};
use serde_json::json;

use crate::{FeedKind, ReplicaBatch, Storage, TopicOffset};

use super::*;

/// The feed after `after`, as (seq, kind, document, its fields, its version).
async fn feed(s: &dyn Storage, after: u64) -> Vec<(u64, FeedKind, DocumentId, Fields, u64)> {
    let page = s.feed(after, 100).await.unwrap();
    page.events
        .into_iter()
        .map(|e| (e.seq, e.kind, e.doc.id, e.doc.fields, e.doc.version))
        .collect()
}

pub async fn the_feed_holds_every_content_change_in_order(s: &dyn Storage) {
    let empty = s.feed(0, 10).await.unwrap();
    assert_eq!((empty.events.len(), empty.last, empty.pruned_through), (0, 0, 0));

    let (a, b, c) = (DocumentId::new_v7(), DocumentId::new_v7(), DocumentId::new_v7());
    let writes = [
        (create(a, json!({"n": 1})), 10),
        (create(b, json!({"n": 1})), 11),
        (update(a, json!({"n": 2})), 12),
        // Values already there change nothing: no event.
        (update(a, json!({"n": 2})), 13),
        (delete(b), 14),
    ];
    for (w, at) in &writes {
        s.local_write(&ship(), w, Hlc::default(), *at).await.unwrap();
    }
    // The master's answer to the first write moves the base version only; its commit of
    // another document, made onshore, is a change the node applied.
    let answers = ReplicaBatch::read(
        vec![
            echo(1, 1, a),
            Message::Commit(commit(2, None, c, CommitOp::Put, json!({"t": "onshore"}))),
        ],
        vec![],
        TopicOffset::new("master-updates", 0, 2),
    );
    s.replica_apply(&ship(), &answers, 20).await.unwrap();

    let all = feed(s, 0).await;
    let kinds: Vec<_> = all.iter().map(|(_, k, id, f, _)| (*k, *id, f.clone())).collect();
    assert_eq!(
        kinds,
        [
            (FeedKind::Create, a, fields(json!({"n": 1}))),
            (FeedKind::Create, b, fields(json!({"n": 1}))),
            (FeedKind::Update, a, fields(json!({"n": 2}))),
            // A delete carries the last content, as the tombstone keeps it.
            (FeedKind::Delete, b, fields(json!({"n": 1}))),
            (FeedKind::Create, c, fields(json!({"t": "onshore"}))),
        ]
    );
    let seqs: Vec<u64> = all.iter().map(|e| e.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(all[4].4, 2, "the master's commit carries its CSN");

    // Reading on from any position gives exactly the rest; pages do not overlap.
    assert_eq!(feed(s, seqs[1]).await, all[2..].to_vec());
    let first = s.feed(0, 2).await.unwrap();
    assert_eq!(first.events.len(), 2);
    assert_eq!(first.last, seqs[4], "a full page knows the last position too");
    assert_eq!(s.feed(seqs[4], 10).await.unwrap().events, []);

    // The master deletes a document and brings it back: a delete, then a create. Two
    // commits of one document applied in one transaction show as the state they left.
    let one = |csn: u64, op: CommitOp, f: serde_json::Value| {
        ReplicaBatch::read(
            vec![Message::Commit(commit(csn, None, c, op, f))],
            vec![],
            TopicOffset::new("master-updates", 0, csn as i64),
        )
    };
    s.replica_apply(&ship(), &one(3, CommitOp::Delete, json!({})), 30)
        .await
        .unwrap();
    s.replica_apply(&ship(), &one(4, CommitOp::Put, json!({"t": "back"})), 30)
        .await
        .unwrap();
    let both = ReplicaBatch::read(
        vec![
            Message::Commit(commit(5, None, c, CommitOp::Patch, json!({"t": "first"}))),
            Message::Commit(commit(6, None, c, CommitOp::Patch, json!({"t": "then"}))),
        ],
        vec![],
        TopicOffset::new("master-updates", 0, 6),
    );
    s.replica_apply(&ship(), &both, 30).await.unwrap();
    let again = feed(s, seqs[4]).await;
    let kinds: Vec<_> = again.iter().map(|e| (e.1, e.2, e.3.clone(), e.4)).collect();
    assert_eq!(
        kinds,
        [
            (FeedKind::Delete, c, fields(json!({"t": "onshore"})), 3),
            (FeedKind::Create, c, fields(json!({"t": "back"})), 4),
            (FeedKind::Update, c, fields(json!({"t": "then"})), 6),
        ]
    );
    let again = &again[2..];

    // Retention removes the oldest events only, and the feed says how far it went.
    s.prune(13).await.unwrap();
    let kept = s.feed(0, 100).await.unwrap();
    assert_eq!(kept.pruned_through, seqs[2]);
    assert_eq!(kept.events.first().map(|e| e.seq), Some(seqs[3]));
    assert_eq!(kept.last, again[0].0);
    s.prune(1_000).await.unwrap();
    let none = s.feed(0, 100).await.unwrap();
    assert_eq!(
        (none.events.len(), none.pruned_through, none.last),
        (0, again[0].0, again[0].0)
    );

    // Positions are never given twice, even once the rows that had them are gone.
    s.local_write(&ship(), &update(c, json!({"t": "aboard"})), Hlc::default(), 2_000)
        .await
        .unwrap();
    let next = feed(s, again[0].0).await;
    assert_eq!(next.len(), 1);
    assert!(next[0].0 > again[0].0);
}

pub async fn master_commits_are_in_the_feed_in_csn_order(s: &dyn Storage) {
    let (a, b) = (DocumentId::new_v7(), DocumentId::new_v7());
    let ct = ct();
    let mut csns = Vec::new();
    for (id, n) in [(a, 1), (b, 1), (a, 2)] {
        let w = if n == 1 {
            create(id, json!({"n": n}))
        } else {
            update(id, json!({"n": n}))
        };
        let (doc, _) = s.master_write(&w, Hlc::default(), 100 + n).await.unwrap();
        csns.push(doc.version);
    }
    let events = s.feed(0, 10).await.unwrap().events;
    let got: Vec<_> = events.iter().map(|e| (e.kind, e.doc.id, e.doc.version)).collect();
    assert_eq!(
        got,
        [
            (FeedKind::Create, a, csns[0]),
            (FeedKind::Create, b, csns[1]),
            (FeedKind::Update, a, csns[2]),
        ]
    );
    assert!(events.iter().all(|e| e.doc.content_type == ct));
}
