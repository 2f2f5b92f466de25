//! The [`Storage`] trait of offline-sync and [`SeaStorage`], its one implementation, on
//! sea-orm over PostgreSQL or SQLite.
//!
//! Every method is one transaction: a local write with its outbox row, a batch of incoming
//! messages with the consumer offset that follows them, a conflict resolution with its
//! broadcast. The decisions themselves are the pure functions of `offline-sync-model`, called
//! inside the transaction.

#[cfg(feature = "testing")]
pub mod conformance;
mod delegate;
mod entity;
mod error;
mod query;
mod sea;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

use std::collections::BTreeMap;

use async_trait::async_trait;
use offline_sync_model::{
    Commit, Conflict, ConflictId, ContentType, Csn, DocumentId, Hlc, LocalWrite, MasterDoc, Policies,
    ReplicaDoc, Seq, ShipId, Strategy,
};

pub use error::{Cause, Error, Result};
pub use query::{Case, DocumentQuery, Filter, Member, SortKey, Test, TextTest};
pub use sea::{FieldIndexes, MasterLock, SeaStorage};
pub use types::{
    AuditEntry, Broadcast, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus, FeedEvent,
    FeedKind, FeedPage, KeySource, KeyStatus, LocalWritten, MasterApplied, MasterBatch, NewAuditEntry,
    NewDeadLetter, OutboxEntry, OutboxState, OutboxStats, Page, PeerKey, Published, ReplicaApplied,
    ReplicaBatch, ReplicaProgress, ResyncFinished, ResyncPage, ResyncPhase, ResyncStart, ResyncStarted,
    ResyncState, ShipRecord, ShipSeq, StoredDoc, TopicOffset, Unreadable,
};

/// The outcome of an outbox row the master answered (applied it, or refused it) before a
/// resync, when its answer was no longer on `master-updates` to read: the resync brought the
/// master's state of its document either way.
pub const ANSWERED_BEFORE_RESYNC: &str = "answered by the master before a resync (applied or refused); the answer itself was no longer on master-updates";

/// Durable state of one node (master or replica).
///
/// Usable as `Arc<dyn Storage>`. Each method runs in one transaction: it either happens
/// entirely or not at all, so a call cancelled or interrupted by a crash leaves nothing
/// half-written. Callers serialise the mutating methods of one node (the engine holds one
/// writer lock per node); reads may run at any time.
///
/// Every method may fail with [`Error::Unavailable`] (the database is out of reach) or
/// [`Error::Contended`] (another writer held the database, or the database cancelled the
/// transaction; nothing was written), both retryable, and with [`Error::Internal`] (the
/// database refused a query, or holds data this build cannot read), which is not. Each
/// method's doc names only the errors it returns besides these ("no other errors" when there
/// are none), and says whether repeating the call is safe.
///
/// The methods are split along the roles: [`CommonStorage`] (both), [`ReplicaStorage`] and
/// [`MasterStorage`]; one type implements the three (one database serves either role).
pub trait Storage: CommonStorage + ReplicaStorage + MasterStorage {}

impl<T: CommonStorage + ReplicaStorage + MasterStorage> Storage for T {}

/// What both roles store: documents, offsets, dead letters, keys, the audit log, retention.
#[async_trait]
pub trait CommonStorage: Send + Sync + std::fmt::Debug {
    /// Checks the database answers; returns how long the round trip took. Fails only with
    /// `Unavailable`, whatever stopped the round trip. Reads nothing and changes nothing; safe
    /// to repeat.
    async fn ping(&self) -> Result<std::time::Duration>;

    /// One document as users see it (a tombstone reads as deleted). Read-only; no other errors.
    async fn document(&self, ct: &ContentType, id: DocumentId) -> Result<Option<StoredDoc>>;

    /// Live documents, ordered by content type then id; with `ct`, of that type only. Returns
    /// the page and the total count. Read-only; no other errors.
    async fn documents(&self, ct: Option<&ContentType>, page: Page) -> Result<(Vec<StoredDoc>, u64)>;

    /// Live documents of `ct` that `query` shows, in its order: the page and how many there
    /// are in all. Evaluated by the database. Read-only; no other errors.
    async fn find_documents(
        &self,
        ct: &ContentType,
        query: &DocumentQuery,
        page: Page,
    ) -> Result<(Vec<StoredDoc>, u64)>;

    /// The stored next offset of a topic partition, if any record of it was processed.
    /// Read-only; no other errors.
    async fn offset(&self, topic: &str, partition: u32) -> Result<Option<i64>>;

