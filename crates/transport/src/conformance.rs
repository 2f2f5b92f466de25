//! The conformance suite every [`Transport`] must pass, in the style of quickwit's
//! `metastore_test_suite!`.
//!
//! Each check is a public `async fn check_xxx(t: &dyn Transport, topic_prefix: &str)` that
//! panics when the transport breaks the contract; it only uses topics whose names start with
//! `topic_prefix`, so checks can share a real broker.
//! [`transport_conformance_suite!`](crate::transport_conformance_suite) expands to one
//! `#[tokio::test]` per generic check, with a fresh transport and a unique prefix each.
//!
//! Two checks need the backend to change a topic behind the transport's back, which only the
//! backend's tests know how to do: [`check_fetch_below_earliest_after_truncation`] (retention)
//! and [`check_fetch_above_latest_after_recreate`] (a topic deleted and created again). They
//! take that operation as an async closure and are called by hand:
//!
//! ```no_run
//! use offline_sync_transport::{MemoryTransport, conformance};
//!
//! # async fn example() {
//! let memory = MemoryTransport::new();
//! let prefix = conformance::unique_prefix("truncation");
//! conformance::check_fetch_below_earliest_after_truncation(
//!     &memory,
//!     &prefix,
//!     async |topic: &str, partition, before| memory.truncate(topic, partition, before).unwrap(),
//! )
//! .await;
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::{Error, FetchLimit, Fetched, OffsetRange, Record, Transport, partition_for};

/// How long checks let a fetch wait when they expect nothing to come.
const SHORT_WAIT: Duration = Duration::from_millis(100);

/// Expands to one `#[tokio::test]` per generic check of [`conformance`](crate::conformance).
///
/// The argument is called once per test to build a fresh transport: a path to an
/// `async fn() -> T`, or a closure returning a future (`async || ...`, `|| async { ... }`),
/// where `T` derefs to a [`Transport`](crate::Transport) (`Arc<dyn Transport>`,
/// `Arc<MemoryTransport>`, `Box<...>`). Each test gets its own topic prefix from
/// [`unique_prefix`](crate::conformance::unique_prefix). The invoking crate needs `tokio`
/// with the `macros` and `rt` features; invoke it once per module, since the tests are named
/// after the checks.
///
/// ```no_run
/// mod memory {
///     use std::sync::Arc;
///
///     use offline_sync_transport::{MemoryTransport, Transport};
///
///     async fn transport() -> Arc<dyn Transport> {
///         Arc::new(MemoryTransport::new())
///     }
///
///     offline_sync_transport::transport_conformance_suite!(transport);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! transport_conformance_suite {
    (@tests $factory:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let transport = ($factory)().await;
                let transport: &dyn $crate::Transport = &*transport;
                let topic_prefix = $crate::conformance::unique_prefix(stringify!($check));
                $crate::conformance::$check(transport, &topic_prefix).await;
            }
        )+
    };
    ($factory:expr $(,)?) => {
        $crate::transport_conformance_suite!(@tests $factory;
            check_ensure_topic_is_idempotent,
            check_ensure_topic_rejects_zero_partitions,
            check_publish_then_fetch,
            check_order_per_key,
            check_batch_offsets_are_consecutive,
            check_offsets_after_publishes,
            check_fetch_at_latest_returns_empty,
            check_fetch_wakes_on_publish,
            check_fetch_max_records,
            check_fetch_outside_range,
            check_unknown_topic,
            check_invalid_requests,
        );
    };
}

/// A topic prefix no other test (in this process or, barring clock trouble, any other) uses:
/// `conformance-<name>-<pid>-<nanoseconds>-<counter>`, made of characters Kafka accepts in
/// topic names as long as `name` is.
pub fn unique_prefix(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("conformance-{name}-{}-{nanos}-{n}", std::process::id())
}

