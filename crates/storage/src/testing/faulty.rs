//! A [`Storage`] that fails or crashes at a chosen call, for simulations of a node whose
//! database goes away or whose process dies in the middle of its work.

use std::collections::BTreeMap;

use std::sync::{Arc, Mutex, PoisonError};

use offline_sync_model::{
    Commit, Conflict, ConflictId, ContentType, Csn, DocumentId, Hlc, LocalWrite, MasterDoc, Policies,
    ReplicaDoc, Seq, ShipId, Strategy,
};

use crate::delegate::delegate;
use crate::error::{Error, Result};
use crate::{
    AuditEntry, Broadcast, CommonStorage, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus,
    DocumentQuery, FeedPage, LocalWritten, MasterApplied, MasterBatch, MasterStorage, NewAuditEntry,
    OutboxEntry, OutboxState, OutboxStats, Page, PeerKey, Published, ReplicaApplied, ReplicaBatch,
    ReplicaProgress, ReplicaStorage, ResyncFinished, ResyncPage, ResyncStart, ResyncStarted, ResyncState,
    ShipRecord, ShipSeq, Storage, StoredDoc,
};

/// What happens at the chosen call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails as an unreachable database does; nothing is written and later calls
    /// work again.
    Fail,
    /// The process dies before the call reaches the database: nothing is written, and every
    /// later write fails until the node is opened again.
    CrashBefore,
    /// The process dies after the call committed but before its caller learned it: the write
    /// happened, the caller sees an error, and every later write fails until the node is
    /// opened again.
    CrashAfter,
}

#[derive(Debug, Default)]
struct State {
    /// Writes left before the fault fires, and the fault.
    armed: Option<(u32, Fault)>,
    crashed: bool,
}

/// The handle a test keeps to arm a [`FaultyStorage`] and to learn whether it crashed.
#[derive(Clone, Debug, Default)]
pub struct StorageFaults(Arc<Mutex<State>>);

impl StorageFaults {
    /// Fires `fault` at the write call after `after` more write calls (0: the next one).
    pub fn arm(&self, after: u32, fault: Fault) {
        self.state().armed = Some((after, fault));
    }

    /// Whether the node died: it must be opened again from its database.
    pub fn crashed(&self) -> bool {
        self.state().crashed
    }

    /// Disarms a fault that has not fired.
    pub fn disarm(&self) {
        self.state().armed = None;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before a write: whether it may reach the database, and whether the process dies right
    /// after it.
    fn before_write(&self) -> Result<bool> {
        let mut s = self.state();
        if s.crashed {
            return Err(injected("the process has crashed"));
        }
        match s.armed {
            Some((0, fault)) => {
                s.armed = None;
                match fault {
                    Fault::Fail => Err(injected("injected database failure")),
                    Fault::CrashBefore => {
                        s.crashed = true;
                        Err(injected("the process crashed before this write"))
                    }
                    Fault::CrashAfter => Ok(true),
                }
            }
            Some((n, fault)) => {
                s.armed = Some((n - 1, fault));
                Ok(false)
            }
            None => Ok(false),
        }
    }
}

fn injected(what: &str) -> Error {
    Error::Unavailable(what.into())
}

/// Wraps a [`Storage`]: reads always pass, writes obey the armed [`Fault`].
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    faults: StorageFaults,
}

impl FaultyStorage {
    /// `inner` behind a new, disarmed handle.
    pub fn new(inner: Arc<dyn Storage>) -> (Self, StorageFaults) {
        let faults = StorageFaults::default();
        (
            Self {
                inner,
                faults: faults.clone(),
            },
            faults,
        )
    }

    async fn write<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let dies_after = self.faults.before_write()?;
        let result = call.await;
        let mut state = self.faults.state();
        if dies_after {
            state.crashed = true;
        }
        if state.crashed {
            // The process died while this write ran (at its end, or in another task): it
            // happened, but nobody lives to hear of it.
            return Err(injected("the process crashed after this write"));
        }
        result
    }
}

