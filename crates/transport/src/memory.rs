//! [`MemoryTransport`]: Kafka-shaped topics held in memory, for fast deterministic tests and the
//! quick start.

use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{Batch, Error, FetchLimit, Fetched, OffsetRange, Record, Result, Transport, partition_for};

/// An in-memory [`Transport`].
///
/// Cheap to clone: every clone shares the same topics, so one clone per node of a test
/// cluster behaves like one broker. Each partition is a list of records with the offset of
/// its first one (`earliest`); offsets are never reused except by [`MemoryTransport::recreate`].
///
/// Besides the trait it offers what a test needs to imitate a broker's life:
/// [`truncate`](MemoryTransport::truncate) (retention) and
/// [`recreate`](MemoryTransport::recreate) (a topic deleted and created again).
#[derive(Clone, Debug, Default)]
pub struct MemoryTransport {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
    /// Most bytes of values one publish may carry, as a broker's `message.max.bytes`.
    max_batch_bytes: Arc<Mutex<Option<usize>>>,
}

/// The partitions of one topic.
#[derive(Debug)]
struct Topic {
    partitions: Vec<Partition>,
}

/// One partition: the records still held and the offset of the first of them.
#[derive(Debug, Default)]
struct Partition {
    /// Offset of `records[0]`, or of the next record when `records` is empty.
    earliest: i64,
    records: VecDeque<Record>,
    /// Woken whenever the partition changes (append, truncation, recreation), so that a
    /// waiting fetch looks again. Kept across [`MemoryTransport::recreate`] so that fetches
    /// waiting on the old topic notice it.
    changed: Arc<Notify>,
}

impl MemoryTransport {
    /// A transport without topics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses, from now on, a publish whose values add up to more than `max` bytes with
    /// [`Error::TooLarge`], as a broker with a lower `message.max.bytes` would (`None`: no
    /// limit, the default).
    pub fn set_max_batch_bytes(&self, max: Option<usize>) {
        *self
            .max_batch_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = max;
    }

    /// Removes the records of `topic`/`partition` below offset `before`, as retention would:
    /// `earliest` moves up to `before` and the remaining records keep their offsets. A `before`
    /// above the latest offset is taken as the latest (everything is removed, the next record
    /// still gets the next offset); one at or below `earliest` changes nothing.
    ///
    /// Fails with [`Error::UnknownTopic`] or, for a partition the topic does not have,
    /// [`Error::Invalid`].
    pub fn truncate(&self, topic: &str, partition: u32, before: i64) -> Result<()> {
        let changed = {
            let mut topics = self.lock();
            let part = partition_mut(&mut topics, topic, partition)?;
            let before = before.min(part.latest());
            if before <= part.earliest {
                return Ok(());
            }
            let removed = usize::try_from(before - part.earliest).unwrap_or(usize::MAX);
            part.records.drain(..removed.min(part.records.len()));
            part.earliest = before;
            tracing::debug!(topic, partition, earliest = before, "truncated partition");
            Arc::clone(&part.changed)
        };
        changed.notify_waiters();
        Ok(())
    }

    /// Deletes `topic` and creates it again, empty, with the same number of partitions: every
    /// partition holds `0..0` afterwards, so a reader's stored offset is above the latest one.
    /// Fetches waiting on the topic wake up and see the new state.
    ///
    /// Fails with [`Error::UnknownTopic`] if the topic does not exist.
    pub fn recreate(&self, topic: &str) -> Result<()> {
        let notifies: Vec<Arc<Notify>> = {
            let mut topics = self.lock();
            let t = topics.get_mut(topic).ok_or_else(|| unknown_topic(topic))?;
            for part in &mut t.partitions {
                part.records = VecDeque::new();
                part.earliest = 0;
            }
            tracing::debug!(topic, partitions = t.partitions.len(), "recreated topic");
            t.partitions.iter().map(|p| Arc::clone(&p.changed)).collect()
        };
        for changed in notifies {
            changed.notify_waiters();
        }
        Ok(())
    }

    /// Locks the topics. The lock is never held across an `.await`, and nothing panics while
    /// holding it, so a poisoned lock still holds consistent data and is taken over.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The records of `topic`/`partition` from `offset` on (at most `max_records`) and the
    /// high watermark, or [`Error::OffsetOutOfRange`].
    fn read(&self, topic: &str, partition: u32, offset: i64, max_records: usize) -> Result<Batch> {
        let topics = self.lock();
        let part = partition_ref(&topics, topic, partition)?;
        let (earliest, latest) = (part.earliest, part.latest());
        if offset < earliest || offset > latest {
            return Err(Error::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition,
                offset,
                earliest,
                latest,
            });
        }
        let skip = usize::try_from(offset - earliest).unwrap_or(usize::MAX);
        let records = part
            .records
            .iter()
            .skip(skip)
            .take(max_records)
            .zip(offset..)
            .map(|(record, offset)| Fetched {
                offset,
                record: record.clone(),
            })
            .collect();
        Ok(Batch {
            records,
            high_watermark: latest,
        })
    }

    /// The notifier of `topic`/`partition`.
    fn notifier(&self, topic: &str, partition: u32) -> Result<Arc<Notify>> {
        let topics = self.lock();
        Ok(Arc::clone(&partition_ref(&topics, topic, partition)?.changed))
    }
}

