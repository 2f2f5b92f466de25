//! Master side: applying ship batches, local writes, conflicts, broadcasts, the ship registry.

use std::collections::BTreeMap;

use offline_sync_model::{
    Ack, AckOutcome, Change, Commit, CommitOp, Conflict, ConflictDraft, ConflictId, ConflictKind,
    ConflictStatus, ContentType, Csn, DocumentId, Fields, Hlc, LocalWrite, MAX_RESYNC_NOTE, MasterDoc,
    Message, Op, Origin, Policies, Seq, ShipId, Strategy, check_document_size, decide, decode, encode,
    master_write,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::common::{self, BatchDocs, CSN, DocKey, parse_json, to_i64, to_json, to_u64};
use crate::entity::{broadcasts, conflicts, documents, ship_seqs, ships};
use crate::error::{Error, Result};
use crate::types::{
    Broadcast, ConflictFilter, MasterApplied, MasterBatch, Page, Published, ShipRecord, ShipSeq, Unreadable,
};

async fn broadcast<C: ConnectionTrait>(c: &C, msg: &Message, csn: Option<u64>, now_ms: u64) -> Result<()> {
    broadcasts::Entity::insert(broadcast_row(msg, csn, now_ms)?)
        .exec(c)
        .await?;
    Ok(())
}

fn broadcast_row(msg: &Message, csn: Option<u64>, now_ms: u64) -> Result<broadcasts::ActiveModel> {
    let payload = String::from_utf8(encode(msg)).map_err(|e| Error::corrupt(e.to_string()))?;
    Ok(broadcasts::ActiveModel {
        id: NotSet,
        csn: Set(csn.map(to_i64)),
        payload: Set(payload),
        published: Set(false),
        created_at_ms: Set(to_i64(now_ms)),
    })
}

/// What applying one batch reads and writes, kept in memory from its start to its end so the
/// batch costs a handful of statements instead of several round trips per change: the
/// documents and open conflicts its changes touch (read in one query per type), and the
/// documents, broadcasts and ship seqs it writes (in multi-row statements, by [`flush`]).
/// Later changes of the batch see what earlier ones did through it.
///
/// [`flush`]: Batched::flush
struct Batched {
    docs: BatchDocs<MasterDoc>,
    open: BTreeMap<DocKey, Option<Conflict>>,
    broadcasts: Vec<broadcasts::ActiveModel>,
    seqs: Vec<ship_seqs::ActiveModel>,
    now_ms: u64,
}

impl Batched {
    /// Reads the documents `changes` touch, and their open conflicts.
    async fn load<'c, C: ConnectionTrait>(
        c: &C,
        changes: impl IntoIterator<Item = &'c Change>,
        now_ms: u64,
    ) -> Result<Self> {
        let mut by_type: BTreeMap<&ContentType, Vec<DocumentId>> = BTreeMap::new();
        for change in changes {
            by_type.entry(&change.ct).or_default().push(change.id);
        }
        let mut docs = BatchDocs::new();
        let mut open = BTreeMap::new();
        for (ct, mut ids) in by_type {
            ids.sort_unstable();
            ids.dedup();
            for id in &ids {
                open.insert((ct.clone(), *id), None);
            }
            docs.read_ahead(c, ct, &ids).await?;
            for chunk in ids.chunks(common::ROWS_PER_STATEMENT) {
                let rows = conflicts::Entity::find()
                    .filter(conflicts::Column::ContentType.eq(ct.as_str()))
                    .filter(conflicts::Column::DocumentId.is_in(chunk.iter().map(DocumentId::to_string)))
                    .filter(conflicts::Column::Status.eq("open"))
                    .all(c)
                    .await?;
                for row in rows {
                    let conflict = to_conflict(row)?;
                    open.insert(
                        (conflict.content_type.clone(), conflict.document_id),
                        Some(conflict),
                    );
                }
            }
        }
        Ok(Self {
            docs,
            open,
            broadcasts: Vec::new(),
            seqs: Vec::new(),
            now_ms,
        })
    }

    /// Keeps conflict `id`, just saved, as the open conflict about its document.
    async fn reopened<C: ConnectionTrait>(&mut self, c: &C, id: ConflictId) -> Result<()> {
        let conflict = conflict(c, id)
            .await?
            .ok_or_else(|| Error::corrupt(format!("conflict {id} vanished while it was saved")))?;
        self.open.insert(
            (conflict.content_type.clone(), conflict.document_id),
            Some(conflict),
        );
        Ok(())
    }

    /// The open conflict about a document, as the batch has left it so far.
    async fn open_conflict<C: ConnectionTrait>(
        &mut self,
        c: &C,
        ct: &ContentType,
        id: DocumentId,
    ) -> Result<Option<Conflict>> {
        common::cached(&mut self.open, ct, id, open_conflict(c, ct, id)).await
    }

    fn broadcast(&mut self, msg: &Message, csn: Option<u64>) -> Result<()> {
        self.broadcasts.push(broadcast_row(msg, csn, self.now_ms)?);
        Ok(())
    }

    /// Writes what the batch changed: documents, ship seqs, then broadcasts in the order
    /// they were made (their ids, the publishing order, follow the rows of each statement).
    async fn flush<C: ConnectionTrait>(mut self, c: &C) -> Result<()> {
        self.docs.flush(c, self.now_ms).await?;
        for group in common::statements(self.seqs, |_| 0) {
            ship_seqs::Entity::insert_many(group)
                .on_conflict(
                    OnConflict::columns([ship_seqs::Column::ShipId, ship_seqs::Column::Seq])
                        .update_columns([
                            ship_seqs::Column::HlcMs,
                            ship_seqs::Column::HlcC,
                            ship_seqs::Column::ContentType,
                            ship_seqs::Column::DocumentId,
                        ])
                        .to_owned(),
                )
                .exec(c)
                .await?;
        }
        let payload = |b: &broadcasts::ActiveModel| match &b.payload {
            sea_orm::ActiveValue::Set(p) | sea_orm::ActiveValue::Unchanged(p) => p.len(),
            sea_orm::ActiveValue::NotSet => 0,
        };
        for group in common::statements(self.broadcasts, payload) {
            broadcasts::Entity::insert_many(group).exec(c).await?;
        }
        Ok(())
    }
}

