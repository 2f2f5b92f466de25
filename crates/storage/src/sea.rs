//! [`SeaStorage`]: the sea-orm implementation of [`crate::Storage`], on PostgreSQL or SQLite.

mod common;
mod master;
mod replica;
mod resync;
mod trust;

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use offline_sync_migrations::{Migrator, MigratorTrait};
use offline_sync_model::{
    Commit, Conflict, ConflictId, ContentType, Csn, DocumentId, Hlc, LocalWrite, MasterDoc, Policies,
    ReplicaDoc, Seq, ShipId, Strategy,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait};

use crate::error::{Error, Result};
use crate::types::{
    AuditEntry, Broadcast, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus, LocalWritten,
    MasterApplied, MasterBatch, NewAuditEntry, OutboxEntry, OutboxState, OutboxStats, Page, PeerKey,
    Published, ReplicaApplied, ReplicaBatch, ReplicaProgress, ResyncFinished, ResyncPage, ResyncStart,
    ResyncStarted, ResyncState, ShipRecord, ShipSeq, StoredDoc,
};
use crate::{CommonStorage, MasterStorage, ReplicaStorage};

/// The sea-orm storage. Cheap to clone (a connection pool inside).
#[derive(Clone)]
pub struct SeaStorage {
    db: DatabaseConnection,
}

impl std::fmt::Debug for SeaStorage {
    // The connection URL may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaStorage")
            .field("backend", &self.backend())
            .finish()
    }
}

impl SeaStorage {
    /// Connects to `url` (`postgres://…` or `sqlite://…`, `sqlite::memory:`) and applies the
    /// migrations. A SQLite database is used through one connection: SQLite has one writer
    /// anyway, and this keeps its transactions from failing on lock upgrades.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10));
        if url.starts_with("sqlite:") {
            // One connection for the process's life: nothing to recycle, so no periodic pool
            // maintenance task either (sqlx's spun a worker at 100% in long test runs).
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None::<Duration>)
                .max_lifetime(None::<Duration>);
        } else {
            options.max_connections(8);
        }
        let db = Database::connect(options).await?;
        if db.get_database_backend() == DbBackend::Sqlite {
            db.execute_unprepared(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
            )
            .await?;
        }
        Migrator::up(&db, None).await?;
        Ok(Self { db })
    }

    /// The URL of a SQLite file, created when missing.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::Sqlite => "sqlite",
            _ => "other",
        }
    }

    /// Closes the connection pool.
    pub async fn close(self) -> Result<()> {
        self.db.close().await.map_err(Error::from)
    }

    /// Tries to become the one master of this database: on PostgreSQL, takes the master's
    /// advisory lock in a transaction kept open for the returned guard's life (so no pool
    /// recycles its connection). `None` while another process holds it. On SQLite, where
    /// one file has one writer at a time, the guard is given at once.
    pub async fn try_master_lock(&self) -> Result<Option<MasterLock>> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(Some(MasterLock { txn: None }));
        }
        let txn = self.db.begin().await?;
        let held = txn
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS held",
                [MASTER_LOCK_KEY.into()],
            ))
            .await
            .map_err(Error::from)
            .and_then(|row| {
                let row = row.ok_or_else(|| Error::corrupt("pg_try_advisory_xact_lock returned no row"))?;
                Ok(row.try_get::<bool>("", "held")?)
            });
        if !matches!(held, Ok(true)) {
            return finish(txn, held.map(|_| None)).await;
        }
        Ok(Some(MasterLock { txn: Some(txn) }))
    }
}

/// Ends `txn` as `result` says: commits what succeeded; rolls back, at once, what failed.
/// Dropping a transaction instead would leave it open on its pooled connection — holding the
/// row locks it took (the CSN counter's) — until that connection is used again.
async fn finish<T>(txn: sea_orm::DatabaseTransaction, result: Result<T>) -> Result<T> {
    match result {
        Ok(v) => {
            txn.commit().await.map_err(Error::at_commit)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a failed transaction");
            }
            Err(e)
        }
    }
}