impl Partition {
    /// The offset the next record will get.
    fn latest(&self) -> i64 {
        self.earliest + i64::try_from(self.records.len()).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        if topic.is_empty() {
            return Err(invalid("empty topic name"));
        }
        if partitions == 0 {
            return Err(invalid(format!("topic {topic:?} needs at least one partition")));
        }
        let mut topics = self.lock();
        if !topics.contains_key(topic) {
            let partitions = (0..partitions).map(|_| Partition::default()).collect();
            topics.insert(topic.to_owned(), Topic { partitions });
            tracing::debug!(topic, "created topic");
        }
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        let topics = self.lock();
        let t = topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
        Ok(t.count())
    }

    async fn publish(&self, topic: &str, key: Option<&[u8]>, values: Vec<Vec<u8>>) -> Result<(u32, i64)> {
        if values.is_empty() {
            return Err(invalid("empty batch"));
        }
        let max = *self
            .max_batch_bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let bytes: usize = values.iter().map(Vec::len).sum();
        if let Some(max) = max.filter(|m| bytes > *m) {
            return Err(Error::TooLarge {
                reason: format!("a batch of {bytes} bytes is above the {max} bytes this broker takes"),
            });
        }
        let (partition, first, changed) = {
            let mut topics = self.lock();
            let t = topics.get_mut(topic).ok_or_else(|| unknown_topic(topic))?;
            let partition = partition_for(key, t.count());
            let part = t.partition_mut(topic, partition)?;
            let first = part.latest();
            let key = key.map(<[u8]>::to_vec);
            part.records.extend(values.into_iter().map(|value| Record {
                key: key.clone(),
                value,
            }));
            (partition, first, Arc::clone(&part.changed))
        };
        changed.notify_waiters();
        Ok((partition, first))
    }

    async fn fetch(&self, topic: &str, partition: u32, offset: i64, limit: FetchLimit) -> Result<Batch> {
        let limit = limit.check()?;
        let deadline = Instant::now().checked_add(limit.max_wait);
        let changed = self.notifier(topic, partition)?;
        loop {
            // Registered before looking, so a change made after the look wakes it.
            let notified = changed.notified();
            let batch = self.read(topic, partition, offset, limit.max_records)?;
            if !batch.records.is_empty() {
                return Ok(batch);
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return self.read(topic, partition, offset, limit.max_records);
                    }
                }
                None => notified.await,
            }
        }
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<OffsetRange> {
        let topics = self.lock();
        let part = partition_ref(&topics, topic, partition)?;
        Ok(OffsetRange::new(part.earliest, part.latest()))
    }
}

impl Topic {
    /// Number of partitions.
    fn count(&self) -> u32 {
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<&Partition> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or_else(|| unknown_partition(topic, partition, self.count()))
    }

    fn partition_mut(&mut self, topic: &str, partition: u32) -> Result<&mut Partition> {
        let count = self.count();
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get_mut(i))
            .ok_or_else(|| unknown_partition(topic, partition, count))
    }
}

fn partition_ref<'a>(
    topics: &'a HashMap<String, Topic>,
    topic: &str,
    partition: u32,
) -> Result<&'a Partition> {
    topics
        .get(topic)
        .ok_or_else(|| unknown_topic(topic))?
        .partition(topic, partition)
}

fn partition_mut<'a>(
    topics: &'a mut HashMap<String, Topic>,
    topic: &str,
    partition: u32,
) -> Result<&'a mut Partition> {
    topics
        .get_mut(topic)
        .ok_or_else(|| unknown_topic(topic))?
        .partition_mut(topic, partition)
}

fn unknown_topic(topic: &str) -> Error {
    Error::UnknownTopic {
        topic: topic.to_owned(),
    }
}

