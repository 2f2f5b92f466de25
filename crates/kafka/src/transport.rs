//! [`KafkaTransport`]: the [`Transport`] trait over rskafka.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use offline_sync_transport::{
    Batch, Error, FetchLimit, Fetched, OffsetRange, Record, Result, Transport, partition_for,
};
use rskafka::chrono::{DateTime, Utc};
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression as Codec, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record as KafkaRecord;
use rskafka::{BackoffConfig, ConnectionError};
use tokio::sync::Mutex;

use crate::config::{Compression, KafkaConfig, SaslMechanism};
use crate::tls;

/// Which connection a partition client is for: a long-polling fetch must not hold up a
/// produce (brokers such as tansu answer one request per connection at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Produce,
    Fetch,
}

#[derive(Default)]
struct State {
    client: Option<Arc<Client>>,
    partitions: HashMap<(String, i32, Role), Arc<PartitionClient>>,
    /// Partition counts, with when they were read: partitions added to a topic are seen
    /// within `KafkaConfig::metadata_max_age`.
    counts: HashMap<String, (u32, std::time::Instant)>,
    /// Partitions whose stored offset was already compared with the broker's range.
    checked: HashSet<(String, u32)>,
    /// Records fetched beyond `max_records`, with the high watermark seen, per partition.
    stash: HashMap<(String, u32), (Vec<Fetched>, i64)>,
}

/// The Kafka transport. Cheap to share behind an `Arc`; connects lazily and reconnects after
/// any failed call.
pub struct KafkaTransport {
    cfg: KafkaConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn codec(c: Compression) -> Codec {
    match c {
        Compression::None => Codec::NoCompression,
        Compression::Gzip => Codec::Gzip,
        Compression::Lz4 => Codec::Lz4,
        Compression::Snappy => Codec::Snappy,
        Compression::Zstd => Codec::Zstd,
    }
}

/// Sorts an rskafka error into the transport's kinds by its variant. Authentication,
/// authorisation and TLS trust failures are refusals (retrying will not help until the
/// settings change); the rest of the connection and request failures are retryable.
fn sort(e: KafkaError, topic: &str) -> Error {
    let reason = e.to_string();
    if refused(&e) {
        return Error::Refused { reason };
    }
    match e {
        KafkaError::ServerError { protocol_error, .. } => match protocol_error {
            ProtocolError::UnknownTopicOrPartition => Error::UnknownTopic {
                topic: topic.to_owned(),
            },
            ProtocolError::InvalidTopicException => Error::Invalid { reason },
            ProtocolError::MessageTooLarge | ProtocolError::RecordListTooLarge => Error::TooLarge { reason },
            _ => Error::unavailable(reason),
        },
        _ => Error::unavailable(reason),
    }
}

/// Whether the broker (or this node's own TLS check of the broker) refused who this node is.
fn refused(e: &KafkaError) -> bool {
    refused_cause(e)
}

/// Broker answers that deny this node: authentication or authorisation.
fn denied(p: &ProtocolError) -> bool {
    matches!(
        p,
        ProtocolError::SaslAuthenticationFailed
            | ProtocolError::IllegalSaslState
            | ProtocolError::UnsupportedSaslMechanism
            | ProtocolError::TopicAuthorizationFailed
            | ProtocolError::ClusterAuthorizationFailed
            | ProtocolError::GroupAuthorizationFailed
            | ProtocolError::TransactionalIdAuthorizationFailed
    )
}

/// Whether the text of a connection's failed attempts tells a refusal. rskafka keeps those
/// attempts' errors only as text (in a private type behind its last retry), so for them alone
/// the text is read: for the messages the refusing error types themselves display.
fn opaque_refusal(text: &str) -> bool {
    let prefix = |e: &dyn std::fmt::Display| {
        let shown = e.to_string();
        shown.split(": ").next().unwrap_or_default().to_owned()
    };
    let markers = [
        prefix(&ConnectionError::SaslFailed(
            rskafka::SaslError::UnsupportedSaslMechanism,
        )),
        prefix(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )),
        prefix(&rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate,
        )),
        prefix(&rustls::Error::NoCertificatesPresented),
    ];
    markers.iter().any(|m| !m.is_empty() && text.contains(m.as_str()))
}

