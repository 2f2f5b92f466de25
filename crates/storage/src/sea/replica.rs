//! Replica side: local writes with their outbox rows, and the inbox from `master-updates`.

use std::collections::{BTreeMap, BTreeSet};

use offline_sync_model::{
    AckOutcome, Change, Commit, ContentType, DocumentId, Fields, Hlc, LocalWrite, Message, Op, ReplicaDoc,
    Seq, ShipId, Unseen, local_write as decide_local, release_marks, renumber_marks, take_commit,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use super::common::{self, APPLIED_CSN, BatchDocs, SEQ, to_i64, to_u64};
use crate::entity::outbox;
use crate::error::{Error, Result};
use crate::types::{LocalWritten, OutboxEntry, OutboxState, OutboxStats, Page, ReplicaApplied, ReplicaBatch};

pub(super) async fn local_write(
    txn: &DatabaseTransaction,
    ship: &ShipId,
    write: &LocalWrite,
    expected: Option<offline_sync_model::Csn>,
    hlc: Hlc,
    now_ms: u64,
) -> Result<LocalWritten> {
    let (ct, id) = write.target();
    let current = common::doc::<ReplicaDoc>(txn, ct, id).await?;
    common::check_expected(current.as_ref().map(|d| (d.deleted, d.base_version)), expected)?;
    let seq = common::counter(txn, SEQ).await? + 1;
    let (doc, change) = decide_local(current, write, ship, seq, hlc)?;
    common::save_doc(txn, &doc, now_ms).await?;
    let Some(change) = change else {
        return Ok(LocalWritten { doc, seq: None });
    };
    outbox::Entity::insert(outbox::ActiveModel {
        seq: Set(to_i64(seq)),
        content_type: Set(change.ct.as_str().to_owned()),
        document_id: Set(change.id.to_string()),
        op: Set(change.op.as_str().to_owned()),
        fields: Set(common::to_json(&change.fields)),
        base_version: Set(to_i64(change.base)),
        unseen: Set((!change.unseen.is_empty()).then(|| common::to_json(&change.unseen))),
        hlc_ms: Set(to_i64(change.hlc.ms)),
        hlc_c: Set(i32::try_from(change.hlc.c).unwrap_or(i32::MAX)),
        state: Set(OutboxState::Pending.as_str().to_owned()),
        outcome: Set(None),
        created_at_ms: Set(to_i64(now_ms)),
        sent_at_ms: Set(None),
        acked_at_ms: Set(None),
        resent: Set(false),
    })
    .exec(txn)
    .await?;
    common::set_counter(txn, SEQ, seq).await?;
    Ok(LocalWritten { doc, seq: Some(seq) })
}

fn entry(ship: &ShipId, row: outbox::Model) -> Result<OutboxEntry> {
    let op = match row.op.as_str() {
        "create" => Op::Create,
        "update" => Op::Update,
        "delete" => Op::Delete,
        other => return Err(Error::corrupt(format!("outbox op {other:?}"))),
    };
    let state = OutboxState::parse(&row.state)
        .ok_or_else(|| Error::corrupt(format!("outbox state {:?}", row.state)))?;
    let fields: Fields = common::parse_json("outbox fields", &row.fields)?;
    Ok(OutboxEntry {
        change: Change {
            resent: row.resent,
            ship: ship.clone(),
            seq: to_u64(row.seq),
            ct: ContentType::new(row.content_type).map_err(|e| Error::corrupt(e.to_string()))?,
            id: row
                .document_id
                .parse()
                .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?,
            op,
            fields,
            base: to_u64(row.base_version),
            unseen: match &row.unseen {
                Some(json) => common::parse_json("outbox unseen", json)?,
                None => Unseen::default(),
            },
            hlc: Hlc {
                ms: to_u64(row.hlc_ms),
                c: u32::try_from(row.hlc_c).unwrap_or(0),
            },
        },
        state,
        outcome: row.outcome,
        created_at_ms: to_u64(row.created_at_ms),
        sent_at_ms: row.sent_at_ms.map(to_u64),
    })
}

pub(super) async fn outbox_unsent<C: ConnectionTrait>(
    c: &C,
    ship: &ShipId,
    limit: usize,
) -> Result<Vec<OutboxEntry>> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::State.eq(OutboxState::Pending.as_str()))
        .order_by_asc(outbox::Column::Seq)
        .limit(limit as u64)
        .all(c)
        .await?;
    rows.into_iter().map(|r| entry(ship, r)).collect()
}

