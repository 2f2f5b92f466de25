//! What travels between nodes: ship changes, master commits, acknowledgements, heartbeats;
//! and the local writes that produce them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::conflict::ConflictId;
use crate::document::{Csn, Fields, Seq};
use crate::hlc::Hlc;
use crate::ids::{ContentType, DocumentId, Origin, ShipId};

/// What a ship change does to a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A new document with all its fields.
    Create,
    /// Some fields changed (only those are carried).
    Update,
    /// The document is deleted.
    Delete,
}

impl Op {
    /// The name used on the wire and in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// A local write on a node, before it becomes a change.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalWrite {
    /// Create a document with these fields.
    Create {
        /// Content type.
        content_type: ContentType,
        /// The new id (minted by the caller, normally UUIDv7).
        id: DocumentId,
        /// All fields.
        fields: Fields,
    },
    /// Set these fields of a live document.
    Update {
        /// Content type.
        content_type: ContentType,
        /// Document.
        id: DocumentId,
        /// Fields to set; others are left as they are.
        fields: Fields,
    },
    /// Delete a live document.
    Delete {
        /// Content type.
        content_type: ContentType,
        /// Document.
        id: DocumentId,
    },
}

impl LocalWrite {
    /// The document written.
    pub fn target(&self) -> (&ContentType, DocumentId) {
        match self {
            LocalWrite::Create { content_type, id, .. }
            | LocalWrite::Update { content_type, id, .. }
            | LocalWrite::Delete { content_type, id } => (content_type, *id),
        }
    }
}

/// A change made on a ship, as it travels on `ship-updates`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The ship that made it.
    pub ship: ShipId,
    /// The ship's gapless counter.
    pub seq: Seq,
    /// Content type.
    pub ct: ContentType,
    /// Document.
    pub id: DocumentId,
    /// What it does.
    pub op: Op,
    /// The fields set (all of them for a create, the changed ones for an update, none for a
    /// delete).
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// The master CSN the ship had incorporated for this document when it made the change.
    pub base: Csn,
    /// What of the master's state the ship had not incorporated, although it read past it:
    /// the change claims less than `base` there.
    #[serde(default, skip_serializing_if = "Unseen::is_empty")]
    pub unseen: Unseen,
    /// Hybrid logical time of the change.
    pub hlc: Hlc,
    /// Sent again under a new seq after the ship's database was put back from a backup: it
    /// may be older than changes of the same ship the master already applied, so a field the
    /// ship itself changed later (by hybrid time) is not overwritten by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resent: bool,
}

impl Change {
    /// The master CSN the ship had incorporated for `field` when it made the change.
    pub fn base_of(&self, field: &str) -> Csn {
        self.unseen
            .fields
            .get(field)
            .map_or(self.base, |b| (*b).min(self.base))
    }

    /// The master CSN the ship had incorporated for the document's being deleted or alive.
    pub fn base_of_deletion(&self) -> Csn {
        self.unseen.deletion.map_or(self.base, |b| b.min(self.base))
    }
}

/// The master's commits a replica read but did not take in, because it kept its own pending
/// values (DESIGN.md §4): a later change of the ship claims, for what it did not take in, only
/// the version it last did. Otherwise it would claim a master write it never saw, and the
/// master would let it overwrite that write without a conflict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unseen {
    /// Fields whose master value the ship has not taken in: the CSN it last took in for each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Csn>,
    /// Set when the ship kept the document alive through a master delete: the CSN before the
    /// delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<Csn>,
}

impl Unseen {
    /// Whether the ship took in everything it read.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.deletion.is_none()
    }
}

/// What a master commit does to a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOp {
    /// The document is live with exactly these fields.
    Put,
    /// These fields now have these values.
    Patch,
    /// The document is deleted.
    Delete,
}

/// Fields of a ship change that the master holds in an open conflict instead of applying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRef {
    /// The open conflict.
    pub id: ConflictId,
    /// The held fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Whether the whole change is held (an update of a deleted document, or a delete of an
    /// updated one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole: bool,
}

