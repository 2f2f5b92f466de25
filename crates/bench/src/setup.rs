//! What the scenarios share: the machine's description, a tansu broker, fresh databases,
//! nodes on them, documents, and waiting for something to happen.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use offline_sync::engine::{Master, MasterConfig, Replica, ReplicaConfig};
use offline_sync::kafka::{Compression, KafkaConfig, KafkaTransport};
use offline_sync::model::{ContentType, Fields, ShipId, SigningKey};
use offline_sync::storage::{SeaStorage, Storage};
use offline_sync::transport::Transport;
use offline_sync_kafka::testing::Tansu;
use rskafka::client::partition::{Compression as RawCompression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;
use serde_json::json;

/// The CPU, its cores and the memory, for the top of the report.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("Machine: {cpu}, {cores} cores, {mem_gib:.0} GiB")
}

/// The content type every scenario writes.
pub(crate) fn article() -> ContentType {
    ContentType::new("api::article.article").unwrap_or_else(|_| unreachable!("a valid uid"))
}

/// A small, fast, deterministic generator of varied values.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "engine", "deck", "cargo", "harbour", "crew", "pump", "valve", "bridge", "anchor", "hull", "radar",
    "ballast", "galley", "winch", "mast", "tank", "filter", "sensor",
];
const STATUSES: &[&str] = &[
    "open",
    "in progress",
    "waiting for parts",
    "done",
    "checked",
    "deferred",
];

/// A one-field change of realistic shape: a status, a count, a reading, a timestamp or a note.
pub(crate) fn varied_field(rng: &mut Rng) -> (String, serde_json::Value) {
    match rng.below(5) {
        0 => (
            "status".into(),
            json!(STATUSES[rng.below(STATUSES.len() as u64) as usize]),
        ),
        1 => ("count".into(), json!(rng.below(10_000))),
        2 => ("reading".into(), json!(rng.below(1_000_000) as f64 / 100.0)),
        3 => (
            "checkedAt".into(),
            json!(format!(
                "2026-12-{:02}T{:02}:{:02}:00Z",
                1 + rng.below(28),
                rng.below(24),
                rng.below(60)
            )),
        ),
        _ => {
            let words: Vec<&str> = (0..4)
                .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                .collect();
            ("note".into(), json!(words.join(" ")))
        }
    }
}

/// A document of about 1 KB: sixteen fields of varied text and numbers.
pub(crate) fn document(rng: &mut Rng) -> Fields {
    let mut f = Fields::new();
    f.insert(
        "title".into(),
        json!(format!("Work order {}", rng.below(1_000_000))),
    );
    for i in 0..12 {
        let words: Vec<&str> = (0..8)
            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
            .collect();
        f.insert(format!("line_{i:02}"), json!(words.join(" ")));
    }
    for _ in 0..3 {
        let (k, v) = varied_field(rng);
        f.insert(k, v);
    }
    f
}

/// A tansu broker for one scenario, and connections to it.
pub(crate) struct Broker {
    tansu: Tansu,
}

impl Broker {
    pub(crate) fn start() -> Result<Self> {
        let tansu = Tansu::start().context("starting tansu (./scripts/test.sh installs it)")?;
        Ok(Self { tansu })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.tansu.pid()
    }

    pub(crate) fn address(&self) -> String {
        self.tansu.address()
    }

    /// A transport to the broker with `compression`.
    pub(crate) fn transport(&self, compression: Compression) -> Result<Arc<dyn Transport>> {
        let mut cfg = KafkaConfig::new(vec![self.address()]);
        cfg.compression = compression;
        cfg.request_timeout = Duration::from_secs(30);
        Ok(Arc::new(KafkaTransport::new(cfg)?))
    }
}

/// A fresh PostgreSQL database of this run.
pub(crate) async fn postgres(label: &str) -> Result<String> {
    offline_sync_storage::testing::fresh_postgres(label)
        .await
        .context("PostgreSQL on 127.0.0.1:5432 is required")
}

/// A SQLite file named `name` in `dir`.
pub(crate) fn sqlite(dir: &std::path::Path, name: &str) -> String {
    SeaStorage::sqlite_url(&dir.join(format!("{name}.db")))
}

pub(crate) async fn storage(url: &str) -> Result<Arc<dyn Storage>> {
    Ok(Arc::new(SeaStorage::connect(url).await?))
}