/// `ensure_topic` creates the topic once with the partitions asked for; repeating it, even
/// with another count, leaves the topic as it is.
pub async fn check_ensure_topic_is_idempotent(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-topic");
    t.ensure_topic(&topic, 3).await.expect("ensure_topic");
    assert_eq!(t.partitions(&topic).await.expect("partitions"), 3);
    t.ensure_topic(&topic, 3).await.expect("ensure_topic again");
    assert_eq!(t.partitions(&topic).await.expect("partitions"), 3);

    t.publish(&topic, None, vec![b"kept".to_vec()])
        .await
        .expect("publish");
    t.ensure_topic(&topic, 5)
        .await
        .expect("ensure_topic with another count");
    assert_eq!(
        t.partitions(&topic).await.expect("partitions"),
        3,
        "existing topic changed"
    );
    let range = t.offsets(&topic, 0).await.expect("offsets");
    assert_eq!(range, OffsetRange::new(0, 1), "existing records lost");

    let single = format!("{topic_prefix}-single");
    t.ensure_topic(&single, 1).await.expect("ensure_topic");
    assert_eq!(t.partitions(&single).await.expect("partitions"), 1);
}

/// `ensure_topic` with zero partitions is [`Error::Invalid`] and creates nothing.
pub async fn check_ensure_topic_rejects_zero_partitions(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-zero");
    let result = t.ensure_topic(&topic, 0).await;
    assert!(matches!(result, Err(Error::Invalid { .. })), "{result:?}");
    let result = t.partitions(&topic).await;
    assert!(matches!(result, Err(Error::UnknownTopic { .. })), "{result:?}");
}

/// `publish` returns the partition and increasing first offsets; `fetch` returns the records
/// in order with their offsets, keys and values, from any offset on.
pub async fn check_publish_then_fetch(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-log");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    let key = Some(&b"ship-1"[..]);
    assert_eq!(
        t.publish(&topic, key, values("a", 3)).await.expect("publish"),
        (0, 0)
    );
    assert_eq!(
        t.publish(&topic, None, values("b", 1)).await.expect("publish"),
        (0, 3)
    );
    assert_eq!(
        t.publish(&topic, key, values("c", 2)).await.expect("publish"),
        (0, 4)
    );

    let expected = [
        (0, key, "a0"),
        (1, key, "a1"),
        (2, key, "a2"),
        (3, None, "b0"),
        (4, key, "c0"),
        (5, key, "c1"),
    ]
    .map(|(offset, key, value)| Fetched {
        offset,
        record: Record {
            key: key.map(<[u8]>::to_vec),
            value: value.as_bytes().to_vec(),
        },
    });
    assert_eq!(fetch_all(t, &topic, 0, 0).await, expected);
    assert_eq!(fetch_all(t, &topic, 0, 3).await, expected[3..]);

    let batch = t
        .fetch(&topic, 0, 0, FetchLimit::new(100, SHORT_WAIT))
        .await
        .expect("fetch");
    assert_eq!(batch.high_watermark, 6);
}

/// Records with the same key go to `partition_for(key, n)` and keep their order, across many
/// interleaved publishes; a keyless publish goes to partition 0.
pub async fn check_order_per_key(t: &dyn Transport, topic_prefix: &str) {
    const PARTITIONS: u32 = 4;
    const ROUNDS: usize = 15;
    let topic = format!("{topic_prefix}-keys");
    t.ensure_topic(&topic, PARTITIONS).await.expect("ensure_topic");
    let keys: Vec<String> = (0..8).map(|k| format!("ship-{k}")).collect();
    for round in 0..ROUNDS {
        for key in &keys {
            let value = format!("{key}/{round}").into_bytes();
            let (partition, _) = t
                .publish(&topic, Some(key.as_bytes()), vec![value])
                .await
                .expect("publish");
            assert_eq!(
                partition,
                partition_for(Some(key.as_bytes()), PARTITIONS),
                "key {key}"
            );
        }
    }
    let (partition, _) = t
        .publish(&topic, None, values("keyless", 1))
        .await
        .expect("publish");
    assert_eq!(partition, 0);

    for partition in 0..PARTITIONS {
        let records = fetch_all(t, &topic, partition, 0).await;
        for key in &keys {
            let seen: Vec<Vec<u8>> = records
                .iter()
                .filter(|f| f.record.key.as_deref() == Some(key.as_bytes()))
                .map(|f| f.record.value.clone())
                .collect();
            let expected: Vec<Vec<u8>> = if partition_for(Some(key.as_bytes()), PARTITIONS) == partition {
                (0..ROUNDS)
                    .map(|round| format!("{key}/{round}").into_bytes())
                    .collect()
            } else {
                Vec::new()
            };
            assert_eq!(seen, expected, "key {key} in partition {partition}");
        }
    }
}

