//! The [`Storage`] trait of offline-sync and [`SeaStorage`], its one implementation, on
//! sea-orm over PostgreSQL or SQLite.
//!
//! Every method is one transaction: a local write with its outbox row, a batch of incoming
//! messages with the consumer offset that follows them, a conflict resolution with its
//! broadcast. The decisions themselves are the pure functions of `offline-sync-model`, called
//! inside the transaction.

#[cfg(feature = "testing")]
pub mod conformance;
mod entity;
mod error;
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

pub use error::{Error, Result};
pub use sea::{MasterLock, SeaStorage};
pub use types::{
    AuditEntry, Broadcast, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus, KeySource,
    KeyStatus, LocalWritten, MasterApplied, MasterBatch, NewAuditEntry, NewDeadLetter, OutboxEntry,
    OutboxState, OutboxStats, Page, PeerKey, Published, ReplicaApplied, ReplicaBatch, ReplicaProgress,
    ResyncFinished, ResyncPage, ResyncPhase, ResyncStart, ResyncStarted, ResyncState, ShipRecord, ShipSeq,
    StoredDoc, TopicOffset, Unreadable,
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
/// writer lock per node); reads may run at any time. Errors are sorted into kinds:
/// [`Error::Unavailable`] is retryable, the others are not.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    // ---- both roles ----

    /// Checks the database answers; returns how long the round trip took. Errors: `Unavailable`
    /// when the database cannot be reached. Reads nothing and changes nothing; safe to repeat.
    async fn ping(&self) -> Result<std::time::Duration>;

    /// One document as users see it (a tombstone reads as deleted).
    async fn document(&self, ct: &ContentType, id: DocumentId) -> Result<Option<StoredDoc>>;

    /// Live documents, ordered by content type then id; with `ct`, of that type only. Returns
    /// the page and the total count.
    async fn documents(&self, ct: Option<&ContentType>, page: Page) -> Result<(Vec<StoredDoc>, u64)>;

    /// The stored next offset of a topic partition, if any record of it was processed.
    async fn offset(&self, topic: &str, partition: u32) -> Result<Option<i64>>;

    /// Dead letters, newest first, optionally of one status, and how many match in all.
    async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)>;

    /// One dead letter.
    async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>>;

    /// How many dead letters are in each status.
    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts>;

    /// Marks a waiting (pending, retrying or exhausted) dead letter as resolved or discarded
    /// (the time is kept in `handled_at_ms`, which retention uses). Errors: `NotFound`;
    /// `Conflict` when it does not wait any more; `Invalid` for a waiting `status`. Of two
    /// calls for one letter only the first succeeds, so repeating it returns `Conflict` and
    /// changes nothing.
    async fn settle_dead_letter(&self, id: u64, status: DeadLetterStatus, now_ms: u64) -> Result<DeadLetter>;

    /// Up to `limit` dead letters whose automatic retry is due at `now_ms` (pending ones, and
    /// retrying ones whose time has come), oldest first. Read-only.
    async fn due_dead_letters(&self, now_ms: u64, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Counts a failed automatic retry of a waiting letter: it is `retrying` until
    /// `next_retry_at_ms`, or `exhausted` when that is `None`. Errors: `NotFound`. On a letter
    /// that no longer waits it changes nothing. Repeating it counts another attempt.
    async fn dead_letter_failed(&self, id: u64, next_retry_at_ms: Option<u64>) -> Result<DeadLetter>;

    /// Applies the retention rules of the log tables: deletes outbox rows answered, broadcasts
    /// published and dead letters handled (resolved or discarded) before `before_ms`.
    /// Documents, tombstones, open conflicts and anything unanswered are never pruned. Returns
    /// how many rows were deleted. Safe to repeat.
    async fn prune(&self, before_ms: u64) -> Result<u64>;

    /// Changes made per minute from `since_ms` on: commits on a master, local writes on a
    /// replica, as (start of the minute in ms, count), oldest first, minutes without any left
    /// out. Counted from the kept rows, so a minute older than the retention reads low.
    /// Read-only.
    async fn changes_per_minute(&self, since_ms: u64) -> Result<Vec<(u64, u64)>>;

    /// This node's signing key seed: the stored one, or `generated` stored now when there is
    /// none yet (so the first call of a new node keeps its key for good). Safe to repeat: a
    /// second call returns the first seed.
    async fn signing_seed(&self, generated: [u8; 32], now_ms: u64) -> Result<[u8; 32]>;

    /// The keys pinned for this node's peers, by sender.
    async fn peer_keys(&self) -> Result<Vec<PeerKey>>;

    /// Pins a peer's key first seen: inserts `key` unless a row for its signer exists, and
    /// returns the stored row (`key`, or what was there). Safe to repeat.
    async fn pin_peer_key(&self, key: &PeerKey) -> Result<PeerKey>;

    /// Pins, approves or revokes a peer's key: inserts the row, or replaces its key, status,
    /// source and update time (the first-seen time stays). Safe to repeat.
    async fn save_peer_key(&self, key: &PeerKey) -> Result<()>;

    /// Appends an admin action to the audit log. Not idempotent: each call is one entry.
    async fn audit(&self, entry: &NewAuditEntry) -> Result<()>;

    /// The audit log, newest first, and how many entries it holds.
    async fn audit_log(&self, page: Page) -> Result<(Vec<AuditEntry>, u64)>;

    /// The audit log's retention rule: deletes entries recorded before `before_ms`; returns
    /// how many. Safe to repeat.
    async fn prune_audit(&self, before_ms: u64) -> Result<u64>;

    // ---- replica ----

    /// A replica's copy of a document, with its marks.
    async fn replica_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<ReplicaDoc>>;

    /// Applies a local write on a replica and appends its outbox row with the next seq, in one
    /// transaction. A write that changes nothing appends nothing. Errors: `NotFound`,
    /// `AlreadyExists`, `Invalid`.
    async fn local_write(
        &self,
        ship: &ShipId,
        write: &LocalWrite,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<LocalWritten>;

    /// A replica's outbox rows as changes of `ship`, newest first (seq descending), optionally of
    /// one state, and how many match in all.
    async fn outbox(
        &self,
        ship: &ShipId,
        state: Option<OutboxState>,
        page: Page,
    ) -> Result<(Vec<OutboxEntry>, u64)>;

    /// Up to `limit` outbox rows not yet sent, in seq order, as changes of `ship`.
    async fn outbox_unsent(&self, ship: &ShipId, limit: usize) -> Result<Vec<OutboxEntry>>;

    /// Marks unsent rows with seq in `from..=up_to` as sent (the transport accepted exactly
    /// those). Safe to repeat.
    async fn outbox_mark_sent(&self, from: Seq, up_to: Seq, now_ms: u64) -> Result<()>;

    /// Marks sent, unacknowledged rows with seq ≥ `from` as unsent again, so they are sent
    /// once more. Returns how many. Safe to repeat.
    async fn outbox_resend(&self, from: Seq) -> Result<u64>;

    /// Counts and ages of the outbox.
    async fn outbox_stats(&self) -> Result<OutboxStats>;

    /// Applies messages read from `master-updates` (commits and acknowledgements for this
    /// ship) and stores the offset after them, in one transaction. Commits at or below the
    /// applied CSN are skipped, so applying a batch twice changes nothing.
    async fn replica_apply(&self, ship: &ShipId, batch: &ReplicaBatch, now_ms: u64)
    -> Result<ReplicaApplied>;

    /// Applied CSN and last seq of a replica.
    async fn replica_progress(&self) -> Result<ReplicaProgress>;

    /// The resync running, or the last one. Read-only.
    async fn resync_state(&self) -> Result<Option<ResyncState>>;

    /// Asks for a resync of a replica from the master's state, for `reason`: of every
    /// document when `full`, otherwise of those changed above the applied CSN. While one is
    /// asked for or running it is kept (a full one replaces one that is not full, from its
    /// start). Returns the one that will run. Safe to repeat.
    async fn request_resync(&self, full: bool, reason: &str, now_ms: u64) -> Result<ResyncState>;

    /// Starts the resync asked for at the master's point `start`: unanswered outbox rows the
    /// master applied under their seq with their hybrid logical time are marked answered
    /// (their answers are gone from the topic) and their documents take the master's state;
    /// other unanswered rows up to the master's last seq (written under seqs the master used
    /// for other changes: a database restored from a backup) are renumbered above it; sent
    /// rows above it go again; fields held in conflicts the master resolved are released.
    /// Errors: `Conflict` unless a resync is `requested`.
    async fn start_resync(&self, ship: &ShipId, start: &ResyncStart, now_ms: u64) -> Result<ResyncStarted>;

    /// Applies one page of the master's state as the master's commits of whole documents
    /// (fields changed here and not yet answered keep their local values) and keeps where the
    /// next page starts, in one transaction. Applying a page twice changes nothing. Errors:
    /// `Conflict` unless a resync is `fetching`.
    async fn apply_resync_page(&self, ship: &ShipId, page: &ResyncPage, now_ms: u64) -> Result<ResyncState>;

    /// Ends the running resync after its last page: the applied CSN becomes the master's point
    /// (when above it), `topic` is read on from `next` (the point's offset, or where the topic
    /// starts when it was recreated since and holds less), and for a full resync the
    /// local documents the master did not send and nobody changed here are removed. Errors:
    /// `Conflict` unless a resync is `fetching`. Safe to repeat only in that it fails.
    async fn finish_resync(&self, topic: &str, next: i64, now_ms: u64) -> Result<ResyncFinished>;

    // ---- master ----

    /// The master's copy of a document, with its field versions (tombstones included).
    async fn master_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<MasterDoc>>;

    /// Applies a batch read from `ship-updates` in one transaction: each change in order is
    /// skipped if already applied (a duplicate acknowledgement is broadcast), refused if it
    /// comes before an earlier one of its ship (a gap acknowledgement), or decided and
    /// committed at the next CSN with its conflict and broadcast row; then heartbeats, dead
    /// letters and the offsets after the batch are stored. Applying a batch twice changes
    /// nothing but acknowledgements.
    async fn master_apply(
        &self,
        batch: &MasterBatch,
        policies: &Policies,
        now_ms: u64,
    ) -> Result<MasterApplied>;

    /// Applies a local write on the master at the next CSN with its broadcast row. A write that
    /// changes nothing commits nothing. Errors: `NotFound`, `AlreadyExists`, `Invalid`.
    async fn master_write(
        &self,
        write: &LocalWrite,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(MasterDoc, Option<Commit>)>;

    /// Resolves an open conflict at the next CSN: writes the document, marks the conflict
    /// resolved and stores the broadcast row. Errors: `NotFound`, `Conflict` (already
    /// resolved), `Invalid` (merge data).
    async fn resolve_conflict(
        &self,
        id: ConflictId,
        strategy: &Strategy,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(Conflict, Commit)>;

    /// Conflicts `filter` lets through, newest first. Read-only.
    async fn conflicts(&self, filter: &ConflictFilter, page: Page) -> Result<Vec<Conflict>>;

    /// How many conflicts `filter` lets through. Read-only.
    async fn count_conflicts(&self, filter: &ConflictFilter) -> Result<u64>;

    /// The commits to document `ct`/`id` still kept for broadcast (see [`Storage::prune`])
    /// with a CSN up to `up_to`, newest first, at most `limit`. What a conflict's base
    /// version held is read from them. Read-only.
    async fn document_commits(
        &self,
        ct: &ContentType,
        id: DocumentId,
        up_to: Csn,
        limit: u64,
    ) -> Result<Vec<Commit>>;

    /// When each of the commits at `csns` was made (ms), for those whose broadcast row is
    /// kept, in one query. Read-only.
    async fn commit_times(&self, csns: &[Csn]) -> Result<BTreeMap<Csn, u64>>;

    /// One conflict.
    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>>;

    /// Up to `limit` broadcast rows not yet published, in commit order.
    async fn unpublished(&self, limit: usize) -> Result<Vec<Broadcast>>;

    /// Marks broadcast rows with id ≤ `up_to` as published, and keeps `last` (the last commit
    /// among them and the offset after its record) as the point a resync continues from,
    /// unless a later commit is kept already. One transaction. Safe to repeat.
    async fn mark_published(&self, up_to: u64, last: Option<Published>) -> Result<()>;

    /// The last commit published, as [`Storage::mark_published`] kept it (all zero when
    /// nothing was). Read-only.
    async fn published(&self) -> Result<Published>;

    /// A page of the master's state for a resync: documents and tombstones whose version is
    /// above `after`, ordered by content type then id, starting after `from` (exclusive), at
    /// most `limit`. Read-only; the same call gives the same page while nothing is written.
    async fn snapshot(
        &self,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<Vec<StoredDoc>>;

    /// How many documents and tombstones have a version above `after`: the size of a resync
    /// from there. Read-only.
    async fn snapshot_size(&self, after: Csn) -> Result<u64>;

    /// Deletes the tombstones with a version up to `up_to` (every ship in service applied
    /// them) and keeps `up_to` as how far tombstones were collected, when above what was kept.
    /// Returns how many were deleted. Safe to repeat.
    async fn collect_tombstones(&self, up_to: Csn) -> Result<u64>;

    /// How far tombstones were collected: no tombstone with a version above it was. A replica
    /// whose applied CSN is below it cannot learn every deletion from a resync of what changed
    /// above its applied CSN. Read-only.
    async fn tombstones_collected(&self) -> Result<Csn>;

    /// Marks a ship of the registry decommissioned at `at_ms`, or in service again with
    /// `None`; returns its record. Errors: `NotFound` for a ship never heard from. Safe to
    /// repeat.
    async fn decommission_ship(&self, ship: &ShipId, at_ms: Option<u64>) -> Result<ShipRecord>;

    /// The hybrid logical time of the changes of `ship` the master applied or refused and
    /// still keeps (until the ship says it has their answers), by seq, at most `limit`, in seq
    /// order. Read-only.
    async fn ship_seqs(&self, ship: &ShipId, limit: u64) -> Result<Vec<ShipSeq>>;

    /// The conflicts resolved by a commit above `after` (by id, content type and document), at
    /// most `limit`, in the order of their resolutions. A resync that covers those commits
    /// releases the fields its replica held in them. Read-only.
    async fn resolved_conflicts(
        &self,
        after: Csn,
        limit: u64,
    ) -> Result<Vec<(ConflictId, ContentType, DocumentId)>>;

    /// The ship registry.
    async fn ships(&self) -> Result<Vec<ShipRecord>>;

    /// The last CSN the master committed.
    async fn last_csn(&self) -> Result<Csn>;
}

const _: Option<&dyn Storage> = None;
