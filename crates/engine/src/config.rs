//! Typed settings of the engines. Libraries never read the environment: binaries build these.

use std::collections::BTreeSet;
use std::time::Duration;

use offline_sync_model::{ContentType, Policies, RetrySchedule, Sensitive, ShipId};

use crate::keys::SigningConfig;

/// How long log rows are kept once nothing depends on them any more.
const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long audit log entries are kept.
const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Which side of the protocol a node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The master onshore: applies ship changes, numbers commits, broadcasts them.
    Master,
    /// A replica (ship): writes locally, pushes its outbox, applies the master's commits.
    Replica,
}

impl Mode {
    /// `master` or `replica`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Master => "master",
            Mode::Replica => "replica",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three topics (DESIGN.md §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    /// Ship → master (`KAFKA_TOPIC_SHIP_UPDATES`, default `ship-updates`), keyed by ship id.
    pub ship_updates: String,
    /// Master → ships (`KAFKA_TOPIC_MASTER_UPDATES`, default `master-updates`), one partition.
    pub master_updates: String,
    /// Master → one ship, pages of the master's state for a resync over the broker
    /// (`KAFKA_TOPIC_SNAPSHOTS`, default `master-snapshots`), keyed by ship, as many partitions
    /// as `ship-updates`.
    pub snapshots: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            ship_updates: "ship-updates".into(),
            master_updates: "master-updates".into(),
            snapshots: "master-snapshots".into(),
        }
    }
}

/// Settings of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// This ship (`SYNC_SHIP_ID`).
    pub ship: ShipId,
    /// Topic names.
    pub topics: Topics,
    /// Changes per batch on the wire (`SYNC_BATCH_SIZE`, default 100).
    pub batch_size: usize,
    /// Wait after a local write before pushing, so bursts go out together (`SYNC_DEBOUNCE_MS`,
    /// default 1 s).
    pub debounce: Duration,
    /// Backoff while the link is down, and between automatic retries of a dead letter
    /// (`SYNC_RETRY_DELAY` is the first delay, default 5 s).
    pub retry: RetrySchedule,
    /// Automatic retries of a dead letter before it is exhausted (`SYNC_RETRY_ATTEMPTS`,
    /// default 3).
    pub dead_letter_attempts: u32,
    /// How often a heartbeat is sent, and the link checked (default 30 s).
    pub heartbeat_interval: Duration,
    /// Sent changes unanswered this long are sent again (default 5 min; the master ignores
    /// what it already applied).
    pub ack_timeout: Duration,
    /// Longest wait of one fetch for new records (default 1 s).
    pub poll_wait: Duration,
    /// Partitions of `ship-updates` when this replica creates it (default 1).
    pub ship_partitions: u32,
    /// Content types synced (`SYNC_CONTENT_TYPES`); `None` syncs every type.
    pub content_types: Option<BTreeSet<ContentType>>,
    /// Answered outbox rows and handled dead letters are kept this long (default 7 days).
    pub retention: Duration,
    /// Audit log entries are kept this long (`SYNC_AUDIT_RETENTION_DAYS`, default 365 days).
    pub audit_retention: Duration,
    /// Fields that never leave this ship and are never taken from a commit
    /// (`SYNC_SENSITIVE_FIELDS`).
    pub sensitive: Sensitive,
    /// This ship's signing key and the master's pinned key.
    pub signing: SigningConfig,
    /// Documents asked for per page in a resync from the master's state (1 to
    /// [`crate::MAX_SNAPSHOT_PAGE`]).
    pub resync_page: u64,
}

impl ReplicaConfig {
    /// Defaults for `ship`.
    pub fn new(ship: ShipId) -> Self {
        Self {
            ship,
            topics: Topics::default(),
            batch_size: 100,
            debounce: Duration::from_millis(1_000),
            retry: RetrySchedule::default(),
            dead_letter_attempts: 3,
            heartbeat_interval: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(300),
            poll_wait: Duration::from_secs(1),
            ship_partitions: 1,
            content_types: None,
            retention: DEFAULT_RETENTION,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            sensitive: Sensitive::default(),
            signing: SigningConfig::default(),
            resync_page: crate::resync::RESYNC_PAGE,
        }
    }
}