/// Walks an error and its causes for a denial, a SASL failure or a certificate TLS refused
/// (rustls errors arrive inside the I/O errors of the TLS stream). rskafka keeps some causes
/// in fields that are not their `source` (a connection's transport error, the last error of
/// its retries): those are followed by variant.
fn refused_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    let tls = |t: &rustls::Error| {
        matches!(
            t,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::AlertReceived(_)
        )
    };
    let mut next = Some(e);
    while let Some(e) = next {
        match e.downcast_ref::<KafkaError>() {
            Some(KafkaError::ServerError { protocol_error, .. }) if denied(protocol_error) => return true,
            _ => {}
        }
        match e.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::SaslFailed(_)) => return true,
            Some(ConnectionError::Transport { error, .. }) => return refused_cause(error),
            Some(ConnectionError::RetryFailed(last)) => {
                return refused_cause(last) || opaque_refusal(&last.to_string());
            }
            _ => {}
        }
        if e.is::<rskafka::SaslError>() || e.downcast_ref::<rustls::Error>().is_some_and(tls) {
            return true;
        }
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>());
        if inner.is_some_and(tls) {
            return true;
        }
        next = e.source();
    }
    false
}

impl KafkaTransport {
    /// A transport for `cfg`. Fails at once on unusable TLS files, before any connection.
    pub fn new(cfg: KafkaConfig) -> Result<Self> {
        if cfg.brokers.is_empty() {
            return Err(Error::Invalid {
                reason: "no Kafka broker configured".into(),
            });
        }
        let tls = match &cfg.tls {
            Some(t) => Some(tls::client_config(t).map_err(|e| Error::Invalid {
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(Self {
            cfg,
            tls,
            state: Mutex::new(State::default()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// Forgets every connection; the next call reconnects.
    async fn reset(&self) {
        let mut s = self.state.lock().await;
        s.client = None;
        s.partitions.clear();
        s.checked.clear();
        s.stash.clear();
    }

    /// Runs one network call under the request timeout; a failure drops the connections.
    async fn call<T, F>(&self, topic: &str, extra: Duration, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, KafkaError>>,
    {
        let limit = self.cfg.request_timeout + extra;
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = sort(e, topic);
                if e.is_retryable() || matches!(e, Error::Refused { .. }) {
                    self.reset().await;
                }
                Err(e)
            }
            Err(_) => {
                self.reset().await;
                Err(Error::unavailable(format!(
                    "no answer from the broker within {limit:?}"
                )))
            }
        }
    }

    async fn client(&self) -> Result<Arc<Client>> {
        if let Some(c) = self.state.lock().await.client.clone() {
            return Ok(c);
        }
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
            // Well inside the outer timeout of every call, so that what made rskafka give up
            // (a refused SASL exchange, a bad certificate) is reported rather than a timeout.
            deadline: Some(self.cfg.request_timeout / 3),
        };
        let mut builder = ClientBuilder::new(self.cfg.brokers.clone())
            .client_id(self.cfg.client_id.clone())
            .backoff_config(backoff);
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone());
        }
        if let Some(sasl) = &self.cfg.sasl {
            let creds = Credentials::new(sasl.username.clone(), sasl.password.clone());
            builder = builder.sasl_config(match sasl.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(creds),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(creds),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(creds),
            });
        }
        let client = Arc::new(self.call("", Duration::ZERO, builder.build()).await?);
        self.state.lock().await.client = Some(client.clone());
        Ok(client)
    }

    async fn partition(&self, topic: &str, partition: u32, role: Role) -> Result<Arc<PartitionClient>> {
        let p = i32::try_from(partition).map_err(|_| Error::Invalid {
            reason: "partition out of range".into(),
        })?;
        let key = (topic.to_owned(), p, role);
        if let Some(pc) = self.state.lock().await.partitions.get(&key).cloned() {
            return Ok(pc);
        }
        let client = self.client().await?;
        let pc = Arc::new(
            self.call(
                topic,
                Duration::ZERO,
                client.partition_client(topic, p, UnknownTopicHandling::Error),
            )
            .await?,
        );
        self.state.lock().await.partitions.insert(key, pc.clone());
        Ok(pc)
    }

    async fn count(&self, topic: &str, fresh: bool) -> Result<Option<u32>> {
        if !fresh
            && let Some((n, at)) = self.state.lock().await.counts.get(topic).copied()
            && at.elapsed() < self.cfg.metadata_max_age
        {
            return Ok(Some(n));
        }
        let client = self.client().await?;
        let topics = self.call(topic, Duration::ZERO, client.list_topics()).await?;
        let n = topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX));
        if let Some(n) = n.filter(|n| *n > 0) {
            self.state
                .lock()
                .await
                .counts
                .insert(topic.to_owned(), (n, std::time::Instant::now()));
            return Ok(Some(n));
        }
        Ok(None)
    }

    async fn checked_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let n = self.partitions(topic).await?;
        if partition >= n {
            return Err(Error::Invalid {
                reason: format!("{topic} has no partition {partition}"),
            });
        }
        Ok(())
    }