/// Ship registry rows touched by one batch, written back once at its end.
struct Registry {
    rows: BTreeMap<ShipId, ships::Model>,
    /// Silence after which a ship heard from again starts a new stay online.
    offline_after_ms: Option<u64>,
}

impl Registry {
    async fn get<C: ConnectionTrait>(
        &mut self,
        c: &C,
        ship: &ShipId,
        now_ms: u64,
    ) -> Result<&mut ships::Model> {
        if !self.rows.contains_key(ship) {
            let row = ships::Entity::find_by_id(ship.as_str().to_owned()).one(c).await?;
            let row = row.unwrap_or_else(|| ships::Model {
                ship_id: ship.as_str().to_owned(),
                last_seq: 0,
                changes_applied: 0,
                last_seen_ms: None,
                pending: 0,
                oldest_unacked_ms: None,
                applied_csn: 0,
                registered_at_ms: to_i64(now_ms),
                changes_refused: 0,
                last_refusal: None,
                decommissioned_at_ms: None,
                online_since_ms: None,
                resync: None,
            });
            self.rows.insert(ship.clone(), row);
        }
        let row = self
            .rows
            .get_mut(ship)
            .ok_or_else(|| Error::corrupt("ship registry cache"))?;
        let silent = match (row.last_seen_ms, self.offline_after_ms) {
            (Some(seen), Some(after)) => now_ms.saturating_sub(to_u64(seen)) >= after,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if silent || row.online_since_ms.is_none() {
            row.online_since_ms = Some(to_i64(now_ms));
        }
        row.last_seen_ms = Some(to_i64(now_ms));
        Ok(row)
    }

    async fn save<C: ConnectionTrait>(self, c: &C) -> Result<()> {
        use ships::Column as S;
        let update = [
            S::LastSeq,
            S::ChangesApplied,
            S::LastSeenMs,
            S::Pending,
            S::OldestUnackedMs,
            S::AppliedCsn,
            S::ChangesRefused,
            S::LastRefusal,
            S::OnlineSinceMs,
            S::Resync,
        ];
        for row in self.rows.into_values() {
            let row = ships::ActiveModel {
                ship_id: Set(row.ship_id),
                last_seq: Set(row.last_seq),
                changes_applied: Set(row.changes_applied),
                last_seen_ms: Set(row.last_seen_ms),
                pending: Set(row.pending),
                oldest_unacked_ms: Set(row.oldest_unacked_ms),
                applied_csn: Set(row.applied_csn),
                registered_at_ms: Set(row.registered_at_ms),
                changes_refused: Set(row.changes_refused),
                last_refusal: Set(row.last_refusal),
                decommissioned_at_ms: Set(row.decommissioned_at_ms),
                online_since_ms: Set(row.online_since_ms),
                resync: Set(row.resync),
            };
            common::upsert(c, row, [S::ShipId], update).await?;
        }
        Ok(())
    }
}

/// Refuses ship change `seq` of `ship`: tells the ship why, then, when the change names its
/// document, commits the master's state of that document again (a `Put` of its fields, or a
/// `Delete` when the master holds none), so the ship, whose marks the refusal releases,
/// converges to it instead of keeping its own values.
async fn refuse(
    txn: &DatabaseTransaction,
    batched: &mut Batched,
    (ship, seq): (&ShipId, Seq),
    target: Option<(&ContentType, DocumentId)>,
    reason: &str,
    csn: &mut u64,
) -> Result<()> {
    let refused = Message::Ack(Ack {
        ship: ship.clone(),
        seq,
        outcome: AckOutcome::Rejected {
            reason: reason.to_owned(),
        },
    });
    batched.broadcast(&refused, None)?;
    let Some((ct, id)) = target else {
        return Ok(());
    };
    let doc = batched.docs.get(txn, ct, id).await?.filter(|d| !d.deleted);
    *csn += 1;
    let restore = Commit {
        csn: *csn,
        origin: Origin::Master,
        seq: None,
        ct: ct.clone(),
        id,
        op: if doc.is_some() {
            CommitOp::Put
        } else {
            CommitOp::Delete
        },
        fields: doc.map(|d| d.fields).unwrap_or_default(),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    };
    batched.broadcast(&Message::Commit(restore), Some(*csn))
}

/// Counts a refused change of the ship in its registry row, with its seq and reason.
fn refused(row: &mut ships::Model, seq: Seq, reason: &str) {
    row.changes_refused += 1;
    row.last_refusal = Some(common::clean_text(&format!("seq {seq}: {reason}")));
}

/// One ship change of a batch, as it is to be answered.
#[derive(Clone, Copy)]
enum Entry<'a> {
    Change(&'a Change),
    Refused(&'a Change, &'a str),
    Unreadable(&'a Unreadable),
}

impl Entry<'_> {
    fn position(&self) -> (&ShipId, Seq) {
        match self {
            Entry::Change(c) | Entry::Refused(c, _) => (&c.ship, c.seq),
            Entry::Unreadable(u) => (&u.ship, u.seq),
        }
    }

    /// The change, when it is one to apply.
    fn change(&self) -> Option<&Change> {
        match self {
            Entry::Change(c) => Some(c),
            _ => None,
        }
    }
}

/// Where a change stands against the seqs already applied from its ship.
enum Order {
    Next,
    Duplicate(u64),
    Gap(u64),
}

fn order(row: &ships::Model, seq: Seq) -> Order {
    let last = to_u64(row.last_seq);
    if seq <= last {
        Order::Duplicate(last)
    } else if seq > last + 1 {
        Order::Gap(last + 1)
    } else {
        Order::Next
    }
}

pub(super) async fn apply(
    txn: &DatabaseTransaction,
    batch: &MasterBatch,
    policies: &Policies,
    now_ms: u64,
) -> Result<MasterApplied> {
    let mut out = MasterApplied::default();
    let mut registry = Registry {
        rows: BTreeMap::new(),
        offline_after_ms: batch.offline_after_ms,
    };
    let mut csn = common::lock_counter(txn, CSN).await?;
    let collected_up_to = collected(txn).await?;
    let ack = |ship: &ShipId, seq: Seq, outcome| {
        Message::Ack(Ack {
            ship: ship.clone(),
            seq,
            outcome,
        })
    };

    // Each ship's changes in seq order, whether they are applied or refused, so that a
    // refused change takes its seq before the next one of its ship is looked at.
    let mut entries: Vec<Entry<'_>> = batch
        .changes
        .iter()
        .map(Entry::Change)
        .chain(batch.rejected.iter().map(|(c, r)| Entry::Refused(c, r)))
        .chain(batch.unreadable.iter().map(Entry::Unreadable))
        .collect();
    entries.sort_by(|a, b| a.position().cmp(&b.position()));

    for round in entries.chunks(common::CHANGES_PER_ROUND) {
        // A round reads what earlier rounds wrote: they are flushed into this transaction.
        let mut batched = Batched::load(txn, round.iter().filter_map(Entry::change), now_ms).await?;
        for &entry in round {
            let (ship, seq) = entry.position();
            let row = registry.get(txn, ship, now_ms).await?;
            match order(row, seq) {
                Order::Duplicate(last_seq) => {
                    out.duplicates += 1;
                    batched.broadcast(&ack(ship, seq, AckOutcome::Duplicate { last_seq }), None)?;
                    continue;
                }
                Order::Gap(expected) => {
                    out.gaps += 1;
                    batched.broadcast(&ack(ship, seq, AckOutcome::Gap { expected }), None)?;
                    continue;
                }
                Order::Next => {}
            }
            row.last_seq = to_i64(seq);
            let (hlc, target) = match entry {
                Entry::Change(c) | Entry::Refused(c, _) => {
                    (Some(c.hlc), Some((c.ct.as_str().to_owned(), c.id.to_string())))
                }
                Entry::Unreadable(u) => (
                    None,
                    u.target
                        .as_ref()
                        .map(|(ct, id)| (ct.as_str().to_owned(), id.to_string())),
                ),
            };
            // Seqs rise within a ship's entries, so no row is written twice in one statement.
            batched.seqs.push(ship_seqs::ActiveModel {
                ship_id: Set(ship.as_str().to_owned()),
                seq: Set(to_i64(seq)),
                hlc_ms: Set(hlc.map(|h| to_i64(h.ms))),
                hlc_c: Set(hlc.map(|h| i32::try_from(h.c).unwrap_or(i32::MAX))),
                content_type: Set(target.as_ref().map(|t| t.0.clone())),
                document_id: Set(target.map(|t| t.1)),
            });
            let change = match entry {
                Entry::Change(change) => change,
                Entry::Refused(change, reason) => {
                    out.rejected += 1;
                    refused(row, seq, reason);
                    let target = Some((&change.ct, change.id));
                    refuse(txn, &mut batched, (ship, seq), target, reason, &mut csn).await?;
                    continue;
                }
                Entry::Unreadable(u) => {
                    out.rejected += 1;
                    refused(row, seq, &u.reason);
                    let target = u.target.as_ref().map(|(ct, id)| (ct, *id));
                    refuse(txn, &mut batched, (ship, seq), target, &u.reason, &mut csn).await?;
                    continue;
                }
            };
            row.changes_applied += 1;
            csn += 1;
            let mut doc = batched.docs.get(txn, &change.ct, change.id).await?;
            // A change to a document the ship had from the master (a base above 0) that the master
            // no longer holds: its tombstone was collected, and the change is decided against it.
            let gone =
                doc.is_none() && change.op != Op::Create && change.base > 0 && change.base <= collected_up_to;
            if gone {
                doc = Some(MasterDoc::collected(
                    change.ct.clone(),
                    change.id,
                    collected_up_to,
                ));
            }
            let open = batched.open_conflict(txn, &change.ct, change.id).await?;
            // Sensitive fields are never taken from a ship: the master keeps its own values.
            let mut change = change.clone();
            batch.sensitive.strip(&mut change.fields);
            if let Some(d) = &doc {
                batch
                    .sensitive
                    .keep_local(&mut change.fields, &d.fields, change.op == Op::Create);
            }
            let change = &change;
            let mut decision = decide(
                doc.as_ref(),
                open.as_ref(),
                change,
                policies.for_type(&change.ct),
                csn,
            );
            if let Some(Err(too_large)) = decision.doc.as_ref().map(|d| check_document_size(&d.fields)) {
                // Merged with what the master holds, the document would outgrow one commit.
                csn -= 1;
                out.rejected += 1;
                let target = Some((&change.ct, change.id));
                let reason = too_large.to_string();
                refused(registry.get(txn, ship, now_ms).await?, seq, &reason);
                refuse(txn, &mut batched, (ship, seq), target, &reason, &mut csn).await?;
                continue;
            }
            if let Some(draft) = &decision.conflict {
                let id = save_conflict(
                    txn,
                    open.as_ref().map(|c| c.id),
                    &change.ct,
                    change.id,
                    draft,
                    now_ms,
                )
                .await?;
                batched.reopened(txn, id).await?;
                if let Some(cref) = decision.commit.conflict.as_mut() {
                    cref.id = id;
                }
                out.conflicts += 1;
            }
            match (&decision.doc, &doc) {
                (Some(d), _) => batched.docs.save(d.clone()),
                // The tombstone comes back while a conflict about it is open (resolving needs it);
                // it is collected again once every ship passed it.
                (None, Some(d)) if gone && decision.conflict.is_some() => batched.docs.save(d.clone()),
                (None, _) => {}
            }
            batched.broadcast(&Message::Commit(decision.commit), Some(csn))?;
            out.committed += 1;
        }
        // Written before the next round reads, and before the heartbeats, which prune ship
        // seqs and add broadcasts of their own.
        batched.flush(txn).await?;
    }

    for hb in &batch.heartbeats {
        let row = registry.get(txn, &hb.ship, now_ms).await?;
        let last = to_u64(row.last_seq);
        if let Some(answered) = hb.answered_seq {
            // The ship has the answers up to there: what the master applied under those seqs
            // is no longer needed to tell them apart.
            ship_seqs::Entity::delete_many()
                .filter(ship_seqs::Column::ShipId.eq(hb.ship.as_str()))
                .filter(ship_seqs::Column::Seq.lte(to_i64(answered.min(last))))
                .exec(txn)
                .await?;
        }
        if hb.sent_seq > last && hb.sent_seq <= hb.last_seq {
            // The ship sent changes before this heartbeat that never arrived: ask for them
            // again from the first one missing.
            let expected = last + 1;
            broadcast(
                txn,
                &ack(&hb.ship, expected, AckOutcome::Gap { expected }),
                None,
                now_ms,
            )
            .await?;
        }
        row.pending = to_i64(hb.pending);
        row.oldest_unacked_ms = hb.oldest_unacked_ms.map(to_i64);
        row.applied_csn = to_i64(hb.applied_csn);
        row.resync = hb
            .resync
            .as_deref()
            .map(|note| common::clean_text(&note.chars().take(MAX_RESYNC_NOTE).collect::<String>()));
    }

    registry.save(txn).await?;
    common::insert_dead_letters(txn, &batch.dead_letters, now_ms).await?;
    for o in &batch.offsets {
        common::set_offset(txn, o).await?;
    }
    common::set_counter(txn, CSN, csn).await?;
    Ok(out)
}

pub(super) async fn local_write(
    txn: &DatabaseTransaction,
    write: &LocalWrite,
    expected: Option<Csn>,
    hlc: Hlc,
    now_ms: u64,
) -> Result<(MasterDoc, Option<Commit>)> {
    let csn = common::lock_counter(txn, CSN).await? + 1;
    let (ct, id) = write.target();
    let doc = common::doc::<MasterDoc>(txn, ct, id).await?;
    common::check_expected(doc.as_ref().map(|d| (d.deleted, d.version)), expected)?;
    let (doc, mut commit) = master_write(doc, write, csn, hlc)?;
    if let Some(commit) = &mut commit {
        common::save_doc(txn, &doc, now_ms).await?;
        if let Some(open) = open_conflict(txn, ct, id).await? {
            commit.resolves = follow_master_write(txn, open, &doc, csn, now_ms).await?;
        }
        broadcast(txn, &Message::Commit(commit.clone()), Some(csn), now_ms).await?;
        common::set_counter(txn, CSN, csn).await?;
    }
    Ok((doc, commit))
}

/// Keeps a document's open conflict true to the master's side after a local master write:
/// held fields show their new master values, a delete makes it an update-delete conflict —
/// or, when the ship's side was a delete too, leaves nothing to decide: the conflict is
/// resolved by this commit (returned, for the commit to carry).
async fn follow_master_write(
    txn: &DatabaseTransaction,
    mut open: Conflict,
    doc: &MasterDoc,
    csn: u64,
    now_ms: u64,
) -> Result<Option<ConflictId>> {
    let d = &mut open.draft;
    if doc.deleted && d.ship_deleted {
        close_conflict(txn, open.id, &Strategy::KeepMaster, csn, now_ms).await?;
        return Ok(Some(open.id));
    }
    if doc.deleted {
        d.kind = ConflictKind::UpdateDelete;
        d.master_deleted = true;
    } else {
        for f in &d.fields {
            match doc.fields.get(f) {
                Some(v) => d.master_values.insert(f.clone(), v.clone()),
                None => d.master_values.remove(f),
            };
        }
    }
    d.master_version = csn;
    save_conflict(
        txn,
        Some(open.id),
        &open.content_type,
        open.document_id,
        &open.draft,
        now_ms,
    )
    .await?;
    Ok(None)
}

pub(super) async fn resolve(
    txn: &DatabaseTransaction,
    id: ConflictId,
    strategy: &Strategy,
    hlc: Hlc,
    now_ms: u64,
) -> Result<(Conflict, Commit)> {
    let csn = common::lock_counter(txn, CSN).await? + 1;
    let mut conflict = conflict(txn, id).await?.ok_or(Error::NotFound)?;
    let doc = common::doc::<MasterDoc>(txn, &conflict.content_type, conflict.document_id)
        .await?
        .ok_or_else(|| Error::corrupt(format!("conflict {id} names a missing document")))?;
    let (doc, commit) = offline_sync_model::resolve(&doc, &conflict, strategy, csn, hlc)?;
    common::save_doc(txn, &doc, now_ms).await?;
    close_conflict(txn, id, strategy, csn, now_ms).await?;
    broadcast(txn, &Message::Commit(commit.clone()), Some(csn), now_ms).await?;
    common::set_counter(txn, CSN, csn).await?;
    conflict.status = ConflictStatus::Resolved;
    conflict.resolution = Some(strategy.clone());
    conflict.resolved_csn = Some(csn);
    conflict.updated_at_ms = now_ms;
    Ok((conflict, commit))
}

/// Marks conflict `id` resolved with `strategy` by the commit at `csn`.
async fn close_conflict<C: ConnectionTrait>(
    c: &C,
    id: ConflictId,
    strategy: &Strategy,
    csn: u64,
    now_ms: u64,
) -> Result<()> {
    conflicts::Entity::update_many()
        .col_expr(conflicts::Column::Status, Expr::value("resolved"))
        .col_expr(conflicts::Column::Strategy, Expr::value(strategy.as_str()))
        .col_expr(conflicts::Column::Resolution, Expr::value(to_json(strategy)))
        .col_expr(conflicts::Column::ResolvedCsn, Expr::value(to_i64(csn)))
        .col_expr(conflicts::Column::UpdatedAtMs, Expr::value(to_i64(now_ms)))
        .filter(conflicts::Column::Id.eq(to_i64(id)))
        .exec(c)
        .await?;
    Ok(())
}

fn to_conflict(row: conflicts::Model) -> Result<Conflict> {
    let corrupt = |e: offline_sync_model::Error| Error::corrupt(e.to_string());
    let status = match row.status.as_str() {
        "open" => ConflictStatus::Open,
        "resolved" => ConflictStatus::Resolved,
        other => return Err(Error::corrupt(format!("conflict status {other:?}"))),
    };
    let resolution: Option<Strategy> = row
        .resolution
        .as_deref()
        .map(|r| parse_json("conflict resolution", r))
        .transpose()?;
    Ok(Conflict {
        id: to_u64(row.id),
        content_type: ContentType::new(row.content_type).map_err(corrupt)?,
        document_id: row.document_id.parse::<DocumentId>().map_err(corrupt)?,
        draft: ConflictDraft {
            kind: ConflictKind::parse(&row.kind).map_err(corrupt)?,
            ship: ShipId::new(row.ship_id).map_err(corrupt)?,
            ship_seq: to_u64(row.ship_seq),
            base_version: to_u64(row.base_version),
            master_version: to_u64(row.master_version),
            fields: parse_json("conflict fields", &row.fields)?,
            ship_values: parse_json::<Fields>("conflict ship values", &row.ship_values)?,
            ship_deleted: row.ship_deleted,
            master_values: parse_json::<Fields>("conflict master values", &row.master_values)?,
            master_deleted: row.master_deleted,
            field_bases: match row.field_bases.as_deref() {
                None => Default::default(),
                Some(bases) => parse_json("conflict field bases", bases)?,
            },
        },
        status,
        resolution,
        resolved_csn: row.resolved_csn.map(to_u64),
        created_at_ms: to_u64(row.created_at_ms),
        updated_at_ms: to_u64(row.updated_at_ms),
    })
}

async fn open_conflict<C: ConnectionTrait>(
    c: &C,
    ct: &ContentType,
    id: DocumentId,
) -> Result<Option<Conflict>> {
    conflicts::Entity::find()
        .filter(conflicts::Column::ContentType.eq(ct.as_str()))
        .filter(conflicts::Column::DocumentId.eq(id.to_string()))
        .filter(conflicts::Column::Status.eq("open"))
        .one(c)
        .await?
        .map(to_conflict)
        .transpose()
}

async fn save_conflict<C: ConnectionTrait>(
    c: &C,
    existing: Option<ConflictId>,
    ct: &ContentType,
    id: DocumentId,
    d: &ConflictDraft,
    now_ms: u64,
) -> Result<ConflictId> {
    let mut am = conflicts::ActiveModel {
        id: existing.map_or(NotSet, |id| Set(to_i64(id))),
        content_type: Set(ct.as_str().to_owned()),
        document_id: Set(id.to_string()),
        kind: Set(d.kind.as_str().to_owned()),
        ship_id: Set(d.ship.as_str().to_owned()),
        ship_seq: Set(to_i64(d.ship_seq)),
        base_version: Set(to_i64(d.base_version)),
        master_version: Set(to_i64(d.master_version)),
        fields: Set(to_json(&d.fields)),
        ship_values: Set(to_json(&d.ship_values)),
        ship_deleted: Set(d.ship_deleted),
        master_values: Set(to_json(&d.master_values)),
        master_deleted: Set(d.master_deleted),
        field_bases: Set((!d.field_bases.is_empty()).then(|| to_json(&d.field_bases))),
        status: Set("open".to_owned()),
        strategy: Set(None),
        resolution: Set(None),
        resolved_csn: Set(None),
        created_at_ms: Set(to_i64(now_ms)),
        updated_at_ms: Set(to_i64(now_ms)),
    };
    match existing {
        Some(existing) => {
            am.created_at_ms = NotSet;
            conflicts::Entity::update(am).exec(c).await?;
            Ok(existing)
        }
        None => Ok(to_u64(
            conflicts::Entity::insert(am).exec(c).await?.last_insert_id,
        )),
    }
}

pub(super) async fn conflict<C: ConnectionTrait>(c: &C, id: ConflictId) -> Result<Option<Conflict>> {
    conflicts::Entity::find_by_id(to_i64(id))
        .one(c)
        .await?
        .map(to_conflict)
        .transpose()
}

/// Conflicts `filter` lets through.
fn filtered(filter: &ConflictFilter) -> Select<conflicts::Entity> {
    let mut q = conflicts::Entity::find();
    match filter.status {
        Some(ConflictStatus::Open) => q = q.filter(conflicts::Column::Status.eq("open")),
        Some(ConflictStatus::Resolved) => q = q.filter(conflicts::Column::Status.eq("resolved")),
        None => {}
    }
    if let Some(ship) = &filter.ship {
        q = q.filter(conflicts::Column::ShipId.eq(ship.as_str()));
    }
    if let Some(ct) = &filter.content_type {
        q = q.filter(conflicts::Column::ContentType.eq(ct.as_str()));
    }
    q
}

pub(super) async fn count_conflicts<C: ConnectionTrait>(c: &C, filter: &ConflictFilter) -> Result<u64> {
    Ok(filtered(filter).count(c).await?)
}

pub(super) async fn conflicts<C: ConnectionTrait>(
    c: &C,
    filter: &ConflictFilter,
    page: Page,
) -> Result<Vec<Conflict>> {
    filtered(filter)
        .order_by_desc(conflicts::Column::Id)
        .offset(page.offset)
        .limit(page.limit)
        .all(c)
        .await?
        .into_iter()
        .map(to_conflict)
        .collect()
}

pub(super) async fn resolved_after<C: ConnectionTrait>(
    c: &C,
    after: Csn,
    limit: u64,
) -> Result<Vec<(ConflictId, ContentType, DocumentId)>> {
    let rows = conflicts::Entity::find()
        .filter(conflicts::Column::ResolvedCsn.gt(to_i64(after)))
        .order_by_asc(conflicts::Column::ResolvedCsn)
        .limit(limit)
        .all(c)
        .await?;
    rows.into_iter()
        .map(|r| {
            let ct = ContentType::new(r.content_type).map_err(|e| Error::corrupt(e.to_string()))?;
            let id = r
                .document_id
                .parse()
                .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
            Ok((to_u64(r.id), ct, id))
        })
        .collect()
}

pub(super) async fn document_commits<C: ConnectionTrait>(
    c: &C,
    ct: &ContentType,
    id: DocumentId,
    up_to: Csn,
    limit: u64,
) -> Result<Vec<Commit>> {
    // A document id is a UUID (hex digits and dashes, nothing LIKE treats specially), so
    // the database narrows the rows to those naming it; the decoded commit decides.
    let rows = broadcasts::Entity::find()
        .filter(broadcasts::Column::Csn.lte(to_i64(up_to)))
        .filter(broadcasts::Column::Payload.like(format!("%{id}%")))
        .order_by_desc(broadcasts::Column::Csn)
        .limit(limit)
        .all(c)
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let msg = decode(row.payload.as_bytes())
            .map_err(|e| Error::corrupt(format!("broadcast {}: {e}", row.id)))?;
        if let Message::Commit(commit) = msg
            && &commit.ct == ct
            && commit.id == id
        {
            out.push(commit);
        }
    }
    Ok(out)
}

