//! [`SeaStorage`]: the sea-orm implementation of [`crate::Storage`], on PostgreSQL or SQLite.

mod common;
mod master;
mod query;
mod replica;
mod resync;
mod trust;

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use offline_sync_migrations::{Migrator, MigratorTrait};
use offline_sync_model::{
    Commit, Conflict, ConflictId, ContentType, Csn, DocumentId, Hlc, LocalWrite, MasterDoc, Policies,
    ReplicaDoc, Seq, ShipId, Strategy,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait};

use crate::delegate::delegate;
use crate::error::{Error, Result};
use crate::query::DocumentQuery;
use crate::types::{
    AuditEntry, Broadcast, ConflictFilter, DeadLetter, DeadLetterCounts, DeadLetterStatus, FeedPage,
    LocalWritten, MasterApplied, MasterBatch, NewAuditEntry, OutboxEntry, OutboxState, OutboxStats, Page,
    PeerKey, Published, ReplicaApplied, ReplicaBatch, ReplicaProgress, ResyncFinished, ResyncPage,
    ResyncStart, ResyncStarted, ResyncState, ShipRecord, ShipSeq, StoredDoc,
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

    /// Keeps an index over each field of `fields` (for every content type) and none over any
    /// other: an equality or `$in` filter on an indexed field reads the matching rows only,
    /// where any other filter reads every row of its type. Creates what is missing and drops
    /// what is no longer asked for, returning the names of both. Every index makes each
    /// write of a document update it too (on PostgreSQL an update then no longer rewrites
    /// the row in place). Errors: `Invalid` for a field that is not 1 to 40 of `A-Z a-z 0-9
    /// _`. Safe to repeat.
    pub async fn index_fields(&self, fields: &std::collections::BTreeSet<String>) -> Result<FieldIndexes> {
        let backend = self.db.get_database_backend();
        let wanted: BTreeMap<String, String> = fields
            .iter()
            .map(|f| query::field_index(backend, f))
            .collect::<Result<_>>()?;
        let existing = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                backend,
                query::FIELD_INDEXES[usize::from(backend == DbBackend::Postgres)],
            ))
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "name"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut changed = FieldIndexes::default();
        for name in existing.iter().filter(|n| !wanted.contains_key(*n)) {
            self.db
                .execute_unprepared(&format!("DROP INDEX IF EXISTS \"{name}\""))
                .await?;
            changed.dropped.push(name.clone());
        }
        for (name, create) in wanted.iter().filter(|(n, _)| !existing.contains(n)) {
            self.db.execute_unprepared(create).await?;
            changed.created.push(name.clone());
        }
        Ok(changed)
    }

    /// How the database would read a page of [`CommonStorage::find_documents`]: its plan,
    /// one line a step (SQLite's `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`), which names
    /// any index it uses. Read-only.
    pub async fn explain_find(&self, ct: &ContentType, query: &DocumentQuery) -> Result<String> {
        let backend = self.db.get_database_backend();
        let find = query::rows(backend, ct, query, 0, 25);
        let (prefix, column) = match backend {
            DbBackend::Postgres => ("EXPLAIN ", "QUERY PLAN"),
            _ => ("EXPLAIN QUERY PLAN ", "detail"),
        };
        let explain = sea_orm::Statement::from_sql_and_values(
            backend,
            format!("{prefix}{}", find.sql),
            find.values.map(|v| v.0).unwrap_or_default(),
        );
        let lines = self
            .db
            .query_all_raw(explain)
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", column))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
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

/// The indexes [`SeaStorage::index_fields`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldIndexes {
    /// Made.
    pub created: Vec<String>,
    /// Dropped.
    pub dropped: Vec<String>,
}

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

/// The body of a [`SeaStorage`] method passed on to `target`: with the connection pool (`db`),
/// or in a transaction of its own that commits what succeeded and rolls back what failed
/// (`txn`).
macro_rules! on_db {
    ($self:ident, db, $name:ident($($arg:ident),*), $target:path) => {
        $target(&$self.db, $($arg),*).await
    };
    ($self:ident, txn, $name:ident($($arg:ident),*), $target:path) => {{
        let txn = $self.db.begin().await?;
        let out = $target(&txn, $($arg),*).await;
        finish(txn, out).await
    }};
}

delegate! {
    impl CommonStorage for SeaStorage by on_db {
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
    }
    db fn document(ct: &ContentType, id: DocumentId) -> Option<StoredDoc> => common::doc;
    db fn documents(ct: Option<&ContentType>, page: Page) -> (Vec<StoredDoc>, u64) => common::documents;
    db fn find_documents(ct: &ContentType, query: &DocumentQuery, page: Page) -> (Vec<StoredDoc>, u64)
        => common::find_documents;
    db fn offset(topic: &str, partition: u32) -> Option<i64> => common::offset;
    db fn dead_letters(status: Option<DeadLetterStatus>, page: Page) -> (Vec<DeadLetter>, u64)
        => common::dead_letters;
    db fn dead_letter(id: u64) -> Option<DeadLetter> => common::dead_letter;
    db fn dead_letter_counts() -> DeadLetterCounts => common::dead_letter_counts;
    txn fn settle_dead_letter(id: u64, status: DeadLetterStatus, now_ms: u64) -> DeadLetter
        => common::settle_dead_letter;
    db fn due_dead_letters(now_ms: u64, limit: usize) -> Vec<DeadLetter> => common::due_dead_letters;
    db fn dead_letter_failed(id: u64, next_retry_at_ms: Option<u64>) -> DeadLetter
        => common::dead_letter_failed;
    txn fn prune(before_ms: u64) -> u64 => common::prune;
    db fn signing_seed(generated: [u8; 32], now_ms: u64) -> [u8; 32] => trust::signing_seed;
    db fn peer_keys() -> Vec<PeerKey> => trust::peer_keys;
    db fn pin_peer_key(key: &PeerKey) -> PeerKey => trust::pin_peer_key;
    db fn save_peer_key(key: &PeerKey) -> () => trust::save_peer_key;
    db fn audit(entry: &NewAuditEntry) -> () => trust::audit;
    db fn audit_log(page: Page) -> (Vec<AuditEntry>, u64) => trust::audit_log;
    db fn changes_per_minute(since_ms: u64) -> Vec<(u64, u64)> => common::changes_per_minute;
    db fn feed(after: u64, limit: usize) -> FeedPage => common::feed;
    db fn webhook_position(hook: &str) -> Option<u64> => common::webhook_position;
    db fn save_webhook_position(hook: &str, position: u64) -> () => common::save_webhook_position;
    db fn prune_audit(before_ms: u64) -> u64 => trust::prune_audit;
}

