//! Checks of what both roles keep: retention, dead letters and their retries, keys, the
//! audit log, the ping.

use offline_sync_model::{DocumentId, Hlc};
use serde_json::json;

use crate::{
    DeadLetter, DeadLetterCounts, DeadLetterStatus, Error, Page, ReplicaBatch, Storage, TopicOffset,
};

use super::*;

pub async fn retention_prunes_only_answered_rows(s: &dyn Storage) {
    let id = DocumentId::new_v7();
    let w = |n: i64| update(id, json!({"n": n}));
    s.local_write(&ship(), &create(id, json!({"n": 0})), Hlc::default(), 1)
        .await
        .unwrap();
    s.local_write(&ship(), &w(1), Hlc::default(), 2).await.unwrap();
    s.outbox_mark_sent(1, 2, 3).await.unwrap();
    let batch = ReplicaBatch::read(
        vec![echo(1, 1, id)],
        vec![],
        TopicOffset::new("master-updates", 0, 1),
    );
    s.replica_apply(&ship(), &batch, 10).await.unwrap();
    s.master_write(&create(DocumentId::new_v7(), json!({})), Hlc::default(), 10)
        .await
        .unwrap();
    s.master_write(&create(DocumentId::new_v7(), json!({})), Hlc::default(), 10)
        .await
        .unwrap();
    let first = s.unpublished(1).await.unwrap();
    s.mark_published(first[0].id, None).await.unwrap();

    assert_eq!(
        s.prune(10).await.unwrap(),
        2,
        "nothing but the change feed's events of the writes at 1 and 2 is older than the cut-off"
    );
    assert_eq!(
        s.prune(11).await.unwrap(),
        4,
        "the acked outbox row, the published broadcast and the feed's events of the writes at 10"
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

pub async fn dead_letters_list_by_status_with_totals(s: &dyn Storage) {
    assert_eq!(s.dead_letter_counts().await.unwrap(), DeadLetterCounts::default());
    let ids = store_dead_letters(s, 4, 10).await;
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

    settle(
        s,
        &[
            (ids[0], DeadLetterStatus::Resolved, 20),
            (ids[1], DeadLetterStatus::Discarded, 21),
            (ids[2], DeadLetterStatus::Discarded, 22),
        ],
    )
    .await;
    assert_eq!(
        s.dead_letter_counts().await.unwrap(),
        DeadLetterCounts {
            pending: 1,
            resolved: 1,
            discarded: 2,
            ..DeadLetterCounts::default()
        }
    );
    // Each status lists its own letters; the total counts every match, not the page.
    for (status, page, listed, all) in [
        (DeadLetterStatus::Pending, Page::all(), vec![ids[3]], 1),
        (DeadLetterStatus::Resolved, Page::all(), vec![ids[0]], 1),
        (
            DeadLetterStatus::Discarded,
            Page { offset: 0, limit: 1 },
            vec![ids[2]],
            2,
        ),
    ] {
        let (letters, total) = s.dead_letters(Some(status), page).await.unwrap();
        assert_eq!(total, all, "{status:?}");
        assert_eq!(
            letters.iter().map(|l| l.id).collect::<Vec<_>>(),
            listed,
            "{status:?}"
        );
    }
}

/// Settles letter `id` as `status` at `at_ms`, and checks the letter returned says so.
async fn settled(s: &dyn Storage, id: u64, status: DeadLetterStatus, at_ms: u64) -> DeadLetter {
    let letter = s.settle_dead_letter(id, status, at_ms).await.unwrap();
    assert_eq!((letter.status, letter.handled_at_ms), (status, Some(at_ms)));
    letter
}

/// Settles each `(id, status, at_ms)` in turn.
async fn settle(s: &dyn Storage, settles: &[(u64, DeadLetterStatus, u64)]) {
    for &(id, status, at_ms) in settles {
        settled(s, id, status, at_ms).await;
    }
}

pub async fn settling_a_dead_letter_happens_once(s: &dyn Storage) {
    let ids = store_dead_letters(s, 3, 10).await;

    let retried = settled(s, ids[0], DeadLetterStatus::Resolved, 20).await;
    assert_eq!(retried.created_at_ms, 10);
    assert_eq!(retried.letter, letter(1));
    assert_eq!(s.dead_letter(ids[0]).await.unwrap(), Some(retried.clone()));

    settled(s, ids[1], DeadLetterStatus::Discarded, 30).await;

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

pub async fn automatic_retries_are_due_counted_and_exhausted(s: &dyn Storage) {
    let ids = store_dead_letters(s, 2, 10).await;
    let due = |now| async move {
        s.due_dead_letters(now, 10)
            .await
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>()
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
    let resolved = settled(s, ids[0], DeadLetterStatus::Resolved, 200).await;
    let unchanged = s.dead_letter_failed(ids[0], Some(300)).await.unwrap();
    assert_eq!(unchanged, resolved, "a settled letter is not retried any more");
}

pub async fn retention_prunes_dead_letters_by_when_they_were_handled(s: &dyn Storage) {
    // All three arrived long before any cut-off used below.
    let ids = store_dead_letters(s, 3, 1).await;
    settle(
        s,
        &[
            (ids[0], DeadLetterStatus::Discarded, 100),
            (ids[1], DeadLetterStatus::Resolved, 500),
        ],
    )
    .await;

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

pub async fn keys_are_kept_once_and_the_audit_log_is_pruned_by_age(s: &dyn Storage) {
    use crate::{KeySource, KeyStatus, NewAuditEntry, PeerKey};
    use offline_sync_model::SigningKey;

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

/// The database answers a ping, within ten seconds.
pub async fn ping_answers(s: &dyn Storage) {
    let took = s.ping().await.unwrap();
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}