pub(super) async fn commit_times<C: ConnectionTrait>(c: &C, csns: &[Csn]) -> Result<BTreeMap<Csn, u64>> {
    if csns.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<(Option<i64>, i64)> = broadcasts::Entity::find()
        .select_only()
        .column(broadcasts::Column::Csn)
        .column(broadcasts::Column::CreatedAtMs)
        .filter(broadcasts::Column::Csn.is_in(csns.iter().map(|&csn| to_i64(csn))))
        .into_tuple()
        .all(c)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(csn, at)| csn.map(|csn| (to_u64(csn), to_u64(at))))
        .collect())
}

/// How far broadcasts were published: every row with an id at or below it was, none above.
///
/// A position, not a flag per row, so publishing writes one counter row instead of every
/// broadcast a second time. It relies on broadcast ids becoming visible in id order: every
/// transaction that inserts broadcasts first locks the CSN counter row
/// ([`common::lock_counter`]) and holds it to its end, and ids are never handed out again
/// (a PostgreSQL sequence, with its default cache of one value: a larger cache would let one
/// session hand out ids below another's; SQLite `AUTOINCREMENT`), so no row can commit below a
/// row already visible and be passed over.
const PUBLISHED_UP_TO: &str = "broadcasts_published";

/// The id of the last broadcast published (0 when none was).
pub(super) async fn published_up_to<C: ConnectionTrait>(c: &C) -> Result<u64> {
    common::counter(c, PUBLISHED_UP_TO).await
}