/// The PostgreSQL advisory lock key of the master: "offsync1" in ASCII.
const MASTER_LOCK_KEY: i64 = 0x6f66_6673_796e_6331;

/// Held by the one master of a database (see [`SeaStorage::try_master_lock`]); dropping it
/// lets a standby take over.
pub struct MasterLock {
    txn: Option<sea_orm::DatabaseTransaction>,
}

impl MasterLock {
    /// Checks the lock is still held: its connection answers. A master whose lock connection
    /// was lost (a database restart) must stop, since a standby may hold the lock now.
    pub async fn check(&self) -> Result<()> {
        if let Some(txn) = &self.txn {
            txn.execute_unprepared("SELECT 1")
                .await
                .map_err(|e| Error::Unavailable(Box::new(e)))?;
        }
        Ok(())
    }

    /// Releases the lock.
    pub async fn release(self) -> Result<()> {
        if let Some(txn) = self.txn {
            txn.rollback().await?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for MasterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterLock")
            .field("postgres", &self.txn.is_some())
            .finish()
    }
}

#[async_trait]
impl CommonStorage for SeaStorage {
    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        // Whatever stops the round trip (a refused connection, a closed pool, a timeout)
        // means the database cannot be used right now.
        self.db
            .ping()
            .await
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        Ok(start.elapsed())
    }

    async fn document(&self, ct: &ContentType, id: DocumentId) -> Result<Option<StoredDoc>> {
        common::document(&self.db, ct, id).await
    }

    async fn documents(&self, ct: Option<&ContentType>, page: Page) -> Result<(Vec<StoredDoc>, u64)> {
        common::documents(&self.db, ct, page).await
    }

    async fn offset(&self, topic: &str, partition: u32) -> Result<Option<i64>> {
        common::offset(&self.db, topic, partition).await
    }

    async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        common::dead_letters(&self.db, status, page).await
    }

    async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        common::dead_letter(&self.db, id).await
    }

    async fn dead_letter_counts(&self) -> Result<DeadLetterCounts> {
        common::dead_letter_counts(&self.db).await
    }

    async fn settle_dead_letter(&self, id: u64, status: DeadLetterStatus, now_ms: u64) -> Result<DeadLetter> {
        let txn = self.db.begin().await?;
        let letter = common::settle_dead_letter(&txn, id, status, now_ms).await;
        finish(txn, letter).await
    }

    async fn due_dead_letters(&self, now_ms: u64, limit: usize) -> Result<Vec<DeadLetter>> {
        common::due_dead_letters(&self.db, now_ms, limit).await
    }

    async fn dead_letter_failed(&self, id: u64, next_retry_at_ms: Option<u64>) -> Result<DeadLetter> {
        common::dead_letter_failed(&self.db, id, next_retry_at_ms).await
    }

    async fn prune(&self, before_ms: u64) -> Result<u64> {
        let txn = self.db.begin().await?;
        let n = common::prune(&txn, before_ms).await;
        finish(txn, n).await
    }

    async fn signing_seed(&self, generated: [u8; 32], now_ms: u64) -> Result<[u8; 32]> {
        trust::signing_seed(&self.db, generated, now_ms).await
    }

    async fn peer_keys(&self) -> Result<Vec<PeerKey>> {
        trust::peer_keys(&self.db).await
    }

    async fn pin_peer_key(&self, key: &PeerKey) -> Result<PeerKey> {
        trust::pin_peer_key(&self.db, key).await
    }

    async fn save_peer_key(&self, key: &PeerKey) -> Result<()> {
        trust::save_peer_key(&self.db, key).await
    }

    async fn audit(&self, entry: &NewAuditEntry) -> Result<()> {
        trust::audit(&self.db, entry).await
    }

    async fn audit_log(&self, page: Page) -> Result<(Vec<AuditEntry>, u64)> {
        trust::audit_log(&self.db, page).await
    }

    async fn changes_per_minute(&self, since_ms: u64) -> Result<Vec<(u64, u64)>> {
        common::changes_per_minute(&self.db, since_ms).await
    }

    async fn prune_audit(&self, before_ms: u64) -> Result<u64> {
        trust::prune_audit(&self.db, before_ms).await
    }
}