pub(super) async fn outbox_page<C: ConnectionTrait>(
    c: &C,
    ship: &ShipId,
    state: Option<OutboxState>,
    page: Page,
) -> Result<(Vec<OutboxEntry>, u64)> {
    let q = outbox::Entity::find().apply_if(state, |q, s| q.filter(outbox::Column::State.eq(s.as_str())));
    common::newest_first(c, q, outbox::Column::Seq, page, |r| entry(ship, r)).await
}

pub(super) async fn outbox_mark_sent<C: ConnectionTrait>(
    c: &C,
    from: Seq,
    up_to: Seq,
    now_ms: u64,
) -> Result<()> {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::State, Expr::value(OutboxState::Sent.as_str()))
        .col_expr(outbox::Column::SentAtMs, Expr::value(to_i64(now_ms)))
        .filter(outbox::Column::State.eq(OutboxState::Pending.as_str()))
        .filter(outbox::Column::Seq.gte(to_i64(from)))
        .filter(outbox::Column::Seq.lte(to_i64(up_to)))
        .exec(c)
        .await?;
    Ok(())
}

pub(super) async fn outbox_resend<C: ConnectionTrait>(c: &C, from: Seq) -> Result<u64> {
    let res = outbox::Entity::update_many()
        .col_expr(outbox::Column::State, Expr::value(OutboxState::Pending.as_str()))
        .filter(outbox::Column::State.eq(OutboxState::Sent.as_str()))
        .filter(outbox::Column::Seq.gte(to_i64(from)))
        .exec(c)
        .await?;
    Ok(res.rows_affected)
}

/// How the outcome of a row the master held in a conflict begins.
const CONFLICT_OUTCOME: &str = "conflict #";

pub(super) async fn outbox_stats<C: ConnectionTrait>(c: &C) -> Result<OutboxStats> {
    let count = |state: OutboxState| {
        outbox::Entity::find()
            .filter(outbox::Column::State.eq(state.as_str()))
            .count(c)
    };
    let pending = count(OutboxState::Pending).await?;
    let sent = count(OutboxState::Sent).await?;
    let rejected = count(OutboxState::Rejected).await?;
    let acked = count(OutboxState::Acked).await?;
    let in_conflict = outbox::Entity::find()
        .filter(outbox::Column::State.eq(OutboxState::Acked.as_str()))
        .filter(outbox::Column::Outcome.like(format!("{CONFLICT_OUTCOME}%")))
        .count(c)
        .await?;
    let unacked = [OutboxState::Pending.as_str(), OutboxState::Sent.as_str()];
    let oldest = outbox::Entity::find()
        .filter(outbox::Column::State.is_in(unacked))
        .order_by_asc(outbox::Column::Seq)
        .one(c)
        .await?;
    let first_unsent = outbox::Entity::find()
        .filter(outbox::Column::State.eq(OutboxState::Pending.as_str()))
        .order_by_asc(outbox::Column::Seq)
        .one(c)
        .await?;
    let oldest_sent = outbox::Entity::find()
        .filter(outbox::Column::State.eq(OutboxState::Sent.as_str()))
        .order_by_asc(outbox::Column::SentAtMs)
        .one(c)
        .await?;
    Ok(OutboxStats {
        pending,
        sent,
        rejected,
        acked,
        in_conflict,
        oldest_unacked_at_ms: oldest.as_ref().map(|r| to_u64(r.created_at_ms)),
        oldest_sent_at_ms: oldest_sent.and_then(|r| r.sent_at_ms).map(to_u64),
        first_unacked_seq: oldest.map(|r| to_u64(r.seq)),
        first_unsent_seq: first_unsent.map(|r| to_u64(r.seq)),
        last_seq: common::counter(c, SEQ).await?,
    })
}

