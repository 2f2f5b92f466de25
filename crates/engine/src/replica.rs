//! The replica engine: local document API, outbox pusher, inbox applier, heartbeats.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use offline_sync_model::{Csn, Heartbeat, Message, ShipId, encode};
use offline_sync_storage::{OutboxEntry, OutboxState, Page, ReplicaBatch, Storage, TopicOffset};
use offline_sync_transport::{Batch, FetchLimit, Transport};
use tokio::sync::Mutex;

use crate::config::ReplicaConfig;
use crate::error::{Error, Result};
use crate::inbox::Decoded;
use crate::node::{Role, drain, role};
use crate::resync::{ResyncProgress, SnapshotSource};

role! {
    /// A replica (ship) node. Cheap to clone; clones share the node.
    Replica, "A replica", ReplicaConfig,
    {
        /// One push at a time: the outbox is sent in order.
        pusher: Mutex<()>,
        /// Why the last pull asked for a resync, until one succeeds.
        resync: std::sync::Mutex<Option<String>>,
        /// When something was last read from `master-updates` (this node's clock).
        heard_ms: std::sync::atomic::AtomicU64,
        /// Set while applying is stopped before a CSN gap (see [`Error::CsnGap`]).
        gap: std::sync::Mutex<Option<Gap>>,
        /// Where a resync fetches the master's state from.
        pub(crate) source: std::sync::RwLock<Option<Arc<dyn SnapshotSource>>>,
    }
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

impl Replica {
    fn role(cfg: &ReplicaConfig) -> Role {
        Role::Replica(cfg.ship.clone())
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
        let inbox = self.inbox(None).await?;
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

    /// Outbox rows, newest first, optionally of one state, and how many match in all.
    pub async fn queue(&self, state: Option<OutboxState>, page: Page) -> Result<(Vec<OutboxEntry>, u64)> {
        Ok(self.storage.outbox(self.ship(), state, page).await?)
    }

    /// Sends one batch of unsent outbox rows, in order; returns how many. A row counts as sent
    /// only once the broker accepted it; on error nothing is marked and the batch goes again.
    pub async fn push_once(&self) -> Result<usize> {
        let _p = self.inner.pusher.lock().await;
        self.ensure_topics().await?;
        let rows = self
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
            self.transport.as_ref(),
            &self.inner.cfg.topics.ship_updates,
            Some(key),
            values,
        )
        .await;
        let (count, bytes, _) = self.broker(r)?;
        let last = seqs[count - 1];
        self.stats.sent(bytes);
        {
            let _w = self.writer.lock().await;
            self.storage.outbox_mark_sent(first, last, self.now()).await?;
        }
        tracing::debug!(ship = %self.ship(), count, last_seq = last, "changes sent");
        Ok(count)
    }

    /// Sends every unsent outbox row; returns how many.
    pub async fn push_all(&self) -> Result<usize> {
        drain(|| self.push_once()).await
    }

    /// Reads one batch from `master-updates` and applies it with its offset; returns how many
    /// records were read. Waits up to the poll wait when nothing is there.
    ///
    /// A resync from the master's state asked for runs first, a page per call (returning the
    /// documents received, at least 1). With a snapshot source set, the replica asks for one
    /// itself when it is new (nothing read yet), when the broker no longer holds what it must
    /// read next, and when a commit is missing.
    pub async fn pull_once(&self) -> Result<usize> {
        let _p = self.puller.lock().await;
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
        let stored = self.storage.offset(&topic, 0).await?;
        if stored.is_none()
            && self.snapshot_source().is_some()
            && self.storage.replica_progress().await?.applied_csn == 0
            && self.storage.resync_state().await?.is_none()
        {
            self.request_resync(true, "a new replica takes the master's state")
                .await?;
            return Ok(1);
        }
        let from = stored.unwrap_or(0);
        let r = self
            .transport
            .fetch(
                &topic,
                0,
                from,
                FetchLimit::new(self.inner.cfg.batch_size, self.inner.cfg.poll_wait),
            )
            .await;
        let batch = match self.broker(r) {
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
        self.observe_clocks(decoded.messages.iter().filter_map(|m| match m {
            Message::Commit(c) => Some(c.hlc),
            _ => None,
        }));
        let bytes = batch.records.iter().map(|r| r.record.value.len()).sum();
        let started = std::time::Instant::now();
        let (applied, processed, failed, gap) = {
            let _w = self.writer.lock().await;
            let applied_csn = self.storage.replica_progress().await?.applied_csn;
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
        self.stats.applied(processed, failed, bytes, started.elapsed());
        if applied.resend > 0 {
            tracing::info!(ship = %self.ship(), rows = applied.resend, "master asked to send changes again");
            self.wake.notify_one();
        }
        if let Some(master_last) = applied.restored_below {
            tracing::warn!(
                ship = %self.ship(),
                master_last_seq = master_last,
                renumbered = applied.renumbered,
                "the master applied changes of this ship that its database did not write: it was restored from a backup; changes written since are renumbered and sent again"
            );
            self.wake.notify_one();
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
            offset: TopicOffset::new(topic, 0, next),
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
        drain(|| self.pull_once()).await
    }

    /// Where a resync stands, in words for the master's fleet view (`None`: none running or
    /// needed).
    async fn resync_note(&self) -> Result<Option<String>> {
        let running = self.storage.resync_state().await?.filter(|s| s.active());
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
        let progress = self.storage.replica_progress().await?;
        let stats = self.storage.outbox_stats().await?;
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
            .transport
            .publish(&self.inner.cfg.topics.ship_updates, Some(key), vec![value])
            .await;
        self.broker(r)?;
        self.stats.sent(bytes);
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
        let stats = self.storage.outbox_stats().await?;
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
            let _w = self.writer.lock().await;
            self.storage.outbox_resend(from).await?
        };
        if n > 0 {
            tracing::info!(ship = %self.ship(), rows = n, "sending unanswered changes again");
            self.wake.notify_one();
        }
        Ok(n)
    }

    /// Applies the retention rules of the log tables and the audit log (see
    /// `Storage::prune` and `Storage::prune_audit`); returns how many rows were deleted.
    pub async fn prune(&self) -> Result<u64> {
        self.prune_logs().await
    }

    /// Why this replica needs a resync from the master's state, if it does: the broker no
    /// longer holds what it must read next, a commit is missing, or one is asked for or
    /// running.
    pub async fn resync_needed(&self) -> Result<Option<String>> {
        let running = self.storage.resync_state().await?.filter(|s| s.active());
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
        let stats = self.storage.outbox_stats().await?;
        let progress = self.storage.replica_progress().await?;
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