    /// Records left over from the last fetch of a partition when it returned more than asked
    /// for: the next sequential fetch is served from them, so no stored offset ever needs a
    /// read from the middle of a batch.
    async fn take_stashed(&self, key: &(String, u32), offset: i64, max_records: usize) -> Option<Batch> {
        let mut state = self.state.lock().await;
        let (rest, high_watermark) = state.stash.remove(key)?;
        if rest.first().map(|r| r.offset) != Some(offset) {
            return None;
        }
        let mut records = rest;
        if records.len() > max_records {
            let more = records.split_off(max_records);
            state.stash.insert(key.clone(), (more, high_watermark));
        }
        Some(Batch {
            records,
            high_watermark,
        })
    }

    /// Reads from ever further back until the batch holding `offset` comes back.
    async fn containing_batch(
        &self,
        pc: &PartitionClient,
        topic: &str,
        offset: i64,
        earliest: i64,
    ) -> Result<Vec<rskafka::record::RecordAndOffset>> {
        let mut back = 1;
        loop {
            let probe = (offset - back).max(earliest);
            let (records, _) = self
                .call(
                    topic,
                    Duration::ZERO,
                    pc.fetch_records(probe, 1..self.cfg.max_fetch_bytes, 0),
                )
                .await?;
            if records.first().is_some_and(|r| r.offset <= offset) || probe == earliest {
                return Ok(records);
            }
            back = back.saturating_mul(2);
        }
    }

