//! Plain data passed to and returned by [`crate::Storage`].

use std::collections::BTreeSet;

use offline_sync_model::{
    Change, ContentType, Csn, DocumentId, Fields, Heartbeat, Message, PublicKey, ReplicaDoc, Sensitive, Seq,
    ShipId,
};

/// A page of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip.
    pub offset: u64,
    /// Rows at most.
    pub limit: u64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: 100,
        }
    }
}

/// Which conflicts a listing shows: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConflictFilter {
    /// Open or resolved (any when `None`).
    pub status: Option<offline_sync_model::ConflictStatus>,
    /// Raised by this ship.
    pub ship: Option<ShipId>,
    /// On documents of this content type.
    pub content_type: Option<ContentType>,
}

impl ConflictFilter {
    /// Conflicts of `status` (any when `None`), whatever their ship and content type.
    pub fn status(status: Option<offline_sync_model::ConflictStatus>) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }
}

impl Page {
    /// Everything (for comparisons in tests and small exports).
    pub fn all() -> Self {
        Page {
            offset: 0,
            limit: u64::MAX / 2,
        }
    }
}

/// A document as users see it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDoc {
    /// Content type.
    pub content_type: ContentType,
    /// Id.
    pub id: DocumentId,
    /// Fields.
    pub fields: Fields,
    /// Whether it is deleted (a tombstone).
    pub deleted: bool,
    /// On the master the CSN of its last change; on a replica the base version.
    pub version: Csn,
    /// Last written at (milliseconds, local clock).
    pub updated_at_ms: u64,
    /// First written on this node at (milliseconds, local clock).
    pub created_at_ms: u64,
}

/// What a change of the feed did to its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedKind {
    /// The document came to be (or back from a tombstone).
    Create,
    /// Its content changed.
    Update,
    /// It was deleted.
    Delete,
}

impl FeedKind {
    /// As the feed stores it, and as Strapi's webhook events end (`entry.create`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Create => "create",
            FeedKind::Update => "update",
            FeedKind::Delete => "delete",
        }
    }

    /// Reads what [`FeedKind::as_str`] gives.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create" => Some(FeedKind::Create),
            "update" => Some(FeedKind::Update),
            "delete" => Some(FeedKind::Delete),
            _ => None,
        }
    }
}

/// One change of a document's content that the node applied, as its change feed keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedEvent {
    /// Its place in the feed: increasing, never given twice.
    pub seq: u64,
    /// What it did.
    pub kind: FeedKind,
    /// The document after it (for a delete, its last content), as users see it.
    pub doc: StoredDoc,
}

/// A page of the change feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedPage {
    /// The events after the position asked for, in order.
    pub events: Vec<FeedEvent>,
    /// The position up to which events were pruned: a reader behind it has missed some.
    pub pruned_through: u64,
    /// The position of the last event (`pruned_through` when none is kept).
    pub last: u64,
}

impl FeedPage {
    /// Whether events after `after` were pruned before this page could hold them: the feed
    /// was pruned past `after` and the page does not go on from it.
    pub fn missed(&self, after: u64) -> bool {
        self.pruned_through > after && self.events.first().is_none_or(|e| e.seq != after + 1)
    }
}

/// The result of a local write on a replica.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalWritten {
    /// The document after the write.
    pub doc: ReplicaDoc,
    /// The outbox row appended, if the write changed anything.
    pub seq: Option<Seq>,
}

/// Delivery state of an outbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxState {
    /// Not yet accepted by the transport.
    Pending,
    /// Accepted by the transport, not yet answered by the master.
    Sent,
    /// Answered by the master (applied, held in a conflict, or a duplicate).
    Acked,
    /// Refused by the master.
    Rejected,
}

impl OutboxState {
    /// The name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Acked => "acked",
            OutboxState::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => OutboxState::Pending,
            "sent" => OutboxState::Sent,
            "acked" => OutboxState::Acked,
            "rejected" => OutboxState::Rejected,
            _ => return None,
        })
    }
}

/// One outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    /// The change, ready to send.
    pub change: Change,
    /// Its delivery state.
    pub state: OutboxState,
    /// What the master answered.
    pub outcome: Option<String>,
    /// Written at (milliseconds, local clock).
    pub created_at_ms: u64,
    /// Accepted by the transport at.
    pub sent_at_ms: Option<u64>,
}

