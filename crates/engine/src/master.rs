//! The master engine: applies ship batches, commits local writes and resolutions, broadcasts
//! every commit after it is durable, keeps the ship registry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use offline_sync_model::{
    Conflict, ConflictId, ConflictStatus, ContentType, Csn, DocumentId, Fields, Message, ResyncRequest,
    ShipId, Strategy,
};
use offline_sync_storage::{
    ConflictFilter, MasterBatch, Page, Published, ShipRecord, Storage, StoredDoc, TopicOffset,
};
use offline_sync_transport::{FetchLimit, Transport};
use tokio::sync::Mutex;

use crate::config::{MasterConfig, synced};
use crate::error::{Error, Result};
use crate::inbox::Decoded;
use crate::node::{Role, drain, role};

role! {
    /// The master node. Cheap to clone; clones share the node.
    Master, "A master", MasterConfig,
    {
        /// One publisher at a time: commits are broadcast in CSN order.
        publisher: Mutex<()>,
    }
}

/// What a resolution preview was made from: the master's version of the document and when
/// the conflict was last recorded (a later ship change folded into it moves it).
fn revision(conflict: &Conflict, doc: &offline_sync_model::MasterDoc) -> String {
    format!("{}.{}", doc.version, conflict.updated_at_ms)
}

/// The broker wait of each partition's fetch in the first round of a pull: the poll wait
/// shared out, but never under a millisecond, the broker's unit. A shorter share would be sent
/// as zero, so a master with more partitions than milliseconds of poll wait would ask the
/// broker in a loop that never rests. A zero poll wait stays zero (the pull loop rests then).
fn partition_wait(poll_wait: Duration, partitions: u32) -> Duration {
    if poll_wait.is_zero() {
        return poll_wait;
    }
    (poll_wait / partitions.max(1)).max(Duration::from_millis(1))
}

/// Most commits of one document read back to find what a conflict's base held.
const MAX_BASE_COMMITS: u64 = 1_000;

/// What the fields of a conflict held at the version the ship had seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConflictBase {
    /// The fields the base held (a field it did not have is absent).
    pub values: Fields,
    /// The fields whose base value is no longer known: the commits that set them were pruned.
    pub unknown: Vec<String>,
    /// The document was deleted at the base version.
    pub deleted: bool,
}

impl ConflictBase {
    /// Reads the base of `fields` at `base` from `commits` of the document up to `base`,
    /// newest first: a whole-document or delete commit settles every field still open, a
    /// patch the fields it sets. At base 0 the ship had seen no version of the master's (it
    /// wrote before its own create came back): no value is known.
    fn of(fields: &[String], base: Csn, commits: &[offline_sync_model::Commit]) -> Self {
        use offline_sync_model::CommitOp;
        let mut out = ConflictBase::default();
        if base == 0 {
            out.unknown = fields.to_vec();
            return out;
        }
        let mut open: Vec<&String> = fields.iter().collect();
        for commit in commits.iter().filter(|c| c.csn <= base) {
            match commit.op {
                CommitOp::Delete => {
                    out.deleted = open.len() == fields.len();
                    open.clear();
                }
                CommitOp::Put => {
                    for f in open.drain(..) {
                        if let Some(v) = commit.fields.get(f) {
                            out.values.insert(f.clone(), v.clone());
                        }
                    }
                }
                CommitOp::Patch => open.retain(|f| match commit.fields.get(*f) {
                    Some(v) => {
                        out.values.insert((*f).clone(), v.clone());
                        false
                    }
                    None => true,
                }),
            }
            if open.is_empty() {
                break;
            }
        }
        out.unknown = open.into_iter().cloned().collect();
        out
    }
}

/// A ship with its online state.
/// Most documents in one page of [`Master::snapshot`].
pub const MAX_SNAPSHOT_PAGE: u64 = 5_000;

/// Field bytes after which a page of [`Master::snapshot`] ends early (at least one document
/// is in every page).
pub const MAX_SNAPSHOT_BYTES: u64 = 8 * 1024 * 1024;