/// Settings of the master.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Topic names.
    pub topics: Topics,
    /// Ship changes applied per database transaction (`SYNC_BATCH_SIZE`, default 100).
    pub batch_size: usize,
    /// Backoff while the broker is unreachable, and between automatic retries of a dead
    /// letter.
    pub retry: RetrySchedule,
    /// Automatic retries of a dead letter before it is exhausted (`SYNC_RETRY_ATTEMPTS`,
    /// default 3).
    pub dead_letter_attempts: u32,
    /// Longest wait of one fetch for new records (default 1 s).
    pub poll_wait: Duration,
    /// Partitions of `ship-updates` when the master creates it (default 1).
    pub ship_partitions: u32,
    /// A ship not heard from for this long is offline (default 90 s).
    pub offline_after: Duration,
    /// Conflict policy per content type.
    pub policies: Policies,
    /// Content types synced (`SYNC_CONTENT_TYPES`); `None` syncs every type.
    pub content_types: Option<BTreeSet<ContentType>>,
    /// Published broadcasts and handled dead letters are kept this long (default 7 days).
    pub retention: Duration,
    /// Audit log entries are kept this long (`SYNC_AUDIT_RETENTION_DAYS`, default 365 days).
    pub audit_retention: Duration,
    /// Fields that never leave the master and are never taken from a ship's change
    /// (`SYNC_SENSITIVE_FIELDS`).
    pub sensitive: Sensitive,
    /// The master's signing key, the ships' pinned keys and whether unknown ships are refused.
    pub signing: SigningConfig,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            topics: Topics::default(),
            batch_size: 100,
            retry: RetrySchedule::default(),
            dead_letter_attempts: 3,
            poll_wait: Duration::from_secs(1),
            ship_partitions: 1,
            offline_after: Duration::from_secs(90),
            policies: Policies::default(),
            content_types: None,
            retention: DEFAULT_RETENTION,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            sensitive: Sensitive::default(),
            signing: SigningConfig::default(),
        }
    }
}

pub(crate) fn synced(types: Option<&BTreeSet<ContentType>>, ct: &ContentType) -> bool {
    types.is_none_or(|t| t.contains(ct))
}

/// Applies the retention rules: log rows handled more than `retention` ago and audit entries
/// older than `audit_retention` are deleted. The caller holds the node's writer lock.
pub(crate) async fn prune(
    storage: &dyn offline_sync_storage::Storage,
    now_ms: u64,
    retention: Duration,
    audit_retention: Duration,
) -> crate::Result<u64> {
    let before = |keep: Duration| now_ms.saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX));
    let n = storage.prune(before(retention)).await? + storage.prune_audit(before(audit_retention)).await?;
    if n > 0 {
        tracing::info!(rows = n, "old log rows pruned");
    }
    Ok(n)
}

/// Refuses field values too large for one commit (whole documents travel in creates,
/// revivals and resolutions); the document they make is checked again where it is written.
pub(crate) fn check_size(fields: Option<&offline_sync_model::Fields>) -> crate::Result<()> {
    let Some(fields) = fields else { return Ok(()) };
    offline_sync_model::check_document_size(fields).map_err(|e| match e {
        offline_sync_model::Error::TooLarge { size, limit } => crate::Error::TooLarge { size, limit },
        other => crate::Error::Invalid {
            reason: other.to_string(),
        },
    })
}

/// Most bytes of records sent in one produce request, so a batch stays well under the
/// broker's message size limit and finishes within a request timeout on a slow link.
pub(crate) const MAX_BATCH_BYTES: usize = 900 * 1024;

/// The longest prefix of `records` (sequence, encoded value) that fits in
/// [`MAX_BATCH_BYTES`]; at least one record.
pub(crate) fn fit_batch<K>(records: Vec<(K, Vec<u8>)>) -> Vec<(K, Vec<u8>)> {
    let mut total = 0;
    let mut out = Vec::with_capacity(records.len());
    for (k, v) in records {
        total += v.len();
        if total > MAX_BATCH_BYTES && !out.is_empty() {
            break;
        }
        out.push((k, v));
    }
    out
}

/// Creates the topics a node uses if they are missing: `ship-updates` and the snapshot topic
/// with `ship_partitions` partitions (both keyed by ship), `master-updates` with one.
pub(crate) async fn ensure_topics(
    transport: &dyn offline_sync_transport::Transport,
    topics: &Topics,
    ship_partitions: u32,
) -> offline_sync_transport::Result<()> {
    transport
        .ensure_topic(&topics.ship_updates, ship_partitions)
        .await?;
    transport.ensure_topic(&topics.master_updates, 1).await?;
    transport.ensure_topic(&topics.snapshots, ship_partitions).await
}

/// Publishes `values` in one batch, or, when the broker refuses it as larger than it takes
/// (its `message.max.bytes` below what this node sends), the first half of it, down to one
/// record. Returns how many of the values went out, their bytes and the offset of the first.
pub(crate) async fn publish_fitting(
    transport: &dyn offline_sync_transport::Transport,
    topic: &str,
    key: Option<&[u8]>,
    mut values: Vec<Vec<u8>>,
) -> offline_sync_transport::Result<(usize, usize, i64)> {
    loop {
        let count = values.len();
        let bytes = values.iter().map(Vec::len).sum::<usize>();
        match transport.publish(topic, key, values.clone()).await {
            Err(offline_sync_transport::Error::TooLarge { reason }) if count > 1 => {
                tracing::warn!(topic, records = count, bytes, %reason, "the broker refused the batch as too large: halving it");
                values.truncate(count / 2);
            }
            r => return r.map(|(_, first)| (count, bytes, first)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_by_bytes_but_never_empty() {
        let big = vec![0u8; MAX_BATCH_BYTES / 2];
        let batch = fit_batch(vec![(1, big.clone()), (2, big.clone()), (3, big.clone())]);
        assert_eq!(batch.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 2]);
        let huge = vec![0u8; MAX_BATCH_BYTES * 2];
        assert_eq!(fit_batch(vec![(1, huge), (2, big)]).len(), 1);
        assert!(fit_batch::<u8>(vec![]).is_empty());
    }
}