    /// Dead letters, newest first, optionally of one status, and how many match in all.
    /// Read-only; no other errors.
    async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)>;

    /// One dead letter (`None`, not `NotFound`, when there is none). Read-only; no other errors.
    async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>>;

    /// How many dead letters are in each status. Read-only; no other errors.
    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts>;

    /// Marks a waiting (pending, retrying or exhausted) dead letter as resolved or discarded
    /// (the time is kept in `handled_at_ms`, which retention uses). Errors: `Invalid` for a
    /// waiting `status`; `NotFound`; `Conflict` when it does not wait any more. Of two calls
    /// for one letter only the first succeeds, so repeating it returns `Conflict` and changes
    /// nothing.
    async fn settle_dead_letter(&self, id: u64, status: DeadLetterStatus, now_ms: u64) -> Result<DeadLetter>;

    /// Up to `limit` dead letters whose automatic retry is due at `now_ms` (pending ones, and
    /// retrying ones whose time has come), oldest first. Read-only; no other errors.
    async fn due_dead_letters(&self, now_ms: u64, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Counts a failed automatic retry of a waiting letter: it is `retrying` until
    /// `next_retry_at_ms`, or `exhausted` when that is `None`. Errors: `NotFound`. On a letter
    /// that no longer waits it changes nothing and returns the letter. Not idempotent: each
    /// call on a waiting letter counts another attempt.
    async fn dead_letter_failed(&self, id: u64, next_retry_at_ms: Option<u64>) -> Result<DeadLetter>;

    /// Applies the retention rules of the log tables: deletes outbox rows answered, broadcasts
    /// published, dead letters handled (resolved or discarded) and change feed events applied
    /// before `before_ms` (the feed only ever loses its oldest events).
    /// Documents, tombstones, open conflicts and anything unanswered are never pruned. Returns
    /// how many rows were deleted. No other errors. Safe to repeat.
    async fn prune(&self, before_ms: u64) -> Result<u64>;

    /// Changes made per minute from `since_ms` on: commits on a master, local writes on a
    /// replica, as (start of the minute in ms, count), oldest first, minutes without any left
    /// out. Counted from the kept rows, so a minute older than the retention reads low.
    /// Read-only; no other errors.
    async fn changes_per_minute(&self, since_ms: u64) -> Result<Vec<(u64, u64)>>;

    /// Up to `limit` events of the change feed after position `after`, oldest first: every
    /// change of a document's content this node applied (its own writes, the master's
    /// commits, a resync's pages), in the order it applied them, with where pruning left
    /// the feed. Read-only; no other errors.
    async fn feed(&self, after: u64, limit: usize) -> Result<FeedPage>;

    /// How far webhook `hook` (a name of at most 48 characters) has delivered the feed, or
    /// `None` before it was first saved. Read-only; no other errors.
    async fn webhook_position(&self, hook: &str) -> Result<Option<u64>>;

    /// Saves how far webhook `hook` has delivered the feed. Errors: `Invalid` (a name longer
    /// than 48 characters).
    async fn save_webhook_position(&self, hook: &str, position: u64) -> Result<()>;

    /// This node's signing key seed: the stored one, or `generated` stored now when there is
    /// none yet (so the first call of a new node keeps its key for good). No other errors.
    /// Safe to repeat: a second call returns the first seed.
    async fn signing_seed(&self, generated: [u8; 32], now_ms: u64) -> Result<[u8; 32]>;

    /// The keys pinned for this node's peers, by sender. Read-only; no other errors.
    async fn peer_keys(&self) -> Result<Vec<PeerKey>>;

    /// Pins a peer's key first seen: inserts `key` unless a row for its signer exists, and
    /// returns the stored row (`key`, or what was there). No other errors. Safe to repeat: the
    /// first key pinned for a signer stays.
    async fn pin_peer_key(&self, key: &PeerKey) -> Result<PeerKey>;

    /// Pins, approves or revokes a peer's key: inserts the row, or replaces its key, status,
    /// source and update time (the first-seen time stays). No other errors. Safe to repeat.
    async fn save_peer_key(&self, key: &PeerKey) -> Result<()>;

    /// Appends an admin action to the audit log. No other errors. Not idempotent: each call is
    /// one more entry.
    async fn audit(&self, entry: &NewAuditEntry) -> Result<()>;

    /// The audit log, newest first, and how many entries it holds. Read-only; no other errors.
    async fn audit_log(&self, page: Page) -> Result<(Vec<AuditEntry>, u64)>;

    /// The audit log's retention rule: deletes entries recorded before `before_ms`; returns
    /// how many. No other errors. Safe to repeat.
    async fn prune_audit(&self, before_ms: u64) -> Result<u64>;
}