/// Most seqs of a ship a first snapshot page tells the hybrid logical time of.
const MAX_APPLIED_SEQS: u64 = 100_000;

/// A page of the master's state for a resync (see [`Master::snapshot`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The last commit published and the offset after its record, read before the page.
    pub at: Published,
    /// Documents and tombstones, sensitive fields left out.
    pub documents: Vec<StoredDoc>,
    /// Where the next page starts, when this one was full.
    pub next: Option<(ContentType, DocumentId)>,
    /// The last seq the master applied from the ship asked about (none: never heard of it).
    pub last_seq: Option<offline_sync_model::Seq>,
    /// On the first page, with `ship`: the hybrid logical time of each change of the ship
    /// the master applied or refused and still keeps, by seq (`None`: unreadable).
    pub applied: Vec<offline_sync_storage::ShipSeq>,
    /// On the first page, with `ship`: the master's state of the documents those changes
    /// name (tombstones included), sensitive fields left out.
    pub touched: Vec<StoredDoc>,
    /// On the first page: the conflicts resolved above `after` (id, content type, document).
    pub resolved: Vec<(ConflictId, ContentType, DocumentId)>,
    /// On the first page (no `from`): how many documents and tombstones the whole resync
    /// holds.
    pub total: Option<u64>,
    /// How far tombstones were collected: a replica whose applied CSN is below it needs every
    /// document (a full resync) to learn what was deleted.
    pub collected: Csn,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipStatus {
    /// What the registry holds.
    pub record: ShipRecord,
    /// Heard from within the offline threshold.
    pub online: bool,
}

/// What the master reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterStatus {
    /// Whether the last call to the broker succeeded.
    pub online: bool,
    /// The last CSN committed.
    pub last_csn: u64,
    /// Conflicts waiting for an operator.
    pub open_conflicts: u64,
    /// Registered ships.
    pub ships_total: u64,
    /// Ships heard from within the offline threshold.
    pub ships_online: u64,
}

impl Master {
    fn role(_: &MasterConfig) -> Role {
        Role::Master
    }

    /// Moves decoded messages, refusals and dead letters into `batch`; returns the resync
    /// requests, answered once the batch is applied.
    pub(crate) fn take(&self, decoded: Decoded, batch: &mut MasterBatch) -> Vec<ResyncRequest> {
        let requests = self.sort_into(decoded.messages, batch);
        batch.rejected.extend(decoded.refused);
        batch.unreadable.extend(decoded.unreadable);
        batch.dead_letters.extend(decoded.dead_letters);
        requests
    }

    /// The settings.
    pub fn config(&self) -> &MasterConfig {
        &self.inner.cfg
    }

    /// Reads an equal share of one batch from every partition of `ship-updates` and applies
    /// it all in one database transaction with the offsets after it, then broadcasts the
    /// commits. Returns how many records were read.
    pub async fn pull_once(&self) -> Result<usize> {
        let read = self.apply_once().await?;
        self.publish_all().await?;
        Ok(read)
    }