/// Counts and ages of a replica's outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows not yet sent.
    pub pending: u64,
    /// Rows sent, not yet answered.
    pub sent: u64,
    /// Rows the master refused.
    pub rejected: u64,
    /// Rows the master answered (applied, or held in a conflict).
    pub acked: u64,
    /// Answered rows the master holds, in part or whole, in a conflict.
    pub in_conflict: u64,
    /// Oldest unanswered row's write time.
    pub oldest_unacked_at_ms: Option<u64>,
    /// Oldest sent, unanswered row's send time.
    pub oldest_sent_at_ms: Option<u64>,
    /// Lowest unanswered seq.
    pub first_unacked_seq: Option<Seq>,
    /// Lowest seq not sent yet.
    pub first_unsent_seq: Option<Seq>,
    /// The last seq written.
    pub last_seq: Seq,
}

impl OutboxStats {
    /// Rows not yet answered by the master.
    pub fn unacked(&self) -> u64 {
        self.pending + self.sent
    }

    /// The highest seq sent (rows leave in seq order).
    pub fn sent_seq(&self) -> Seq {
        self.first_unsent_seq
            .map_or(self.last_seq, |s| s.saturating_sub(1))
    }
}

/// Where a consumer stands in one topic partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to read.
    pub next: i64,
}

impl TopicOffset {
    /// Offset `next` of `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: u32, next: i64) -> Self {
        Self {
            topic: topic.into(),
            partition,
            next,
        }
    }
}

/// A record that could not be processed, to keep with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeadLetter {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset of the record.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value, as received.
    pub payload: Vec<u8>,
    /// Why it was not processed.
    pub reason: String,
}

/// What became of a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterStatus {
    /// Stored, no automatic retry made yet.
    Pending,
    /// An automatic retry failed; another is due at `next_retry_at_ms`.
    Retrying,
    /// Every automatic retry failed (`SYNC_RETRY_ATTEMPTS`); waits for an operator.
    Exhausted,
    /// Processed again successfully, by an automatic or an operator's retry.
    Resolved,
    /// Dropped by an operator.
    Discarded,
}

impl DeadLetterStatus {
    /// The name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterStatus::Pending => "pending",
            DeadLetterStatus::Retrying => "retrying",
            DeadLetterStatus::Exhausted => "exhausted",
            DeadLetterStatus::Resolved => "resolved",
            DeadLetterStatus::Discarded => "discarded",
        }
    }

    /// Parses [`DeadLetterStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeadLetterStatus::Pending,
            "retrying" => DeadLetterStatus::Retrying,
            "exhausted" => DeadLetterStatus::Exhausted,
            "resolved" => DeadLetterStatus::Resolved,
            "discarded" => DeadLetterStatus::Discarded,
            _ => return None,
        })
    }

    /// Whether the letter still waits to be processed (and can be retried or discarded).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            DeadLetterStatus::Pending | DeadLetterStatus::Retrying | DeadLetterStatus::Exhausted
        )
    }

    /// The statuses of letters still waiting, as stored.
    pub const OPEN: [&'static str; 3] = ["pending", "retrying", "exhausted"];
}

/// A stored dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id.
    pub id: u64,
    /// The record and reason.
    pub letter: NewDeadLetter,
    /// Its status.
    pub status: DeadLetterStatus,
    /// Stored at (milliseconds).
    pub created_at_ms: u64,
    /// When it was resolved or discarded.
    pub handled_at_ms: Option<u64>,
    /// Automatic retries made so far.
    pub attempts: u32,
    /// When the next automatic retry is due, while it is `retrying` (or `pending`: at once).
    pub next_retry_at_ms: Option<u64>,
}

/// How many dead letters are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    /// Stored, not retried yet.
    pub pending: u64,
    /// Between automatic retries.
    pub retrying: u64,
    /// Automatic retries used up: waiting for an operator.
    pub exhausted: u64,
    /// Processed again successfully.
    pub resolved: u64,
    /// Dropped by an operator.
    pub discarded: u64,
}