/// A change the master committed, broadcast on `master-updates` in CSN order. For a ship's
/// change, `fields` holds the master's resulting value of every field the change touched, so
/// the ship learns how each of its fields was ruled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Commit sequence number.
    pub csn: Csn,
    /// Who made the change.
    pub origin: Origin,
    /// The ship's seq, for a ship's change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// Content type.
    pub ct: ContentType,
    /// Document.
    pub id: DocumentId,
    /// What it does.
    pub op: CommitOp,
    /// Field values (see [`CommitOp`]).
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// Hybrid logical time.
    pub hlc: Hlc,
    /// The conflict this commit resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves: Option<ConflictId>,
    /// The part of the ship's change held in an open conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictRef>,
}

/// The master's answer to a ship change that produced no commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum AckOutcome {
    /// Already applied; `last_seq` is the last seq the master applied from that ship.
    Duplicate {
        /// Last seq applied from the ship.
        last_seq: Seq,
    },
    /// Arrived before an earlier change of the same ship; send again from `expected`.
    Gap {
        /// The seq the master needs next.
        expected: Seq,
    },
    /// Refused; the ship keeps its local state and an operator looks at the dead letter.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// An acknowledgement on `master-updates` for a change that produced no commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The ship addressed.
    pub ship: ShipId,
    /// The change answered.
    pub seq: Seq,
    /// What happened.
    #[serde(flatten)]
    pub outcome: AckOutcome,
}

/// A ship's periodic sign of life, with its backlog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The ship.
    pub ship: ShipId,
    /// Outbox rows not yet acknowledged.
    pub pending: u64,
    /// Age of the oldest unacknowledged change, in milliseconds (ship's clock, shown only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_unacked_ms: Option<u64>,
    /// Highest master CSN the ship has applied.
    pub applied_csn: Csn,
    /// The ship's last seq.
    pub last_seq: Seq,
    /// The highest seq the broker accepted from the ship: every change up to it was on
    /// `ship-updates` before this heartbeat. The master answers a heartbeat whose `sent_seq`
    /// it has not reached with a gap acknowledgement, so the ship sends the missing changes
    /// again — and only then.
    #[serde(default)]
    pub sent_seq: Seq,
    /// Every change up to this seq has its answer: the master may forget what it applied
    /// under them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_seq: Option<Seq>,
    /// Where the ship's resync from the master's state stands, in words (`None`: none
    /// running or needed). Shown to operators only; at most [`MAX_RESYNC_NOTE`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<String>,
}

/// Longest resync note of a [`Heartbeat`] kept by the master.
pub const MAX_RESYNC_NOTE: usize = 200;

/// Ship → master, on `ship-updates`: asks for one page of the master's state, for a resync
/// over the broker (DESIGN.md §4, catch-up). The master answers on its snapshot topic with
/// [`SnapshotPart`]s keyed by the ship. Repeating a request is harmless: each is answered from
/// the master's state at the time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncRequest {
    /// The ship asking.
    pub ship: ShipId,
    /// Chosen by the ship, so it tells its answer from older ones.
    pub request: u64,
    /// Documents and tombstones with a version above this CSN.
    pub after: Csn,
    /// The page starts after this document; the first page has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<(ContentType, DocumentId)>,
    /// Documents asked for.
    pub limit: u64,
}

/// Master → one ship, on the snapshot topic: one part of the answer to a [`ResyncRequest`].
/// The page is the JSON the master's `GET /api/offline-sync/snapshot` answers with,
/// gzip-compressed and base64-encoded, cut into parts that each fit a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    /// The ship addressed.
    pub ship: ShipId,
    /// The request answered.
    pub request: u64,
    /// This part's place, from 0.
    pub part: u32,
    /// How many parts the page has.
    pub parts: u32,
    /// The part's base64 text.
    pub data: String,
}
