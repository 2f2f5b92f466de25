//! A replica's resync from the master's state (DESIGN.md §4, catch-up).
//!
//! When `master-updates` no longer holds what a replica must read next (retention removed it,
//! the topic was recreated, a commit is missing) or the replica is new, it takes the master's
//! state instead: every document and tombstone changed above its applied CSN, in pages, from
//! one published point (CSN S and the offset after its record), then reads `master-updates`
//! on from that offset, where every commit above S is. Each page is applied with the cursor
//! of the next one in one transaction, so a resync cut by a lost link or a restart continues
//! from the last page received. Commits above S that a page already showed are applied again
//! when read: a commit carries values, not increments, so the document ends as the master's.

use std::sync::Arc;

use async_trait::async_trait;
use offline_sync_model::{ContentType, Csn, DocumentId, ShipId};
use offline_sync_storage::{ResyncPage, ResyncStart, ResyncState};

use crate::error::{Error, Result};
use crate::master::{Master, Snapshot};
use crate::replica::Replica;

/// Documents asked for per page by default.
pub const RESYNC_PAGE: u64 = 500;

/// Where a replica fetches the master's state from.
#[async_trait]
pub trait SnapshotSource: Send + Sync + std::fmt::Debug {
    /// A page of the master's state for `ship` (see [`Master::snapshot`]): documents and
    /// tombstones with a version above `after`, after `from`, at most `limit`; the count of
    /// all of them on the first page. Returns it with its size on the link in bytes. Errors:
    /// [`Error::Snapshot`], retryable when the master or the link is down.
    async fn page(
        &self,
        ship: &ShipId,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<(Snapshot, u64)>;
}

/// The master in this process: what tests and the quick start use.
#[async_trait]
impl SnapshotSource for Master {
    async fn page(
        &self,
        ship: &ShipId,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
    ) -> Result<(Snapshot, u64)> {
        let s = self.snapshot(after, from, limit, Some(ship)).await?;
        let bytes = s
            .documents
            .iter()
            .map(|d| serde_json::to_vec(&d.fields).map_or(0, |v| v.len() as u64) + 64)
            .sum();
        Ok((s, bytes))
    }
}

/// A resync's progress as the replica reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncProgress {
    /// The stored state.
    pub state: ResyncState,
    /// Estimated time left, from the pace so far.
    pub eta_ms: Option<u64>,
}

impl ResyncProgress {
    pub(crate) fn new(state: ResyncState, now_ms: u64) -> Self {
        let eta_ms = match (state.active(), state.started_at_ms, state.total) {
            (true, Some(started), Some(total)) if state.received > 0 => {
                let spent = now_ms.saturating_sub(started) as f64;
                let left = total.saturating_sub(state.received) as f64;
                Some((spent / state.received as f64 * left) as u64)
            }
            _ => None,
        };
        Self { state, eta_ms }
    }
}