/// The body of a [`FaultyStorage`] method: a `read` passes the call on, a `write` passes it on
/// through [`FaultyStorage::write`], where the armed fault fires.
macro_rules! pass_on {
    ($self:ident, read, $name:ident($($arg:ident),*)) => {
        $self.inner.$name($($arg),*).await
    };
    ($self:ident, write, $name:ident($($arg:ident),*)) => {
        $self.write($self.inner.$name($($arg),*)).await
    };
}

delegate! {
    impl CommonStorage for FaultyStorage by pass_on {}
    read fn ping() -> std::time::Duration;
    read fn document(ct: &ContentType, id: DocumentId) -> Option<StoredDoc>;
    read fn documents(ct: Option<&ContentType>, page: Page) -> (Vec<StoredDoc>, u64);
    read fn find_documents(ct: &ContentType, query: &DocumentQuery, page: Page) -> (Vec<StoredDoc>, u64);
    read fn offset(topic: &str, partition: u32) -> Option<i64>;
    read fn dead_letters(status: Option<DeadLetterStatus>, page: Page) -> (Vec<DeadLetter>, u64);
    read fn dead_letter(id: u64) -> Option<DeadLetter>;
    read fn dead_letter_counts() -> DeadLetterCounts;
    read fn feed(after: u64, limit: usize) -> FeedPage;
    read fn webhook_position(hook: &str) -> Option<u64>;
    write fn save_webhook_position(hook: &str, position: u64) -> ();
    write fn settle_dead_letter(id: u64, status: DeadLetterStatus, now_ms: u64) -> DeadLetter;
    read fn due_dead_letters(now_ms: u64, limit: usize) -> Vec<DeadLetter>;
    write fn dead_letter_failed(id: u64, next_retry_at_ms: Option<u64>) -> DeadLetter;
    write fn prune(before_ms: u64) -> u64;
    write fn signing_seed(generated: [u8; 32], now_ms: u64) -> [u8; 32];
    read fn peer_keys() -> Vec<PeerKey>;
    write fn pin_peer_key(key: &PeerKey) -> PeerKey;
    write fn save_peer_key(key: &PeerKey) -> ();
    write fn audit(entry: &NewAuditEntry) -> ();
    read fn audit_log(page: Page) -> (Vec<AuditEntry>, u64);
    write fn prune_audit(before_ms: u64) -> u64;
    read fn changes_per_minute(since_ms: u64) -> Vec<(u64, u64)>;
}

delegate! {
    impl ReplicaStorage for FaultyStorage by pass_on {}
    read fn replica_doc(ct: &ContentType, id: DocumentId) -> Option<ReplicaDoc>;
    write fn local_write_if(ship: &ShipId, write: &LocalWrite, expected: Option<Csn>, hlc: Hlc, now_ms: u64)
        -> LocalWritten;
    read fn outbox(ship: &ShipId, state: Option<OutboxState>, page: Page) -> (Vec<OutboxEntry>, u64);
    read fn outbox_unsent(ship: &ShipId, limit: usize) -> Vec<OutboxEntry>;
    write fn outbox_mark_sent(from: Seq, up_to: Seq, now_ms: u64) -> ();
    write fn outbox_resend(from: Seq) -> u64;
    read fn outbox_stats() -> OutboxStats;
    write fn replica_apply(ship: &ShipId, batch: &ReplicaBatch, now_ms: u64) -> ReplicaApplied;
    read fn replica_progress() -> ReplicaProgress;
    read fn resync_state() -> Option<ResyncState>;
    write fn request_resync(full: bool, reason: &str, now_ms: u64) -> ResyncState;
    write fn start_resync(ship: &ShipId, start: &ResyncStart, now_ms: u64) -> ResyncStarted;
    write fn apply_resync_page(ship: &ShipId, page: &ResyncPage, now_ms: u64) -> ResyncState;
    write fn finish_resync(topic: &str, next: i64, now_ms: u64) -> ResyncFinished;
}

