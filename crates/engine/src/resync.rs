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
use std::time::Duration;

use async_trait::async_trait;
use offline_sync_model::{ContentType, Csn, DocumentId, Message, ResyncRequest};
use offline_sync_storage::{ResyncPage, ResyncStart, ResyncState};
use offline_sync_transport::{FetchLimit, partition_for};

use crate::error::{Error, Result};
use crate::master::{Master, Snapshot};
use crate::replica::Replica;
use crate::snapshot::Assembly;

/// Documents asked for per page by default.
pub const RESYNC_PAGE: u64 = 500;

/// How many of the newest records of `master-updates` a ship resyncing over the broker reads
/// to learn the master's key at first contact.
const KEY_RECORDS: i64 = 100;

/// How long a ship waits over the broker for the next part of an answer before it asks again.
pub const BROKER_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Which page of the master's state a replica asks for: documents and tombstones with a
/// version above `after`, after `from`, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageQuery {
    /// The version the replica holds everything up to.
    pub after: Csn,
    /// The last document of the previous page; `None` for the first page.
    pub from: Option<(ContentType, DocumentId)>,
    /// The most documents the page may hold.
    pub limit: u64,
}

/// Where a replica fetches the master's state from.
#[async_trait]
pub trait SnapshotSource: Send + Sync + std::fmt::Debug {
    /// The page of the master's state `query` asks for `replica` (see [`Master::snapshot`]),
    /// with the count of all of them on the first page. Returns it with its size on the link in bytes, or `None`
    /// when the page was asked for and is not in yet: the replica calls again with the same
    /// question. Errors: [`Error::Snapshot`], retryable when the master or the link is down.
    async fn page(&self, replica: &Replica, query: PageQuery) -> Result<Option<(Snapshot, u64)>>;
}

/// The master in this process: what tests and the quick start use.
#[async_trait]
impl SnapshotSource for Master {
    async fn page(&self, replica: &Replica, query: PageQuery) -> Result<Option<(Snapshot, u64)>> {
        let s = self
            .snapshot(query.after, query.from, query.limit, Some(replica.ship()))
            .await?;
        let bytes = s
            .documents
            .iter()
            .map(|d| serde_json::to_vec(&d.fields).map_or(0, |v| v.len() as u64) + 64)
            .sum();
        Ok(Some((s, bytes)))
    }
}

/// The master's state over the broker, for a ship that reaches only the broker: the ship
/// sends a [`ResyncRequest`] on `ship-updates`; the master answers on its snapshot topic with
/// the page in parts keyed by the ship, signed with its key. The ship reads its partition from
/// where it was before it asked and takes only parts the master signed that answer this
/// request. Each call reads what has come (waiting at most the poll wait), so a pull loop
/// waiting for an answer stays responsive; when no part came for the answer wait (the master
/// was away, or its answer was lost), the call says so and the next one asks again.
#[derive(Debug)]
pub struct OverBroker {
    wait: Duration,
    asked: tokio::sync::Mutex<Option<Asked>>,
}

/// A request on its way and what of its answer came.
#[derive(Debug)]
struct Asked {
    question: PageQuery,
    partition: u32,
    /// Where the snapshot topic is read next.
    at: i64,
    assembly: Assembly,
    bytes: u64,
    /// When to give up on this request: its wait after it was sent or its last part came.
    deadline: tokio::time::Instant,
}

impl Default for OverBroker {
    fn default() -> Self {
        Self::new(BROKER_ANSWER_WAIT)
    }
}

impl OverBroker {
    /// A source that waits `wait` for each part of an answer before it asks again.
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            asked: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends a request for the page of `question` and returns where its answer is read.
    async fn ask(&self, replica: &Replica, question: PageQuery) -> Result<Asked> {
        let topic = &replica.inner.cfg.topics.snapshots;
        let ship = replica.ship();
        replica.ensure_topics().await?;
        self.learn_master_key(replica).await?;
        let r = replica.transport.partitions(topic).await;
        let partition = partition_for(Some(ship.as_str().as_bytes()), replica.broker(r)?);
        let r = replica.transport.offsets(topic, partition).await;
        let at = replica.broker(r)?.latest;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| Error::Snapshot {
            reason: format!("no randomness for a request id: {e}"),
            retryable: true,
        })?;
        let request = u64::from_le_bytes(id);
        let PageQuery { after, from, limit } = question.clone();
        let value = replica.keys().await?.outgoing(
            Message::ResyncRequest(ResyncRequest {
                ship: ship.clone(),
                request,
                after,
                from,
                limit,
            }),
            &replica.inner.cfg.sensitive,
        );
        let bytes = value.len();
        let r = replica
            .transport
            .publish(
                &replica.inner.cfg.topics.ship_updates,
                Some(ship.as_str().as_bytes()),
                vec![value],
            )
            .await;
        replica.broker(r)?;
        replica.stats.sent(bytes);
        tracing::info!(%ship, request, after, limit, "page of the master's state asked for over the broker");
        Ok(Asked {
            question,
            partition,
            at,
            assembly: Assembly::new(request),
            bytes: 0,
            deadline: tokio::time::Instant::now() + self.wait,
        })
    }
}

