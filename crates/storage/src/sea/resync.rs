//! Replica side: a resync from the master's state, page by page, resumable.

use offline_sync_model::{
    Commit, CommitOp, ContentType, DocumentId, Hlc, Origin, ReplicaDoc, ShipId, Unseen, apply_commit,
    release_conflict, release_marks,
};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseTransaction, EntityTrait};

use super::common::{self, APPLIED_CSN, to_i64, to_u64};
use super::replica::{outbox_resend, renumber, settle, unanswered_up_to};
use crate::entity::resync;
use crate::error::{Error, Result};
use crate::types::{
    OutboxState, Published, ResyncFinished, ResyncPage, ResyncPhase, ResyncStart, ResyncStarted, ResyncState,
    StoredDoc, TopicOffset,
};

/// The one row of the `resync` table.
const ROW: i32 = 1;

fn cursor_text((ct, id): &(ContentType, DocumentId)) -> String {
    format!("{}/{id}", ct.as_str())
}

fn parse_cursor(text: &str) -> Result<(ContentType, DocumentId)> {
    let (ct, id) = text
        .rsplit_once('/')
        .ok_or_else(|| Error::corrupt(format!("resync cursor {text:?}")))?;
    let ct = ContentType::new(ct).map_err(|e| Error::corrupt(e.to_string()))?;
    let id = id
        .parse()
        .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
    Ok((ct, id))
}

fn to_state(row: resync::Model) -> Result<ResyncState> {
    Ok(ResyncState {
        phase: ResyncPhase::parse(&row.phase)
            .ok_or_else(|| Error::corrupt(format!("resync phase {:?}", row.phase)))?,
        full: row.full,
        reason: row.reason,
        after: to_u64(row.after_csn),
        at: match (row.at_csn, row.at_offset) {
            (Some(csn), Some(next_offset)) => Some(Published {
                csn: to_u64(csn),
                next_offset,
            }),
            _ => None,
        },
        last_seq: row.last_seq.map(to_u64),
        cursor: row.cursor.as_deref().map(parse_cursor).transpose()?,
        received: to_u64(row.received),
        total: row.total.map(to_u64),
        bytes: to_u64(row.bytes),
        pages: to_u64(row.pages),
        requested_at_ms: to_u64(row.requested_at_ms),
        started_at_ms: row.started_at_ms.map(to_u64),
        finished_at_ms: row.finished_at_ms.map(to_u64),
    })
}

fn to_row(s: &ResyncState) -> resync::ActiveModel {
    resync::ActiveModel {
        id: Set(ROW),
        phase: Set(s.phase.as_str().to_owned()),
        full: Set(s.full),
        reason: Set(common::clean_text(&s.reason)),
        after_csn: Set(to_i64(s.after)),
        at_csn: Set(s.at.map(|a| to_i64(a.csn))),
        at_offset: Set(s.at.map(|a| a.next_offset)),
        last_seq: Set(s.last_seq.map(to_i64)),
        cursor: Set(s.cursor.as_ref().map(cursor_text)),
        received: Set(to_i64(s.received)),
        total: Set(s.total.map(to_i64)),
        bytes: Set(to_i64(s.bytes)),
        pages: Set(to_i64(s.pages)),
        requested_at_ms: Set(to_i64(s.requested_at_ms)),
        started_at_ms: Set(s.started_at_ms.map(to_i64)),
        finished_at_ms: Set(s.finished_at_ms.map(to_i64)),
    }
}

pub(super) async fn state<C: ConnectionTrait>(c: &C) -> Result<Option<ResyncState>> {
    resync::Entity::find_by_id(ROW)
        .one(c)
        .await?
        .map(to_state)
        .transpose()
}

async fn save<C: ConnectionTrait>(c: &C, s: &ResyncState) -> Result<()> {
    use resync::Column as R;
    let update = [
        R::Phase,
        R::Full,
        R::Reason,
        R::AfterCsn,
        R::AtCsn,
        R::AtOffset,
        R::LastSeq,
        R::Cursor,
        R::Received,
        R::Total,
        R::Bytes,
        R::Pages,
        R::RequestedAtMs,
        R::StartedAtMs,
        R::FinishedAtMs,
    ];
    common::upsert(c, to_row(s), [R::Id], update).await
}