delegate! {
    impl MasterStorage for FaultyStorage by pass_on {}
    read fn master_doc(ct: &ContentType, id: DocumentId) -> Option<MasterDoc>;
    write fn master_apply(batch: &MasterBatch, policies: &Policies, now_ms: u64) -> MasterApplied;
    write fn master_write_if(write: &LocalWrite, expected: Option<Csn>, hlc: Hlc, now_ms: u64)
        -> (MasterDoc, Option<Commit>);
    write fn resolve_conflict(id: ConflictId, strategy: &Strategy, hlc: Hlc, now_ms: u64)
        -> (Conflict, Commit);
    read fn conflicts(filter: &ConflictFilter, page: Page) -> Vec<Conflict>;
    read fn count_conflicts(filter: &ConflictFilter) -> u64;
    read fn document_commits(ct: &ContentType, id: DocumentId, up_to: Csn, limit: u64) -> Vec<Commit>;
    read fn commit_times(csns: &[Csn]) -> BTreeMap<Csn, u64>;
    read fn conflict(id: ConflictId) -> Option<Conflict>;
    read fn unpublished(limit: usize) -> Vec<Broadcast>;
    read fn unpublished_count(limit: u64) -> u64;
    write fn mark_published(up_to: u64, last: Option<Published>) -> ();
    read fn published() -> Published;
    read fn snapshot(after: Csn, from: Option<(ContentType, DocumentId)>, limit: u64) -> Vec<StoredDoc>;
    read fn snapshot_size(after: Csn) -> u64;
    write fn collect_tombstones(up_to: Csn) -> u64;
    read fn tombstones_collected() -> Csn;
    write fn decommission_ship(ship: &ShipId, at_ms: Option<u64>) -> ShipRecord;
    read fn ship_seqs(ship: &ShipId, limit: u64) -> Vec<ShipSeq>;
    read fn resolved_conflicts(after: Csn, limit: u64) -> Vec<(ConflictId, ContentType, DocumentId)>;
    read fn ships() -> Vec<ShipRecord>;
    read fn last_csn() -> Csn;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::SeaStorage;

    async fn storage() -> (Arc<dyn Storage>, FaultyStorage, StorageFaults) {
        let inner: Arc<dyn Storage> = Arc::new(SeaStorage::connect("sqlite::memory:").await.unwrap());
        let (faulty, faults) = FaultyStorage::new(inner.clone());
        (inner, faulty, faults)
    }

    #[tokio::test]
    async fn a_failed_write_writes_nothing_and_the_next_one_works() {
        let (inner, faulty, faults) = storage().await;
        faults.arm(1, Fault::Fail);
        faulty.signing_seed([1; 32], 0).await.unwrap();
        assert!(
            faulty.audit_log(Page::all()).await.is_ok(),
            "reads are never counted"
        );
        assert!(faulty.prune(0).await.unwrap_err().is_retryable());
        assert_eq!(faulty.prune(0).await.unwrap(), 0);
        assert!(!faults.crashed());
        assert_eq!(inner.signing_seed([2; 32], 0).await.unwrap(), [1; 32]);
    }

    /// Arms a crash at the next write and checks that write and the one after it fail on a
    /// crashed node; returns the seed the database keeps (`[1; 32]` if the write happened).
    async fn crash_at_the_next_write(fault: Fault) -> [u8; 32] {
        let (inner, faulty, faults) = storage().await;
        faults.arm(0, fault);
        assert!(faulty.signing_seed([1; 32], 0).await.is_err());
        assert!(faults.crashed());
        assert!(faulty.signing_seed([3; 32], 0).await.is_err());
        inner.signing_seed([2; 32], 0).await.unwrap()
    }

    #[tokio::test]
    async fn a_crash_before_a_write_writes_nothing_and_stops_every_later_write() {
        assert_eq!(crash_at_the_next_write(Fault::CrashBefore).await, [2; 32]);
    }

    #[tokio::test]
    async fn a_crash_after_a_write_keeps_it_but_reports_a_failure() {
        assert_eq!(crash_at_the_next_write(Fault::CrashAfter).await, [1; 32]);
    }
}