impl OverBroker {
    /// Makes sure the master's key is known before anything is taken from the snapshot topic,
    /// where anyone who can reach the broker could answer first: pinned ahead
    /// (`SYNC_MASTER_PUBLIC_KEY`) or, as when a ship reads `master-updates`, at first contact
    /// there, from the newest records it holds (the master's current key; records it refuses
    /// are passed over). Pages never pin a key.
    async fn learn_master_key(&self, replica: &Replica) -> Result<()> {
        if replica.keys().await?.knows_master() {
            return Ok(());
        }
        let topic = &replica.inner.cfg.topics.master_updates;
        let r = replica.transport.offsets(topic, 0).await;
        let range = replica.broker(r)?;
        let from = range.earliest.max(range.latest - KEY_RECORDS);
        if from < range.latest {
            let r = replica
                .transport
                .fetch(
                    topic,
                    0,
                    from,
                    FetchLimit::new(KEY_RECORDS as usize, std::time::Duration::ZERO),
                )
                .await;
            let batch = replica.broker(r)?;
            replica.decode(topic, 0, &batch, from).await?;
        }
        if replica.keys().await?.knows_master() {
            return Ok(());
        }
        Err(Error::Snapshot {
            reason: "the master's key is not known yet: pin it with SYNC_MASTER_PUBLIC_KEY, or wait for a record of the master on master-updates; pages over the broker are never taken from a signer this ship does not know".into(),
            retryable: true,
        })
    }
}