/// The broadcasts waiting to be published, in id order.
async fn waiting<C: ConnectionTrait>(c: &C) -> Result<Select<broadcasts::Entity>> {
    let after = published_up_to(c).await?;
    Ok(broadcasts::Entity::find()
        .filter(broadcasts::Column::Id.gt(to_i64(after)))
        .order_by_asc(broadcasts::Column::Id))
}

pub(super) async fn unpublished<C: ConnectionTrait>(c: &C, limit: usize) -> Result<Vec<Broadcast>> {
    let rows = waiting(c).await?.limit(limit as u64).all(c).await?;
    Ok(rows
        .into_iter()
        .map(|r| Broadcast {
            id: to_u64(r.id),
            csn: r.csn.map(to_u64),
            payload: r.payload.into_bytes(),
        })
        .collect())
}

/// How many broadcasts wait to be published, counting at most `limit`.
pub(super) async fn unpublished_count<C: ConnectionTrait>(c: &C, limit: u64) -> Result<u64> {
    let waiting = waiting(c)
        .await?
        .select_only()
        .column(broadcasts::Column::Id)
        .limit(limit)
        .into_tuple::<i64>()
        .all(c)
        .await?;
    Ok(waiting.len() as u64)
}

pub(super) async fn mark_published<C: ConnectionTrait>(
    c: &C,
    up_to: u64,
    last: Option<Published>,
) -> Result<()> {
    // Locked (on PostgreSQL) to the end of the transaction: two publishers, as for a moment
    // when a master hands over, cannot both read one position and move it back.
    if up_to > common::lock_counter(c, PUBLISHED_UP_TO).await? {
        common::set_counter(c, PUBLISHED_UP_TO, up_to).await?;
    }
    let stored = (
        common::counter(c, PUBLISHED_CSN).await?,
        common::counter(c, PUBLISHED_NEXT_OFFSET).await?,
    );
    if let Some(last) = last
        && (last.csn, to_u64(last.next_offset)) > stored
    {
        common::set_counter(c, PUBLISHED_CSN, last.csn).await?;
        common::set_counter(c, PUBLISHED_NEXT_OFFSET, to_u64(last.next_offset)).await?;
    }
    Ok(())
}