/// The running resync in `phase`, or `Conflict`.
async fn running(txn: &DatabaseTransaction, phase: ResyncPhase) -> Result<ResyncState> {
    match state(txn).await? {
        Some(s) if s.phase == phase => Ok(s),
        other => Err(Error::Conflict {
            reason: format!(
                "no resync is {} (the resync is {})",
                phase.as_str(),
                other.map_or("not asked for", |s| s.phase.as_str())
            ),
        }),
    }
}

pub(super) async fn request(
    txn: &DatabaseTransaction,
    full: bool,
    reason: &str,
    now_ms: u64,
) -> Result<ResyncState> {
    if let Some(s) = state(txn).await?
        && s.active()
        && (s.full || !full)
    {
        return Ok(s);
    }
    let s = ResyncState {
        phase: ResyncPhase::Requested,
        full,
        reason: reason.to_owned(),
        after: if full {
            0
        } else {
            common::counter(txn, APPLIED_CSN).await?
        },
        at: None,
        last_seq: None,
        cursor: None,
        received: 0,
        total: None,
        bytes: 0,
        pages: 0,
        requested_at_ms: now_ms,
        started_at_ms: None,
        finished_at_ms: None,
    };
    save(txn, &s).await?;
    Ok(s)
}

pub(super) async fn start(
    txn: &DatabaseTransaction,
    ship: &ShipId,
    start: &ResyncStart,
    now_ms: u64,
) -> Result<ResyncStarted> {
    let mut s = running(txn, ResyncPhase::Requested).await?;
    let master_last = start.last_seq.unwrap_or(0);
    let mut out = ResyncStarted::default();
    let rows = unanswered_up_to(txn, master_last).await?;
    // A row the master applied under its seq with its very hybrid logical time was answered,
    // and the answer is gone with the topic. Any other row up to the master's last seq was
    // written under a seq the master had used for another change (the database was put back
    // from a backup), or the master no longer tells: it is renumbered and sent again, never
    // taken as answered.
    let applied: std::collections::BTreeMap<_, _> = start.applied.iter().map(|a| (a.seq, a.hlc)).collect();
    let (rows, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| {
        let hlc = Hlc {
            ms: to_u64(r.hlc_ms),
            c: u32::try_from(r.hlc_c).unwrap_or(0),
        };
        applied.get(&to_u64(r.seq)).copied().flatten() == Some(hlc)
    });
    out.renumbered = renumber(txn, &others, master_last, now_ms).await?;
    for (conflict, ct, id) in &start.resolved {
        if let Some(doc) = common::doc::<ReplicaDoc>(txn, ct, *id).await? {
            common::save_doc(txn, &release_conflict(doc, *conflict), now_ms).await?;
        }
    }
    // The master ruled on the answered rows: their documents take the master's state as it
    // is now (the pages bring only what changed above the resync's CSN, and a ruling that
    // kept the master's values changed nothing there); one the master holds no record of (a
    // refused create) goes.
    let touched: std::collections::BTreeMap<_, _> = start
        .touched
        .iter()
        .map(|d| ((d.content_type.clone(), d.id), d))
        .collect();
    let mut docs = std::collections::BTreeMap::new();
    for row in &rows {
        let ct = ContentType::new(row.content_type.clone()).map_err(|e| Error::corrupt(e.to_string()))?;
        let id: DocumentId = row
            .document_id
            .parse()
            .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
        docs.entry((ct, id))
            .or_insert_with(Vec::new)
            .push(to_u64(row.seq));
        out.settled += settle(
            txn,
            to_u64(row.seq),
            true,
            OutboxState::Acked,
            crate::ANSWERED_BEFORE_RESYNC,
            now_ms,
        )
        .await?;
    }
    for ((ct, id), seqs) in docs {
        let Some(mut doc) = common::doc::<ReplicaDoc>(txn, &ct, id).await? else {
            continue;
        };
        for seq in seqs {
            doc = release_marks(doc, seq);
        }
        let doc = match touched.get(&(ct.clone(), id)) {
            Some(d) => apply_commit(Some(doc), &whole(d), ship, &start.sensitive),
            None if doc.is_dirty() => doc,
            None => {
                doc.deleted = true;
                doc.unseen = Unseen::default();
                doc
            }
        };
        common::save_doc(txn, &doc, now_ms).await?;
    }
    out.resent = outbox_resend(txn, master_last + 1).await?;
    s.phase = ResyncPhase::Fetching;
    s.at = Some(start.at);
    s.last_seq = start.last_seq;
    s.total = start.total;
    s.started_at_ms = Some(now_ms);
    save(txn, &s).await?;
    Ok(out)
}