    fn out_of_range(topic: &str, partition: u32, offset: i64, r: OffsetRange) -> Error {
        Error::OffsetOutOfRange {
            topic: topic.to_owned(),
            partition,
            offset,
            earliest: r.earliest,
            latest: r.latest,
        }
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Invalid {
                reason: "a topic needs at least one partition".into(),
            });
        }
        if self.count(topic, false).await?.is_some() {
            return Ok(());
        }
        let client = self.client().await?;
        let controller = self
            .call(topic, Duration::ZERO, async { client.controller_client() })
            .await?;
        let n = i32::try_from(partitions).unwrap_or(i32::MAX);
        let timeout_ms = i32::try_from(self.cfg.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let created = tokio::time::timeout(
            self.cfg.request_timeout,
            controller.create_topic(topic, n, self.cfg.replication_factor, timeout_ms),
        )
        .await;
        match created {
            Ok(Ok(())) => tracing::info!(topic, partitions, "topic created"),
            Ok(Err(KafkaError::ServerError {
                protocol_error: ProtocolError::TopicAlreadyExists,
                ..
            })) => {}
            Ok(Err(e)) => {
                let e = sort(e, topic);
                self.reset().await;
                return Err(e);
            }
            Err(_) => {
                self.reset().await;
                return Err(Error::unavailable("no answer to create topic"));
            }
        }
        // The broker may take a moment to show a new topic in its metadata.
        for _ in 0..50 {
            if self.count(topic, true).await?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::unavailable(format!(
            "topic {topic} created but not visible in the metadata"
        )))
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        self.count(topic, false)
            .await?
            .ok_or_else(|| Error::UnknownTopic {
                topic: topic.to_owned(),
            })
    }

    async fn publish(&self, topic: &str, key: Option<&[u8]>, values: Vec<Vec<u8>>) -> Result<(u32, i64)> {
        if values.is_empty() {
            return Err(Error::Invalid {
                reason: "empty batch".into(),
            });
        }
        let n = self.partitions(topic).await?;
        let partition = partition_for(key, n);
        let pc = self.partition(topic, partition, Role::Produce).await?;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let now = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default();
        let records = values
            .into_iter()
            .map(|v| KafkaRecord {
                key: key.map(<[u8]>::to_vec),
                value: Some(v),
                headers: BTreeMap::new(),
                timestamp: now,
            })
            .collect();
        let offsets = self
            .call(
                topic,
                Duration::ZERO,
                pc.produce(records, codec(self.cfg.compression)),
            )
            .await?;
        let first = offsets
            .first()
            .copied()
            .ok_or_else(|| Error::unavailable("the broker returned no offsets"))?;
        Ok((partition, first))
    }

    async fn fetch(&self, topic: &str, partition: u32, offset: i64, limit: FetchLimit) -> Result<Batch> {
        let limit = limit.check()?;
        self.checked_partition(topic, partition).await?;
        let key = (topic.to_owned(), partition);
        if !self.state.lock().await.checked.contains(&key) {
            let range = self.offsets(topic, partition).await?;
            if offset < range.earliest || offset > range.latest {
                return Err(Self::out_of_range(topic, partition, offset, range));
            }
            self.state.lock().await.checked.insert(key.clone());
        }
        if let Some(batch) = self.take_stashed(&key, offset, limit.max_records).await {
            return Ok(batch);
        }
        let pc = self.partition(topic, partition, Role::Fetch).await?;
        let wait_ms = i32::try_from(limit.max_wait.as_millis()).unwrap_or(i32::MAX);
        // A broker that does send OFFSET_OUT_OF_RANGE: report it with the range.
        let fetched = self
            .call(topic, limit.max_wait, async {
                match pc
                    .fetch_records(offset, 1..self.cfg.max_fetch_bytes, wait_ms)
                    .await
                {
                    Err(KafkaError::ServerError {
                        protocol_error: ProtocolError::OffsetOutOfRange,
                        ..
                    }) => Ok(None),
                    r => r.map(Some),
                }
            })
            .await?;
        let Some((mut records, high_watermark)) = fetched else {
            let range = self.offsets(topic, partition).await?;
            return Err(Self::out_of_range(topic, partition, offset, range));
        };
        let skipped = records.first().is_some_and(|r| r.offset > offset);
        if offset > high_watermark || skipped || (records.is_empty() && offset < high_watermark) {
            let range = self.offsets(topic, partition).await?;
            if offset < range.earliest || offset > range.latest {
                return Err(Self::out_of_range(topic, partition, offset, range));
            }
            if offset < range.latest {
                // The offset lies inside a record batch and the broker only returns batches
                // starting at or after it (tansu does): read from further back.
                records = self.containing_batch(&pc, topic, offset, range.earliest).await?;
            }
        }
        // Offsets strictly increase from the one asked for: a broker that repeats a batch in one
        // response must not make the engine see a record twice.
        let mut next = offset;
        let mut records: Vec<Fetched> = records
            .into_iter()
            .filter(|r| {
                let keep = r.offset >= next;
                if keep {
                    next = r.offset + 1;
                }
                keep
            })
            .map(|r| Fetched {
                offset: r.offset,
                record: Record {
                    key: r.record.key,
                    value: r.record.value.unwrap_or_default(),
                },
            })
            .collect();
        if records.len() > limit.max_records {
            let rest = records.split_off(limit.max_records);
            self.state.lock().await.stash.insert(key, (rest, high_watermark));
        }
        Ok(Batch {
            records,
            high_watermark,
        })
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<OffsetRange> {
        self.checked_partition(topic, partition).await?;
        let pc = self.partition(topic, partition, Role::Fetch).await?;
        let listed_earliest = self
            .call(topic, Duration::ZERO, pc.get_offset(OffsetAt::Earliest))
            .await?;
        let listed = self
            .call(topic, Duration::ZERO, pc.get_offset(OffsetAt::Latest))
            .await?;
        // Some brokers misreport the latest offset after multi-record batches, and report 0 as
        // the earliest offset of a partition whose records retention removed (DESIGN.md §9):
        // what a fetch from the listed earliest offset returns is authoritative.
        // Kafka returns the first batch whatever the byte limit; a broker that keeps to the
        // limit (tansu on sqlite://) needs room for one whole batch.
        let mut probe = (Vec::new(), 0);
        for max_bytes in [2, 2 * 1024 * 1024] {
            probe = self
                .call(
                    topic,
                    Duration::ZERO,
                    pc.fetch_records(listed_earliest, 1..max_bytes, 0),
                )
                .await?;
            if !probe.0.is_empty() || listed_earliest >= probe.1 {
                break;
            }
        }
        let (records, high_watermark) = probe;
        let latest = listed.max(high_watermark);
        let earliest = records.first().map_or(latest, |r| r.offset).max(listed_earliest);
        Ok(OffsetRange { earliest, latest })
    }
}