/// A master on `url` over `broker`, tuned with `tune`.
pub(crate) async fn master(
    broker: &Broker,
    url: &str,
    tune: impl FnOnce(&mut MasterConfig),
) -> Result<Master> {
    let mut cfg = MasterConfig {
        poll_wait: Duration::from_millis(500),
        ..MasterConfig::default()
    };
    tune(&mut cfg);
    Ok(Master::new(
        cfg,
        storage(url).await?,
        broker.transport(Compression::Zstd)?,
    ))
}

/// Replica `ship-{i}` on `url` over `broker`, pushing at once (no debounce), tuned with `tune`.
pub(crate) async fn replica(
    broker: &Broker,
    url: &str,
    i: usize,
    tune: impl FnOnce(&mut ReplicaConfig),
) -> Result<Replica> {
    let mut cfg = ReplicaConfig::new(ShipId::new(format!("ship-{i}"))?);
    cfg.debounce = Duration::ZERO;
    cfg.poll_wait = Duration::from_millis(500);
    tune(&mut cfg);
    Ok(Replica::new(
        cfg,
        storage(url).await?,
        broker.transport(Compression::Zstd)?,
    ))
}

/// Polls `done` every `every` until it says yes; fails after `limit`.
pub(crate) async fn wait_for<F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut done: F,
) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let started = Instant::now();
    loop {
        if done().await? {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("{what}: not done within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// A raw rskafka client of the broker: the baseline of every path through Kafka.
pub(crate) async fn raw_kafka(broker: &Broker) -> Result<rskafka::client::Client> {
    Ok(rskafka::client::ClientBuilder::new(vec![broker.address()])
        .build()
        .await?)
}

/// A raw client of partition 0 of `topic`, a new one-partition topic.
pub(crate) async fn raw_partition(broker: &Broker, topic: &str) -> Result<Arc<PartitionClient>> {
    let client = raw_kafka(broker).await?;
    client
        .controller_client()?
        .create_topic(topic, 1, 1, 5_000)
        .await?;
    raw_reader(broker, topic).await
}

/// Another raw client of partition 0 of `topic`, on a connection of its own.
pub(crate) async fn raw_reader(broker: &Broker, topic: &str) -> Result<Arc<PartitionClient>> {
    let client = raw_kafka(broker).await?;
    Ok(Arc::new(
        client
            .partition_client(topic, 0, UnknownTopicHandling::Retry)
            .await?,
    ))
}

/// `payloads` as the signed records `sender` sends (a ship's carry its name as their key).
pub(crate) fn sealed(payloads: &[Vec<u8>], sender: &str, seed: u8) -> Vec<Record> {
    let key = SigningKey::from_seed([seed; 32]);
    let ship = sender != "master";
    payloads
        .iter()
        .map(|p| raw_record(ship.then(|| sender.as_bytes().to_vec()), key.seal(sender, p)))
        .collect()
}

/// A record as rskafka produces it, stamped now.
pub(crate) fn raw_record(key: Option<Vec<u8>>, value: Vec<u8>) -> Record {
    Record {
        key,
        value: Some(value),
        headers: Default::default(),
        timestamp: rskafka::chrono::Utc::now(),
    }
}

/// Produces `records` in batches of `batch` with zstd, as a node sends them.
pub(crate) async fn produce_all(partition: &PartitionClient, records: &[Record], batch: usize) -> Result<()> {
    for chunk in records.chunks(batch) {
        partition.produce(chunk.to_vec(), RawCompression::Zstd).await?;
    }
    Ok(())
}

/// Fetches the first `n` records of `partition`; returns their values.
pub(crate) async fn fetch_all(partition: &PartitionClient, n: usize) -> Result<Vec<Vec<u8>>> {
    let mut offset = 0;
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        let (got, _) = partition.fetch_records(offset, 1..8 * 1024 * 1024, 500).await?;
        if got.is_empty() {
            bail!("the broker returned nothing at offset {offset}");
        }
        offset = got.last().map_or(offset, |r| r.offset + 1);
        values.extend(got.into_iter().map(|r| r.record.value.unwrap_or_default()));
    }
    Ok(values)
}

/// Changes per second.
pub(crate) fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// The `p`-th percentile (0..=100) of `samples`, sorted in place.
pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// Says on stderr what a scenario does now, so a long run shows its progress.
pub(crate) fn progress(what: &str) {
    eprintln!("  … {what}");
}