/// What a replica stores: its documents with their marks, the outbox, what it applied of the
/// master's commits, its resync.
#[async_trait]
pub trait ReplicaStorage: Send + Sync + std::fmt::Debug {
    /// A replica's copy of a document, with its marks. Read-only; no other errors.
    async fn replica_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<ReplicaDoc>>;

    /// Applies a local write on a replica and appends its outbox row with the next seq, in one
    /// transaction. A write that changes nothing (an update to the values already there)
    /// appends nothing. Errors: `NotFound` (an update or delete of a document missing or
    /// deleted), `AlreadyExists` (a create of a live document), `Invalid` (a field name or
    /// value), `TooLarge`. Not idempotent, though the same write repeated appends nothing more:
    /// a create fails with `AlreadyExists`, a delete with `NotFound`, and an update changes
    /// nothing unless its fields were changed in between.
    async fn local_write(
        &self,
        ship: &ShipId,
        write: &LocalWrite,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<LocalWritten> {
        self.local_write_if(ship, write, None, hlc, now_ms).await
    }

    /// [`ReplicaStorage::local_write`] made against version `expected` of the document (its base
    /// version), when given: checked in the write's own transaction, so no other writer of
    /// the database comes between. Errors: also `Stale` (another version), `NotFound` (the
    /// document is missing or deleted, for a create too). On repeat it behaves as
    /// `local_write`: a local write leaves the base version as it is, so the check passes again.
    async fn local_write_if(
        &self,
        ship: &ShipId,
        write: &LocalWrite,
        expected: Option<Csn>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<LocalWritten>;

    /// A replica's outbox rows as changes of `ship`, newest first (seq descending), optionally of
    /// one state, and how many match in all. Read-only; no other errors.
    async fn outbox(
        &self,
        ship: &ShipId,
        state: Option<OutboxState>,
        page: Page,
    ) -> Result<(Vec<OutboxEntry>, u64)>;

    /// Up to `limit` outbox rows not yet sent, in seq order, as changes of `ship`. Read-only;
    /// no other errors.
    async fn outbox_unsent(&self, ship: &ShipId, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// Marks unsent rows with seq in `from..=up_to` as sent (the transport accepted exactly
    /// those). No other errors. Safe to repeat.
    async fn outbox_mark_sent(&self, from: Seq, up_to: Seq, now_ms: u64) -> Result<()>;

    /// Marks sent, unacknowledged rows with seq ≥ `from` as unsent again, so they are sent
    /// once more. Returns how many. No other errors. Safe to repeat.
    async fn outbox_resend(&self, from: Seq) -> Result<u64>;

    /// Counts and ages of the outbox. Read-only; no other errors.
    async fn outbox_stats(&self) -> Result<OutboxStats>;

    /// Applies messages read from `master-updates` (commits and acknowledgements for this
    /// ship) and stores the batch's dead letters and the offset after it, in one transaction.
    /// Errors: `Conflict` when a commit skips a CSN (commits are gapless; nothing is stored).
    /// Applying a batch again skips its commits (at or below the applied CSN) and its
    /// acknowledgements of rows already answered, but stores its dead letters again, and a gap
    /// acknowledgement in it marks again as unsent the rows sent since.
    async fn replica_apply(&self, ship: &ShipId, batch: &ReplicaBatch, now_ms: u64)
    -> Result<ReplicaApplied>;

    /// Applied CSN and last seq of a replica. Read-only; no other errors.
    async fn replica_progress(&self) -> Result<ReplicaProgress>;

    /// The resync running, or the last one. Read-only; no other errors.
    async fn resync_state(&self) -> Result<Option<ResyncState>>;

    /// Asks for a resync of a replica from the master's state, for `reason`: of every
    /// document when `full`, otherwise of those changed above the applied CSN. While one is
    /// asked for or running it is kept (a full one replaces one that is not full, from its
    /// start). Returns the one that will run. No other errors. Safe to repeat: while the
    /// resync is not done, a repeat returns it.
    async fn request_resync(&self, full: bool, reason: &str, now_ms: u64) -> Result<ResyncState>;

    /// Starts the resync asked for at the master's point `start`: unanswered outbox rows the
    /// master applied under their seq with their hybrid logical time are marked answered
    /// (their answers are gone from the topic) and their documents take the master's state;
    /// other unanswered rows up to the master's last seq (written under seqs the master used
    /// for other changes: a database restored from a backup) are renumbered above it; sent
    /// rows above it go again; fields held in conflicts the master resolved are released.
    /// Errors: `Conflict` unless a resync is `requested`, so a repeat fails with `Conflict`
    /// and changes nothing.
    async fn start_resync(&self, ship: &ShipId, start: &ResyncStart, now_ms: u64) -> Result<ResyncStarted>;

    /// Applies one page of the master's state as the master's commits of whole documents
    /// (fields changed here and not yet answered keep their local values) and keeps where the
    /// next page starts, in one transaction. Errors: `Conflict` unless a resync is `fetching`.
    /// Applying a page again leaves its documents as they are but counts it again in the
    /// progress (`received`, `bytes`, `pages`).
    async fn apply_resync_page(&self, ship: &ShipId, page: &ResyncPage, now_ms: u64) -> Result<ResyncState>;

    /// Ends the running resync after its last page: the applied CSN becomes the master's point
    /// (when above it), `topic` is read on from `next` (the point's offset, or where the topic
    /// starts when it was recreated since and holds less), and for a full resync the
    /// local documents the master did not send and nobody changed here are removed. Errors:
    /// `Conflict` unless a resync is `fetching`, so a repeat fails with `Conflict` and changes
    /// nothing.
    async fn finish_resync(&self, topic: &str, next: i64, now_ms: u64) -> Result<ResyncFinished>;
}

/// What the master stores: documents with their per-field versions, ship batches applied,
/// commits and their broadcasts, conflicts, the ship registry, pages of its state.
#[async_trait]
pub trait MasterStorage: Send + Sync + std::fmt::Debug {
    /// The master's copy of a document, with its field versions (tombstones included).
    /// Read-only; no other errors.
    async fn master_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<MasterDoc>>;

    /// Applies a batch read from `ship-updates` in one transaction: each change in order is
    /// skipped if already applied (a duplicate acknowledgement is broadcast), refused if it
    /// comes before an earlier one of its ship (a gap acknowledgement), or decided and
    /// committed at the next CSN with its conflict and broadcast row; then heartbeats, dead
    /// letters and the offsets after the batch are stored. A change refused is answered, not
    /// failed: no other errors. Applying a batch again commits nothing more, but broadcasts new
    /// acknowledgements (duplicates, and a heartbeat's gap) and stores its dead letters again.
    async fn master_apply(
        &self,
        batch: &MasterBatch,
        policies: &Policies,
        now_ms: u64,
    ) -> Result<MasterApplied>;

    /// Applies a local write on the master at the next CSN with its broadcast row. A write that
    /// changes nothing commits nothing. Errors: `NotFound` (an update or delete of a document
    /// missing or deleted), `AlreadyExists` (a create of a document the master holds, a
    /// tombstone included), `Invalid` (a field name or value), `TooLarge`. Not idempotent,
    /// though the same write repeated commits nothing more: a create fails with
    /// `AlreadyExists`, a delete with `NotFound`, and an update commits nothing unless its
    /// fields were changed in between.
    async fn master_write(
        &self,
        write: &LocalWrite,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(MasterDoc, Option<Commit>)> {
        self.master_write_if(write, None, hlc, now_ms).await
    }

    /// [`MasterStorage::master_write`] made against version `expected` of the document, when given:
    /// checked in the write's own transaction. Errors: also `Stale` (another version),
    /// `NotFound` (the document is missing or deleted, for a create too). With `expected`, a
    /// repeat of a write that committed fails with `Stale` (`NotFound` after a delete): the
    /// commit moved the version.
    async fn master_write_if(
        &self,
        write: &LocalWrite,
        expected: Option<Csn>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(MasterDoc, Option<Commit>)>;

    /// Resolves an open conflict at the next CSN: writes the document, marks the conflict
    /// resolved and stores the broadcast row. Errors: `NotFound`, `Conflict` (already
    /// resolved), `Invalid` (merge data), `TooLarge` (the resolved document). A repeat fails
    /// with `Conflict` and changes nothing.
    async fn resolve_conflict(
        &self,
        id: ConflictId,
        strategy: &Strategy,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(Conflict, Commit)>;

    /// Conflicts `filter` lets through, newest first. Read-only; no other errors.
    async fn conflicts(&self, filter: &ConflictFilter, page: Page) -> Result<Vec<Conflict>>;

    /// How many conflicts `filter` lets through. Read-only; no other errors.
    async fn count_conflicts(&self, filter: &ConflictFilter) -> Result<u64>;

    /// The commits to document `ct`/`id` still kept for broadcast (see [`CommonStorage::prune`])
    /// with a CSN up to `up_to`, newest first, at most `limit`. What a conflict's base
    /// version held is read from them. Read-only; no other errors.
    async fn document_commits(
        &self,
        ct: &ContentType,
        id: DocumentId,
        up_to: Csn,
        limit: u64,
    ) -> Result<Vec<Commit>>;

    /// When each of the commits at `csns` was made (ms), for those whose broadcast row is
    /// kept, in one query. Read-only; no other errors.
    async fn commit_times(&self, csns: &[Csn]) -> Result<BTreeMap<Csn, u64>>;

    /// One conflict (`None`, not `NotFound`, when there is none). Read-only; no other errors.
    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>>;

    /// Up to `limit` broadcast rows not yet published, in commit order. Read-only; no other
    /// errors.
    async fn unpublished(&self, limit: usize) -> Result<Vec<Broadcast>>;

    /// How many broadcast rows wait to be published, counting at most `limit`. Read-only; no
    /// other errors.
    async fn unpublished_count(&self, limit: u64) -> Result<u64>;

    /// Marks broadcast rows with id ≤ `up_to` as published (a position that only moves
    /// forward: a smaller `up_to` changes nothing), and keeps `last` (the last commit
    /// published and the offset after the last record published) as the point a resync
    /// continues from, unless a later point is kept already (a later commit, or the same commit
    /// with a later offset). One transaction. No other errors. Safe to repeat.
    async fn mark_published(&self, up_to: u64, last: Option<Published>) -> Result<()>;

    /// The last commit published, as [`MasterStorage::mark_published`] kept it (all zero when
    /// nothing was). Read-only; no other errors.
    async fn published(&self) -> Result<Published>;

    /// A page of the master's state for a resync: documents and tombstones whose version is
    /// above `after`, ordered by content type then id, starting after `from` (exclusive), at
    /// most `limit`. Read-only; the same call gives the same page while nothing is written.
    /// No other errors.
    async fn snapshot(
        &self,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<Vec<StoredDoc>>;

    /// How many documents and tombstones have a version above `after`: the size of a resync
    /// from there. Read-only; no other errors.
    async fn snapshot_size(&self, after: Csn) -> Result<u64>;

    /// Deletes the tombstones with a version up to `up_to` (every ship in service applied
    /// them), except those an open conflict names, and keeps `up_to` as how far tombstones
    /// were collected, when above what was kept (otherwise it does nothing). Returns how many
    /// were deleted. No other errors. Safe to repeat: a repeat deletes nothing.
    async fn collect_tombstones(&self, up_to: Csn) -> Result<u64>;

    /// How far tombstones were collected: no tombstone with a version above it was. A replica
    /// whose applied CSN is below it cannot learn every deletion from a resync of what changed
    /// above its applied CSN. Read-only; no other errors.
    async fn tombstones_collected(&self) -> Result<Csn>;

    /// Marks a ship of the registry decommissioned at `at_ms`, or in service again with
    /// `None`; returns its record. Errors: `NotFound` for a ship never heard from. Safe to
    /// repeat.
    async fn decommission_ship(&self, ship: &ShipId, at_ms: Option<u64>) -> Result<ShipRecord>;

    /// The hybrid logical time of the changes of `ship` the master applied or refused and
    /// still keeps (until the ship says it has their answers), by seq, at most `limit`, in seq
    /// order. Read-only; no other errors.
    async fn ship_seqs(&self, ship: &ShipId, limit: u64) -> Result<Vec<ShipSeq>>;

    /// The conflicts resolved by a commit above `after` (by id, content type and document), at
    /// most `limit`, in the order of their resolutions. A resync that covers those commits
    /// releases the fields its replica held in them. Read-only; no other errors.
    async fn resolved_conflicts(
        &self,
        after: Csn,
        limit: u64,
    ) -> Result<Vec<(ConflictId, ContentType, DocumentId)>>;

    /// The ship registry. Read-only; no other errors.
    async fn ships(&self) -> Result<Vec<ShipRecord>>;

    /// The last CSN the master committed. Read-only; no other errors.
    async fn last_csn(&self) -> Result<Csn>;
}

const _: Option<&dyn Storage> = None;