#[cfg(test)]
mod sort_tests {
    use rskafka::client::error::RequestContext;

    use super::*;

    fn server(protocol_error: ProtocolError) -> KafkaError {
        KafkaError::ServerError {
            protocol_error,
            error_message: Some("denied".into()),
            request: RequestContext::Topic("ship-updates".into()),
            response: None,
            is_virtual: false,
        }
    }

    #[test]
    fn broker_answers_are_sorted_by_variant() {
        let sorted = |p| sort(server(p), "ship-updates");
        /// Whether an error is of the variant a broker answer must be sorted into.
        type Variant = fn(&Error) -> bool;
        let cases: [(ProtocolError, Variant); 5] = [
            (ProtocolError::TopicAuthorizationFailed, |e| {
                matches!(e, Error::Refused { .. })
            }),
            (ProtocolError::SaslAuthenticationFailed, |e| {
                matches!(e, Error::Refused { .. })
            }),
            (
                ProtocolError::UnknownTopicOrPartition,
                |e| matches!(e, Error::UnknownTopic { topic } if topic == "ship-updates"),
            ),
            (ProtocolError::MessageTooLarge, |e| {
                matches!(e, Error::TooLarge { .. })
            }),
            (ProtocolError::InvalidTopicException, |e| {
                matches!(e, Error::Invalid { .. })
            }),
        ];
        for (answer, expected) in cases {
            let e = sorted(answer);
            assert!(expected(&e), "{answer:?}: {e:?}");
        }
        let busy = sorted(ProtocolError::NotLeaderOrFollower);
        assert!(busy.is_retryable(), "{busy}");
    }

    #[test]
    fn a_certificate_refused_inside_an_io_error_is_a_refusal() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert!(matches!(
            sort(KafkaError::Request(io.into()), "t"),
            Error::Refused { .. }
        ));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = sort(KafkaError::Request(reset.into()), "t");
        assert!(e.is_retryable(), "{e}");
        let after_retries = KafkaError::Connection(ConnectionError::RetryFailed(
            rskafka::BackoffError::DeadlineExceded {
                deadline: std::time::Duration::from_secs(1),
                source: Box::new(ConnectionError::SaslFailed(
                    rskafka::SaslError::UnsupportedSaslMechanism,
                )),
            },
        ));
        assert!(matches!(sort(after_retries, "t"), Error::Refused { .. }));
        // What rskafka keeps of failed connection attempts is their text, behind its retries.
        let opaque: Box<dyn std::error::Error + Send + Sync> =
            "error connecting to broker \"b:9093\": IO Error: invalid peer certificate: UnknownIssuer".into();
        let unknown_ca = KafkaError::Connection(ConnectionError::RetryFailed(
            rskafka::BackoffError::DeadlineExceded {
                deadline: std::time::Duration::from_secs(1),
                source: opaque,
            },
        ));
        assert!(matches!(sort(unknown_ca, "t"), Error::Refused { .. }));
        // A message that only mentions a certificate is not a refusal: the variant decides.
        let e = sort(
            KafkaError::InvalidResponse("certificate sasl authorization".into()),
            "t",
        );
        assert!(e.is_retryable(), "{e}");
    }
}