fn unknown_partition(topic: &str, partition: u32, count: u32) -> Error {
    invalid(format!(
        "topic {topic:?} has no partition {partition} (it has {count})"
    ))
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::Invalid {
        reason: reason.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests; no workspace clippy.toml says so yet
mod tests {
    use std::time::Duration;

    use super::*;

    const NO_WAIT: Duration = Duration::ZERO;

    fn values(values: &[&str]) -> Vec<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    fn offsets_of(batch: &Batch) -> Vec<i64> {
        batch.records.iter().map(|f| f.offset).collect()
    }

    async fn topic_with(records: usize) -> MemoryTransport {
        let t = MemoryTransport::new();
        t.ensure_topic("t", 1).await.unwrap();
        for i in 0..records {
            t.publish("t", None, vec![format!("v{i}").into_bytes()])
                .await
                .unwrap();
        }
        t
    }

    #[tokio::test]
    async fn ensure_topic_rejects_zero_partitions_and_empty_names() {
        let t = MemoryTransport::new();
        assert!(matches!(t.ensure_topic("t", 0).await, Err(Error::Invalid { .. })));
        assert!(matches!(t.ensure_topic("", 1).await, Err(Error::Invalid { .. })));
        assert!(matches!(t.partitions("t").await, Err(Error::UnknownTopic { .. })));
    }

    #[tokio::test]
    async fn ensure_topic_keeps_an_existing_topic() {
        let t = topic_with(2).await;
        t.ensure_topic("t", 4).await.unwrap();
        assert_eq!(t.partitions("t").await.unwrap(), 1);
        assert_eq!(t.offsets("t", 0).await.unwrap(), OffsetRange::new(0, 2));
    }

    #[tokio::test]
    async fn clones_share_topics() {
        let a = MemoryTransport::new();
        let b = a.clone();
        a.ensure_topic("t", 2).await.unwrap();
        let (partition, offset) = b.publish("t", Some(b"k"), values(&["x"])).await.unwrap();
        assert_eq!(offset, 0);
        let batch = a
            .fetch("t", partition, 0, FetchLimit::new(10, NO_WAIT))
            .await
            .unwrap();
        assert_eq!(batch.records[0].record.value, b"x");
    }

    #[tokio::test]
    async fn publish_uses_partition_for_and_copies_the_key() {
        let t = MemoryTransport::new();
        t.ensure_topic("t", 5).await.unwrap();
        let (partition, first) = t
            .publish("t", Some(b"ship-7"), values(&["a", "b"]))
            .await
            .unwrap();
        assert_eq!(partition, partition_for(Some(b"ship-7"), 5));
        assert_eq!(first, 0);
        let batch = t
            .fetch("t", partition, 0, FetchLimit::new(10, NO_WAIT))
            .await
            .unwrap();
        assert_eq!(offsets_of(&batch), [0, 1]);
        assert!(
            batch
                .records
                .iter()
                .all(|f| f.record.key.as_deref() == Some(&b"ship-7"[..]))
        );
    }

    #[tokio::test]
    async fn publish_rejects_empty_batches_and_unknown_topics() {
        let t = topic_with(0).await;
        assert!(matches!(
            t.publish("t", None, vec![]).await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            t.publish("nope", None, values(&["x"])).await,
            Err(Error::UnknownTopic { topic }) if topic == "nope"
        ));
    }

    #[tokio::test]
    async fn fetch_returns_exactly_max_records() {
        let t = topic_with(10).await;
        let batch = t.fetch("t", 0, 3, FetchLimit::new(4, NO_WAIT)).await.unwrap();
        assert_eq!(offsets_of(&batch), [3, 4, 5, 6]);
        assert_eq!(batch.high_watermark, 10);
        let batch = t.fetch("t", 0, 8, FetchLimit::new(4, NO_WAIT)).await.unwrap();
        assert_eq!(offsets_of(&batch), [8, 9]);
    }

    #[tokio::test]
    async fn fetch_rejects_zero_max_records_and_unknown_partitions() {
        let t = topic_with(1).await;
        assert!(matches!(
            t.fetch("t", 0, 0, FetchLimit::new(0, NO_WAIT)).await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            t.fetch("t", 1, 0, FetchLimit::new(1, NO_WAIT)).await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(t.offsets("t", 1).await, Err(Error::Invalid { .. })));
        assert!(matches!(t.truncate("t", 1, 0), Err(Error::Invalid { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn fetch_at_latest_waits_max_wait_then_returns_empty() {
        let t = topic_with(3).await;
        let start = Instant::now();
        let batch = t
            .fetch("t", 0, 3, FetchLimit::new(10, Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(batch.records.is_empty());
        assert_eq!(batch.high_watermark, 3);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    /// Fetches at the latest offset of `t`, holding 3 records, waiting up to 60 s, while
    /// `meanwhile` runs after `delay`; returns what the fetch returned and when (on tokio's
    /// clock, paused) it did.
    async fn fetch_at_latest_while(
        t: &MemoryTransport,
        delay: Duration,
        meanwhile: impl Future<Output = ()>,
    ) -> (Result<Batch>, Duration) {
        let start = Instant::now();
        let fetch = async {
            let fetched = t
                .fetch("t", 0, 3, FetchLimit::new(10, Duration::from_secs(60)))
                .await;
            (fetched, start.elapsed())
        };
        let (fetched, ()) = tokio::join!(fetch, async {
            tokio::time::sleep(delay).await;
            meanwhile.await;
        });
        fetched
    }

    #[tokio::test(start_paused = true)]
    async fn fetch_at_latest_wakes_when_a_record_arrives() {
        let t = topic_with(3).await;
        let (fetched, took) = fetch_at_latest_while(&t, Duration::from_secs(2), async {
            t.publish("t", None, values(&["late"])).await.unwrap();
        })
        .await;
        let batch = fetched.unwrap();
        assert_eq!(took, Duration::from_secs(2));
        assert_eq!(offsets_of(&batch), [3]);
        assert_eq!(batch.records[0].record.value, b"late");
        assert_eq!(batch.high_watermark, 4);
    }

    #[tokio::test]
    async fn fetch_with_an_enormous_max_wait_still_wakes() {
        let t = topic_with(1).await;
        let (batch, _) = tokio::join!(t.fetch("t", 0, 1, FetchLimit::new(10, Duration::MAX)), async {
            tokio::task::yield_now().await;
            t.publish("t", None, values(&["x"])).await.unwrap()
        });
        assert_eq!(offsets_of(&batch.unwrap()), [1]);
    }

    #[tokio::test]
    async fn fetch_outside_the_range_fills_every_field() {
        let t = topic_with(5).await;
        for offset in [-1, 6] {
            let err = t
                .fetch("t", 0, offset, FetchLimit::new(10, NO_WAIT))
                .await
                .unwrap_err();
            let Error::OffsetOutOfRange {
                topic,
                partition,
                offset: o,
                earliest,
                latest,
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(
                (topic.as_str(), *partition, *o, *earliest, *latest),
                ("t", 0, offset, 0, 5)
            );
        }
    }

    #[tokio::test]
    async fn truncate_moves_earliest_and_keeps_offsets() {
        let t = topic_with(10).await;
        t.truncate("t", 0, 4).unwrap();
        assert_eq!(t.offsets("t", 0).await.unwrap(), OffsetRange::new(4, 10));
        let batch = t.fetch("t", 0, 4, FetchLimit::new(2, NO_WAIT)).await.unwrap();
        assert_eq!(offsets_of(&batch), [4, 5]);
        assert_eq!(batch.records[0].record.value, b"v4");
        assert!(matches!(
            t.fetch("t", 0, 3, FetchLimit::new(1, NO_WAIT)).await,
            Err(Error::OffsetOutOfRange {
                offset: 3,
                earliest: 4,
                latest: 10,
                ..
            })
        ));
        // Below earliest: nothing changes.
        t.truncate("t", 0, 2).unwrap();
        assert_eq!(t.offsets("t", 0).await.unwrap(), OffsetRange::new(4, 10));
    }

    #[tokio::test]
    async fn truncate_is_clamped_to_latest() {
        let t = topic_with(3).await;
        t.truncate("t", 0, 100).unwrap();
        assert_eq!(t.offsets("t", 0).await.unwrap(), OffsetRange::new(3, 3));
        assert_eq!(t.publish("t", None, values(&["x"])).await.unwrap(), (0, 3));
        assert!(matches!(
            t.truncate("nope", 0, 1),
            Err(Error::UnknownTopic { .. })
        ));
    }

    #[tokio::test]
    async fn recreate_empties_every_partition_and_keeps_the_count() {
        let t = MemoryTransport::new();
        t.ensure_topic("t", 3).await.unwrap();
        for key in ["a", "b", "c", "d"] {
            t.publish("t", Some(key.as_bytes()), values(&["x", "y"]))
                .await
                .unwrap();
        }
        t.truncate("t", partition_for(Some(b"a"), 3), 1).unwrap();
        t.recreate("t").unwrap();
        assert_eq!(t.partitions("t").await.unwrap(), 3);
        for partition in 0..3 {
            assert_eq!(t.offsets("t", partition).await.unwrap(), OffsetRange::new(0, 0));
        }
        assert!(matches!(t.recreate("nope"), Err(Error::UnknownTopic { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn recreate_wakes_a_waiting_fetch_with_out_of_range() {
        let t = topic_with(3).await;
        let (fetched, took) = fetch_at_latest_while(&t, Duration::from_secs(1), async {
            t.recreate("t").unwrap();
        })
        .await;
        let err = fetched.unwrap_err();
        assert_eq!(took, Duration::from_secs(1));
        assert!(matches!(
            err,
            Error::OffsetOutOfRange {
                offset: 3,
                earliest: 0,
                latest: 0,
                ..
            }
        ));
    }
}
