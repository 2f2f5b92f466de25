//! The [`Transport`] trait of offline-sync: how nodes exchange records over topics shaped like
//! Kafka's (partitions, offsets, retention) — plus [`MemoryTransport`], an in-memory
//! implementation for fast deterministic tests and the quick start, and [`FaultyTransport`],
//! a wrapper that injects the faults of a satellite link.

#[cfg(feature = "testing")]
pub mod conformance;
mod error;
mod faulty;
mod memory;

use std::time::Duration;

use async_trait::async_trait;

pub use error::{Error, Result};
pub use faulty::{FaultControl, FaultCounts, FaultyTransport};
pub use memory::MemoryTransport;

/// One record: an optional key and a value (an encoded envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub value: Vec<u8>,
}

/// A record read back with its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Offset in the partition.
    pub offset: i64,
    /// The record.
    pub record: Record,
}

/// The result of one fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Records from the requested offset on, in offset order.
    pub records: Vec<Fetched>,
    /// The partition's high watermark: the offset the next record will get.
    pub high_watermark: i64,
}

/// The offsets a partition currently holds: `earliest..latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetRange {
    /// The oldest offset still held (retention moves it forward).
    pub earliest: i64,
    /// The offset the next record will get (the high watermark).
    pub latest: i64,
}

impl OffsetRange {
    /// The offsets `earliest..latest`.
    pub const fn new(earliest: i64, latest: i64) -> Self {
        Self { earliest, latest }
    }
}

/// How much one [`Transport::fetch`] may return, and how long it waits for the first record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimit {
    /// At most this many records; at least 1.
    pub max_records: usize,
    /// How long to wait for the first record when none is there yet.
    pub max_wait: Duration,
}

impl FetchLimit {
    /// At most `max_records` records, waiting up to `max_wait` for the first.
    pub const fn new(max_records: usize, max_wait: Duration) -> Self {
        Self {
            max_records,
            max_wait,
        }
    }

    /// [`Error::Invalid`] when the limit allows no record: such a fetch could never advance.
    pub fn check(self) -> Result<Self> {
        if self.max_records == 0 {
            return Err(Error::Invalid {
                reason: "max_records must be at least 1".into(),
            });
        }
        Ok(self)
    }
}

/// A Kafka-shaped message transport.
///
/// Usable as `Arc<dyn Transport>`. Records of one partition keep their order; nothing is
/// ordered across partitions. Every method may fail with [`Error::Unavailable`] while the link
/// is down; such failures are retryable and leave nothing behind except as noted.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Creates `topic` with `partitions` partitions if it does not exist; an existing topic is
    /// left as it is. Safe to repeat. A cancelled call may or may not have created the topic.
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<()>;

    /// Number of partitions of `topic`; [`Error::UnknownTopic`] if it does not exist.
    async fn partitions(&self, topic: &str) -> Result<u32>;

    /// Appends `values` as one batch with one `key` to the partition the key maps to (a stable
    /// hash of the key modulo the partition count; without a key, partition 0). Returns the
    /// partition and the offset of the first record once the transport has accepted all of
    /// them, in order. Not idempotent: repeating it after an error may append the batch
    /// twice (the error can come after the transport accepted it). A cancelled call may or
    /// may not have appended the batch.
    async fn publish(&self, topic: &str, key: Option<&[u8]>, values: Vec<Vec<u8>>) -> Result<(u32, i64)>;

    /// Reads up to `limit.max_records` records of `topic`/`partition` from `offset` on, waiting
    /// up to `limit.max_wait` for the first one when none is there yet (then returns an empty
    /// batch). A limit of no records is [`Error::Invalid`]. An `offset` below the earliest held offset or above the latest is
    /// [`Error::OffsetOutOfRange`], never silently moved. Read-only: safe to repeat and to
    /// cancel.
    async fn fetch(&self, topic: &str, partition: u32, offset: i64, limit: FetchLimit) -> Result<Batch>;

    /// The earliest and latest offsets of `topic`/`partition`. Read-only.
    async fn offsets(&self, topic: &str, partition: u32) -> Result<OffsetRange>;
}

const _: Option<&dyn Transport> = None;

/// The partition a key maps to: FNV-1a of the key modulo `partitions` (0 without a key).
pub fn partition_for(key: Option<&[u8]>, partitions: u32) -> u32 {
    let Some(key) = key else { return 0 };
    let hash = key.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    hash % partitions.max(1)
}
