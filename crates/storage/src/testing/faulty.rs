//! A [`Storage`] that fails or crashes at a chosen call, for simulations of a node whose
//! database goes away or whose process dies in the middle of its work.

use std::collections::BTreeMap;

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use offline_sync_model::{
    Commit, Conflict, ConflictId, ContentType, Csn, DocumentId, Hlc, LocalWrite, MasterDoc, Policies,
    ReplicaDoc, Seq, ShipId, Strategy,
};

use crate::error::{Error, Result};
use crate::{
    AuditEntry, Broadcast, CommonStorage, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus,
    LocalWritten, MasterApplied, MasterBatch, MasterStorage, NewAuditEntry, OutboxEntry, OutboxState,
    OutboxStats, Page, PeerKey, Published, ReplicaApplied, ReplicaBatch, ReplicaProgress, ReplicaStorage,
    ResyncFinished, ResyncPage, ResyncStart, ResyncStarted, ResyncState, ShipRecord, ShipSeq, Storage,
    StoredDoc,
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

#[async_trait]
impl CommonStorage for FaultyStorage {
    async fn ping(&self) -> Result<std::time::Duration> {
        self.inner.ping().await
    }

    async fn document(&self, ct: &ContentType, id: DocumentId) -> Result<Option<StoredDoc>> {
        self.inner.document(ct, id).await
    }

    async fn documents(&self, ct: Option<&ContentType>, page: Page) -> Result<(Vec<StoredDoc>, u64)> {
        self.inner.documents(ct, page).await
    }

    async fn offset(&self, topic: &str, partition: u32) -> Result<Option<i64>> {
        self.inner.offset(topic, partition).await
    }

    async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        self.inner.dead_letters(status, page).await
    }

    async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        self.inner.dead_letter(id).await
    }

    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts> {
        self.inner.dead_letter_counts().await
    }

    async fn settle_dead_letter(&self, id: u64, status: DeadLetterStatus, now_ms: u64) -> Result<DeadLetter> {
        self.write(self.inner.settle_dead_letter(id, status, now_ms))
            .await
    }

    async fn due_dead_letters(&self, now_ms: u64, limit: usize) -> Result<Vec<DeadLetter>> {
        self.inner.due_dead_letters(now_ms, limit).await
    }

    async fn dead_letter_failed(&self, id: u64, next_retry_at_ms: Option<u64>) -> Result<DeadLetter> {
        self.write(self.inner.dead_letter_failed(id, next_retry_at_ms))
            .await
    }

    async fn prune(&self, before_ms: u64) -> Result<u64> {
        self.write(self.inner.prune(before_ms)).await
    }

    async fn signing_seed(&self, generated: [u8; 32], now_ms: u64) -> Result<[u8; 32]> {
        self.write(self.inner.signing_seed(generated, now_ms)).await
    }

    async fn peer_keys(&self) -> Result<Vec<PeerKey>> {
        self.inner.peer_keys().await
    }

    async fn pin_peer_key(&self, key: &PeerKey) -> Result<PeerKey> {
        self.write(self.inner.pin_peer_key(key)).await
    }

    async fn save_peer_key(&self, key: &PeerKey) -> Result<()> {
        self.write(self.inner.save_peer_key(key)).await
    }

    async fn audit(&self, entry: &NewAuditEntry) -> Result<()> {
        self.write(self.inner.audit(entry)).await
    }

    async fn audit_log(&self, page: Page) -> Result<(Vec<AuditEntry>, u64)> {
        self.inner.audit_log(page).await
    }

    async fn prune_audit(&self, before_ms: u64) -> Result<u64> {
        self.write(self.inner.prune_audit(before_ms)).await
    }

    async fn changes_per_minute(&self, since_ms: u64) -> Result<Vec<(u64, u64)>> {
        self.inner.changes_per_minute(since_ms).await
    }
}

#[async_trait]
impl ReplicaStorage for FaultyStorage {
    async fn replica_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<ReplicaDoc>> {
        self.inner.replica_doc(ct, id).await
    }