/// Marks unanswered rows with seq ≤ `up_to` (with `exact`, only `up_to`) as answered.
pub(super) async fn settle<C: ConnectionTrait>(
    c: &C,
    up_to: Seq,
    exact: bool,
    state: OutboxState,
    outcome: &str,
    now_ms: u64,
) -> Result<u64> {
    let unacked = [OutboxState::Pending.as_str(), OutboxState::Sent.as_str()];
    let seq = if exact {
        outbox::Column::Seq.eq(to_i64(up_to))
    } else {
        outbox::Column::Seq.lte(to_i64(up_to))
    };
    let res = outbox::Entity::update_many()
        .col_expr(outbox::Column::State, Expr::value(state.as_str()))
        .col_expr(outbox::Column::Outcome, Expr::value(common::clean_text(outcome)))
        .col_expr(outbox::Column::AckedAtMs, Expr::value(to_i64(now_ms)))
        .filter(outbox::Column::State.is_in(unacked))
        .filter(seq)
        .exec(c)
        .await?;
    Ok(res.rows_affected)
}

/// Acknowledges each unanswered row of `answers` (its seq and outcome), in one statement per
/// [`common::ROWS_PER_STATEMENT`] rows. A seq named twice keeps its first outcome, as
/// answering the rows one by one would; returns how many rows were answered.
async fn acknowledge_each<C: ConnectionTrait>(c: &C, answers: &[(Seq, String)], now_ms: u64) -> Result<u64> {
    let unacked = [OutboxState::Pending.as_str(), OutboxState::Sent.as_str()];
    let when = |seq: Seq| outbox::Column::Seq.eq(to_i64(seq));
    let mut answered = 0;
    for chunk in answers.chunks(common::ROWS_PER_STATEMENT) {
        let Some(((seq, outcome), rest)) = chunk.split_first() else {
            continue;
        };
        let mut outcomes = Expr::case(when(*seq), Expr::value(common::clean_text(outcome)));
        for (seq, outcome) in rest {
            outcomes = outcomes.case(when(*seq), Expr::value(common::clean_text(outcome)));
        }
        let res = outbox::Entity::update_many()
            .col_expr(outbox::Column::State, Expr::value(OutboxState::Acked.as_str()))
            .col_expr(outbox::Column::Outcome, outcomes.into())
            .col_expr(outbox::Column::AckedAtMs, Expr::value(to_i64(now_ms)))
            .filter(outbox::Column::State.is_in(unacked))
            .filter(outbox::Column::Seq.is_in(chunk.iter().map(|(seq, _)| to_i64(*seq))))
            .exec(c)
            .await?;
        answered += res.rows_affected;
    }
    Ok(answered)
}

pub(super) async fn apply(
    txn: &DatabaseTransaction,
    ship: &ShipId,
    batch: &ReplicaBatch,
    now_ms: u64,
) -> Result<ReplicaApplied> {
    let mut out = ReplicaApplied::default();
    let mut applied_csn = common::counter(txn, APPLIED_CSN).await?;
    for round in batch.messages.chunks(common::CHANGES_PER_ROUND) {
        applied_csn = apply_round(txn, ship, batch, round, applied_csn, &mut out, now_ms).await?;
    }
    if let Some(master_last) = out.restored_below {
        out.renumbered = renumber_after_restore(txn, master_last, now_ms).await?;
    }
    common::insert_dead_letters(txn, &batch.dead_letters, now_ms).await?;
    common::set_counter(txn, APPLIED_CSN, applied_csn).await?;
    common::set_offset(txn, &batch.offset).await?;
    Ok(out)
}