/// A document of the master's state as the master's commit of the whole document.
fn whole(d: &StoredDoc) -> Commit {
    Commit {
        csn: d.version,
        origin: Origin::Master,
        seq: None,
        ct: d.content_type.clone(),
        id: d.id,
        op: if d.deleted {
            CommitOp::Delete
        } else {
            CommitOp::Put
        },
        fields: d.fields.clone(),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    }
}

pub(super) async fn apply_page(
    txn: &DatabaseTransaction,
    ship: &ShipId,
    page: &ResyncPage,
    now_ms: u64,
) -> Result<ResyncState> {
    let mut s = running(txn, ResyncPhase::Fetching).await?;
    // Every document a full resync saves is stamped after its start, so the end can tell the
    // documents the master did not send, whatever this node's clock did meanwhile.
    let started = s.started_at_ms.unwrap_or(now_ms);
    let saved_at = now_ms.max(started + 1);
    for d in &page.documents {
        if page.synced.as_ref().is_some_and(|t| !t.contains(&d.content_type)) {
            continue;
        }
        let local = common::doc::<ReplicaDoc>(txn, &d.content_type, d.id).await?;
        if d.deleted && local.as_ref().is_none_or(|l| l.deleted && !l.is_dirty()) {
            // A tombstone of a document this replica does not hold live: nothing to take in.
            continue;
        }
        let doc = apply_commit(local, &whole(d), ship, &page.sensitive);
        common::save_doc(txn, &doc, saved_at).await?;
    }
    s.received += u64::try_from(page.documents.len()).unwrap_or(u64::MAX);
    s.bytes += page.bytes;
    s.pages += 1;
    if let Some(last) = page
        .next
        .clone()
        .or_else(|| page.documents.last().map(|d| (d.content_type.clone(), d.id)))
    {
        s.cursor = Some(last);
    }
    save(txn, &s).await?;
    Ok(s)
}

pub(super) async fn finish(
    txn: &DatabaseTransaction,
    topic: &str,
    next: i64,
    now_ms: u64,
) -> Result<ResyncFinished> {
    let mut s = running(txn, ResyncPhase::Fetching).await?;
    let at =
        s.at.ok_or_else(|| Error::corrupt("a fetching resync without its point"))?;
    let mut out = ResyncFinished {
        applied_csn: common::counter(txn, APPLIED_CSN).await?.max(at.csn),
        offset: next,
        removed: 0,
    };
    let started = s.started_at_ms.unwrap_or(now_ms);
    let mut gone = Vec::new();
    if s.full {
        // Every document the master holds came in a page: the others it no longer holds
        // (their tombstones were collected).
        gone = common::replica_docs_saved_by(txn, started).await?;
    }
    for mut doc in gone {
        if doc.is_dirty() {
            continue;
        }
        doc.deleted = true;
        doc.unseen = Unseen::default();
        doc.base_version = doc.base_version.max(at.csn);
        common::save_doc(txn, &doc, now_ms.max(started + 1)).await?;
        out.removed += 1;
    }
    common::set_counter(txn, APPLIED_CSN, out.applied_csn).await?;
    common::set_offset(txn, &TopicOffset::new(topic, 0, next)).await?;
    s.phase = ResyncPhase::Done;
    s.finished_at_ms = Some(now_ms);
    save(txn, &s).await?;
    Ok(out)
}