impl DeadLetterCounts {
    /// Letters still waiting to be processed.
    pub fn open(&self) -> u64 {
        self.pending + self.retrying + self.exhausted
    }
}

/// Messages a replica read from `master-updates`, with the offset after them.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaBatch {
    /// Commits and acknowledgements, in offset order (messages for other ships are skipped).
    pub messages: Vec<Message>,
    /// Records that were not valid envelopes.
    pub dead_letters: Vec<NewDeadLetter>,
    /// The offset to read next.
    pub offset: TopicOffset,
    /// Fields never taken from a commit: the replica keeps its own values of them.
    pub sensitive: Sensitive,
    /// The content types this replica syncs (`None`: every type). A commit of another type
    /// is passed: its CSN counts as applied, its content is not kept.
    pub synced: Option<BTreeSet<ContentType>>,
}

impl ReplicaBatch {
    /// `messages` and `dead_letters` read up to `offset`, for a replica that syncs every
    /// content type and keeps no field of its own.
    pub fn read(messages: Vec<Message>, dead_letters: Vec<NewDeadLetter>, offset: TopicOffset) -> Self {
        Self {
            messages,
            dead_letters,
            offset,
            sensitive: Sensitive::default(),
            synced: None,
        }
    }
}

/// What a replica batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaApplied {
    /// Commits applied.
    pub commits: u64,
    /// Commits skipped as already applied.
    pub skipped: u64,
    /// Commits of content types this replica does not sync, passed over in CSN order.
    pub passed: u64,
    /// Outbox rows acknowledged.
    pub acked: u64,
    /// Outbox rows to send again (gap acknowledgements).
    pub resend: u64,
    /// The master applied seqs of this ship that this database did not write (or not as
    /// these changes): it was restored from a backup. Holds the highest such seq known.
    pub restored_below: Option<Seq>,
    /// Unanswered outbox rows given new seqs above it, to be sent again.
    pub renumbered: u64,
}

/// Applied CSN and last seq of a replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The highest master CSN applied.
    pub applied_csn: Csn,
    /// The last seq written.
    pub last_seq: Seq,
}

/// Records the master read from `ship-updates`, decoded, with the offsets after them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MasterBatch {
    /// Ship changes, in the order read.
    pub changes: Vec<Change>,
    /// Changes refused before deciding (for example an unsynced content type), with why.
    pub rejected: Vec<(Change, String)>,
    /// Signed changes whose content could not be read: refused by ship and seq.
    pub unreadable: Vec<Unreadable>,
    /// Heartbeats.
    pub heartbeats: Vec<Heartbeat>,
    /// Records that were not valid envelopes.
    pub dead_letters: Vec<NewDeadLetter>,
    /// The offsets to read next.
    pub offsets: Vec<TopicOffset>,
    /// Fields never taken from a ship's change: the master keeps its own values of them.
    pub sensitive: Sensitive,
    /// A ship heard from after at least this silence starts a new stay online (`None`: only
    /// the first time it is heard from).
    pub offline_after_ms: Option<u64>,
}

/// A ship change whose signature verified but whose content could not be read: all that is
/// believed of it is its ship (the signer) and its seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The ship that signed it.
    pub ship: ShipId,
    /// Its seq.
    pub seq: Seq,
    /// The document it names, when that much could be read.
    pub target: Option<(ContentType, DocumentId)>,
    /// Why it could not be read.
    pub reason: String,
}

/// What a master batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterApplied {
    /// Changes committed.
    pub committed: u64,
    /// Conflicts opened or updated.
    pub conflicts: u64,
    /// Changes skipped as already applied.
    pub duplicates: u64,
    /// Changes refused because an earlier one of the same ship is missing.
    pub gaps: u64,
    /// Changes refused.
    pub rejected: u64,
}

/// A message waiting to be published on `master-updates`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast {
    /// Commit order.
    pub id: u64,
    /// The CSN of the commit it carries; `None` for an acknowledgement.
    pub csn: Option<Csn>,
    /// The encoded envelope.
    pub payload: Vec<u8>,
}