    async fn local_write_if(
        &self,
        ship: &ShipId,
        write: &LocalWrite,
        expected: Option<Csn>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<LocalWritten> {
        self.write(self.inner.local_write_if(ship, write, expected, hlc, now_ms))
            .await
    }

    async fn outbox(
        &self,
        ship: &ShipId,
        state: Option<OutboxState>,
        page: Page,
    ) -> Result<(Vec<OutboxEntry>, u64)> {
        self.inner.outbox(ship, state, page).await
    }

    async fn outbox_unsent(&self, ship: &ShipId, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.inner.outbox_unsent(ship, limit).await
    }

    async fn outbox_mark_sent(&self, from: Seq, up_to: Seq, now_ms: u64) -> Result<()> {
        self.write(self.inner.outbox_mark_sent(from, up_to, now_ms)).await
    }

    async fn outbox_resend(&self, from: Seq) -> Result<u64> {
        self.write(self.inner.outbox_resend(from)).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats> {
        self.inner.outbox_stats().await
    }

    async fn replica_apply(
        &self,
        ship: &ShipId,
        batch: &ReplicaBatch,
        now_ms: u64,
    ) -> Result<ReplicaApplied> {
        self.write(self.inner.replica_apply(ship, batch, now_ms)).await
    }

    async fn replica_progress(&self) -> Result<ReplicaProgress> {
        self.inner.replica_progress().await
    }

    async fn resync_state(&self) -> Result<Option<ResyncState>> {
        self.inner.resync_state().await
    }

    async fn request_resync(&self, full: bool, reason: &str, now_ms: u64) -> Result<ResyncState> {
        self.write(self.inner.request_resync(full, reason, now_ms)).await
    }

    async fn start_resync(&self, ship: &ShipId, start: &ResyncStart, now_ms: u64) -> Result<ResyncStarted> {
        self.write(self.inner.start_resync(ship, start, now_ms)).await
    }

    async fn apply_resync_page(&self, ship: &ShipId, page: &ResyncPage, now_ms: u64) -> Result<ResyncState> {
        self.write(self.inner.apply_resync_page(ship, page, now_ms)).await
    }

    async fn finish_resync(&self, topic: &str, next: i64, now_ms: u64) -> Result<ResyncFinished> {
        self.write(self.inner.finish_resync(topic, next, now_ms)).await
    }
}

#[async_trait]
impl MasterStorage for FaultyStorage {
    async fn master_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<MasterDoc>> {
        self.inner.master_doc(ct, id).await
    }

    async fn master_apply(
        &self,
        batch: &MasterBatch,
        policies: &Policies,
        now_ms: u64,
    ) -> Result<MasterApplied> {
        self.write(self.inner.master_apply(batch, policies, now_ms)).await
    }

    async fn master_write_if(
        &self,
        write: &LocalWrite,
        expected: Option<Csn>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(MasterDoc, Option<Commit>)> {
        self.write(self.inner.master_write_if(write, expected, hlc, now_ms))
            .await
    }

    async fn resolve_conflict(
        &self,
        id: ConflictId,
        strategy: &Strategy,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(Conflict, Commit)> {
        self.write(self.inner.resolve_conflict(id, strategy, hlc, now_ms))
            .await
    }

    async fn conflicts(&self, filter: &ConflictFilter, page: Page) -> Result<Vec<Conflict>> {
        self.inner.conflicts(filter, page).await
    }

    async fn count_conflicts(&self, filter: &ConflictFilter) -> Result<u64> {
        self.inner.count_conflicts(filter).await
    }

    async fn document_commits(
        &self,
        ct: &ContentType,
        id: DocumentId,
        up_to: Csn,
        limit: u64,
    ) -> Result<Vec<Commit>> {
        self.inner.document_commits(ct, id, up_to, limit).await
    }

    async fn commit_times(&self, csns: &[Csn]) -> Result<BTreeMap<Csn, u64>> {
        self.inner.commit_times(csns).await
    }

    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>> {
        self.inner.conflict(id).await
    }

    async fn unpublished(&self, limit: usize) -> Result<Vec<Broadcast>> {
        self.inner.unpublished(limit).await
    }

    async fn unpublished_count(&self, limit: u64) -> Result<u64> {
        self.inner.unpublished_count(limit).await
    }

    async fn mark_published(&self, up_to: u64, last: Option<Published>) -> Result<()> {
        self.write(self.inner.mark_published(up_to, last)).await
    }

    async fn published(&self) -> Result<Published> {
        self.inner.published().await
    }

    async fn snapshot(
        &self,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<Vec<StoredDoc>> {
        self.inner.snapshot(after, from, limit).await
    }

    async fn snapshot_size(&self, after: Csn) -> Result<u64> {
        self.inner.snapshot_size(after).await
    }

    async fn collect_tombstones(&self, up_to: Csn) -> Result<u64> {
        self.write(self.inner.collect_tombstones(up_to)).await
    }

    async fn tombstones_collected(&self) -> Result<Csn> {
        self.inner.tombstones_collected().await
    }

    async fn decommission_ship(&self, ship: &ShipId, at_ms: Option<u64>) -> Result<ShipRecord> {
        self.write(self.inner.decommission_ship(ship, at_ms)).await
    }

    async fn ship_seqs(&self, ship: &ShipId, limit: u64) -> Result<Vec<ShipSeq>> {
        self.inner.ship_seqs(ship, limit).await
    }

    async fn resolved_conflicts(
        &self,
        after: Csn,
        limit: u64,
    ) -> Result<Vec<(ConflictId, ContentType, DocumentId)>> {
        self.inner.resolved_conflicts(after, limit).await
    }

    async fn ships(&self) -> Result<Vec<ShipRecord>> {
        self.inner.ships().await
    }

    async fn last_csn(&self) -> Result<Csn> {
        self.inner.last_csn().await
    }
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

    #[tokio::test]
    async fn a_crash_before_a_write_writes_nothing_and_stops_every_later_write() {
        let (inner, faulty, faults) = storage().await;
        faults.arm(0, Fault::CrashBefore);
        assert!(faulty.signing_seed([1; 32], 0).await.is_err());
        assert!(faults.crashed());
        assert!(faulty.signing_seed([3; 32], 0).await.is_err());
        assert_eq!(inner.signing_seed([2; 32], 0).await.unwrap(), [2; 32]);
    }

    #[tokio::test]
    async fn a_crash_after_a_write_keeps_it_but_reports_a_failure() {
        let (inner, faulty, faults) = storage().await;
        faults.arm(0, Fault::CrashAfter);
        assert!(faulty.signing_seed([1; 32], 0).await.is_err());
        assert!(faults.crashed());
        assert!(faulty.signing_seed([3; 32], 0).await.is_err());
        assert_eq!(inner.signing_seed([2; 32], 0).await.unwrap(), [1; 32]);
    }
}
