//! The replica engine: local document API, outbox pusher, inbox applier, heartbeats.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use offline_sync_model::{
    ContentType, Csn, DocumentId, Fields, Heartbeat, HlcClock, LocalWrite, Message, ReplicaDoc, ShipId,
    encode,
};
use offline_sync_storage::{
    AuditEntry, NewAuditEntry, OutboxEntry, OutboxState, Page, ReplicaBatch, Storage, StoredDoc, TopicOffset,
};
use offline_sync_transport::{Batch, Transport};
use tokio::sync::{Mutex, Notify};

use crate::clock::{Clock, SystemClock};
use crate::config::{ReplicaConfig, synced};
use crate::error::{Error, Result};
use crate::inbox::{Decoded, Inbox, Reader};
use crate::keys::{KeyAdmin, Keyring};
use crate::link::LinkState;
use crate::metrics::{MessageCounts, Stats};
use crate::resync::{ResyncProgress, SnapshotSource};

/// A replica (ship) node. Cheap to clone; clones share the node.
#[derive(Clone, Debug)]
pub struct Replica {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: ReplicaConfig,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    hlc: std::sync::Mutex<HlcClock>,
    /// Serialises the node's mutating storage calls.
    pub(crate) writer: Mutex<()>,
    pusher: Mutex<()>,
    pub(crate) puller: Mutex<()>,
    /// Rung after a local write or when the link comes back: the pusher has work.
    pub(crate) wake: Notify,
    pub(crate) link: crate::link::Link,
    topics_ready: AtomicBool,
    resync: std::sync::Mutex<Option<String>>,
    /// When something was last read from `master-updates` (this node's clock).
    heard_ms: std::sync::atomic::AtomicU64,
    /// Set while applying is stopped before a CSN gap (see [`Error::CsnGap`]).
    gap: std::sync::Mutex<Option<Gap>>,
    /// This ship's signing key and the master's pinned key, loaded on first use.
    keys: tokio::sync::OnceCell<Keyring>,
    /// Where a resync fetches the master's state from.
    pub(crate) source: std::sync::RwLock<Option<Arc<dyn SnapshotSource>>>,
    pub(crate) stats: Stats,
}

/// What a replica reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// This ship.
    pub ship: ShipId,
    /// Whether the last call to the broker succeeded.
    pub online: bool,
    /// Changes not yet accepted by the broker.
    pub pending: u64,
    /// Changes accepted by the broker, not yet answered by the master.
    pub in_flight: u64,
    /// Changes the master refused.
    pub rejected: u64,
    /// Changes the master answered (applied, or held in a conflict), still kept.
    pub acked: u64,
    /// Answered changes the master holds, in part or whole, in a conflict.
    pub in_conflict: u64,
    /// The last seq written.
    pub last_seq: u64,
    /// The highest master CSN applied.
    pub applied_csn: u64,
    /// Age of the oldest unanswered change.
    pub oldest_unacked_age_ms: Option<u64>,
    /// The next offset to read from `master-updates`.
    pub offset: Option<i64>,
    /// Set when the broker no longer holds what this replica must read next, or a resync
    /// from the master's state is asked for or running: why.
    pub resync_required: Option<String>,
    /// The resync running, or the last one.
    pub resync: Option<ResyncProgress>,
}

fn view(doc: ReplicaDoc, now_ms: u64) -> StoredDoc {
    StoredDoc {
        content_type: doc.content_type,
        id: doc.id,
        fields: doc.fields,
        deleted: doc.deleted,
        version: doc.base_version,
        updated_at_ms: now_ms,
    }
}

impl Replica {
    /// A replica on the system clock.
    pub fn new(cfg: ReplicaConfig, storage: Arc<dyn Storage>, transport: Arc<dyn Transport>) -> Self {
        Self::with_clock(cfg, storage, transport, Arc::new(SystemClock))
    }