/// Counters of the last commit published and the offset after its record.
const PUBLISHED_CSN: &str = "published_csn";
const PUBLISHED_NEXT_OFFSET: &str = "published_next_offset";

pub(super) async fn published<C: ConnectionTrait>(c: &C) -> Result<Published> {
    Ok(Published {
        csn: common::counter(c, PUBLISHED_CSN).await?,
        next_offset: to_i64(common::counter(c, PUBLISHED_NEXT_OFFSET).await?),
    })
}

/// How far tombstones were collected: none with a version above it was.
const COLLECTED: &str = "tombstones_collected";

pub(super) async fn collected<C: ConnectionTrait>(c: &C) -> Result<Csn> {
    common::counter(c, COLLECTED).await
}

pub(super) async fn collect_tombstones(txn: &DatabaseTransaction, up_to: Csn) -> Result<u64> {
    if up_to <= collected(txn).await? {
        return Ok(0);
    }
    // A tombstone an open conflict names stays: resolving it needs the document.
    let open = filtered(&ConflictFilter::status(Some(ConflictStatus::Open)))
        .all(txn)
        .await?;
    let mut held = sea_orm::Condition::any();
    for c in &open {
        held = held.add(
            sea_orm::Condition::all()
                .add(documents::Column::ContentType.eq(c.content_type.as_str()))
                .add(documents::Column::DocumentId.eq(c.document_id.as_str())),
        );
    }
    let mut delete = documents::Entity::delete_many()
        .filter(documents::Column::Deleted.eq(true))
        .filter(documents::Column::Version.lte(to_i64(up_to)));
    if !open.is_empty() {
        delete = delete.filter(held.not());
    }
    let res = delete.exec(txn).await?;
    common::set_counter(txn, COLLECTED, up_to).await?;
    Ok(res.rows_affected)
}