/// A publish of N values gets N consecutive offsets, and the next publish starts right after.
pub async fn check_batch_offsets_are_consecutive(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-batches");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    let sizes = [10, 1, 7, 100];
    let mut next = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        let batch = values(&format!("batch{i}-"), size);
        let (_, first) = t.publish(&topic, Some(b"k"), batch).await.expect("publish");
        assert_eq!(first, next, "first offset of batch {i}");
        next += i64::try_from(size).expect("small");
    }
    let records = fetch_all(t, &topic, 0, 0).await;
    let offsets: Vec<i64> = records.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, (0..next).collect::<Vec<_>>());
    let mut at = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        for j in 0..size {
            let record = &records[at].record;
            assert_eq!(record.value, format!("batch{i}-{j}").into_bytes(), "offset {at}");
            assert_eq!(record.key.as_deref(), Some(&b"k"[..]), "offset {at}");
            at += 1;
        }
    }
}

/// `offsets` is `0..0` on every partition of a new topic and `0..n` after n records.
pub async fn check_offsets_after_publishes(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-offsets");
    t.ensure_topic(&topic, 2).await.expect("ensure_topic");
    for partition in 0..2 {
        let range = t.offsets(&topic, partition).await.expect("offsets");
        assert_eq!(range, OffsetRange::new(0, 0), "partition {partition}");
    }
    t.publish(&topic, None, values("a", 5)).await.expect("publish");
    t.publish(&topic, None, values("b", 2)).await.expect("publish");
    assert_eq!(
        t.offsets(&topic, 0).await.expect("offsets"),
        OffsetRange::new(0, 7)
    );
    assert_eq!(
        t.offsets(&topic, 1).await.expect("offsets"),
        OffsetRange::new(0, 0)
    );
}

/// A fetch at the latest offset returns an empty batch after waiting, with the high
/// watermark equal to the latest offset — on an empty partition and on a filled one.
pub async fn check_fetch_at_latest_returns_empty(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-latest");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    assert_nothing_at(t, &topic, 0, 0, "fetch of empty partition").await;

    t.publish(&topic, None, values("a", 3)).await.expect("publish");
    assert_nothing_at(t, &topic, 3, 3, "fetch at latest").await;
    let latest = t.offsets(&topic, 0).await.expect("offsets").latest;
    assert_eq!(latest, 3, "the high watermark is the latest offset");
}

/// A fetch of partition 0 at `offset`, where no record is, returns an empty batch with the
/// high watermark `high_watermark`.
async fn assert_nothing_at(t: &dyn Transport, topic: &str, offset: i64, high_watermark: i64, what: &str) {
    let batch = t
        .fetch(topic, 0, offset, FetchLimit::new(10, SHORT_WAIT))
        .await
        .expect(what);
    assert!(batch.records.is_empty(), "{batch:?}");
    assert_eq!(batch.high_watermark, high_watermark);
}

/// A fetch waiting at the latest offset returns as soon as a record is published, well
/// before its `max_wait`.
pub async fn check_fetch_wakes_on_publish(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-wake");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    t.publish(&topic, None, values("early", 1))
        .await
        .expect("publish");
    let max_wait = Duration::from_secs(20);
    let start = Instant::now();
    let (fetched, published) = tokio::join!(t.fetch(&topic, 0, 1, FetchLimit::new(10, max_wait)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        t.publish(&topic, None, values("late", 1)).await
    });
    assert_eq!(published.expect("publish"), (0, 1));
    let batch = fetched.expect("fetch");
    assert!(start.elapsed() < max_wait, "fetch waited its whole max_wait");
    let offsets: Vec<i64> = batch.records.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [1]);
    assert_eq!(batch.records[0].record.value, b"late0");
    assert_eq!(batch.high_watermark, 2);
}