#[async_trait]
impl ReplicaStorage for SeaStorage {
    async fn replica_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<ReplicaDoc>> {
        common::replica_doc(&self.db, ct, id).await
    }

    async fn local_write_if(
        &self,
        ship: &ShipId,
        write: &LocalWrite,
        expected: Option<Csn>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<LocalWritten> {
        let txn = self.db.begin().await?;
        let out = replica::local_write(&txn, ship, write, expected, hlc, now_ms).await;
        finish(txn, out).await
    }

    async fn outbox_unsent(&self, ship: &ShipId, limit: usize) -> Result<Vec<OutboxEntry>> {
        replica::outbox_unsent(&self.db, ship, limit).await
    }

    async fn outbox(
        &self,
        ship: &ShipId,
        state: Option<OutboxState>,
        page: Page,
    ) -> Result<(Vec<OutboxEntry>, u64)> {
        replica::outbox_page(&self.db, ship, state, page).await
    }

    async fn outbox_mark_sent(&self, from: Seq, up_to: Seq, now_ms: u64) -> Result<()> {
        replica::outbox_mark_sent(&self.db, from, up_to, now_ms).await
    }

    async fn outbox_resend(&self, from: Seq) -> Result<u64> {
        replica::outbox_resend(&self.db, from).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats> {
        replica::outbox_stats(&self.db).await
    }

    async fn replica_apply(
        &self,
        ship: &ShipId,
        batch: &ReplicaBatch,
        now_ms: u64,
    ) -> Result<ReplicaApplied> {
        let txn = self.db.begin().await?;
        let out = replica::apply(&txn, ship, batch, now_ms).await;
        finish(txn, out).await
    }

    async fn replica_progress(&self) -> Result<ReplicaProgress> {
        Ok(ReplicaProgress {
            applied_csn: common::counter(&self.db, common::APPLIED_CSN).await?,
            last_seq: common::counter(&self.db, common::SEQ).await?,
        })
    }

    async fn resync_state(&self) -> Result<Option<ResyncState>> {
        resync::state(&self.db).await
    }

    async fn request_resync(&self, full: bool, reason: &str, now_ms: u64) -> Result<ResyncState> {
        let txn = self.db.begin().await?;
        let out = resync::request(&txn, full, reason, now_ms).await;
        finish(txn, out).await
    }

    async fn start_resync(&self, ship: &ShipId, start: &ResyncStart, now_ms: u64) -> Result<ResyncStarted> {
        let txn = self.db.begin().await?;
        let out = resync::start(&txn, ship, start, now_ms).await;
        finish(txn, out).await
    }

    async fn apply_resync_page(&self, ship: &ShipId, page: &ResyncPage, now_ms: u64) -> Result<ResyncState> {
        let txn = self.db.begin().await?;
        let out = resync::apply_page(&txn, ship, page, now_ms).await;
        finish(txn, out).await
    }

    async fn finish_resync(&self, topic: &str, next: i64, now_ms: u64) -> Result<ResyncFinished> {
        let txn = self.db.begin().await?;
        let out = resync::finish(&txn, topic, next, now_ms).await;
        finish(txn, out).await
    }
}

#[async_trait]
impl MasterStorage for SeaStorage {
    async fn master_doc(&self, ct: &ContentType, id: DocumentId) -> Result<Option<MasterDoc>> {
        common::master_doc(&self.db, ct, id).await
    }

    async fn master_apply(
        &self,
        batch: &MasterBatch,
        policies: &Policies,
        now_ms: u64,
    ) -> Result<MasterApplied> {
        let txn = self.db.begin().await?;
        let out = master::apply(&txn, batch, policies, now_ms).await;
        finish(txn, out).await
    }

    async fn master_write_if(
        &self,
        write: &LocalWrite,
        expected: Option<Csn>,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(MasterDoc, Option<Commit>)> {
        let txn = self.db.begin().await?;
        let out = master::local_write(&txn, write, expected, hlc, now_ms).await;
        finish(txn, out).await
    }

    async fn resolve_conflict(
        &self,
        id: ConflictId,
        strategy: &Strategy,
        hlc: Hlc,
        now_ms: u64,
    ) -> Result<(Conflict, Commit)> {
        let txn = self.db.begin().await?;
        let out = master::resolve(&txn, id, strategy, hlc, now_ms).await;
        finish(txn, out).await
    }

    async fn conflicts(&self, filter: &ConflictFilter, page: Page) -> Result<Vec<Conflict>> {
        master::conflicts(&self.db, filter, page).await
    }

    async fn count_conflicts(&self, filter: &ConflictFilter) -> Result<u64> {
        master::count_conflicts(&self.db, filter).await
    }

    async fn document_commits(
        &self,
        ct: &ContentType,
        id: DocumentId,
        up_to: Csn,
        limit: u64,
    ) -> Result<Vec<Commit>> {
        master::document_commits(&self.db, ct, id, up_to, limit).await
    }

    async fn commit_times(&self, csns: &[Csn]) -> Result<BTreeMap<Csn, u64>> {
        master::commit_times(&self.db, csns).await
    }

    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>> {
        master::conflict(&self.db, id).await
    }

    async fn unpublished(&self, limit: usize) -> Result<Vec<Broadcast>> {
        master::unpublished(&self.db, limit).await
    }

    async fn unpublished_count(&self, limit: u64) -> Result<u64> {
        master::unpublished_count(&self.db, limit).await
    }

    async fn mark_published(&self, up_to: u64, last: Option<Published>) -> Result<()> {
        let txn = self.db.begin().await?;
        let out = master::mark_published(&txn, up_to, last).await;
        finish(txn, out).await
    }

    async fn published(&self) -> Result<Published> {
        master::published(&self.db).await
    }

    async fn snapshot(
        &self,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<Vec<StoredDoc>> {
        common::snapshot(&self.db, after, from, limit).await
    }

    async fn snapshot_size(&self, after: Csn) -> Result<u64> {
        common::snapshot_size(&self.db, after).await
    }

    async fn collect_tombstones(&self, up_to: Csn) -> Result<u64> {
        let txn = self.db.begin().await?;
        let out = master::collect_tombstones(&txn, up_to).await;
        finish(txn, out).await
    }

    async fn tombstones_collected(&self) -> Result<Csn> {
        master::collected(&self.db).await
    }

    async fn decommission_ship(&self, ship: &ShipId, at_ms: Option<u64>) -> Result<ShipRecord> {
        let txn = self.db.begin().await?;
        let out = master::decommission(&txn, ship, at_ms).await;
        finish(txn, out).await
    }

    async fn ship_seqs(&self, ship: &ShipId, limit: u64) -> Result<Vec<ShipSeq>> {
        master::ship_seqs(&self.db, ship, limit).await
    }

    async fn resolved_conflicts(
        &self,
        after: Csn,
        limit: u64,
    ) -> Result<Vec<(ConflictId, ContentType, DocumentId)>> {
        master::resolved_after(&self.db, after, limit).await
    }

    async fn ships(&self) -> Result<Vec<ShipRecord>> {
        master::ships(&self.db).await
    }

    async fn last_csn(&self) -> Result<Csn> {
        common::counter(&self.db, common::CSN).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    /// Power cuts on a ship: a write answered with success is on disk. Under WAL,
    /// `synchronous=NORMAL` lets the last committed transactions roll back after a power
    /// loss; FULL syncs the WAL at every commit.
    #[tokio::test]
    async fn a_sqlite_commit_is_synced_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = SeaStorage::connect(&SeaStorage::sqlite_url(&dir.path().join("ship.db")))
            .await
            .unwrap();
        let row =
            s.db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA synchronous"))
                .await
                .unwrap()
                .unwrap();
        let level: i32 = row.try_get_by_index(0).unwrap();
        assert_eq!(level, 2, "PRAGMA synchronous is FULL (2)");
    }
}