pub(super) async fn decommission(
    txn: &DatabaseTransaction,
    ship: &ShipId,
    at_ms: Option<u64>,
) -> Result<ShipRecord> {
    let res = ships::Entity::update_many()
        .col_expr(ships::Column::DecommissionedAtMs, Expr::value(at_ms.map(to_i64)))
        .filter(ships::Column::ShipId.eq(ship.as_str()))
        .exec(txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    ships(txn)
        .await?
        .into_iter()
        .find(|s| &s.ship == ship)
        .ok_or(Error::NotFound)
}

pub(super) async fn ship_seqs<C: ConnectionTrait>(c: &C, ship: &ShipId, limit: u64) -> Result<Vec<ShipSeq>> {
    let rows = ship_seqs::Entity::find()
        .filter(ship_seqs::Column::ShipId.eq(ship.as_str()))
        .order_by_asc(ship_seqs::Column::Seq)
        .limit(limit)
        .all(c)
        .await?;
    rows.into_iter()
        .map(|r| {
            let hlc = match (r.hlc_ms, r.hlc_c) {
                (Some(ms), Some(c)) => Some(Hlc {
                    ms: to_u64(ms),
                    c: u32::try_from(c).unwrap_or(0),
                }),
                _ => None,
            };
            let document = match (r.content_type, r.document_id) {
                (Some(ct), Some(id)) => Some((
                    ContentType::new(ct).map_err(|e| Error::corrupt(e.to_string()))?,
                    id.parse()
                        .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?,
                )),
                _ => None,
            };
            Ok(ShipSeq {
                seq: to_u64(r.seq),
                hlc,
                document,
            })
        })
        .collect()
}

pub(super) async fn ships<C: ConnectionTrait>(c: &C) -> Result<Vec<ShipRecord>> {
    let rows = ships::Entity::find()
        .order_by_asc(ships::Column::ShipId)
        .all(c)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ShipRecord {
                decommissioned_at_ms: r.decommissioned_at_ms.map(to_u64),
                ship: ShipId::new(r.ship_id).map_err(|e| Error::corrupt(e.to_string()))?,
                last_seq: to_u64(r.last_seq),
                changes_applied: to_u64(r.changes_applied),
                last_seen_ms: r.last_seen_ms.map(to_u64),
                pending: to_u64(r.pending),
                oldest_unacked_ms: r.oldest_unacked_ms.map(to_u64),
                applied_csn: to_u64(r.applied_csn),
                registered_at_ms: to_u64(r.registered_at_ms),
                changes_refused: to_u64(r.changes_refused),
                last_refusal: r.last_refusal,
                online_since_ms: r.online_since_ms.map(to_u64),
                resync: r.resync,
            })
        })
        .collect()
}