/// Applies one round of a batch from `master-updates` (see [`common::CHANGES_PER_ROUND`]):
/// what it reads is read ahead, and its documents are written at its end, before the next
/// round reads and before a renumbering after a restore, which reads and marks documents
/// itself. Returns the applied CSN after it.
async fn apply_round(
    txn: &DatabaseTransaction,
    ship: &ShipId,
    batch: &ReplicaBatch,
    round: &[Message],
    mut applied_csn: u64,
    out: &mut ReplicaApplied,
    now_ms: u64,
) -> Result<u64> {
    // Renumbering after a restore, the one writer of this counter, comes after the last round.
    let last_seq = common::counter(txn, SEQ).await?;
    let mut known = Known::load(txn, ship, batch, round, applied_csn).await?;
    for msg in round {
        match msg {
            Message::Commit(commit) => {
                if commit.csn <= applied_csn {
                    out.skipped += 1;
                    continue;
                }
                if commit.csn != applied_csn + 1 {
                    // Commits are gapless: one out of sequence is never applied over the gap.
                    return Err(Error::Conflict {
                        reason: format!(
                            "commit {} arrives before commit {}: the replica's applied CSN is {applied_csn}",
                            commit.csn,
                            applied_csn + 1
                        ),
                    });
                }
                if batch
                    .synced
                    .as_ref()
                    .is_some_and(|types| !types.contains(&commit.ct))
                {
                    // An echo of a type synced no longer still answers its row.
                    if let (true, Some(seq)) = (commit.origin.is_ship(ship), commit.seq)
                        && known.wrote(seq, commit, last_seq)
                    {
                        known.answer(seq, format!("applied at csn {}", commit.csn));
                    }
                    applied_csn = commit.csn;
                    out.passed += 1;
                    continue;
                }
                // A commit of this ship's seq is its echo only if this database wrote that
                // change: after a restore from a backup, the seq may name a change the
                // database lost and a new one written since.
                let mut foreign = None;
                if let (true, Some(seq)) = (commit.origin.is_ship(ship), commit.seq)
                    && !known.wrote(seq, commit, last_seq)
                {
                    out.restored_below = out.restored_below.max(Some(seq));
                    foreign = Some(Commit {
                        seq: None,
                        ..commit.clone()
                    });
                }
                let commit = foreign.as_ref().unwrap_or(commit);
                let doc = known.docs.get(txn, &commit.ct, commit.id).await?;
                let taken = take_commit(doc, commit, ship, &batch.sensitive);
                if taken.content_changed {
                    known.docs.save(taken.doc);
                } else {
                    known.docs.save_meta(taken.doc);
                }
                if let (true, Some(seq)) = (commit.origin.is_ship(ship), commit.seq) {
                    let outcome = match &commit.conflict {
                        Some(c) => format!("{CONFLICT_OUTCOME}{} at csn {}", c.id, commit.csn),
                        None => format!("applied at csn {}", commit.csn),
                    };
                    // This row only: every other row gets its own answer, in order, and one
                    // still unanswered below it was written under a seq the master had used
                    // for another change (a restored database), which is renumbered below.
                    known.answer(seq, outcome);
                }
                applied_csn = commit.csn;
                out.commits += 1;
            }
            Message::Ack(ack) if &ack.ship == ship => {
                // What follows reads or changes outbox rows: the answers so far first.
                out.acked += known.write_answers(txn, now_ms).await?;
                match &ack.outcome {
                    AckOutcome::Duplicate {
                        last_seq: master_last,
                    } => {
                        if *master_last > last_seq || unanswered(txn, ack.seq).await? {
                            // The master applied this seq already, but not as this row: its echo
                            // came first on `master-updates` and would have answered it. The
                            // database was restored from a backup and the seq used twice;
                            // acknowledging the row would drop a write the master never saw, so
                            // it is renumbered below.
                            out.restored_below = out.restored_below.max(Some(*master_last));
                        } else {
                            out.acked +=
                                settle(txn, ack.seq, true, OutboxState::Acked, "duplicate", now_ms).await?;
                        }
                    }
                    AckOutcome::Gap { expected } => {
                        out.resend += outbox_resend(txn, *expected).await?;
                    }
                    AckOutcome::Rejected { reason } => {
                        let row = outbox::Entity::find_by_id(to_i64(ack.seq)).one(txn).await?;
                        if let Some(row) = row {
                            let ct = ContentType::new(row.content_type)
                                .map_err(|e| Error::corrupt(e.to_string()))?;
                            let id = row
                                .document_id
                                .parse()
                                .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
                            if let Some(doc) = known.docs.get(txn, &ct, id).await? {
                                known.docs.save(release_marks(doc, ack.seq));
                            }
                        }
                        settle(txn, ack.seq, true, OutboxState::Rejected, reason, now_ms).await?;
                    }
                }
            }
            Message::Ack(_)
            | Message::Change(_)
            | Message::Heartbeat(_)
            | Message::ResyncRequest(_)
            | Message::SnapshotPart(_) => {}
        }
    }
    known.docs.flush(txn, now_ms).await?;
    out.acked += known.write_answers(txn, now_ms).await?;
    Ok(applied_csn)
}