/// The last commit published on `master-updates` and where the record after it lies: a
/// replica that took the master's state at `csn` reads on from `next_offset`, and every commit
/// above `csn` is there or later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// The commit's CSN (0: nothing published yet).
    pub csn: Csn,
    /// The offset of the record after it on partition 0 of `master-updates`.
    pub next_offset: i64,
}

/// A ship as the master's registry knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipRecord {
    /// Ship.
    pub ship: ShipId,
    /// Last seq applied from it.
    pub last_seq: Seq,
    /// Changes applied from it.
    pub changes_applied: u64,
    /// Last heard from (master clock).
    pub last_seen_ms: Option<u64>,
    /// Its unacknowledged changes, per its last heartbeat.
    pub pending: u64,
    /// Age of its oldest unacknowledged change, per its last heartbeat.
    pub oldest_unacked_ms: Option<u64>,
    /// The master CSN it has applied, per its last heartbeat.
    pub applied_csn: Csn,
    /// First heard from.
    pub registered_at_ms: u64,
    /// Its changes the master refused.
    pub changes_refused: u64,
    /// The seq and reason of the last one refused.
    pub last_refusal: Option<String>,
    /// When an operator decommissioned it: it no longer holds the collection of tombstones
    /// back (`None`: in service).
    pub decommissioned_at_ms: Option<u64>,
    /// When its current stay online began: it was heard from after a silence of at least
    /// the offline threshold, or for the first time.
    pub online_since_ms: Option<u64>,
    /// Where its resync from the master's state stands, as its last heartbeat said (`None`:
    /// none running or needed).
    pub resync: Option<String>,
}

/// Whether records signed with a pinned key are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Accepted: pinned at first contact, by setting, or approved by an admin.
    Trusted,
    /// Seen but not accepted until an admin approves it (`SYNC_REQUIRE_KNOWN_SHIPS`).
    Pending,
    /// Refused from now on.
    Revoked,
}

impl KeyStatus {
    /// The name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyStatus::Trusted => "trusted",
            KeyStatus::Pending => "pending",
            KeyStatus::Revoked => "revoked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "trusted" => Some(KeyStatus::Trusted),
            "pending" => Some(KeyStatus::Pending),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }
}

/// Where a pinned key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The first record seen from that sender (trust on first use).
    FirstContact,
    /// A setting (`SYNC_SHIP_KEYS`, `SYNC_MASTER_PUBLIC_KEY`).
    Setting,
    /// An admin through the API.
    Admin,
}

impl KeySource {
    /// The name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeySource::FirstContact => "first-contact",
            KeySource::Setting => "setting",
            KeySource::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "first-contact" => Some(KeySource::FirstContact),
            "setting" => Some(KeySource::Setting),
            "admin" => Some(KeySource::Admin),
            _ => None,
        }
    }
}

/// The public key a node pinned for one sender (a ship id, or `master`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerKey {
    /// The sender.
    pub signer: String,
    /// Its public key.
    pub key: PublicKey,
    /// Whether its records are accepted.
    pub status: KeyStatus,
    /// Where the key came from.
    pub source: KeySource,
    /// When the sender was first seen (milliseconds, local clock).
    pub first_seen_ms: u64,
    /// When the row last changed.
    pub updated_at_ms: u64,
}

/// An admin action to record in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When (milliseconds, local clock).
    pub at_ms: u64,
    /// The role of the token used (`admin`, or `anonymous` when no token is configured).
    pub role: String,
    /// What was done (`resolve`, `retry`, `discard`, `push`, `pull`, `approve-key`, ...).
    pub action: String,
    /// What it was done to (`conflict 4`, `dead letter 9`, `ship-bravo`, ...).
    pub target: String,
    /// What changed, as JSON.
    pub detail: serde_json::Value,
}

/// A recorded admin action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its number, in the order recorded.
    pub id: u64,
    /// The action.
    pub entry: NewAuditEntry,
}

/// Where a replica's resync stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncPhase {
    /// Asked for; nothing fetched yet.
    Requested,
    /// The point it continues from is fixed; pages are being applied.
    Fetching,
    /// Ended: the replica reads `master-updates` on from the point it took.
    Done,
}