delegate! {
    impl ReplicaStorage for SeaStorage by on_db {
        async fn replica_progress(&self) -> Result<ReplicaProgress> {
            Ok(ReplicaProgress {
                applied_csn: common::counter(&self.db, common::APPLIED_CSN).await?,
                last_seq: common::counter(&self.db, common::SEQ).await?,
            })
        }
    }
    db fn replica_doc(ct: &ContentType, id: DocumentId) -> Option<ReplicaDoc> => common::doc;
    txn fn local_write_if(ship: &ShipId, write: &LocalWrite, expected: Option<Csn>, hlc: Hlc, now_ms: u64)
        -> LocalWritten => replica::local_write;
    db fn outbox_unsent(ship: &ShipId, limit: usize) -> Vec<OutboxEntry> => replica::outbox_unsent;
    db fn outbox(ship: &ShipId, state: Option<OutboxState>, page: Page) -> (Vec<OutboxEntry>, u64)
        => replica::outbox_page;
    db fn outbox_mark_sent(from: Seq, up_to: Seq, now_ms: u64) -> () => replica::outbox_mark_sent;
    db fn outbox_resend(from: Seq) -> u64 => replica::outbox_resend;
    db fn outbox_stats() -> OutboxStats => replica::outbox_stats;
    txn fn replica_apply(ship: &ShipId, batch: &ReplicaBatch, now_ms: u64) -> ReplicaApplied
        => replica::apply;
    db fn resync_state() -> Option<ResyncState> => resync::state;
    txn fn request_resync(full: bool, reason: &str, now_ms: u64) -> ResyncState => resync::request;
    txn fn start_resync(ship: &ShipId, start: &ResyncStart, now_ms: u64) -> ResyncStarted => resync::start;
    txn fn apply_resync_page(ship: &ShipId, page: &ResyncPage, now_ms: u64) -> ResyncState
        => resync::apply_page;
    txn fn finish_resync(topic: &str, next: i64, now_ms: u64) -> ResyncFinished => resync::finish;
}

delegate! {
    impl MasterStorage for SeaStorage by on_db {
        async fn last_csn(&self) -> Result<Csn> {
            common::counter(&self.db, common::CSN).await
        }
    }
    db fn master_doc(ct: &ContentType, id: DocumentId) -> Option<MasterDoc> => common::doc;
    txn fn master_apply(batch: &MasterBatch, policies: &Policies, now_ms: u64) -> MasterApplied
        => master::apply;
    txn fn master_write_if(write: &LocalWrite, expected: Option<Csn>, hlc: Hlc, now_ms: u64)
        -> (MasterDoc, Option<Commit>) => master::local_write;
    txn fn resolve_conflict(id: ConflictId, strategy: &Strategy, hlc: Hlc, now_ms: u64)
        -> (Conflict, Commit) => master::resolve;
    db fn conflicts(filter: &ConflictFilter, page: Page) -> Vec<Conflict> => master::conflicts;
    db fn count_conflicts(filter: &ConflictFilter) -> u64 => master::count_conflicts;
    db fn document_commits(ct: &ContentType, id: DocumentId, up_to: Csn, limit: u64) -> Vec<Commit>
        => master::document_commits;
    db fn commit_times(csns: &[Csn]) -> BTreeMap<Csn, u64> => master::commit_times;
    db fn conflict(id: ConflictId) -> Option<Conflict> => master::conflict;
    db fn unpublished(limit: usize) -> Vec<Broadcast> => master::unpublished;
    db fn unpublished_count(limit: u64) -> u64 => master::unpublished_count;
    txn fn mark_published(up_to: u64, last: Option<Published>) -> () => master::mark_published;
    db fn published() -> Published => master::published;
    db fn snapshot(after: Csn, from: Option<(ContentType, DocumentId)>, limit: u64) -> Vec<StoredDoc>
        => common::snapshot;
    db fn snapshot_size(after: Csn) -> u64 => common::snapshot_size;
    txn fn collect_tombstones(up_to: Csn) -> u64 => master::collect_tombstones;
    db fn tombstones_collected() -> Csn => master::collected;
    txn fn decommission_ship(ship: &ShipId, at_ms: Option<u64>) -> ShipRecord => master::decommission;
    db fn ship_seqs(ship: &ShipId, limit: u64) -> Vec<ShipSeq> => master::ship_seqs;
    db fn resolved_conflicts(after: Csn, limit: u64) -> Vec<(ConflictId, ContentType, DocumentId)>
        => master::resolved_after;
    db fn ships() -> Vec<ShipRecord> => master::ships;
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