    /// A replica on the given clock.
    pub fn with_clock(
        cfg: ReplicaConfig,
        storage: Arc<dyn Storage>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                storage,
                transport,
                clock,
                hlc: std::sync::Mutex::new(HlcClock::new()),
                writer: Mutex::new(()),
                pusher: Mutex::new(()),
                puller: Mutex::new(()),
                wake: Notify::new(),
                link: crate::link::Link::default(),
                topics_ready: AtomicBool::new(false),
                resync: std::sync::Mutex::new(None),
                gap: std::sync::Mutex::new(None),
                heard_ms: std::sync::atomic::AtomicU64::new(0),
                keys: tokio::sync::OnceCell::new(),
                source: std::sync::RwLock::new(None),
                stats: Stats::default(),
            }),
        }
    }

    /// The keyring, loaded (and this ship's key made) on first use.
    pub(crate) async fn keys(&self) -> Result<&Keyring> {
        let i = &self.inner;
        crate::keys::loaded(
            &i.keys,
            i.storage.as_ref(),
            i.cfg.ship.as_str(),
            &i.cfg.signing,
            self.now(),
        )
        .await
    }

    /// This ship's signing key and the master's pinned key, to list, approve and revoke.
    pub async fn key_admin(&self) -> Result<KeyAdmin<'_>> {
        Ok(KeyAdmin {
            keys: self.keys().await?,
            storage: self.inner.storage.as_ref(),
            writer: &self.inner.writer,
            now_ms: self.now(),
        })
    }

    /// Verifies and decodes fetched records of `master-updates` (signed by the master's
    /// pinned key; commits of types this ship does not sync refused) and keeps the key first
    /// seen in them, under the writer lock, so no admin decision on a key comes between.
    pub(crate) async fn decode(
        &self,
        topic: &str,
        partition: u32,
        fetched: &Batch,
        from: i64,
    ) -> Result<Decoded> {
        let _w = self.inner.writer.lock().await;
        let inbox = Inbox {
            reader: Reader::Replica,
            keys: self.keys().await?,
            last_csn: None,
            now_ms: self.now(),
        };
        inbox
            .decode_and_pin(self.inner.storage.as_ref(), topic, partition, fetched, from)
            .await
    }

    /// Verifies and decodes records the master signed with the key this ship already knows;
    /// a record signed by a key seen for the first time is refused, never pinned.
    pub(crate) async fn decode_unpinned(
        &self,
        topic: &str,
        partition: u32,
        fetched: &Batch,
        from: i64,
    ) -> Result<Decoded> {
        let inbox = Inbox {
            reader: Reader::Replica,
            keys: self.keys().await?,
            last_csn: None,
            now_ms: self.now(),
        };
        let mut decoded = inbox.decode_batch(topic, partition, fetched, from);
        if !decoded.pins.is_empty() {
            tracing::warn!(
                ship = %self.ship(),
                topic,
                partition,
                signers = ?decoded.pins.keys().collect::<Vec<_>>(),
                "records signed by a key this ship does not know were refused"
            );
            decoded.messages.clear();
            decoded.offsets.clear();
        }
        Ok(decoded)
    }

    /// This ship.
    pub fn ship(&self) -> &ShipId {
        &self.inner.cfg.ship
    }

    /// The settings.
    pub fn config(&self) -> &ReplicaConfig {
        &self.inner.cfg
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn check(&self, ct: &ContentType, fields: Option<&Fields>) -> Result<()> {
        if !synced(self.inner.cfg.content_types.as_ref(), ct) {
            return Err(Error::NotSynced(ct.clone()));
        }
        crate::config::check_size(fields)
    }

    async fn write(&self, write: LocalWrite, expected: Option<Csn>) -> Result<StoredDoc> {
        let now = self.now();
        let hlc = self.inner.hlc.lock().unwrap_or_else(|e| e.into_inner()).tick(now);
        let written = {
            let _w = self.inner.writer.lock().await;
            if let Some(expected) = expected {
                let (ct, id) = write.target();
                crate::config::check_version(self.inner.storage.document(ct, id).await?, expected)?;
            }
            self.inner
                .storage
                .local_write(self.ship(), &write, hlc, now)
                .await?
        };
        if let Some(seq) = written.seq {
            tracing::debug!(ship = %self.ship(), seq, "local change queued");
            self.inner.wake.notify_one();
        }
        Ok(view(written.doc, now))
    }

    /// Creates a document with a fresh UUIDv7.
    pub async fn create(&self, ct: &ContentType, fields: Fields) -> Result<StoredDoc> {
        self.create_with_id(ct, DocumentId::new_v7(), fields).await
    }

    /// Creates a document with the given id.
    pub async fn create_with_id(
        &self,
        ct: &ContentType,
        id: DocumentId,
        fields: Fields,
    ) -> Result<StoredDoc> {
        self.check(ct, Some(&fields))?;
        self.write(
            LocalWrite::Create {
                content_type: ct.clone(),
                id,
                fields,
            },
            None,
        )
        .await
    }

    /// Sets some fields of a live document.
    pub async fn update(&self, ct: &ContentType, id: DocumentId, fields: Fields) -> Result<StoredDoc> {
        self.update_if(ct, id, fields, None).await
    }

    /// Sets some fields of a live document if its version (the master CSN this replica last
    /// incorporated) is still `expected` (when given); otherwise [`Error::Stale`]. The check
    /// and the write happen under the node's writer lock.
    pub async fn update_if(
        &self,
        ct: &ContentType,
        id: DocumentId,
        fields: Fields,
        expected: Option<Csn>,
    ) -> Result<StoredDoc> {
        self.check(ct, Some(&fields))?;
        self.write(
            LocalWrite::Update {
                content_type: ct.clone(),
                id,
                fields,
            },
            expected,
        )
        .await
    }

    /// Deletes a live document.
    pub async fn delete(&self, ct: &ContentType, id: DocumentId) -> Result<()> {
        self.delete_if(ct, id, None).await
    }

    /// Deletes a live document if its version is still `expected` (when given).
    pub async fn delete_if(&self, ct: &ContentType, id: DocumentId, expected: Option<Csn>) -> Result<()> {
        self.check(ct, None)?;
        self.write(
            LocalWrite::Delete {
                content_type: ct.clone(),
                id,
            },
            expected,
        )
        .await
        .map(|_| ())
    }

    /// A live document. Errors: `NotSynced` for a type outside `SYNC_CONTENT_TYPES`.
    pub async fn get(&self, ct: &ContentType, id: DocumentId) -> Result<Option<StoredDoc>> {
        self.check(ct, None)?;
        Ok(self.inner.storage.document(ct, id).await?.filter(|d| !d.deleted))
    }

    /// Live documents of a type, and their total count. Errors: `NotSynced` for a type
    /// outside `SYNC_CONTENT_TYPES`.
    pub async fn list(&self, ct: &ContentType, page: Page) -> Result<(Vec<StoredDoc>, u64)> {
        self.check(ct, None)?;
        Ok(self.inner.storage.documents(Some(ct), page).await?)
    }

    /// Appends an admin action to the audit log.
    pub async fn audit(&self, entry: &NewAuditEntry) -> Result<()> {
        Ok(self.inner.storage.audit(entry).await?)
    }

    /// The audit log, newest first, and how many entries it holds.
    pub async fn audit_log(&self, page: Page) -> Result<(Vec<AuditEntry>, u64)> {
        Ok(self.inner.storage.audit_log(page).await?)
    }

    /// Checks the database answers; returns how long it took.
    pub async fn ping(&self) -> Result<std::time::Duration> {
        Ok(self.inner.storage.ping().await?)
    }

    /// Records read from `master-updates` since this node started.
    pub fn message_counts(&self) -> MessageCounts {
        self.inner.stats.counts()
    }

    /// Outbox rows, newest first, optionally of one state, and how many match in all.
    pub async fn queue(&self, state: Option<OutboxState>, page: Page) -> Result<(Vec<OutboxEntry>, u64)> {
        Ok(self.inner.storage.outbox(self.ship(), state, page).await?)
    }

    pub(crate) fn link(&self, up: bool) {
        if self.inner.link.observe(up, self.now()) {
            if up {
                tracing::info!(ship = %self.ship(), "link up: broker reachable");
                self.inner.wake.notify_one();
            } else {
                tracing::warn!(ship = %self.ship(), "link down: broker unreachable, changes stay queued");
            }
        }
    }

    /// Whether the last call to the broker succeeded.
    pub fn is_online(&self) -> bool {
        self.inner.link.is_online()
    }

    /// The link to the broker: up or down since when, and the last error of a background step.
    pub fn link_state(&self) -> LinkState {
        LinkState::of(&self.inner.link)
    }

    pub(crate) fn transport<T>(&self, r: offline_sync_transport::Result<T>) -> Result<T> {
        match r {
            Ok(v) => {
                self.link(true);
                Ok(v)
            }
            Err(e) => {
                if e.is_retryable() {
                    self.link(false);
                }
                Err(e.into())
            }
        }
    }

    pub(crate) async fn ensure_topics(&self) -> Result<()> {
        if self.inner.topics_ready.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = crate::config::ensure_topics(
            self.inner.transport.as_ref(),
            &self.inner.cfg.topics,
            self.inner.cfg.ship_partitions,
        )
        .await;
        self.transport(r)?;
        self.inner.topics_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sends one batch of unsent outbox rows, in order; returns how many. A row counts as sent
    /// only once the broker accepted it; on error nothing is marked and the batch goes again.
    pub async fn push_once(&self) -> Result<usize> {
        let _p = self.inner.pusher.lock().await;
        self.ensure_topics().await?;
        let rows = self
            .inner
            .storage
            .outbox_unsent(self.ship(), self.inner.cfg.batch_size)
            .await?;
        let keys = self.keys().await?;
        let encoded: Vec<(u64, Vec<u8>)> = rows
            .into_iter()
            .map(|r| {
                let seq = r.change.seq;
                (
                    seq,
                    keys.outgoing(Message::Change(r.change), &self.inner.cfg.sensitive),
                )
            })
            .collect();
        let values = crate::config::fit_batch(encoded);
        let Some(first) = values.first().map(|v| v.0) else {
            return Ok(0);
        };
        let seqs: Vec<u64> = values.iter().map(|v| v.0).collect();
        let values: Vec<Vec<u8>> = values.into_iter().map(|v| v.1).collect();
        let key = self.ship().as_str().as_bytes();
        let r = crate::config::publish_fitting(
            self.inner.transport.as_ref(),
            &self.inner.cfg.topics.ship_updates,
            Some(key),
            values,
        )
        .await;
        let (count, bytes, _) = self.transport(r)?;
        let last = seqs[count - 1];
        self.inner.stats.sent(bytes);
        {
            let _w = self.inner.writer.lock().await;
            self.inner
                .storage
                .outbox_mark_sent(first, last, self.now())
                .await?;
        }
        tracing::debug!(ship = %self.ship(), count, last_seq = last, "changes sent");
        Ok(count)
    }

    /// Sends every unsent outbox row; returns how many.
    pub async fn push_all(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            match self.push_once().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Reads one batch from `master-updates` and applies it with its offset; returns how many
    /// records were read. Waits up to the poll wait when nothing is there.
    ///
    /// A resync from the master's state asked for runs first, a page per call (returning the
    /// documents received, at least 1). With a snapshot source set, the replica asks for one
    /// itself when it is new (nothing read yet), when the broker no longer holds what it must
    /// read next, and when a commit is missing.
    pub async fn pull_once(&self) -> Result<usize> {
        let _p = self.inner.puller.lock().await;
        match self.resync_step().await? {
            crate::resync::Step::Idle => {}
            crate::resync::Step::Moved(n) => return Ok(n.max(1)),
            // Nothing moved: the loop comes back after its pause, the source waited its poll.
            crate::resync::Step::Waiting => return Ok(0),
        }
        self.ensure_topics().await?;
        let topic = self.inner.cfg.topics.master_updates.clone();
        if let Some(gap) = self.stalled() {
            if self.resync_instead(&Error::from(gap)).await? {
                return Ok(1);
            }
            // Reading again would fetch the same records over the link to find the same gap.
            return Err(gap.into());
        }
        let stored = self.inner.storage.offset(&topic, 0).await?;
        if stored.is_none()
            && self.snapshot_source().is_some()
            && self.inner.storage.replica_progress().await?.applied_csn == 0
            && self.inner.storage.resync_state().await?.is_none()
        {
            self.request_resync(true, "a new replica takes the master's state")
                .await?;
            return Ok(1);
        }
        let from = stored.unwrap_or(0);
        let r = self
            .inner
            .transport
            .fetch(
                &topic,
                0,
                from,
                self.inner.cfg.batch_size,
                self.inner.cfg.poll_wait,
            )
            .await;
        let batch = match self.transport(r) {
            Ok(b) => b,
            Err(e @ Error::ResyncRequired { .. }) => {
                tracing::error!(ship = %self.ship(), error = %e, "cannot continue from the stored offset");
                *self.inner.resync.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                if self.resync_instead(&e).await? {
                    return Ok(1);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if batch.records.is_empty() {
            return Ok(0);
        }
        let mut decoded = self.decode(&topic, 0, &batch, from).await?;
        {
            let mut hlc = self.inner.hlc.lock().unwrap_or_else(|e| e.into_inner());
            for m in &decoded.messages {
                if let Message::Commit(c) = m {
                    hlc.observe(c.hlc, self.inner.clock.now_ms());
                }
            }
        }
        let bytes = batch.records.iter().map(|r| r.record.value.len()).sum();
        let started = std::time::Instant::now();
        let (applied, processed, failed, gap) = {
            let _w = self.inner.writer.lock().await;
            let applied_csn = self.inner.storage.replica_progress().await?.applied_csn;
            let gap = cut_at_gap(&mut decoded, applied_csn);
            decoded.count_rejections();
            if decoded.next >= batch.high_watermark {
                // Read up to what the master has published: it is heard from now, not when
                // an old backlog is read.
                self.inner.heard_ms.store(self.now(), Ordering::SeqCst);
            }
            let counts = (decoded.messages.len(), decoded.dead_letters.len());
            let input = self.batch(decoded.messages, decoded.dead_letters, &topic, decoded.next);
            let applied = self
                .inner
                .storage
                .replica_apply(self.ship(), &input, self.now())
                .await?;
            if let Some(gap) = gap {
                // Set under the writer lock, so a dead letter retried meanwhile cannot clear
                // it before it is set.
                *self.inner.gap.lock().unwrap_or_else(|e| e.into_inner()) = Some(gap);
            }
            (applied, counts.0, counts.1, gap)
        };
        self.inner
            .stats
            .applied(processed, failed, bytes, started.elapsed());
        if applied.resend > 0 {
            tracing::info!(ship = %self.ship(), rows = applied.resend, "master asked to send changes again");
            self.inner.wake.notify_one();
        }
        if let Some(master_last) = applied.restored_below {
            tracing::warn!(
                ship = %self.ship(),
                master_last_seq = master_last,
                renumbered = applied.renumbered,
                "the master applied changes of this ship that its database did not write: it was restored from a backup; changes written since are renumbered and sent again"
            );
            self.inner.wake.notify_one();
        }
        if let Some(gap) = gap {
            let e = Error::from(gap);
            tracing::error!(ship = %self.ship(), error = %e, "commits out of sequence: applying stopped");
            crate::metrics::csn_gap();
            if self.resync_instead(&e).await? {
                return Ok(batch.records.len());
            }
            return Err(e);
        }
        Ok(batch.records.len())
    }

    /// The batch to apply: `messages` and `dead_letters` read from `topic` up to `next`.
    pub(crate) fn batch(
        &self,
        messages: Vec<Message>,
        dead_letters: Vec<offline_sync_storage::NewDeadLetter>,
        topic: &str,
        next: i64,
    ) -> ReplicaBatch {
        ReplicaBatch {
            messages,
            dead_letters,
            offset: TopicOffset {
                topic: topic.to_owned(),
                partition: 0,
                next,
            },
            sensitive: self.inner.cfg.sensitive.clone(),
            synced: self.inner.cfg.content_types.clone(),
        }
    }

    /// Asks for a resync from the master's state because of `why`, when there is a snapshot
    /// source to fetch it from; returns whether it did.
    async fn resync_instead(&self, why: &Error) -> Result<bool> {
        if self.snapshot_source().is_none() {
            return Ok(false);
        }
        self.request_resync(false, &why.to_string()).await?;
        Ok(true)
    }

    /// Forgets why a resync was needed, once one ended.
    pub(crate) fn clear_resync_needed(&self) {
        *self.inner.resync.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.inner.gap.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The gap applying stopped at, if it did.
    pub(crate) fn stalled(&self) -> Option<Gap> {
        *self.inner.gap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets applying go on after the missing commit was applied another way (a retried dead
    /// letter).
    pub(crate) fn unstall(&self, applied_csn: Csn) {
        let mut gap = self.inner.gap.lock().unwrap_or_else(|e| e.into_inner());
        if gap.is_some_and(|g| applied_csn + 1 >= g.found) {
            tracing::info!(ship = %self.ship(), applied_csn, "the missing commits are applied: reading on");
            *gap = None;
        }
    }

    /// Reads and applies `master-updates` until nothing new is there; returns how many records.
    pub async fn pull_all(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            match self.pull_once().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Where a resync stands, in words for the master's fleet view (`None`: none running or
    /// needed).
    async fn resync_note(&self) -> Result<Option<String>> {
        let running = self.inner.storage.resync_state().await?.filter(|s| s.active());
        let note = match (running, self.resync_needed().await?) {
            (Some(s), _) => Some(match s.total {
                Some(total) => format!("{}: {} of {total} documents", s.phase.as_str(), s.received),
                None => format!("{}: {} documents", s.phase.as_str(), s.received),
            }),
            (None, Some(reason)) => Some(format!("needed: {reason}")),
            (None, None) => None,
        };
        Ok(note.map(|n| n.chars().take(offline_sync_model::MAX_RESYNC_NOTE).collect()))
    }

    /// Publishes a heartbeat with this replica's backlog.
    pub async fn heartbeat(&self) -> Result<()> {
        self.ensure_topics().await?;
        let now = self.now();
        // Progress first: a change written between the two reads is then above `last_seq` or
        // the first unanswered row, never counted as answered.
        let progress = self.inner.storage.replica_progress().await?;
        let stats = self.inner.storage.outbox_stats().await?;
        let resync = self.resync_note().await?;
        let hb = Heartbeat {
            ship: self.ship().clone(),
            pending: stats.unacked(),
            oldest_unacked_ms: stats.oldest_unacked_at_ms.map(|t| now.saturating_sub(t)),
            applied_csn: progress.applied_csn,
            last_seq: progress.last_seq,
            sent_seq: stats.sent_seq(),
            answered_seq: Some(
                stats
                    .first_unacked_seq
                    .map_or(progress.last_seq, |first| first.saturating_sub(1)),
            ),
            resync,
        };
        let key = self.ship().as_str().as_bytes();
        let value = self.keys().await?.seal(&encode(&Message::Heartbeat(hb)));
        let bytes = value.len();
        let r = self
            .inner
            .transport
            .publish(&self.inner.cfg.topics.ship_updates, Some(key), vec![value])
            .await;
        self.transport(r)?;
        self.inner.stats.sent(bytes);
        Ok(())
    }

    /// Sends again, from the first unanswered one, the changes the master has not answered
    /// although it was heard from (something read from `master-updates`) more than the ack
    /// timeout after they were sent; returns how many. While the master is silent nothing is
    /// sent again: the changes wait on `ship-updates` for it. Harmless when the master has
    /// them: it skips what it already applied.
    pub async fn resend_stale(&self) -> Result<u64> {
        if self.needs_resync().await? {
            // The master's answers cannot be read until the resync ends: sending again would
            // only repeat the backlog over the link.
            return Ok(0);
        }
        let stats = self.inner.storage.outbox_stats().await?;
        let (Some(sent_at), Some(first)) = (stats.oldest_sent_at_ms, stats.first_unacked_seq) else {
            return Ok(0);
        };
        let timeout = u64::try_from(self.inner.cfg.ack_timeout.as_millis()).unwrap_or(u64::MAX);
        let heard = self.inner.heard_ms.load(Ordering::SeqCst);
        if self.now().saturating_sub(sent_at) < timeout || heard <= sent_at.saturating_add(timeout) {
            return Ok(0);
        }
        self.resend_unacked(first).await
    }

    /// Sends again every sent, unanswered change from seq `from` on.
    pub async fn resend_unacked(&self, from: u64) -> Result<u64> {
        let n = {
            let _w = self.inner.writer.lock().await;
            self.inner.storage.outbox_resend(from).await?
        };
        if n > 0 {
            tracing::info!(ship = %self.ship(), rows = n, "sending unanswered changes again");
            self.inner.wake.notify_one();
        }
        Ok(n)
    }

    /// Applies the retention rules of the log tables and the audit log (see
    /// `Storage::prune` and `Storage::prune_audit`); returns how many rows were deleted.
    pub async fn prune(&self) -> Result<u64> {
        let cfg = &self.inner.cfg;
        let _w = self.inner.writer.lock().await;
        crate::config::prune(
            self.inner.storage.as_ref(),
            self.now(),
            cfg.retention,
            cfg.audit_retention,
        )
        .await
    }

    /// Why this replica needs a resync from the master's state, if it does: the broker no
    /// longer holds what it must read next, a commit is missing, or one is asked for or
    /// running.
    pub async fn resync_needed(&self) -> Result<Option<String>> {
        let running = self.inner.storage.resync_state().await?.filter(|s| s.active());
        Ok(running.map(|s| s.reason).or_else(|| {
            self.inner
                .resync
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .or_else(|| self.stalled().map(|gap| Error::from(gap).to_string()))
        }))
    }

    async fn needs_resync(&self) -> Result<bool> {
        Ok(self.resync_needed().await?.is_some())
    }

    /// What this replica reports about itself.
    pub async fn status(&self) -> Result<ReplicaStatus> {
        let stats = self.inner.storage.outbox_stats().await?;
        let progress = self.inner.storage.replica_progress().await?;
        let now = self.now();
        Ok(ReplicaStatus {
            ship: self.ship().clone(),
            online: self.is_online(),
            pending: stats.pending,
            in_flight: stats.sent,
            rejected: stats.rejected,
            acked: stats.acked,
            in_conflict: stats.in_conflict,
            last_seq: progress.last_seq,
            applied_csn: progress.applied_csn,
            oldest_unacked_age_ms: stats.oldest_unacked_at_ms.map(|t| now.saturating_sub(t)),
            offset: self
                .inner
                .storage
                .offset(&self.inner.cfg.topics.master_updates, 0)
                .await?,
            resync_required: self.resync_needed().await?,
            resync: self.resync_progress().await?,
        })
    }
}

/// Where applying stopped: commit `found` at `offset` came while `expected` was due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gap {
    expected: Csn,
    found: Csn,
    offset: i64,
}

impl From<Gap> for Error {
    fn from(g: Gap) -> Self {
        Error::CsnGap {
            expected: g.expected,
            found: g.found,
            offset: g.offset,
        }
    }
}

/// Cuts `decoded` before the first commit that does not follow `applied_csn` without a gap
/// (commits at or below it are replays the storage skips). What is cut is read again once the
/// gap is filled: its dead letters are not kept yet. Returns the gap, if there is one.
fn cut_at_gap(decoded: &mut Decoded, applied_csn: Csn) -> Option<Gap> {
    let mut expected = applied_csn + 1;
    let at = decoded.messages.iter().position(|m| match m {
        Message::Commit(c) if c.csn == expected => {
            expected += 1;
            false
        }
        Message::Commit(c) => c.csn > expected,
        _ => false,
    })?;
    let offset = decoded.offsets[at];
    let found = match &decoded.messages[at] {
        Message::Commit(c) => c.csn,
        _ => expected,
    };
    decoded.messages.truncate(at);
    decoded.offsets.truncate(at);
    decoded.dead_letters.retain(|l| l.offset < offset);
    decoded.rejected.retain(|(at, _)| *at < offset);
    decoded.next = offset;
    Some(Gap {
        expected,
        found,
        offset,
    })
}