#[async_trait]
impl SnapshotSource for OverBroker {
    async fn page(&self, replica: &Replica, query: PageQuery) -> Result<Option<(Snapshot, u64)>> {
        let question = query;
        let mut slot = self.asked.lock().await;
        let asked = match slot.take() {
            Some(a) if a.question == question => a,
            _ => self.ask(replica, question).await?,
        };
        let asked = slot.insert(asked);
        let left = asked
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            *slot = None;
            return Err(Error::Snapshot {
                reason: format!(
                    "no answer from the master over the broker within {} s; asking again (is the master running?)",
                    self.wait.as_secs()
                ),
                retryable: true,
            });
        }
        let topic = &replica.inner.cfg.topics.snapshots;
        let r = replica
            .transport
            .fetch(
                topic,
                asked.partition,
                asked.at,
                FetchLimit::new(16, replica.inner.cfg.poll_wait.min(left)),
            )
            .await;
        let batch = match replica.broker(r) {
            Ok(b) => b,
            Err(Error::ResyncRequired { earliest, latest, .. }) => {
                // Retention or a recreated topic moved the partition: the answer, if it
                // comes, is above what it holds now.
                asked.at = if asked.at < earliest { earliest } else { latest };
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if batch.records.is_empty() {
            return Ok(None);
        }
        let decoded = replica
            .decode_unpinned(topic, asked.partition, &batch, asked.at)
            .await?;
        decoded.count_rejections();
        asked.at = decoded.next;
        if !decoded.messages.is_empty() {
            // The master is answering (other ships first, on a slow link): the wait starts
            // again. Records it did not sign are no sign of progress.
            asked.deadline = tokio::time::Instant::now() + self.wait;
        }
        let sizes: std::collections::BTreeMap<i64, u64> = batch
            .records
            .iter()
            .map(|r| (r.offset, r.record.value.len() as u64))
            .collect();
        for (msg, offset) in decoded.messages.into_iter().zip(decoded.offsets) {
            let Message::SnapshotPart(part) = msg else {
                continue;
            };
            if &part.ship != replica.ship() {
                continue;
            }
            if part.request == asked.assembly.request() {
                asked.bytes += sizes.get(&offset).copied().unwrap_or_default();
            }
            match asked.assembly.add(part) {
                Ok(Some(page)) => {
                    let bytes = asked.bytes;
                    *slot = None;
                    return Ok(Some((page, bytes)));
                }
                Ok(None) => {}
                Err(e) => {
                    *slot = None;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }
}

/// What one step of a resync did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// No resync is running.
    Idle,
    /// A page was applied (with its documents), or the resync changed course.
    Moved(usize),
    /// The page asked for is not in yet.
    Waiting,
}

/// How long [`Replica::resync_all`] pauses while a page asked for is not in yet, on top of the
/// poll wait its source waits.
const WAITING_PAUSE: Duration = Duration::from_millis(20);

/// Whether `now` still asks for the page fetched for `then`: the same resync (kind, CSN and
/// when asked), at the same place.
fn same_question(now: &ResyncState, then: &ResyncState) -> bool {
    now.active()
        && (now.full, now.after, now.requested_at_ms, now.at, &now.cursor)
            == (then.full, then.after, then.requested_at_ms, then.at, &then.cursor)
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
            let _w = self.writer.lock().await;
            self.storage.request_resync(full, reason, self.now()).await?
        };
        tracing::warn!(ship = %self.ship(), full = state.full, reason = %state.reason, "resync from the master's state asked for");
        crate::metrics::resync(&state);
        Ok(state)
    }

    /// The resync running or the last one, with its estimated time left.
    pub async fn resync_progress(&self) -> Result<Option<ResyncProgress>> {
        let state = self.storage.resync_state().await?;
        Ok(state.map(|s| ResyncProgress::new(s, self.now())))
    }

    /// Fetches and applies one page of the running resync, and ends it after the last page;
    /// returns the documents received (0 while the page asked for is not in yet), or `None`
    /// when no resync is asked for. Errors: [`Error::Snapshot`] when the page cannot be
    /// fetched, or there is no snapshot source.
    pub async fn resync_once(&self) -> Result<Option<usize>> {
        let _p = self.puller.lock().await;
        Ok(match self.resync_step().await? {
            Step::Idle => None,
            Step::Moved(n) => Some(n),
            Step::Waiting => Some(0),
        })
    }

    /// [`Replica::resync_once`] under the puller lock.
    pub(crate) async fn resync_step(&self) -> Result<Step> {
        let Some(state) = self.storage.resync_state().await? else {
            return Ok(Step::Idle);
        };
        if !state.active() {
            return Ok(Step::Idle);
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
        let Some((page, bytes)) = source
            .page(
                self,
                PageQuery {
                    after: state.after,
                    from,
                    limit: self.config().resync_page.clamp(1, crate::MAX_SNAPSHOT_PAGE),
                },
            )
            .await?
        else {
            return Ok(Step::Waiting);
        };
        let received = page.documents.len();
        if !state.full && page.collected > state.after {
            // Deletions this ship never applied left no tombstone: only every document tells.
            self.request_resync(
                true,
                &format!(
                    "tombstones up to CSN {} were collected, above this ship's CSN {}: taking every document",
                    page.collected, state.after
                ),
            )
            .await?;
            return Ok(Step::Moved(0));
        }
        // Where to read `master-updates` on after the last page is asked of the broker before
        // the writer lock is taken: a slow link must not hold up the ship's own writes.
        let read_on = match page.next {
            None => {
                let at = if first {
                    page.at
                } else {
                    state.at.unwrap_or_default()
                };
                Some(
                    self.read_on_from(&self.inner.cfg.topics.master_updates, at.next_offset)
                        .await,
                )
            }
            Some(_) => None,
        };
        let _w = self.writer.lock().await;
        // Another resync asked for while the page was on its way (a full one, say) runs
        // instead: this page answers a question nobody asks any more.
        let now_state = self.storage.resync_state().await?;
        if now_state.as_ref().is_none_or(|s| !same_question(s, &state)) {
            tracing::info!(ship = %self.ship(), "another resync was asked for meanwhile: the page fetched is left");
            return Ok(Step::Moved(0));
        }
        let now = self.now();
        if first {
            let started = self
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
                self.wake.notify_one();
            }
        }
        let page = ResyncPage {
            documents: page.documents,
            next: page.next,
            bytes,
            sensitive: self.config().sensitive.clone(),
            synced: self.config().content_types.clone(),
        };
        let state = self.storage.apply_resync_page(self.ship(), &page, now).await?;
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
        if let Some(next) = read_on {
            let topic = &self.inner.cfg.topics.master_updates;
            let done = self.storage.finish_resync(topic, next, now).await?;
            self.clear_resync_needed();
            if let Some(state) = self.storage.resync_state().await? {
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
        Ok(Step::Moved(received))
    }

    /// Where to read `topic` on after a resync taken at `offset`: there, unless the topic was
    /// recreated since and holds less; then from its start, where only commits published after
    /// the point can be (the master had published nothing on it when the point was read).
    async fn read_on_from(&self, topic: &str, offset: i64) -> i64 {
        match self.transport.offsets(topic, 0).await {
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
        loop {
            let step = {
                let _p = self.puller.lock().await;
                self.resync_step().await?
            };
            match step {
                Step::Idle => return Ok(total),
                Step::Moved(n) => total += n,
                Step::Waiting => tokio::time::sleep(WAITING_PAUSE).await,
            }
        }
    }
}
