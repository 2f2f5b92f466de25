//! The transport conformance suite over Kafka: a real tansu broker per test (started on a
//! free loopback port, stopped afterwards), exactly the checks the in-memory transport
//! passes, plus what only a real broker shows.

#![allow(clippy::unwrap_used)]

use std::ops::Deref;
use std::time::Duration;

use offline_sync_kafka::testing::Tansu;
use offline_sync_kafka::{Compression, KafkaConfig, KafkaTransport};
use offline_sync_transport::{Error, FetchLimit, Transport};

/// A transport with the broker it talks to; the broker stops when this is dropped.
pub struct WithBroker {
    pub broker: Tansu,
    pub transport: KafkaTransport,
}

impl Deref for WithBroker {
    type Target = KafkaTransport;
    fn deref(&self) -> &KafkaTransport {
        &self.transport
    }
}

pub fn config(broker: &Tansu) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(vec![broker.address()]);
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

pub async fn kafka() -> WithBroker {
    let broker = Tansu::start().expect("tansu must be installed (./scripts/test.sh installs it)");
    let transport = KafkaTransport::new(config(&broker)).unwrap();
    WithBroker { broker, transport }
}

mod tansu_memory {
    offline_sync_transport::transport_conformance_suite!(super::kafka);
}

#[tokio::test]
async fn fetch_above_latest_after_the_topic_is_recreated() {
    let k = kafka().await;
    let prefix = offline_sync_transport::conformance::unique_prefix("recreate");
    offline_sync_transport::conformance::check_fetch_above_latest_after_recreate(
        &k.transport,
        &prefix,
        async |topic: &str| {
            k.broker.topic_delete(topic).unwrap();
            k.broker.topic_create(topic, 2, &[]).unwrap();
        },
    )
    .await;
}

/// Partitions added to a topic are seen once the cached count is older than
/// `metadata_max_age` (tansu cannot add partitions to a topic, so the topic is recreated with
/// more).
#[tokio::test]
async fn partitions_added_later_are_seen() {
    let broker = Tansu::start().expect("tansu must be installed (./scripts/test.sh installs it)");
    let mut cfg = config(&broker);
    cfg.metadata_max_age = Duration::from_millis(200);
    let transport = KafkaTransport::new(cfg).unwrap();
    let topic = offline_sync_transport::conformance::unique_prefix("grow");
    broker.topic_create(&topic, 1, &[]).unwrap();
    assert_eq!(transport.partitions(&topic).await.unwrap(), 1);
    broker.topic_delete(&topic).unwrap();
    broker.topic_create(&topic, 3, &[]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match transport.partitions(&topic).await {
            Ok(3) => break,
            seen => assert!(
                std::time::Instant::now() < deadline,
                "still {seen:?} partitions 30 s after the topic grew to 3"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    transport
        .publish(&topic, Some(b"k"), vec![b"v".to_vec()])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_fetch_from_inside_a_batch_returns_the_rest_of_it() {
    let k = kafka().await;
    k.ensure_topic("mid", 1).await.unwrap();
    let values: Vec<Vec<u8>> = (0..10).map(|i| format!("a{i}").into_bytes()).collect();
    k.publish("mid", None, values).await.unwrap();
    k.publish("mid", None, vec![b"b10".to_vec(), b"b11".to_vec()])
        .await
        .unwrap();
    // A fresh transport, as after a restart with a stored offset inside the first batch.
    let t = KafkaTransport::new(config(&k.broker)).unwrap();
    let got = t
        .fetch("mid", 0, 4, FetchLimit::new(100, Duration::from_millis(100)))
        .await
        .unwrap();
    let offsets: Vec<i64> = got.records.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (4..12).collect::<Vec<_>>(),
        "nothing skipped, nothing repeated"
    );
    assert_eq!(got.records[0].record.value, b"a4".to_vec());
}

#[tokio::test]
async fn fetch_below_earliest_after_retention() {
    let broker = Tansu::start_with("sqlite://tansu.db?maintenance_interval=1s", &[]).unwrap();
    let t = KafkaTransport::new(config(&broker)).unwrap();
    let prefix = offline_sync_transport::conformance::unique_prefix("retention");
    broker
        .topic_create(
            &format!("{prefix}-truncated"),
            1,
            &["cleanup.policy=delete", "retention.ms=1000"],
        )
        .unwrap();
    offline_sync_transport::conformance::check_fetch_below_earliest_after_truncation(
        &t,
        &prefix,
        async |topic: &str, partition, _before| {
            for _ in 0..150 {
                if t.offsets(topic, partition).await.unwrap().earliest > 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("retention removed nothing within 30 s: {}", broker.log());
        },
    )
    .await;
}

#[tokio::test]
async fn every_codec_round_trips() {
    let broker = Tansu::start().unwrap();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ] {
        let mut cfg = config(&broker);
        cfg.compression = codec;
        let t = KafkaTransport::new(cfg).unwrap();
        let topic = format!("codec-{codec:?}").to_lowercase();
        t.ensure_topic(&topic, 1).await.unwrap();
        let values: Vec<Vec<u8>> = (0..50).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
        t.publish(&topic, Some(b"k"), values.clone()).await.unwrap();
        let got = t
            .fetch(&topic, 0, 0, FetchLimit::new(100, Duration::from_secs(1)))
            .await
            .unwrap();
        let got: Vec<Vec<u8>> = got.records.into_iter().map(|r| r.record.value).collect();
        assert_eq!(got, values, "{codec:?}");
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_a_retryable_error_not_a_hang() {
    let port = offline_sync_kafka::testing::free_port().unwrap();
    let mut cfg = KafkaConfig::new(vec![format!("127.0.0.1:{port}")]);
    cfg.request_timeout = Duration::from_secs(2);
    let t = KafkaTransport::new(cfg).unwrap();
    let start = std::time::Instant::now();
    let err = t.ensure_topic("t", 1).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_transport_reconnects_after_a_broker_restart() {
    let mut broker = Tansu::start_sqlite().unwrap();
    let t = KafkaTransport::new(config(&broker)).unwrap();
    t.ensure_topic("restart", 1).await.unwrap();
    t.publish("restart", None, vec![b"before".to_vec()])
        .await
        .unwrap();
    broker.stop();
    assert!(matches!(
        t.publish("restart", None, vec![b"lost?".to_vec()]).await,
        Err(Error::Unavailable { .. })
    ));
    broker.restart().unwrap();
    let mut published = false;
    for _ in 0..50 {
        if t.publish("restart", None, vec![b"after".to_vec()]).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(published, "no reconnect: {}", broker.log());
    let all = t
        .fetch("restart", 0, 0, FetchLimit::new(10, Duration::from_secs(1)))
        .await
        .unwrap();
    let values: Vec<_> = all.records.iter().map(|r| r.record.value.clone()).collect();
    assert_eq!(values.first(), Some(&b"before".to_vec()));
    assert_eq!(values.last(), Some(&b"after".to_vec()));
}
