//! A fleet in one process for end-to-end tests: a master and several replicas over one
//! broker (the in-memory transport, or a real tansu broker reached with the Kafka transport,
//! one connection per node), each node behind its own fault-injecting link, each on its own
//! database (replicas on SQLite files, the master on a fresh PostgreSQL database or a SQLite
//! file).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

/// Runs each named `async fn name(setup: Setup)` of the test file as two tests, in modules
/// `postgres_master` and `sqlite_master`.
#[macro_export]
macro_rules! on_both_masters {
    ($($name:ident),* $(,)?) => {
        mod postgres_master {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::MasterDb::Postgres.into()).await;
                }
            )*
        }
        mod sqlite_master {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::MasterDb::Sqlite.into()).await;
                }
            )*
        }
    };
}

pub mod browser;
pub mod librdkafka;
pub mod process;
pub mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use offline_sync::engine::{
    Clock, Core, Master, MasterConfig, OverBroker, Replica, ReplicaConfig, ResyncProgress, StoredDoc,
    SystemClock,
};
use offline_sync::kafka::testing::Tansu;
use offline_sync::kafka::{KafkaConfig, KafkaTransport};
use offline_sync::model::{Conflict, ConflictStatus, ContentType, DocumentId, Fields, ShipId};
use offline_sync::storage::testing::{FaultyStorage, StorageFaults};
use offline_sync::storage::{Page, SeaStorage, Storage};
use offline_sync::transport::{FaultControl, FaultyTransport, MemoryTransport, Transport};

/// Where the master keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterDb {
    Postgres,
    Sqlite,
}

/// What carries the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    Memory,
    /// A tansu broker started for the fleet, with `memory://` storage.
    Kafka,
    /// A tansu broker with `sqlite://` storage, which survives a restart.
    KafkaDurable,
}

/// The master's database and the broker of a fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub db: MasterDb,
    pub broker: Broker,
}

impl From<MasterDb> for Setup {
    fn from(db: MasterDb) -> Self {
        Setup {
            db,
            broker: Broker::Memory,
        }
    }
}

/// Connections to the fleet's broker.
enum Hub {
    Memory(MemoryTransport),
    Kafka(Tansu),
}

impl Hub {
    fn connect(&self) -> Arc<dyn Transport> {
        match self {
            Hub::Memory(m) => Arc::new(m.clone()),
            Hub::Kafka(t) => {
                let mut cfg = KafkaConfig::new(vec![t.address()]);
                cfg.request_timeout = Duration::from_secs(10);
                Arc::new(KafkaTransport::new(cfg).unwrap())
            }
        }
    }
}

pub struct Fleet {
    /// A connection of the test's own to the broker, to publish or read behind the nodes.
    pub broker: Arc<dyn Transport>,
    hub: Hub,
    pub master: Master,
    pub master_link: FaultControl,
    /// The master's storage faults, armed by the test.
    pub master_faults: StorageFaults,
    pub ships: Vec<Replica>,
    pub links: Vec<FaultControl>,
    /// Each replica's storage faults, armed by the test.
    pub ship_faults: Vec<StorageFaults>,
    clock: Arc<dyn Clock>,
    /// Changes the tests make to every replica's settings.
    ship_tuning: fn(&mut ReplicaConfig),
    master_url: String,
    ship_urls: Vec<String>,
    /// Replicas resync from the master's state when they need to.
    resync: bool,
    /// Replicas fetch that state over the broker, waiting this long for each part.
    over_broker: Option<Duration>,
    pub master_cfg: MasterConfig,
    dir: tempfile::TempDir,
}

pub fn ct() -> ContentType {
    ContentType::new("api::article.article").unwrap()
}

pub fn fields(v: serde_json::Value) -> Fields {
    v.as_object().unwrap().clone()
}

/// Creates a test article with `v`'s fields on `node`, master or replica.
pub async fn create_doc(node: &Core, v: serde_json::Value) -> StoredDoc {
    node.create(&ct(), fields(v)).await.unwrap()
}

/// Creates a test article with `v`'s fields on the master and syncs it to every ship.
pub async fn synced_doc(f: &Fleet, v: serde_json::Value) -> StoredDoc {
    let doc = create_doc(&f.master, v).await;
    f.sync().await;
    doc
}

