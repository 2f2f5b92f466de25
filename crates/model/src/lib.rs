//! Domain model of offline-sync: identifiers, documents, changes, versions, wire envelopes and
//! the pure decisions of the sync protocol (DESIGN.md §3–§5).
//!
//! Nothing here does I/O. The storage layer loads state, calls these functions inside one
//! transaction and writes what they return; the engine only moves messages.

mod change;
mod conflict;
mod decide;
mod document;
mod envelope;
mod error;
mod hlc;
mod ids;
mod replica;
mod resolve;
mod retry;
mod sensitive;
mod signed;

pub use change::{
    Ack, AckOutcome, Change, Commit, CommitOp, ConflictRef, Heartbeat, LocalWrite, MAX_RESYNC_NOTE, Op,
    ResyncRequest, SnapshotPart, Unseen,
};
pub use conflict::{Conflict, ConflictDraft, ConflictId, ConflictKind, ConflictStatus, Strategy};
pub use decide::{Decision, Policies, Policy, decide};
pub use document::{
    Csn, Fields, MAX_DOCUMENT_BYTES, Mark, MasterDoc, ReplicaDoc, Seq, Stamp, check_document_size,
    validate_field_name, validate_fields,
};
pub use envelope::{DecodeError, MAX_ENVELOPE_BYTES, Message, WIRE_VERSION, decode, encode};
pub use error::{Error, Result};
pub use hlc::{Hlc, HlcClock, MAX_DRIFT_MS};
pub use ids::{ContentType, DocumentId, Origin, ShipId};
pub use replica::{
    Taken, apply_commit, local_write, master_write, release_conflict, release_marks, renumber_marks,
    take_commit,
};
pub use resolve::resolve;
pub use retry::RetrySchedule;
pub use sensitive::{DEFAULT_SENSITIVE_FIELDS, Sensitive};
pub use signed::{
    KeyError, MASTER_SIGNER, PublicKey, SIGNED_VERSION, SealError, SigningKey, Unsealed, unseal, verify_all,
};
