//! The storage conformance suite: what every [`Storage`] must do, as async
//! checks over `&dyn Storage`, split by area. It runs against SQLite and PostgreSQL in this
//! crate's tests; a team embedding the engine with its own backend runs it the same way,
//! with the `testing` feature and tokio's test macro:
//!
//! ```ignore
//! offline_sync_storage::storage_conformance!(my_backend, |label: &'static str| async move {
//!     MyStorage::fresh(label).await
//! });
//! ```
//!
//! Each check gets a fresh, empty storage (`label` names the check, for a database of its
//! own) and panics on the first thing that is not as the trait documents.

#![allow(clippy::unwrap_used)]

pub mod feed;
pub mod logs;
pub mod master;
pub mod queries;
pub mod replica;

use offline_sync_model::{
    Change, Commit, CommitOp, ContentType, DocumentId, Fields, Hlc, LocalWrite, Message, Op, Origin,
    Policies, ShipId, decode,
};
use serde_json::json;

use crate::{MasterBatch, NewDeadLetter, Page, Storage, TopicOffset};

pub(crate) fn ct() -> ContentType {
    ContentType::new("api::article.article").unwrap()
}

pub(crate) fn ship() -> ShipId {
    ShipId::new("ship-1").unwrap()
}

pub(crate) fn fields(v: serde_json::Value) -> Fields {
    v.as_object().unwrap().clone()
}

/// A local create of the test article `id` with `v`'s fields.
pub(crate) fn create(id: DocumentId, v: serde_json::Value) -> LocalWrite {
    LocalWrite::Create {
        content_type: ct(),
        id,
        fields: fields(v),
    }
}

/// A local update of the test article `id` with `v`'s fields.
pub(crate) fn update(id: DocumentId, v: serde_json::Value) -> LocalWrite {
    LocalWrite::Update {
        content_type: ct(),
        id,
        fields: fields(v),
    }
}

/// A local delete of the test article `id`.
pub(crate) fn delete(id: DocumentId) -> LocalWrite {
    LocalWrite::Delete {
        content_type: ct(),
        id,
    }
}

/// The master's commit at `csn` of the test article `id` with `f`'s fields: of this ship's
/// change `seq`, or of the master's own change when `None`; written with `Hlc::default()`.
pub(crate) fn commit(
    csn: u64,
    seq: Option<u64>,
    id: DocumentId,
    op: CommitOp,
    f: serde_json::Value,
) -> Commit {
    Commit {
        csn,
        origin: seq.map_or(Origin::Master, |_| Origin::Ship(ship())),
        seq,
        ct: ct(),
        id,
        op,
        fields: fields(f),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    }
}

/// The master's commit of this ship's change `seq` at `csn`, written with `Hlc::default()`.
pub(crate) fn echo(seq: u64, csn: u64, id: DocumentId) -> Message {
    Message::Commit(commit(csn, Some(seq), id, CommitOp::Patch, json!({})))
}

pub(crate) fn change(seq: u64, id: DocumentId, op: Op, f: serde_json::Value, base: u64) -> Change {
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

pub(crate) fn offset(next: i64) -> TopicOffset {
    TopicOffset::new("ship-updates", 0, next)
}

pub(crate) async fn published(s: &dyn Storage) -> Vec<Message> {
    let rows = s.unpublished(1000).await.unwrap();
    if let Some(last) = rows.last() {
        s.mark_published(last.id, None).await.unwrap();
    }
    rows.iter().map(|b| decode(&b.payload).unwrap()).collect()
}

pub(crate) fn letter(offset: i64) -> NewDeadLetter {
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
pub(crate) async fn store_dead_letters(s: &dyn Storage, n: i64, now_ms: u64) -> Vec<u64> {
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

/// One `#[tokio::test]` per check of the suite, in a module named `$backend`, each on a fresh
/// storage made by `$make` (an async closure or function taking the check's name). `$make` is
/// written inside that module: name your own items in it with `super::`.
#[macro_export]
macro_rules! storage_conformance {
    ($backend:ident, $make:expr) => {
        $crate::storage_conformance!(@checks $backend, $make,
            replica::replica_local_writes_append_outbox_rows,
            replica::outbox_rows_move_from_pending_to_sent_to_acked,
            replica::replica_acks_gap_duplicate_and_rejection,
            replica::outbox_lists_newest_first_by_state_with_total,
            replica::a_batch_of_commits_sees_its_own_changes_in_order,
            replica::a_batch_of_echoes_answers_each_row_with_its_own_outcome,
            replica::an_echo_that_changes_nothing_keeps_what_the_batch_changed_before_it,
            master::master_applies_a_batch_exactly_once,
            master::a_large_batch_sees_its_own_changes_in_order,
            master::overlapping_edits_make_one_conflict_that_resolves,
            master::master_local_writes_are_broadcast_in_commit_order,
            master::conflicts_are_counted_by_status,
            master::the_master_serves_its_state_in_pages_from_a_published_point,
            master::conditional_writes_check_the_version_they_were_made_against,
            master::broadcasts_are_published_by_a_position_that_only_moves_forward,
            logs::retention_prunes_only_answered_rows,
            logs::dead_letters_list_by_status_with_totals,
            logs::settling_a_dead_letter_happens_once,
            logs::automatic_retries_are_due_counted_and_exhausted,
            logs::retention_prunes_dead_letters_by_when_they_were_handled,
            logs::keys_are_kept_once_and_the_audit_log_is_pruned_by_age,
            logs::ping_answers,
            queries::every_filter_operator_selects_what_it_documents,
            queries::sorts_order_by_type_then_value_then_id,
            queries::a_string_holding_a_nul_fails_no_query,
            queries::any_field_name_is_read_alike,
            feed::the_feed_holds_every_content_change_in_order,
            feed::master_commits_are_in_the_feed_in_csn_order
        );
    };
    (@checks $backend:ident, $make:expr, $($area:ident::$check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $check() {
                    let make = $make;
                    let storage = make(stringify!($check)).await;
                    $crate::conformance::$area::$check(&storage).await;
                }
            )*
        }
    };
}