    /// [`Master::pull_once`] without the broadcast: the running master's puller, which leaves
    /// it to the publisher it wakes, so the next batch is read and applied while the commits
    /// of this one go out. Answers the batch's resync requests.
    pub(crate) async fn apply_once(&self) -> Result<usize> {
        let _p = self.puller.lock().await;
        let began = std::time::Instant::now();
        self.ensure_topics().await?;
        let topic = self.inner.cfg.topics.ship_updates.clone();
        let r = self.transport.partitions(&topic).await;
        let partitions = self.broker(r)?;
        let wait = partition_wait(self.inner.cfg.poll_wait, partitions);
        let mut batch = MasterBatch {
            sensitive: self.inner.cfg.sensitive.clone(),
            offline_after_ms: u64::try_from(self.inner.cfg.offline_after.as_millis()).ok(),
            ..MasterBatch::default()
        };
        let mut requests = Vec::new();
        let mut read = 0;
        let mut bytes = 0;
        // Every partition gets its share of the batch, so one busy ship cannot starve the
        // ships hashed to the other partitions; what a quiet partition leaves unused goes, in
        // further rounds, to the partitions that filled their share.
        let limit = self.inner.cfg.batch_size.max(1);
        let mut next: BTreeMap<u32, i64> = BTreeMap::new();
        let mut round: Vec<u32> = (0..partitions).collect();
        let mut first = true;
        while !round.is_empty() && read < limit {
            let share = (limit - read).div_ceil(round.len()).max(1);
            let mut full = Vec::new();
            for p in round {
                let budget = share.min(limit - read);
                if budget == 0 {
                    break;
                }
                let from = match next.get(&p) {
                    Some(n) => *n,
                    None => self.storage.offset(&topic, p).await?.unwrap_or(0),
                };
                let wait = if first { wait } else { Duration::ZERO };
                let r = self
                    .transport
                    .fetch(&topic, p, from, FetchLimit::new(budget, wait))
                    .await;
                let fetched = match self.broker(r) {
                    Ok(b) => b,
                    Err(Error::ResyncRequired {
                        earliest,
                        latest,
                        offset,
                        ..
                    }) => {
                        // Ship changes are kept in the ships' outboxes until answered, so they
                        // are sent again: skip to what the broker holds.
                        let next = earliest;
                        tracing::warn!(
                            topic,
                            partition = p,
                            offset,
                            earliest,
                            latest,
                            next,
                            "stored offset outside the partition, moving on; ships resend what is unanswered"
                        );
                        batch.offsets.push(TopicOffset::new(topic.clone(), p, next));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if fetched.records.is_empty() {
                    continue;
                }
                read += fetched.records.len();
                bytes += fetched
                    .records
                    .iter()
                    .map(|r| r.record.value.len())
                    .sum::<usize>();
                if fetched.records.len() >= budget {
                    full.push(p);
                }
                let decoded = self.decode(&topic, p, &fetched, from).await?;
                decoded.count_rejections();
                next.insert(p, decoded.next);
                batch
                    .offsets
                    .push(TopicOffset::new(topic.clone(), p, decoded.next));
                requests.extend(self.take(decoded, &mut batch));
            }
            round = full;
            first = false;
        }
        if batch.offsets.is_empty() {
            return Ok(0);
        }
        self.observe_clocks(batch.changes.iter().map(|c| c.hlc));
        let started = std::time::Instant::now();
        let applied = self.apply(&batch).await?;
        self.stats.applied(
            batch.changes.len() + batch.rejected.len() + batch.heartbeats.len(),
            batch.dead_letters.len(),
            bytes,
            started.elapsed(),
        );
        if applied.conflicts > 0 {
            tracing::warn!(
                conflicts = applied.conflicts,
                "conflicts recorded for an operator"
            );
        }
        tracing::debug!(
            read,
            committed = applied.committed,
            duplicates = applied.duplicates,
            read_ms = started.duration_since(began).as_millis(),
            apply_ms = started.elapsed().as_millis(),
            "ship batch applied"
        );
        self.answer_all(requests).await;
        Ok(read)
    }

    /// Answers the resync requests of a batch: only the newest of each ship (a ship that asks
    /// again has given up on its earlier requests), each failure logged without keeping the
    /// others from their answer.
    async fn answer_all(&self, requests: Vec<ResyncRequest>) {
        let mut newest: BTreeMap<ShipId, ResyncRequest> = BTreeMap::new();
        for r in requests {
            newest.insert(r.ship.clone(), r);
        }
        for r in newest.into_values() {
            let ship = r.ship.clone();
            if let Err(e) = self.answer(r).await {
                tracing::warn!(%ship, error = %e, "a resync request could not be answered; the ship asks again");
            }
        }
    }

    /// Answers a ship's request for a page of the state on the snapshot topic, keyed by the
    /// ship, one part per record. The request is not kept: if the master stops before the
    /// answer is out, the ship, hearing nothing, asks again.
    async fn answer(&self, r: ResyncRequest) -> Result<()> {
        let limit = r.limit.clamp(1, MAX_SNAPSHOT_PAGE);
        let page = self
            .snapshot(r.after, r.from.clone(), limit, Some(&r.ship))
            .await?;
        let parts = crate::snapshot::into_parts(&r.ship, r.request, &page);
        let keys = self.keys().await?;
        let values: Vec<Vec<u8>> = parts
            .into_iter()
            .map(|p| keys.outgoing(Message::SnapshotPart(p), &self.inner.cfg.sensitive))
            .collect();
        let bytes: usize = values.iter().map(Vec::len).sum();
        let count = values.len();
        for value in values {
            let sent = self
                .transport
                .publish(
                    &self.inner.cfg.topics.snapshots,
                    Some(r.ship.as_str().as_bytes()),
                    vec![value],
                )
                .await;
            self.broker(sent)?;
        }
        self.stats.sent(bytes);
        tracing::info!(
            ship = %r.ship,
            request = r.request,
            after = r.after,
            documents = page.documents.len(),
            parts = count,
            bytes,
            "page of the state sent for a resync over the broker"
        );
        Ok(())
    }

    /// Sorts messages read from `ship-updates` into the batch to apply: changes of synced
    /// content types, changes to refuse, heartbeats; returns the resync requests.
    pub(crate) fn sort_into(&self, messages: Vec<Message>, batch: &mut MasterBatch) -> Vec<ResyncRequest> {
        let mut requests = Vec::new();
        for m in messages {
            match m {
                Message::Change(c) if !synced(self.inner.cfg.content_types.as_ref(), &c.ct) => {
                    let reason = format!("content type {} is not synced", c.ct);
                    batch.rejected.push((c, reason));
                }
                Message::Change(c) => batch.changes.push(c),
                Message::Heartbeat(h) => batch.heartbeats.push(h),
                Message::ResyncRequest(r) => requests.push(r),
                Message::Commit(_) | Message::Ack(_) | Message::SnapshotPart(_) => {}
            }
        }
        requests
    }

    /// Applies a batch in one transaction under the writer lock and wakes the publisher.
    pub(crate) async fn apply(&self, batch: &MasterBatch) -> Result<offline_sync_storage::MasterApplied> {
        let applied = {
            let _w = self.writer.lock().await;
            self.storage
                .master_apply(batch, &self.inner.cfg.policies, self.now())
                .await?
        };
        self.wake.notify_one();
        Ok(applied)
    }

    /// Reads and applies `ship-updates` until nothing new is there; returns how many records.
    pub async fn pull_all(&self) -> Result<usize> {
        drain(|| self.pull_once()).await
    }

    /// Publishes one batch of committed, unpublished broadcasts to `master-updates`, in commit
    /// order; returns how many. Marked published only once the broker accepted them.
    pub async fn publish_once(&self) -> Result<usize> {
        let _p = self.inner.publisher.lock().await;
        let began = std::time::Instant::now();
        self.ensure_topics().await?;
        let rows = self.storage.unpublished(self.inner.cfg.batch_size).await?;
        let rows = crate::config::fit_batch(rows.into_iter().map(|r| ((r.id, r.csn), r.payload)).collect());
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<(u64, Option<Csn>)> = rows.iter().map(|r| r.0).collect();
        let keys = self.keys().await?;
        let values: Vec<Vec<u8>> = rows
            .into_iter()
            .map(|r| match offline_sync_model::decode(&r.1) {
                Ok(msg) => keys.outgoing(msg, &self.inner.cfg.sensitive),
                // Written by this node's own encoder: sent as it is, signed.
                Err(_) => keys.seal(&r.1),
            })
            .collect();
        let r = crate::config::publish_fitting(
            self.transport.as_ref(),
            &self.inner.cfg.topics.master_updates,
            None,
            values,
        )
        .await;
        let (n, bytes, first) = self.broker(r)?;
        self.stats.sent(bytes);
        // Where a replica that takes the master's state now reads on: the offset after the last
        // record that went out, with the last commit published. Records after that commit are
        // answers to changes the master had settled before the point is read, which a resync's
        // first page tells by the ship's applied seqs (read after the point). A point that
        // stayed at the last commit while answers went on fell behind what retention keeps,
        // and a replica resynced from it again and again.
        let csn = match ids[..n].iter().rev().find_map(|(_, csn)| *csn) {
            Some(csn) => csn,
            None => self.storage.published().await?.csn,
        };
        let last = offline_sync_storage::Published {
            csn,
            next_offset: first + i64::try_from(n).unwrap_or(i64::MAX),
        };
        self.storage.mark_published(ids[n - 1].0, Some(last)).await?;
        tracing::debug!(
            count = n,
            took_ms = began.elapsed().as_millis(),
            "commits published"
        );
        Ok(n)
    }

    /// Publishes every unpublished broadcast; returns how many.
    pub async fn publish_all(&self) -> Result<usize> {
        drain(|| self.publish_once()).await
    }

    /// Conflicts, newest first, optionally of one status.
    pub async fn conflicts(&self, status: Option<ConflictStatus>, page: Page) -> Result<Vec<Conflict>> {
        Ok(self
            .storage
            .conflicts(&ConflictFilter::status(status), page)
            .await?)
    }

    /// The conflicts `filter` lets through, newest first, and how many there are.
    pub async fn find_conflicts(&self, filter: &ConflictFilter, page: Page) -> Result<(Vec<Conflict>, u64)> {
        let storage = &self.storage;
        Ok((
            storage.conflicts(filter, page).await?,
            storage.count_conflicts(filter).await?,
        ))
    }

    /// What the fields of `conflict` held at the version the ship had seen (its base), read
    /// from the commits still kept for broadcast.
    pub async fn conflict_base(&self, conflict: &Conflict) -> Result<ConflictBase> {
        let draft = &conflict.draft;
        // Each field at the base the ship had for it; usually one base for them all.
        let mut by_base: BTreeMap<Csn, Vec<String>> = BTreeMap::new();
        for f in &draft.fields {
            by_base.entry(draft.base_of(f)).or_default().push(f.clone());
        }
        let mut out = ConflictBase::default();
        for (base, fields) in by_base {
            let commits = match base {
                0 => Vec::new(),
                base => {
                    self.storage
                        .document_commits(
                            &conflict.content_type,
                            conflict.document_id,
                            base,
                            MAX_BASE_COMMITS,
                        )
                        .await?
                }
            };
            let part = ConflictBase::of(&fields, base, &commits);
            out.values.extend(part.values);
            out.unknown.extend(part.unknown);
            out.deleted |= part.deleted;
        }
        Ok(out)
    }

    /// The document resolving conflict `id` with `strategy` would leave, without committing
    /// anything, and the revision it was made from (see [`Master::resolve_if`]). Errors as
    /// [`Master::resolve`].
    pub async fn preview(
        &self,
        id: ConflictId,
        strategy: &Strategy,
    ) -> Result<(offline_sync_model::MasterDoc, String)> {
        let (conflict, doc) = self.conflict_and_doc(id).await?;
        let revision = revision(&conflict, &doc);
        let csn = self.storage.last_csn().await? + 1;
        // The clock is read, not ticked: a preview changes nothing.
        let hlc = offline_sync_model::Hlc { ms: self.now(), c: 0 };
        let (doc, _) = offline_sync_model::resolve(&doc, &conflict, strategy, csn, hlc)
            .map_err(offline_sync_storage::Error::from)?;
        Ok((doc, revision))
    }

    async fn conflict_and_doc(&self, id: ConflictId) -> Result<(Conflict, offline_sync_model::MasterDoc)> {
        let storage = &self.storage;
        let conflict = storage.conflict(id).await?.ok_or(Error::NotFound)?;
        let doc = storage
            .master_doc(&conflict.content_type, conflict.document_id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok((conflict, doc))
    }

    async fn revision(&self, id: ConflictId) -> Result<String> {
        let (conflict, doc) = self.conflict_and_doc(id).await?;
        Ok(revision(&conflict, &doc))
    }

    /// How far each ship lags behind `last_csn` in time: how long ago the first commit it
    /// has not applied was made (`None`: it applied every commit, or that commit was pruned).
    /// One query for the whole fleet.
    pub async fn lags_ms(&self, ships: &[&ShipRecord], last_csn: Csn) -> Result<Vec<Option<u64>>> {
        let first_missing = |s: &ShipRecord| (s.applied_csn < last_csn).then_some(s.applied_csn + 1);
        let csns: Vec<Csn> = ships.iter().filter_map(|s| first_missing(s)).collect();
        let made = self.storage.commit_times(&csns).await?;
        let now = self.now();
        Ok(ships
            .iter()
            .map(|s| {
                first_missing(s)
                    .and_then(|csn| made.get(&csn))
                    .map(|t| now.saturating_sub(*t))
            })
            .collect())
    }

    /// One conflict.
    pub async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>> {
        Ok(self.storage.conflict(id).await?)
    }

    /// Resolves an open conflict; the result is committed and broadcast like any change.
    pub async fn resolve(&self, id: ConflictId, strategy: &Strategy) -> Result<Conflict> {
        self.resolve_if(id, strategy, None).await
    }

    /// Resolves an open conflict as [`Master::resolve`] does, but with `revision` (from
    /// [`Master::preview`]) only while neither the conflict nor its document changed since:
    /// what the operator confirmed is what gets applied. Errors: `Conflict` when either did.
    pub async fn resolve_if(
        &self,
        id: ConflictId,
        strategy: &Strategy,
        revision: Option<&str>,
    ) -> Result<Conflict> {
        if let Strategy::Merge { merge_data } = strategy {
            crate::config::check_size(Some(merge_data))?;
        }
        let hlc = self.tick();
        let now = self.now();
        let (conflict, commit) = {
            let _w = self.writer.lock().await;
            if let Some(expected) = revision {
                // Under the writer lock: no commit can land between this check and the
                // resolution's own.
                let current = self.revision(id).await?;
                if current != expected {
                    return Err(Error::Conflict {
                        reason: format!(
                            "conflict {id} or its document changed since the preview (revision {expected}, now {current}): preview it again"
                        ),
                    });
                }
            }
            self.storage.resolve_conflict(id, strategy, hlc, now).await?
        };
        tracing::info!(
            conflict = id,
            strategy = strategy.as_str(),
            csn = commit.csn,
            "conflict resolved"
        );
        self.wake.notify_one();
        Ok(conflict)
    }

    /// The ship registry with online states.
    pub async fn ships(&self) -> Result<Vec<ShipStatus>> {
        let now = self.now();
        let threshold = u64::try_from(self.inner.cfg.offline_after.as_millis()).unwrap_or(u64::MAX);
        let ships = self.storage.ships().await?;
        Ok(ships
            .into_iter()
            .map(|record| {
                let online = record
                    .last_seen_ms
                    .is_some_and(|seen| now.saturating_sub(seen) < threshold);
                ShipStatus { record, online }
            })
            .collect())
    }

    /// Applies the retention rules of the log tables and the audit log (see
    /// `Storage::prune` and `Storage::prune_audit`) and collects the tombstones every ship in
    /// service applied; returns how many rows were deleted.
    pub async fn prune(&self) -> Result<u64> {
        Ok(self.prune_logs().await? + self.collect_tombstones().await?)
    }

    /// Deletes the tombstones every registered ship in service has applied (per its last
    /// heartbeat); decommissioned ships do not hold them back. A ship that comes back below
    /// that point takes a full resync instead of learning the deletions one by one. Returns
    /// how many were deleted; none while no ship is registered.
    pub async fn collect_tombstones(&self) -> Result<u64> {
        let ships = self.storage.ships().await?;
        let Some(horizon) = ships
            .iter()
            .filter(|s| s.decommissioned_at_ms.is_none())
            .map(|s| s.applied_csn)
            .min()
        else {
            return Ok(0);
        };
        let _w = self.writer.lock().await;
        let n = self.storage.collect_tombstones(horizon).await?;
        if n > 0 {
            tracing::info!(
                collected = n,
                up_to_csn = horizon,
                "tombstones every ship applied collected"
            );
        }
        Ok(n)
    }

    /// Decommissions a ship: it stays in the registry but no longer holds the collection of
    /// tombstones back. Errors: `NotFound` for a ship never heard from.
    pub async fn decommission(&self, ship: &ShipId) -> Result<ShipRecord> {
        let _w = self.writer.lock().await;
        let r = self.storage.decommission_ship(ship, Some(self.now())).await?;
        tracing::warn!(ship = %ship, "ship decommissioned: it no longer holds tombstones back");
        Ok(r)
    }

    /// Puts a decommissioned ship in service again. If tombstones it never applied were
    /// collected meanwhile, its next resync is a full one. Errors: `NotFound`.
    pub async fn readmit(&self, ship: &ShipId) -> Result<ShipRecord> {
        let _w = self.writer.lock().await;
        let r = self.storage.decommission_ship(ship, None).await?;
        tracing::info!(ship = %ship, "ship in service again");
        Ok(r)
    }

    /// Committed messages not yet published on `master-updates`, counted up to 10,000.
    pub async fn unpublished_count(&self) -> Result<u64> {
        Ok(self.storage.unpublished_count(10_000).await?)
    }

    /// A page of the master's state for a replica's resync: the documents and tombstones
    /// changed above `after`, ordered by content type then id, from after `from`, at most
    /// `limit` (1 to [`MAX_SNAPSHOT_PAGE`]); sensitive fields never leave the master. With
    /// `ship`, the last seq the master applied from it. `at` is read before the page: a
    /// replica keeps the `at` of its first page, applies every page, then reads
    /// `master-updates` on from `at.next_offset` with `at.csn` as its applied CSN; commits it
    /// then reads again over a newer page converge to the same state.
    pub async fn snapshot(
        &self,
        after: Csn,
        from: Option<(ContentType, DocumentId)>,
        limit: u64,
        ship: Option<&offline_sync_model::ShipId>,
    ) -> Result<Snapshot> {
        if !(1..=MAX_SNAPSHOT_PAGE).contains(&limit) {
            return Err(Error::Invalid {
                reason: format!("a snapshot page holds 1 to {MAX_SNAPSHOT_PAGE} documents, not {limit}"),
            });
        }
        let storage = &self.storage;
        let at = storage.published().await?;
        let collected = storage.tombstones_collected().await?;
        let total = match from {
            None => Some(storage.snapshot_size(after).await?),
            Some(_) => None,
        };
        let mut documents = storage.snapshot(after, from, limit).await?;
        let fetched = documents.len() as u64;
        let mut bytes = 0;
        for (i, d) in documents.iter_mut().enumerate() {
            self.inner.cfg.sensitive.strip(&mut d.fields);
            bytes += serde_json::to_vec(&d.fields).map_or(0, |v| v.len() as u64);
            if bytes > MAX_SNAPSHOT_BYTES && i > 0 {
                // A page stays a size one request carries: the rest comes in the next one.
                documents.truncate(i + 1);
                break;
            }
        }
        let next = (fetched == limit || (documents.len() as u64) < fetched)
            .then(|| documents.last().map(|d| (d.content_type.clone(), d.id)))
            .flatten();
        let record = match ship {
            Some(ship) => storage.ships().await?.into_iter().find(|s| &s.ship == ship),
            None => None,
        };
        let last_seq = record.as_ref().map(|s| s.last_seq);
        let resolved = match total {
            Some(_) => storage.resolved_conflicts(after, MAX_APPLIED_SEQS).await?,
            None => Vec::new(),
        };
        let applied = match (&record, total) {
            (Some(r), Some(_)) => storage.ship_seqs(&r.ship, MAX_APPLIED_SEQS).await?,
            _ => Vec::new(),
        };
        let named: std::collections::BTreeSet<_> =
            applied.iter().filter_map(|a| a.document.clone()).collect();
        let mut touched = Vec::with_capacity(named.len());
        for (ct, id) in named {
            if let Some(mut d) = storage.document(&ct, id).await? {
                self.inner.cfg.sensitive.strip(&mut d.fields);
                touched.push(d);
            }
        }
        Ok(Snapshot {
            at,
            documents,
            next,
            last_seq,
            applied,
            touched,
            resolved,
            total,
            collected,
        })
    }

    /// The last CSN committed.
    pub async fn last_csn(&self) -> Result<Csn> {
        Ok(self.storage.last_csn().await?)
    }

    /// How many conflicts there are, optionally of one status.
    pub async fn count_conflicts(&self, status: Option<ConflictStatus>) -> Result<u64> {
        Ok(self
            .storage
            .count_conflicts(&ConflictFilter::status(status))
            .await?)
    }

    /// What the master reports about itself.
    pub async fn status(&self) -> Result<MasterStatus> {
        let ships = self.ships().await?;
        let open = self.count_conflicts(Some(ConflictStatus::Open)).await?;
        Ok(MasterStatus {
            online: self.is_online(),
            last_csn: self.storage.last_csn().await?,
            open_conflicts: open,
            ships_total: ships.len() as u64,
            ships_online: ships.iter().filter(|s| s.online).count() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use offline_sync_model::{Commit, CommitOp, Hlc, Origin};
    use serde_json::json;

    use super::*;

    #[test]
    fn each_partition_waits_at_least_a_millisecond_unless_the_poll_wait_is_zero() {
        let ms = Duration::from_millis;
        assert_eq!(
            partition_wait(ms(10), 16),
            ms(1),
            "0.625 ms would be sent as no wait at all"
        );
        assert_eq!(partition_wait(ms(1000), 4), ms(250));
        assert_eq!(partition_wait(ms(10), 0), ms(10));
        assert_eq!(partition_wait(Duration::ZERO, 16), Duration::ZERO);
    }

    fn commit(csn: Csn, op: CommitOp, fields: serde_json::Value) -> Commit {
        Commit {
            csn,
            origin: Origin::Master,
            seq: None,
            ct: ContentType::new("api::article.article").unwrap(),
            id: DocumentId::new_v7(),
            op,
            fields: serde_json::from_value(fields).unwrap(),
            hlc: Hlc::default(),
            resolves: None,
            conflict: None,
        }
    }

    #[test]
    fn a_conflicts_base_is_read_back_through_patches_to_the_whole_document() {
        let fields = ["title".to_owned(), "body".to_owned(), "tag".to_owned()];
        let commits = [
            commit(9, CommitOp::Patch, json!({"title": "after the base"})),
            commit(7, CommitOp::Patch, json!({"title": "t7"})),
            commit(5, CommitOp::Patch, json!({"body": "b5", "title": "t5"})),
            commit(2, CommitOp::Put, json!({"title": "t2", "body": "b2", "other": 1})),
        ];
        let base = ConflictBase::of(&fields, 7, &commits);
        assert_eq!(
            serde_json::Value::Object(base.values),
            json!({"title": "t7", "body": "b5"})
        );
        assert!(base.unknown.is_empty(), "tag was absent from the whole document");
        assert!(!base.deleted);

        let pruned = ConflictBase::of(&fields, 7, &commits[..2]);
        assert_eq!(pruned.unknown, vec!["body".to_owned(), "tag".to_owned()]);

        let deleted = ConflictBase::of(&fields, 4, &[commit(4, CommitOp::Delete, json!({}))]);
        assert!(deleted.deleted && deleted.values.is_empty() && deleted.unknown.is_empty());

        let unseen = ConflictBase::of(&fields, 0, &commits);
        assert!(unseen.values.is_empty() && unseen.unknown == fields);
    }
}