impl ResyncPhase {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncPhase::Requested => "requested",
            ResyncPhase::Fetching => "fetching",
            ResyncPhase::Done => "done",
        }
    }

    /// The phase of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(ResyncPhase::Requested),
            "fetching" => Some(ResyncPhase::Fetching),
            "done" => Some(ResyncPhase::Done),
            _ => None,
        }
    }
}

/// A replica's resync from the master's state: the one running, or the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncState {
    /// Where it stands.
    pub phase: ResyncPhase,
    /// Every document asked for (`after` 0), and local documents the master does not hold
    /// (not changed here since) removed at the end.
    pub full: bool,
    /// Why it was asked for.
    pub reason: String,
    /// Documents with a version above this CSN are fetched (the applied CSN when asked for).
    pub after: Csn,
    /// The master's published point the resync takes: the replica reads on from its offset.
    pub at: Option<Published>,
    /// The last seq of this ship the master had applied when the resync started.
    pub last_seq: Option<Seq>,
    /// The last document received: the next page starts after it.
    pub cursor: Option<(ContentType, DocumentId)>,
    /// Documents and tombstones received.
    pub received: u64,
    /// How many the master had to send, as it counted them at the start.
    pub total: Option<u64>,
    /// Bytes of the pages received, as they came over the link.
    pub bytes: u64,
    /// Pages received.
    pub pages: u64,
    /// When it was asked for.
    pub requested_at_ms: u64,
    /// When its first page was applied.
    pub started_at_ms: Option<u64>,
    /// When it ended.
    pub finished_at_ms: Option<u64>,
}

impl ResyncState {
    /// Whether it is still to run or running.
    pub fn active(&self) -> bool {
        self.phase != ResyncPhase::Done
    }
}

/// A change of a ship the master applied or refused, as it keeps it until the ship has the
/// answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipSeq {
    /// Its seq.
    pub seq: Seq,
    /// Its hybrid logical time (`None`: it could not be read).
    pub hlc: Option<offline_sync_model::Hlc>,
    /// The document it names, when known.
    pub document: Option<(ContentType, DocumentId)>,
}

/// The start of a resync, as the master's first page gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResyncStart {
    /// The master's published point.
    pub at: Published,
    /// The last seq of this ship the master applied (`None`: it never heard of the ship).
    pub last_seq: Option<Seq>,
    /// The changes of this ship the master applied or refused whose answer the ship may not
    /// have read.
    pub applied: Vec<ShipSeq>,
    /// The master's state of the documents those changes name (tombstones included; one the
    /// master holds no record of is absent).
    pub touched: Vec<StoredDoc>,
    /// The conflicts the master resolved above the resync's CSN (id, content type, document):
    /// the fields the replica held in them take the master's values.
    pub resolved: Vec<(offline_sync_model::ConflictId, ContentType, DocumentId)>,
    /// How many documents the master has to send.
    pub total: Option<u64>,
    /// Fields never taken from the master: the replica keeps its own values of them.
    pub sensitive: Sensitive,
}

/// What starting a resync did to the outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResyncStarted {
    /// Unanswered rows the master had applied (their answers are no longer on the topic),
    /// marked acknowledged.
    pub settled: u64,
    /// Sent rows the master had not applied, queued to be sent again.
    pub resent: u64,
    /// Unanswered rows renumbered because the master applied their seqs to other changes (a
    /// database restored from a backup).
    pub renumbered: u64,
}

/// One page of the master's state to apply in a resync.
#[derive(Clone, Debug, PartialEq)]
pub struct ResyncPage {
    /// Documents and tombstones, ordered by content type then id.
    pub documents: Vec<StoredDoc>,
    /// Where the next page starts; `None` on the last one.
    pub next: Option<(ContentType, DocumentId)>,
    /// Bytes of the page as it came over the link.
    pub bytes: u64,
    /// Fields never taken from the master: the replica keeps its own values of them.
    pub sensitive: Sensitive,
    /// The content types this replica syncs (`None`: every type); others are not kept.
    pub synced: Option<BTreeSet<ContentType>>,
}

/// What ending a resync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResyncFinished {
    /// The applied CSN now.
    pub applied_csn: Csn,
    /// The offset of `master-updates` read next.
    pub offset: i64,
    /// Local documents removed because the master no longer holds them (full resync only).
    pub removed: u64,
}