/// A fetch returns between 1 and `max_records` records when more are there, and reading on
/// from the last offset returned yields every record once.
pub async fn check_fetch_max_records(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-max");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    t.publish(&topic, None, values("v", 10)).await.expect("publish");
    let mut offset = 0;
    let mut seen = Vec::new();
    while offset < 10 {
        let batch = t
            .fetch(&topic, 0, offset, FetchLimit::new(4, SHORT_WAIT))
            .await
            .expect("fetch");
        assert!(
            (1..=4).contains(&batch.records.len()),
            "{} records",
            batch.records.len()
        );
        assert_eq!(batch.high_watermark, 10);
        assert_eq!(batch.records[0].offset, offset);
        offset = batch.records.last().map_or(offset, |f| f.offset + 1);
        seen.extend(batch.records.into_iter().map(|f| f.record.value));
    }
    assert_eq!(seen, values("v", 10));
}

/// A fetch below the earliest offset (a negative one here) or above the latest offset is
/// [`Error::OffsetOutOfRange`] with every field filled, never silently moved.
pub async fn check_fetch_outside_range(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-range");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    t.publish(&topic, None, values("v", 3)).await.expect("publish");
    for offset in [-1, 4, 1_000] {
        let result = t.fetch(&topic, 0, offset, FetchLimit::new(10, SHORT_WAIT)).await;
        assert_out_of_range(result, &topic, 0, offset, 0, 3);
    }
}

/// Every method but `ensure_topic` fails on a topic that does not exist with
/// [`Error::UnknownTopic`] naming it.
pub async fn check_unknown_topic(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-missing");
    let unknown = |error: &Error| matches!(error, Error::UnknownTopic { topic: name } if *name == topic);
    let result = t.publish(&topic, Some(b"k"), values("v", 1)).await;
    assert!(result.as_ref().is_err_and(unknown), "publish: {result:?}");
    let result = t.partitions(&topic).await;
    assert!(result.as_ref().is_err_and(unknown), "partitions: {result:?}");
    let result = t.fetch(&topic, 0, 0, FetchLimit::new(10, SHORT_WAIT)).await;
    assert!(result.as_ref().is_err_and(unknown), "fetch: {result:?}");
    let result = t.offsets(&topic, 0).await;
    assert!(result.as_ref().is_err_and(unknown), "offsets: {result:?}");
}

/// An empty batch, and a partition the topic does not have, are [`Error::Invalid`].
pub async fn check_invalid_requests(t: &dyn Transport, topic_prefix: &str) {
    let topic = format!("{topic_prefix}-invalid");
    t.ensure_topic(&topic, 2).await.expect("ensure_topic");
    let result = t.publish(&topic, None, Vec::new()).await;
    assert!(
        matches!(result, Err(Error::Invalid { .. })),
        "empty publish: {result:?}"
    );
    let result = t.fetch(&topic, 2, 0, FetchLimit::new(10, SHORT_WAIT)).await;
    assert!(
        matches!(result, Err(Error::Invalid { .. })),
        "fetch of partition 2: {result:?}"
    );
    let result = t.offsets(&topic, 2).await;
    assert!(
        matches!(result, Err(Error::Invalid { .. })),
        "offsets of partition 2: {result:?}"
    );
    assert_eq!(
        t.offsets(&topic, 0).await.expect("offsets"),
        OffsetRange::new(0, 0),
        "an invalid publish appended something"
    );
}

