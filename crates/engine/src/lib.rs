//! Master and replica engines of offline-sync (DESIGN.md §4).
//!
//! A [`Replica`] serves local document writes (each one transaction with its outbox row),
//! pushes its outbox to `ship-updates` in order and takes in `master-updates`. The [`Master`]
//! applies ship batches in one transaction each, decides conflicts, numbers every commit with
//! a CSN and broadcasts it after commit. Both are driven either step by step (`push_once`,
//! `pull_once`, `publish_once`: what deterministic tests use) or by background loops started
//! with `start`, which stop gracefully.

mod clock;
mod config;
mod dead_letters;
mod error;
mod inbox;
mod keys;
mod link;
mod master;
pub mod metrics;
mod node;
mod replica;
mod resync;
mod run;
pub mod snapshot;

pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use config::{MasterConfig, Mode, ReplicaConfig, Topics};
pub use error::{Error, Result, error_chain};
pub use keys::{KeyAdmin, SigningConfig};
pub use link::{LinkError, LinkState};
pub use master::{
    ConflictBase, MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_PAGE, Master, MasterStatus, ShipStatus, Snapshot,
};
pub use node::Core;
pub use replica::{Replica, ReplicaStatus};
pub use resync::{BROKER_ANSWER_WAIT, OverBroker, PageQuery, RESYNC_PAGE, ResyncProgress, SnapshotSource};
pub use run::Running;

pub use metrics::MessageCounts;
pub use offline_sync_storage::{
    AuditEntry, Case, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus, DocumentQuery,
    FeedEvent, FeedKind, FeedPage, Filter, KeySource, KeyStatus, Member, NewAuditEntry, OutboxEntry,
    OutboxState, Page, PeerKey, Published, ResyncPhase, ResyncState, ShipRecord, ShipSeq, SortKey, StoredDoc,
    Test, TextTest,
};