impl Replica {
    /// Where this replica fetches the master's state in a resync; without one, a replica
    /// that needs a resync says so in its status and waits.
    pub fn set_snapshot_source(&self, source: Arc<dyn SnapshotSource>) {
        *self.inner.source.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    pub(crate) fn snapshot_source(&self) -> Option<Arc<dyn SnapshotSource>> {
        self.inner
            .source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks for a resync from the master's state (of every document when `full`); it runs in
    /// the pull loop, or with [`Replica::resync_all`]. Returns the resync that will run.
    /// Errors: `Conflict` when no snapshot source is set (nothing could carry it out).
    pub async fn request_resync(&self, full: bool, reason: &str) -> Result<ResyncState> {
        if self.snapshot_source().is_none() {
            return Err(Error::Conflict {
                reason: "no way to fetch the master's state is set: set SYNC_MASTER_URL (and SYNC_MASTER_TOKEN) to resync".into(),
            });
        }
        let state = {
            let _w = self.inner.writer.lock().await;
            self.inner
                .storage
                .request_resync(full, reason, self.now())
                .await?
        };
        tracing::warn!(ship = %self.ship(), full = state.full, reason = %state.reason, "resync from the master's state asked for");
        crate::metrics::resync(&state);
        Ok(state)
    }

    /// The resync running or the last one, with its estimated time left.
    pub async fn resync_progress(&self) -> Result<Option<ResyncProgress>> {
        let state = self.inner.storage.resync_state().await?;
        Ok(state.map(|s| ResyncProgress::new(s, self.now())))
    }

    /// Fetches and applies one page of the running resync, and ends it after the last page;
    /// returns the documents received, or `None` when no resync is asked for. Errors:
    /// [`Error::Snapshot`] when the page cannot be fetched, or there is no snapshot source.
    pub async fn resync_once(&self) -> Result<Option<usize>> {
        let _p = self.inner.puller.lock().await;
        self.resync_step().await
    }

    /// [`Replica::resync_once`] under the puller lock.
    pub(crate) async fn resync_step(&self) -> Result<Option<usize>> {
        let Some(state) = self.inner.storage.resync_state().await? else {
            return Ok(None);
        };
        if !state.active() {
            return Ok(None);
        }
        let Some(source) = self.snapshot_source() else {
            return Err(Error::Snapshot {
                reason: format!(
                    "a resync is needed ({}) and no way to fetch the master's state is set (SYNC_MASTER_URL)",
                    state.reason
                ),
                retryable: false,
            });
        };
        let first = state.at.is_none();
        let from = if first { None } else { state.cursor.clone() };
        let (page, bytes) = source
            .page(
                self.ship(),
                state.after,
                from,
                self.config().resync_page.clamp(1, crate::MAX_SNAPSHOT_PAGE),
            )
            .await
            .inspect_err(|e| {
                if e.is_retryable() {
                    self.link(false);
                }
            })?;
        let received = page.documents.len();
        if first && !state.full && page.collected > state.after {
            // Deletions this ship never applied left no tombstone: only every document tells.
            self.request_resync(
                true,
                &format!(
                    "tombstones up to CSN {} were collected, above this ship's CSN {}: taking every document",
                    page.collected, state.after
                ),
            )
            .await?;
            return Ok(Some(0));
        }
        let _w = self.inner.writer.lock().await;
        let now = self.now();
        if first {
            let started = self
                .inner
                .storage
                .start_resync(
                    self.ship(),
                    &ResyncStart {
                        at: page.at,
                        last_seq: page.last_seq,
                        applied: page.applied.clone(),
                        touched: page.touched.clone(),
                        resolved: page.resolved.clone(),
                        sensitive: self.config().sensitive.clone(),
                        total: page.total,
                    },
                    now,
                )
                .await?;
            tracing::info!(
                ship = %self.ship(),
                at_csn = page.at.csn,
                offset = page.at.next_offset,
                documents = ?page.total,
                settled = started.settled,
                resent = started.resent,
                renumbered = started.renumbered,
                "resync started from the master's state"
            );
            if started.resent + started.renumbered > 0 {
                self.inner.wake.notify_one();
            }
        }
        let next = page.next.clone();
        let page = ResyncPage {
            documents: page.documents,
            next: page.next,
            bytes,
            sensitive: self.config().sensitive.clone(),
            synced: self.config().content_types.clone(),
        };
        let state = self
            .inner
            .storage
            .apply_resync_page(self.ship(), &page, now)
            .await?;
        let progress = ResyncProgress::new(state, now);
        crate::metrics::resync(&progress.state);
        tracing::info!(
            ship = %self.ship(),
            received = progress.state.received,
            total = ?progress.state.total,
            bytes = progress.state.bytes,
            eta_ms = ?progress.eta_ms,
            "resync page applied"
        );
        if next.is_none() {
            let topic = &self.inner.cfg.topics.master_updates;
            let at = progress.state.at.unwrap_or_default();
            let next = self.read_on_from(topic, at.next_offset).await;
            let done = self.inner.storage.finish_resync(topic, next, now).await?;
            self.clear_resync_needed();
            if let Some(state) = self.inner.storage.resync_state().await? {
                crate::metrics::resync(&state);
            }
            tracing::info!(
                ship = %self.ship(),
                applied_csn = done.applied_csn,
                offset = done.offset,
                removed = done.removed,
                "resync done: reading master-updates on"
            );
        }
        Ok(Some(received))
    }

    /// Where to read `topic` on after a resync taken at `offset`: there, unless the topic was
    /// recreated since and holds less; then from its start, where only commits published after
    /// the point can be (the master had published nothing on it when the point was read).
    async fn read_on_from(&self, topic: &str, offset: i64) -> i64 {
        match self.inner.transport.offsets(topic, 0).await {
            Ok(range) if offset > range.latest => {
                tracing::warn!(
                    ship = %self.ship(),
                    offset,
                    latest = range.latest,
                    "master-updates holds less than the master published: it was recreated; reading it from its start"
                );
                range.earliest
            }
            _ => offset,
        }
    }

    /// Runs the resync asked for to its end; returns the documents received.
    pub async fn resync_all(&self) -> Result<usize> {
        let mut total = 0;
        while let Some(n) = self.resync_once().await? {
            total += n;
        }
        Ok(total)
    }
}