/// After `truncate(topic, partition, before)` — which must move the partition's earliest
/// offset above 0, ideally to `before` (a broker's retention may remove more or less) — a
/// fetch below the earliest offset is [`Error::OffsetOutOfRange`], and the records still held
/// keep their offsets.
pub async fn check_fetch_below_earliest_after_truncation(
    t: &dyn Transport,
    topic_prefix: &str,
    truncate: impl AsyncFnOnce(&str, u32, i64),
) {
    let topic = format!("{topic_prefix}-truncated");
    t.ensure_topic(&topic, 1).await.expect("ensure_topic");
    for i in 0..10 {
        t.publish(&topic, None, vec![format!("v{i}").into_bytes()])
            .await
            .expect("publish");
    }
    truncate(&topic, 0, 4).await;

    let OffsetRange { earliest, latest } = t.offsets(&topic, 0).await.expect("offsets");
    assert!(earliest > 0, "the truncate hook removed nothing");
    assert_eq!(latest, 10, "truncation changed the latest offset");
    for offset in [0, earliest - 1] {
        let result = t.fetch(&topic, 0, offset, FetchLimit::new(10, SHORT_WAIT)).await;
        assert_out_of_range(result, &topic, 0, offset, earliest, latest);
    }
    let held = fetch_all(t, &topic, 0, earliest).await;
    let offsets: Vec<i64> = held.iter().map(|f| f.offset).collect();
    assert_eq!(offsets, (earliest..latest).collect::<Vec<_>>());
    for fetched in &held {
        assert_eq!(fetched.record.value, format!("v{}", fetched.offset).into_bytes());
    }
}

/// After `recreate(topic)` — which must delete the topic and create it again, empty, with the
/// same partition count — the old offsets are above the latest offset, so a reader's stored
/// offset is [`Error::OffsetOutOfRange`]; the topic starts again at offset 0.
pub async fn check_fetch_above_latest_after_recreate(
    t: &dyn Transport,
    topic_prefix: &str,
    recreate: impl AsyncFnOnce(&str),
) {
    let topic = format!("{topic_prefix}-recreated");
    t.ensure_topic(&topic, 2).await.expect("ensure_topic");
    t.publish(&topic, None, values("old", 5)).await.expect("publish");
    recreate(&topic).await;

    assert_eq!(t.partitions(&topic).await.expect("partitions"), 2);
    let range = t.offsets(&topic, 0).await.expect("offsets");
    assert_eq!(range, OffsetRange::new(0, 0));
    let result = t.fetch(&topic, 0, 5, FetchLimit::new(10, SHORT_WAIT)).await;
    assert_out_of_range(result, &topic, 0, 5, 0, 0);

    assert_nothing_at(t, &topic, 0, 0, "fetch from 0").await;
    assert_eq!(
        t.publish(&topic, None, values("new", 1)).await.expect("publish"),
        (0, 0)
    );
}

/// `n` values `{prefix}0`, `{prefix}1`, …
fn values(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{prefix}{i}").into_bytes()).collect()
}

/// Every record of `topic`/`partition` from `offset` up to the high watermark.
async fn fetch_all(t: &dyn Transport, topic: &str, partition: u32, mut offset: i64) -> Vec<Fetched> {
    let mut records = Vec::new();
    // Bounded, so that a transport that returns empty batches below the high watermark fails
    // the check instead of hanging it.
    for _ in 0..1_000 {
        let batch = t
            .fetch(topic, partition, offset, FetchLimit::new(1_000, SHORT_WAIT))
            .await
            .expect("fetch");
        if let Some(last) = batch.records.last() {
            offset = last.offset + 1;
        }
        records.extend(batch.records);
        if offset >= batch.high_watermark {
            return records;
        }
    }
    panic!("{topic}/{partition}: could not read up to the high watermark from {offset}");
}

#[track_caller]
fn assert_out_of_range<T: std::fmt::Debug>(
    result: crate::Result<T>,
    topic: &str,
    partition: u32,
    offset: i64,
    earliest: i64,
    latest: i64,
) {
    match result {
        Err(Error::OffsetOutOfRange {
            topic: t,
            partition: p,
            offset: o,
            earliest: e,
            latest: l,
        }) => assert_eq!(
            (t.as_str(), p, o, e, l),
            (topic, partition, offset, earliest, latest),
            "OffsetOutOfRange fields (topic, partition, offset, earliest, latest)"
        ),
        other => panic!("fetch at {offset} of {topic}/{partition}: expected OffsetOutOfRange, got {other:?}"),
    }
}