/// Updates the test article `id` with `v`'s fields on `node`, master or replica.
pub async fn edit(node: &Core, id: DocumentId, v: serde_json::Value) -> StoredDoc {
    node.update(&ct(), id, fields(v)).await.unwrap()
}

/// The test article `id` as `node` has it, master or replica; `None` when missing or deleted.
pub async fn read(node: &Core, id: DocumentId) -> Option<StoredDoc> {
    node.get(&ct(), id).await.unwrap()
}

/// Deletes the test article `id` on `node`, master or replica.
pub async fn remove(node: &Core, id: DocumentId) {
    node.delete(&ct(), id).await.unwrap();
}

/// Runs `step` every 50 ms until it returns true; fails the test when that takes over `limit`.
pub async fn until(limit: Duration, what: &str, mut step: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !step().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not yet after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every open conflict the master holds.
pub async fn open_conflicts(master: &Master) -> Vec<Conflict> {
    master
        .conflicts(Some(ConflictStatus::Open), Page::all())
        .await
        .unwrap()
}

/// Every conflict the master holds, open or resolved.
pub async fn all_conflicts(master: &Master) -> Vec<Conflict> {
    master.conflicts(None, Page::all()).await.unwrap()
}

pub fn replica_config(i: usize) -> ReplicaConfig {
    let mut cfg = ReplicaConfig::new(ShipId::new(format!("ship-{i}")).unwrap());
    cfg.poll_wait = Duration::ZERO;
    cfg.debounce = Duration::from_millis(10);
    cfg
}

pub fn master_config() -> MasterConfig {
    MasterConfig {
        poll_wait: Duration::ZERO,
        ship_partitions: 2,
        ..MasterConfig::default()
    }
}

/// Copies a SQLite database file and its write-ahead log, if any.
fn copy_database(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(from, to).unwrap();
    let wal = |p: &std::path::Path| std::path::PathBuf::from(format!("{}-wal", p.display()));
    if wal(from).exists() {
        std::fs::copy(wal(from), wal(to)).unwrap();
    }
}

/// Opens a node's database behind a storage that fails when the test says so.
async fn open(url: &str) -> (Arc<dyn Storage>, StorageFaults) {
    let (storage, faults) = FaultyStorage::new(Arc::new(SeaStorage::connect(url).await.unwrap()));
    (Arc::new(storage), faults)
}

impl Fleet {
    pub async fn new(ships: usize, setup: impl Into<Setup>, label: &str) -> Fleet {
        Self::with_config(ships, setup, label, master_config()).await
    }

    pub async fn with_config(
        ships: usize,
        setup: impl Into<Setup>,
        label: &str,
        master_cfg: MasterConfig,
    ) -> Fleet {
        let setup = setup.into();
        let dir = tempfile::tempdir().unwrap();
        let hub = match setup.broker {
            Broker::Memory => Hub::Memory(MemoryTransport::new()),
            Broker::Kafka => {
                Hub::Kafka(Tansu::start().expect("tansu must be installed (./scripts/test.sh installs it)"))
            }
            Broker::KafkaDurable => Hub::Kafka(
                Tansu::start_sqlite().expect("tansu must be installed (./scripts/test.sh installs it)"),
            ),
        };
        let broker = hub.connect();
        // The topics exist as the master's settings say before any node runs, so partitions
        // are what the test chose, not what whichever node came first asked for.
        broker
            .ensure_topic(&master_cfg.topics.ship_updates, master_cfg.ship_partitions)
            .await
            .unwrap();
        broker
            .ensure_topic(&master_cfg.topics.master_updates, 1)
            .await
            .unwrap();
        let master_url = match setup.db {
            MasterDb::Postgres => offline_sync::storage::testing::fresh_postgres(label)
                .await
                .expect("PostgreSQL on 127.0.0.1:5432 is required"),
            MasterDb::Sqlite => SeaStorage::sqlite_url(&dir.path().join("master.db")),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (link, master_link) = FaultyTransport::new(hub.connect());
        let (storage, master_faults) = open(&master_url).await;
        let master = Master::with_clock(master_cfg.clone(), storage, Arc::new(link), clock.clone());
        let mut fleet = Fleet {
            broker,
            hub,
            master,
            master_link,
            master_faults,
            ships: vec![],
            links: vec![],
            ship_faults: vec![],
            clock,
            ship_tuning: |_| {},
            master_url,
            ship_urls: vec![],
            resync: false,
            over_broker: None,
            master_cfg,
            dir,
        };
        for i in 0..ships {
            let url = SeaStorage::sqlite_url(&fleet.dir.path().join(format!("ship-{i}.db")));
            let (link, control) = FaultyTransport::new(fleet.hub.connect());
            let (storage, faults) = open(&url).await;
            fleet.ships.push(Replica::with_clock(
                fleet.ship_config(i),
                storage,
                Arc::new(link),
                fleet.clock.clone(),
            ));
            fleet.links.push(control);
            fleet.ship_faults.push(faults);
            fleet.ship_urls.push(url);
        }
        fleet
    }

    /// Replica `i`'s settings: [`replica_config`] with the fleet's tuning.
    pub fn ship_config(&self, i: usize) -> ReplicaConfig {
        let mut cfg = replica_config(i);
        (self.ship_tuning)(&mut cfg);
        cfg
    }

    /// Puts every node on `clock` and tunes every replica's settings with `tune`, opening
    /// each node again from its database.
    pub async fn set_clock(&mut self, clock: Arc<dyn Clock>, tune: fn(&mut ReplicaConfig)) {
        self.clock = clock;
        self.ship_tuning = tune;
        self.restart_master().await;
        for i in 0..self.ships.len() {
            self.restart_ship(i).await;
        }
    }

    /// Tunes every replica's settings with `tune` from the next restart of each on.
    pub fn set_ship_tuning(&mut self, tune: fn(&mut ReplicaConfig)) {
        self.ship_tuning = tune;
    }

    /// The SQLite file of replica `i`.
    pub fn ship_db_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("ship-{i}.db"))
    }

    /// The in-memory broker, for a fleet over the in-memory transport.
    pub fn memory(&self) -> Option<&MemoryTransport> {
        match &self.hub {
            Hub::Memory(m) => Some(m),
            Hub::Kafka(_) => None,
        }
    }

    /// The tansu broker's address, for a fleet over Kafka.
    pub fn kafka_address(&self) -> Option<String> {
        match &self.hub {
            Hub::Kafka(t) => Some(t.address()),
            Hub::Memory(_) => None,
        }
    }

    /// Stops the fleet's tansu broker.
    pub fn stop_broker(&mut self) {
        if let Hub::Kafka(t) = &mut self.hub {
            t.stop();
        }
    }

    /// Starts the fleet's tansu broker again.
    pub fn restart_broker(&mut self) {
        if let Hub::Kafka(t) = &mut self.hub {
            t.restart().unwrap();
        }
    }

    /// The resync ship `i` ran or runs; the test fails when it never asked for one.
    pub async fn resync_of(&self, i: usize) -> ResyncProgress {
        self.ships[i]
            .status()
            .await
            .unwrap()
            .resync
            .expect("the ship resynced")
    }

    /// Drops replica `i` and opens it again from its database, as after a crash.
    pub async fn restart_ship(&mut self, i: usize) {
        let (link, control) = FaultyTransport::new(self.hub.connect());
        let (storage, faults) = open(&self.ship_urls[i]).await;
        self.ships[i] = Replica::with_clock(self.ship_config(i), storage, Arc::new(link), self.clock.clone());
        self.links[i] = control;
        self.ship_faults[i] = faults;
        if let Some(wait) = self.over_broker {
            self.ships[i].set_snapshot_source(Arc::new(OverBroker::new(wait)));
        } else if self.resync {
            self.ships[i].set_snapshot_source(Arc::new(self.master.clone()));
        }
    }

    /// Lets every replica (now and after a restart) resync from the master's state when it
    /// needs to, fetched over the broker (the master must be running to answer), waiting
    /// `wait` for each part of an answer.
    pub fn resync_over_broker(&mut self, wait: Duration) {
        self.over_broker = Some(wait);
        for s in &self.ships {
            s.set_snapshot_source(Arc::new(OverBroker::new(wait)));
        }
    }

    /// Lets every replica (now and after a restart) resync from the master's state when it
    /// needs to, fetched from the master in this process.
    pub fn resync_from_master(&mut self) {
        self.resync = true;
        for s in &self.ships {
            s.set_snapshot_source(Arc::new(self.master.clone()));
        }
    }

    /// Replaces replica `i`'s database with a copy of the files of `backup` (a database file
    /// and its `-wal`, as `backup_ship` left them) and opens the replica on it, as after an
    /// operator restored a backup.
    pub async fn restore_ship(&mut self, i: usize, backup: &std::path::Path) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = self.dir.path().join(format!("ship-{i}-restored-{nanos}.db"));
        copy_database(backup, &path);
        self.ship_urls[i] = SeaStorage::sqlite_url(&path);
        self.restart_ship(i).await;
    }

    /// Copies replica `i`'s database files (database and write-ahead log, read while the
    /// replica is idle) to `to`: a backup as a file copy makes it.
    pub fn backup_ship(&self, i: usize, to: &std::path::Path) {
        let url = &self.ship_urls[i];
        let path = url
            .strip_prefix("sqlite://")
            .and_then(|p| p.split('?').next())
            .expect("a replica on a SQLite file");
        copy_database(std::path::Path::new(path), to);
    }

    /// Drops the master and opens it again from its database.
    pub async fn restart_master(&mut self) {
        let (link, control) = FaultyTransport::new(self.hub.connect());
        let (storage, faults) = open(&self.master_url).await;
        self.master = Master::with_clock(
            self.master_cfg.clone(),
            storage,
            Arc::new(link),
            self.clock.clone(),
        );
        self.master_link = control;
        self.master_faults = faults;
        if self.resync && self.over_broker.is_none() {
            self.resync_from_master();
        }
    }

    /// Makes the changes of `offline` while ship `i`'s link is down, moves what can move,
    /// then brings the link back and syncs again.
    pub async fn with_ship_offline(&self, i: usize, offline: impl AsyncFnOnce()) {
        self.links[i].set_offline(true);
        offline().await;
        self.sync().await;
        self.links[i].set_offline(false);
        self.sync().await;
    }

    /// Moves every message until nothing moves any more (links that are down stay down).
    pub async fn sync(&self) {
        for _ in 0..100 {
            let mut moved = 0;
            for s in &self.ships {
                moved += s.push_all().await.unwrap_or(0);
            }
            moved += self.master.pull_all().await.unwrap_or(0);
            moved += self.master.publish_all().await.unwrap_or(0);
            for s in &self.ships {
                moved += s.pull_all().await.unwrap_or(0);
            }
            if moved == 0 {
                return;
            }
        }
        panic!("the fleet did not quiesce");
    }

    pub async fn master_docs(&self) -> Vec<(DocumentId, Fields)> {
        let (docs, _) = self.master.storage().documents(None, Page::all()).await.unwrap();
        docs.into_iter().map(|d| (d.id, d.fields)).collect()
    }

    pub async fn ship_docs(&self, i: usize) -> Vec<(DocumentId, Fields)> {
        let (docs, _) = self.ships[i]
            .storage()
            .documents(None, Page::all())
            .await
            .unwrap();
        docs.into_iter().map(|d| (d.id, d.fields)).collect()
    }

    /// Syncs; then the master holds no live test article `id` (`why` says what would have
    /// brought it back), and the fleet converged.
    pub async fn assert_stays_deleted(&self, id: DocumentId, why: &str) {
        self.sync().await;
        assert!(read(&self.master, id).await.is_none(), "{why}");
        self.assert_converged().await;
    }

    /// Every replica holds exactly the master's live documents and nothing unanswered.
    pub async fn assert_converged(&self) {
        let want = self.master_docs().await;
        for (i, s) in self.ships.iter().enumerate() {
            assert_eq!(
                self.ship_docs(i).await,
                want,
                "{} differs from the master",
                s.ship()
            );
            let st = s.status().await.unwrap();
            assert_eq!(
                (st.pending, st.in_flight),
                (0, 0),
                "{} has unanswered changes",
                s.ship()
            );
        }
    }
}