/// What a round of a batch from `master-updates` reads, read once for the round: the documents
/// its commits name, and the hybrid logical times of the outbox rows its echoes name. Documents
/// are kept here as the batch changes them and written once, in multi-row statements, by
/// [`common::BatchDocs::flush`]; the outbox rows' times do not change while a batch is
/// applied. The answers its echoes bring are kept too, and written together by
/// [`Known::write_answers`] before anything else reads or changes outbox rows.
struct Known {
    docs: BatchDocs<ReplicaDoc>,
    times: BTreeMap<Seq, Option<Hlc>>,
    answers: Vec<(Seq, String)>,
}

impl Known {
    /// Reads what the commits of `round` after `applied_csn` name, in one query per content
    /// type and one for the outbox: the documents of the synced types, the outbox rows of
    /// every echo of this ship's changes.
    async fn load(
        txn: &DatabaseTransaction,
        ship: &ShipId,
        batch: &ReplicaBatch,
        round: &[Message],
        applied_csn: u64,
    ) -> Result<Self> {
        let commits = || {
            round.iter().filter_map(|m| match m {
                Message::Commit(c) if c.csn > applied_csn => Some(c),
                _ => None,
            })
        };
        let synced = |c: &&Commit| batch.synced.as_ref().is_none_or(|types| types.contains(&c.ct));
        let mut by_type: BTreeMap<&ContentType, BTreeSet<DocumentId>> = BTreeMap::new();
        for c in commits().filter(synced) {
            by_type.entry(&c.ct).or_default().insert(c.id);
        }
        let mut docs = BatchDocs::new();
        for (ct, ids) in by_type {
            let ids: Vec<DocumentId> = ids.into_iter().collect();
            docs.read_ahead(txn, ct, &ids).await?;
        }
        let seqs: Vec<i64> = commits()
            .filter(|c| c.origin.is_ship(ship))
            .filter_map(|c| c.seq.map(to_i64))
            .collect();
        let mut times = BTreeMap::new();
        for chunk in seqs.chunks(common::ROWS_PER_STATEMENT) {
            let rows: Vec<(i64, i64, i32)> = outbox::Entity::find()
                .select_only()
                .columns([outbox::Column::Seq, outbox::Column::HlcMs, outbox::Column::HlcC])
                .filter(outbox::Column::Seq.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(txn)
                .await?;
            for (seq, ms, c) in rows {
                let hlc = u32::try_from(c).ok().map(|c| Hlc { ms: to_u64(ms), c });
                times.insert(to_u64(seq), hlc);
            }
        }
        Ok(Self {
            docs,
            times,
            answers: Vec::new(),
        })
    }

    /// Whether this database wrote the change the master committed as `commit` (its seq): its
    /// outbox row has the same hybrid logical time. A row pruned since is taken as written
    /// when the seq is not above the last one given out.
    fn wrote(&self, seq: Seq, commit: &Commit, last_seq: Seq) -> bool {
        match self.times.get(&seq) {
            Some(hlc) => *hlc == Some(commit.hlc),
            None => seq <= last_seq,
        }
    }

    /// Keeps the acknowledgement of outbox row `seq` with `outcome`, to be written by
    /// [`Known::write_answers`].
    fn answer(&mut self, seq: Seq, outcome: String) {
        self.answers.push((seq, outcome));
    }

    /// Writes the acknowledgements kept so far; returns how many rows they answered.
    async fn write_answers(&mut self, txn: &DatabaseTransaction, now_ms: u64) -> Result<u64> {
        let answers = std::mem::take(&mut self.answers);
        acknowledge_each(txn, &answers, now_ms).await
    }
}

/// Whether outbox row `seq` exists and is not answered yet.
async fn unanswered(txn: &DatabaseTransaction, seq: Seq) -> Result<bool> {
    let unacked = [OutboxState::Pending.as_str(), OutboxState::Sent.as_str()];
    let n = outbox::Entity::find()
        .filter(outbox::Column::Seq.eq(to_i64(seq)))
        .filter(outbox::Column::State.is_in(unacked))
        .count(txn)
        .await?;
    Ok(n > 0)
}

/// After a restore from a backup: gives the unanswered rows whose seqs the master already used
/// (up to `master_last`) new seqs above both that and this database's own counter, in their
/// order, with their documents' marks, and queues them to be sent; returns how many. They keep
/// their original bases, so the master judges them as written.
async fn renumber_after_restore(txn: &DatabaseTransaction, master_last: Seq, now_ms: u64) -> Result<u64> {
    let rows = unanswered_up_to(txn, master_last).await?;
    renumber(txn, &rows, master_last, now_ms).await
}

/// The unanswered outbox rows with a seq up to `up_to`, in seq order.
pub(super) async fn unanswered_up_to(txn: &DatabaseTransaction, up_to: Seq) -> Result<Vec<outbox::Model>> {
    let unacked = [OutboxState::Pending.as_str(), OutboxState::Sent.as_str()];
    Ok(outbox::Entity::find()
        .filter(outbox::Column::State.is_in(unacked))
        .filter(outbox::Column::Seq.lte(to_i64(up_to)))
        .order_by_asc(outbox::Column::Seq)
        .all(txn)
        .await?)
}

/// Gives outbox `rows` (in seq order) new seqs above both `floor` and this database's own
/// counter, with their documents' marks, and queues them to be sent; returns how many.
pub(super) async fn renumber(
    txn: &DatabaseTransaction,
    rows: &[outbox::Model],
    floor: Seq,
    now_ms: u64,
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut next = common::counter(txn, SEQ).await?.max(floor);
    let mut renumbered = std::collections::BTreeMap::new();
    let mut docs = std::collections::BTreeSet::new();
    for row in rows {
        next += 1;
        renumbered.insert(to_u64(row.seq), next);
        docs.insert((row.content_type.clone(), row.document_id.clone()));
    }
    // The new seqs are above every seq in the table, so no update meets another row.
    for (old, new) in &renumbered {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Seq, Expr::value(to_i64(*new)))
            .col_expr(outbox::Column::State, Expr::value(OutboxState::Pending.as_str()))
            .col_expr(outbox::Column::SentAtMs, Expr::value(Option::<i64>::None))
            .col_expr(outbox::Column::Resent, Expr::value(true))
            .filter(outbox::Column::Seq.eq(to_i64(*old)))
            .exec(txn)
            .await?;
    }
    for (ct, id) in docs {
        let ct = ContentType::new(ct).map_err(|e| Error::corrupt(e.to_string()))?;
        let id: DocumentId = id
            .parse()
            .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
        if let Some(doc) = common::doc::<ReplicaDoc>(txn, &ct, id).await? {
            common::save_doc(txn, &renumber_marks(doc, &renumbered), now_ms).await?;
        }
    }
    common::set_counter(txn, SEQ, next).await?;
    Ok(u64::try_from(renumbered.len()).unwrap_or(u64::MAX))
}
