//! Helpers shared by both roles: counters, documents, offsets, dead letters, row conversion.

use std::collections::BTreeMap;

use offline_sync_model::{ContentType, DocumentId, Fields, Mark, MasterDoc, ReplicaDoc, Stamp, Unseen};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
};
use serde::{Deserialize, Serialize};

use crate::entity::{broadcasts, counters, dead_letters, documents, feed, offsets, outbox};
use crate::error::{Error, Result};
use crate::query::DocumentQuery;
use crate::types::{
    DeadLetter, DeadLetterCounts, DeadLetterStatus, FeedEvent, FeedKind, FeedPage, NewDeadLetter,
    OutboxState, Page, StoredDoc, TopicOffset,
};

/// The master's last CSN.
pub(super) const CSN: &str = "csn";
/// A replica's last seq.
pub(super) const SEQ: &str = "seq";
/// A replica's highest applied CSN.
pub(super) const APPLIED_CSN: &str = "applied_csn";
/// The position up to which the change feed was pruned.
const FEED_PRUNED: &str = "feed_pruned";

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Text from untrusted input made safe to store: control characters (a NUL is refused by
/// PostgreSQL) are escaped and the length is capped.
pub(super) fn clean_text(text: &str) -> String {
    const MAX: usize = 2_000;
    let mut out = String::with_capacity(text.len().min(MAX));
    for c in text.chars() {
        if out.len() >= MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::corrupt(format!("unreadable {what}: {e}")))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> String {
    // Plain data with string keys always serializes.
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) async fn counter<C: ConnectionTrait>(c: &C, name: &str) -> Result<u64> {
    let row = counters::Entity::find_by_id(name.to_owned()).one(c).await?;
    Ok(row.map(|r| to_u64(r.value)).unwrap_or(0))
}

/// Reads counter `name` and, on PostgreSQL, locks its row until the transaction ends
/// (`SELECT … FOR UPDATE`). Every master transaction that commits takes the CSN counter this
/// way first, so writers in two processes on one database are serialised by the database:
/// no CSN is given twice and no document update is lost, whatever the process-level fence
/// does. SQLite has one writer at a time anyway. Every transaction that inserts broadcasts
/// takes it before its first insert, so broadcast ids become visible in id order: the master
/// publishes by position on that ground (`master::published_up_to`).
pub(super) async fn lock_counter<C: ConnectionTrait>(c: &C, name: &str) -> Result<u64> {
    if c.get_database_backend() != sea_orm::DbBackend::Postgres {
        return counter(c, name).await;
    }
    let row = counters::ActiveModel {
        name: Set(name.to_owned()),
        value: Set(0),
    };
    insert_missing(c, row, counters::Column::Name).await?;
    let row = counters::Entity::find_by_id(name.to_owned())
        .lock_exclusive()
        .one(c)
        .await?;
    Ok(row.map(|r| to_u64(r.value)).unwrap_or(0))
}

pub(super) async fn set_counter<C: ConnectionTrait>(c: &C, name: &str, value: u64) -> Result<()> {
    let row = counters::ActiveModel {
        name: Set(name.to_owned()),
        value: Set(to_i64(value)),
    };
    upsert(c, row, [counters::Column::Name], [counters::Column::Value]).await
}

pub(super) async fn set_offset<C: ConnectionTrait>(c: &C, o: &TopicOffset) -> Result<()> {
    use offsets::Column as O;
    let row = offsets::ActiveModel {
        topic: Set(o.topic.clone()),
        partition: Set(i32::try_from(o.partition).unwrap_or(i32::MAX)),
        next_offset: Set(o.next),
    };
    upsert(c, row, [O::Topic, O::Partition], [O::NextOffset]).await
}

/// The columns of the table `A` is a row of.
type ColumnOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Column;

/// Inserts `row`, or, when a row with the same `key` columns is there, sets that row's `update`
/// columns to `row`'s values (`INSERT … ON CONFLICT (key) DO UPDATE`).
pub(super) async fn upsert<C: ConnectionTrait, A: ActiveModelTrait>(
    c: &C,
    row: A,
    key: impl IntoIterator<Item = ColumnOf<A>>,
    update: impl IntoIterator<Item = ColumnOf<A>>,
) -> Result<()> {
    <A::Entity as EntityTrait>::insert(row)
        .on_conflict(OnConflict::columns(key).update_columns(update).to_owned())
        .exec(c)
        .await?;
    Ok(())
}

/// Inserts `row` unless a row with the same `key` column is there, which stays as it is
/// (`INSERT … ON CONFLICT (key) DO NOTHING`).
pub(super) async fn insert_missing<C: ConnectionTrait, A: ActiveModelTrait>(
    c: &C,
    row: A,
    key: ColumnOf<A>,
) -> Result<()> {
    <A::Entity as EntityTrait>::insert(row)
        .on_conflict(OnConflict::column(key).do_nothing().to_owned())
        .exec_without_returning(c)
        .await?;
    Ok(())
}

pub(super) async fn offset<C: ConnectionTrait>(c: &C, topic: &str, partition: u32) -> Result<Option<i64>> {
    let row = offsets::Entity::find_by_id((topic.to_owned(), i32::try_from(partition).unwrap_or(i32::MAX)))
        .one(c)
        .await?;
    Ok(row.map(|r| r.next_offset))
}

pub(super) async fn insert_dead_letters<C: ConnectionTrait>(
    c: &C,
    letters: &[NewDeadLetter],
    now_ms: u64,
) -> Result<()> {
    for l in letters {
        dead_letters::Entity::insert(dead_letters::ActiveModel {
            id: NotSet,
            topic: Set(l.topic.clone()),
            partition: Set(i32::try_from(l.partition).unwrap_or(i32::MAX)),
            offset: Set(l.offset),
            key: Set(l.key.clone()),
            payload: Set(l.payload.clone()),
            reason: Set(clean_text(&l.reason)),
            status: Set(DeadLetterStatus::Pending.as_str().to_owned()),
            created_at_ms: Set(to_i64(now_ms)),
            handled_at_ms: Set(None),
            attempts: Set(0),
            next_retry_at_ms: Set(None),
        })
        .exec(c)
        .await?;
    }
    Ok(())
}

fn to_dead_letter(r: dead_letters::Model) -> Result<DeadLetter> {
    Ok(DeadLetter {
        id: to_u64(r.id),
        status: DeadLetterStatus::parse(&r.status)
            .ok_or_else(|| Error::corrupt(format!("dead letter status {:?}", r.status)))?,
        created_at_ms: to_u64(r.created_at_ms),
        handled_at_ms: r.handled_at_ms.map(to_u64),
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        next_retry_at_ms: r.next_retry_at_ms.map(to_u64),
        letter: NewDeadLetter {
            topic: r.topic,
            partition: u32::try_from(r.partition).unwrap_or(0),
            offset: r.offset,
            key: r.key,
            payload: r.payload,
            reason: r.reason,
        },
    })
}

/// One page of the rows `q` selects, newest (highest `order`) first, each read with `read`,
/// and how many it selects in all.
pub(super) async fn newest_first<C: ConnectionTrait, E: EntityTrait, T>(
    c: &C,
    q: sea_orm::Select<E>,
    order: E::Column,
    page: Page,
    read: impl FnMut(E::Model) -> Result<T>,
) -> Result<(Vec<T>, u64)>
where
    E::Model: Sync,
{
    let total = q.clone().count(c).await?;
    let rows = q
        .order_by_desc(order)
        .offset(page.offset)
        .limit(page.limit)
        .all(c)
        .await?;
    Ok((rows.into_iter().map(read).collect::<Result<_>>()?, total))
}

pub(super) async fn dead_letters<C: ConnectionTrait>(
    c: &C,
    status: Option<DeadLetterStatus>,
    page: Page,
) -> Result<(Vec<DeadLetter>, u64)> {
    let q = dead_letters::Entity::find().apply_if(status, |q, s| {
        q.filter(dead_letters::Column::Status.eq(s.as_str()))
    });
    newest_first(c, q, dead_letters::Column::Id, page, to_dead_letter).await
}

pub(super) async fn dead_letter<C: ConnectionTrait>(c: &C, id: u64) -> Result<Option<DeadLetter>> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    dead_letters::Entity::find_by_id(id)
        .one(c)
        .await?
        .map(to_dead_letter)
        .transpose()
}

pub(super) async fn dead_letter_counts<C: ConnectionTrait>(c: &C) -> Result<DeadLetterCounts> {
    let rows: Vec<(String, i64)> = dead_letters::Entity::find()
        .select_only()
        .column(dead_letters::Column::Status)
        .column_as(dead_letters::Column::Id.count(), "n")
        .group_by(dead_letters::Column::Status)
        .into_tuple()
        .all(c)
        .await?;
    let mut counts = DeadLetterCounts::default();
    for (status, n) in rows {
        let slot = match DeadLetterStatus::parse(&status) {
            Some(DeadLetterStatus::Pending) => &mut counts.pending,
            Some(DeadLetterStatus::Retrying) => &mut counts.retrying,
            Some(DeadLetterStatus::Exhausted) => &mut counts.exhausted,
            Some(DeadLetterStatus::Resolved) => &mut counts.resolved,
            Some(DeadLetterStatus::Discarded) => &mut counts.discarded,
            None => return Err(Error::corrupt(format!("dead letter status {status:?}"))),
        };
        *slot = to_u64(n);
    }
    Ok(counts)
}

/// Moves a dead letter still waiting (pending, retrying or exhausted) to `status` (resolved
/// or discarded); the update only matches a waiting row, so two operators settling the same
/// letter cannot both succeed.
pub(super) async fn settle_dead_letter<C: ConnectionTrait>(
    c: &C,
    id: u64,
    status: DeadLetterStatus,
    now_ms: u64,
) -> Result<DeadLetter> {
    if status.is_open() {
        return Err(Error::Invalid {
            reason: "a dead letter is settled as resolved or discarded".into(),
        });
    }
    let res = dead_letters::Entity::update_many()
        .col_expr(dead_letters::Column::Status, Expr::value(status.as_str()))
        .col_expr(dead_letters::Column::HandledAtMs, Expr::value(to_i64(now_ms)))
        .col_expr(
            dead_letters::Column::NextRetryAtMs,
            Expr::value(Option::<i64>::None),
        )
        .filter(dead_letters::Column::Id.eq(to_i64(id)))
        .filter(dead_letters::Column::Status.is_in(DeadLetterStatus::OPEN))
        .exec(c)
        .await?;
    let letter = dead_letter(c, id).await?.ok_or(Error::NotFound)?;
    if res.rows_affected == 0 {
        return Err(Error::Conflict {
            reason: format!("dead letter {id} is already {}", letter.status.as_str()),
        });
    }
    Ok(letter)
}

/// Dead letters whose automatic retry is due at `now_ms`, oldest first.
pub(super) async fn due_dead_letters<C: ConnectionTrait>(
    c: &C,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<DeadLetter>> {
    use sea_orm::Condition;
    let due = Condition::any()
        .add(dead_letters::Column::Status.eq(DeadLetterStatus::Pending.as_str()))
        .add(
            Condition::all()
                .add(dead_letters::Column::Status.eq(DeadLetterStatus::Retrying.as_str()))
                .add(dead_letters::Column::NextRetryAtMs.lte(to_i64(now_ms))),
        );
    let rows = dead_letters::Entity::find()
        .filter(due)
        .order_by_asc(dead_letters::Column::Id)
        .limit(limit as u64)
        .all(c)
        .await?;
    rows.into_iter().map(to_dead_letter).collect()
}

/// Counts one failed automatic retry of a waiting letter: `retrying` until `next_retry_at_ms`,
/// or `exhausted` when none is left (`None`).
pub(super) async fn dead_letter_failed<C: ConnectionTrait>(
    c: &C,
    id: u64,
    next_retry_at_ms: Option<u64>,
) -> Result<DeadLetter> {
    let status = match next_retry_at_ms {
        Some(_) => DeadLetterStatus::Retrying,
        None => DeadLetterStatus::Exhausted,
    };
    dead_letters::Entity::update_many()
        .col_expr(dead_letters::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            dead_letters::Column::Attempts,
            Expr::col(dead_letters::Column::Attempts).add(1),
        )
        .col_expr(
            dead_letters::Column::NextRetryAtMs,
            Expr::value(next_retry_at_ms.map(to_i64)),
        )
        .filter(dead_letters::Column::Id.eq(to_i64(id)))
        .filter(dead_letters::Column::Status.is_in(DeadLetterStatus::OPEN))
        .exec(c)
        .await?;
    dead_letter(c, id).await?.ok_or(Error::NotFound)
}

/// Per-field versions of a master document, stored in `documents.meta`.
#[derive(Default, Serialize, Deserialize)]
struct MasterMeta {
    #[serde(default)]
    stamps: BTreeMap<String, Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delete_stamp: Option<Stamp>,
}

/// Marks of a replica document, stored in `documents.meta`.
#[derive(Default, Serialize, Deserialize)]
struct ReplicaMeta {
    #[serde(default)]
    marks: BTreeMap<String, Mark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delete_mark: Option<Mark>,
    #[serde(default, skip_serializing_if = "Unseen::is_empty")]
    unseen: Unseen,
}

fn ids(row: &documents::Model) -> Result<(ContentType, DocumentId)> {
    let ct = ContentType::new(row.content_type.clone()).map_err(|e| Error::corrupt(e.to_string()))?;
    let id = row
        .document_id
        .parse()
        .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
    Ok((ct, id))
}

fn feed_event(row: feed::Model) -> Result<FeedEvent> {
    let content_type = ContentType::new(row.content_type).map_err(|e| Error::corrupt(e.to_string()))?;
    let id = row
        .document_id
        .parse()
        .map_err(|e: offline_sync_model::Error| Error::corrupt(e.to_string()))?;
    let kind = FeedKind::parse(&row.kind)
        .ok_or_else(|| Error::corrupt(format!("change feed event {} has kind {:?}", row.seq, row.kind)))?;
    Ok(FeedEvent {
        seq: to_u64(row.seq),
        kind,
        doc: StoredDoc {
            content_type,
            id,
            fields: parse_json("document fields", &row.fields)?,
            deleted: kind == FeedKind::Delete,
            version: to_u64(row.version),
            updated_at_ms: to_u64(row.at_ms),
            created_at_ms: to_u64(row.created_at_ms),
        },
    })
}

pub(super) async fn feed<C: ConnectionTrait>(c: &C, after: u64, limit: usize) -> Result<FeedPage> {
    let rows = feed::Entity::find()
        .filter(feed::Column::Seq.gt(to_i64(after)))
        .order_by_asc(feed::Column::Seq)
        .limit(limit as u64)
        .all(c)
        .await?;
    let events = rows.into_iter().map(feed_event).collect::<Result<Vec<_>>>()?;
    // Read after the rows: a prune that committed in between shows (see `FeedPage::missed`).
    let pruned_through = counter(c, FEED_PRUNED).await?;
    let last = match events.last() {
        Some(e) if events.len() < limit => e.seq,
        _ => {
            let max: Option<Option<i64>> = feed::Entity::find()
                .select_only()
                .column_as(feed::Column::Seq.max(), "max")
                .into_tuple()
                .one(c)
                .await?;
            max.flatten().map(to_u64).unwrap_or(0)
        }
    };
    Ok(FeedPage {
        events,
        pruned_through,
        last: Ord::max(last, pruned_through),
    })
}

/// The counter that holds webhook `hook`'s position: at most 64 characters.
fn webhook_counter(hook: &str) -> Result<String> {
    if hook.chars().count() > 48 {
        return Err(Error::Invalid {
            reason: format!("webhook name {hook:?} is longer than 48 characters"),
        });
    }
    Ok(format!("webhook:{hook}"))
}

pub(super) async fn webhook_position<C: ConnectionTrait>(c: &C, hook: &str) -> Result<Option<u64>> {
    let row = counters::Entity::find_by_id(webhook_counter(hook)?)
        .one(c)
        .await?;
    Ok(row.map(|r| to_u64(r.value)))
}

pub(super) async fn save_webhook_position<C: ConnectionTrait>(
    c: &C,
    hook: &str,
    position: u64,
) -> Result<()> {
    set_counter(c, &webhook_counter(hook)?, position).await
}

/// Deletes the change feed's events applied before `before` (as an integer of the feed's
/// clock), oldest first up to the first one that is not, so the feed only ever loses a
/// prefix (walked in `seq` order, which stops there), and remembers how far it went.
async fn prune_feed<C: ConnectionTrait>(c: &C, before: i64) -> Result<u64> {
    let seq = |older: bool| {
        let q = feed::Entity::find().select_only().column(feed::Column::Seq);
        if older {
            q.order_by_desc(feed::Column::Seq)
        } else {
            q.filter(feed::Column::AtMs.gte(before))
                .order_by_asc(feed::Column::Seq)
        }
    };
    let kept: Option<i64> = seq(false).into_tuple().one(c).await?;
    let through = match kept {
        Some(first_kept) => first_kept - 1,
        None => match seq(true).into_tuple::<i64>().one(c).await? {
            Some(last) => last,
            None => return Ok(0),
        },
    };
    let res = feed::Entity::delete_many()
        .filter(feed::Column::Seq.lte(through))
        .exec(c)
        .await?;
    if to_u64(through) > counter(c, FEED_PRUNED).await? {
        set_counter(c, FEED_PRUNED, to_u64(through)).await?;
    }
    Ok(res.rows_affected)
}

fn stored(row: documents::Model) -> Result<StoredDoc> {
    let (content_type, id) = ids(&row)?;
    Ok(StoredDoc {
        content_type,
        id,
        fields: parse_json("document fields", &row.fields)?,
        deleted: row.deleted,
        version: to_u64(row.version),
        updated_at_ms: to_u64(row.updated_at_ms),
        created_at_ms: to_u64(row.created_at_ms),
    })
}

async fn row<C: ConnectionTrait>(
    c: &C,
    ct: &ContentType,
    id: DocumentId,
) -> Result<Option<documents::Model>> {
    Ok(
        documents::Entity::find_by_id((ct.as_str().to_owned(), id.to_string()))
            .one(c)
            .await?,
    )
}

pub(super) async fn documents<C: ConnectionTrait>(
    c: &C,
    ct: Option<&ContentType>,
    page: Page,
) -> Result<(Vec<StoredDoc>, u64)> {
    let mut q = documents::Entity::find().filter(documents::Column::Deleted.eq(false));
    if let Some(ct) = ct {
        q = q.filter(documents::Column::ContentType.eq(ct.as_str()));
    }
    let total = q.clone().count(c).await?;
    let rows = q
        .order_by_asc(documents::Column::ContentType)
        .order_by_asc(documents::Column::DocumentId)
        .offset(page.offset)
        .limit(page.limit)
        .all(c)
        .await?;
    let docs = rows.into_iter().map(stored).collect::<Result<_>>()?;
    Ok((docs, total))
}

pub(super) async fn find_documents<C: ConnectionTrait>(
    c: &C,
    ct: &ContentType,
    query: &DocumentQuery,
    page: Page,
) -> Result<(Vec<StoredDoc>, u64)> {
    let backend = c.get_database_backend();
    let total = if query.uncounted {
        0
    } else {
        c.query_one_raw(super::query::count(backend, ct, query))
            .await?
            .ok_or_else(|| Error::corrupt("a count of documents returned no row"))?
            .try_get::<i64>("", "n")?
    };
    let rows = documents::Entity::find()
        .from_raw_sql(super::query::rows(backend, ct, query, page.offset, page.limit))
        .all(c)
        .await?;
    let docs = rows.into_iter().map(stored).collect::<Result<_>>()?;
    Ok((docs, to_u64(total)))
}

pub(super) async fn snapshot<C: ConnectionTrait>(
    c: &C,
    after: u64,
    from: Option<(ContentType, DocumentId)>,
    limit: u64,
) -> Result<Vec<StoredDoc>> {
    use documents::Column as D;
    let mut q = documents::Entity::find().filter(D::Version.gt(to_i64(after)));
    if let Some((ct, id)) = from {
        q = q.filter(
            sea_orm::Condition::any().add(D::ContentType.gt(ct.as_str())).add(
                sea_orm::Condition::all()
                    .add(D::ContentType.eq(ct.as_str()))
                    .add(D::DocumentId.gt(id.to_string())),
            ),
        );
    }
    let rows = q
        .order_by_asc(D::ContentType)
        .order_by_asc(D::DocumentId)
        .limit(limit)
        .all(c)
        .await?;
    rows.into_iter().map(stored).collect()
}

/// Rows of one multi-row statement: far below the bound parameters both databases take
/// (SQLite 32,766, PostgreSQL 65,535) for the widest row written so.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// Messages of a batch applied with one set of documents read ahead before it is written and
/// the next round reads (on the master and on replicas): the statements of a round stay few,
/// and what a round holds in memory stays bounded however large `SYNC_BATCH_SIZE` and the
/// documents are. Every round is in the batch's one transaction.
pub(super) const CHANGES_PER_ROUND: usize = 250;

/// Bytes of text in one multi-row statement, beyond which the rows go in another: a few large
/// documents must not make one statement of gigabytes (PostgreSQL refuses a message over 1 GiB).
const BYTES_PER_STATEMENT: usize = 16 << 20;

/// `rows` cut into the groups of one multi-row statement each: at most [`ROWS_PER_STATEMENT`]
/// rows, and [`BYTES_PER_STATEMENT`] bytes by `size` unless one row alone is larger. Order is
/// kept.
pub(super) fn statements<T>(rows: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let n = size(&row);
        match groups.last_mut() {
            Some(g) if g.len() < ROWS_PER_STATEMENT && bytes + n <= BYTES_PER_STATEMENT => {
                bytes += n;
                g.push(row);
            }
            _ => {
                bytes = n;
                groups.push(vec![row]);
            }
        }
    }
    groups
}

/// Inserts or replaces document rows, each key at most once, in multi-row statements.
async fn upsert_many<C: ConnectionTrait>(c: &C, rows: Vec<documents::Model>) -> Result<()> {
    use documents::Column as D;
    for group in statements(rows, |r| r.fields.len() + r.meta.len()) {
        let chunk = group.into_iter().map(|row| documents::ActiveModel {
            content_type: Set(row.content_type),
            document_id: Set(row.document_id),
            fields: Set(row.fields),
            deleted: Set(row.deleted),
            version: Set(row.version),
            meta: Set(row.meta),
            updated_at_ms: Set(row.updated_at_ms),
            created_at_ms: Set(row.created_at_ms),
        });
        documents::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::columns([D::ContentType, D::DocumentId])
                    .update_columns([D::Fields, D::Deleted, D::Version, D::Meta, D::UpdatedAtMs])
                    .to_owned(),
            )
            .exec(c)
            .await?;
    }
    Ok(())
}

/// The row of document `ct`/`id` (its fields, whether it is deleted) at `version`, with what
/// its role keeps beside it (`meta`), saved at `now_ms`.
fn doc_row(
    (ct, id, fields, deleted): (&ContentType, DocumentId, &Fields, bool),
    version: u64,
    meta: String,
    now_ms: u64,
) -> documents::Model {
    documents::Model {
        content_type: ct.as_str().to_owned(),
        document_id: id.to_string(),
        fields: to_json(fields),
        deleted,
        version: to_i64(version),
        meta,
        updated_at_ms: to_i64(now_ms),
        created_at_ms: to_i64(now_ms),
    }
}

/// A document of one type by id: the key of a batch's documents.
pub(super) type DocKey = (ContentType, DocumentId);

/// A document read from its row of `documents`: as users see it, or as one role keeps it.
pub(super) trait ReadDoc: Sized {
    /// Reads it from `row`.
    fn read(row: documents::Model) -> Result<Self>;
}

/// A document of one role, saved as a row of `documents`.
pub(super) trait SavedDoc: ReadDoc + Clone {
    /// Its type and id.
    fn key(&self) -> DocKey;

    /// Its row, saved at `now_ms`.
    fn row(&self, now_ms: u64) -> documents::Model;

    /// What its row holds beside its content: its version and `documents.meta`.
    fn version_and_meta(&self) -> (i64, String);
}

impl ReadDoc for StoredDoc {
    fn read(row: documents::Model) -> Result<Self> {
        stored(row)
    }
}

/// Implements [`ReadDoc`] and [`SavedDoc`] for the document of a role, `$doc`: its version is
/// field `$version`, and its fields `$kept` are kept in `documents.meta` as a `$meta` (named
/// `$what` when it cannot be read).
macro_rules! role_doc {
    ($doc:ident at $version:ident, $meta:ident ($what:literal) { $($kept:ident),* }) => {
        impl ReadDoc for $doc {
            fn read(row: documents::Model) -> Result<Self> {
                let meta: $meta = parse_json($what, &row.meta)?;
                let stored = stored(row)?;
                Ok($doc {
                    content_type: stored.content_type,
                    id: stored.id,
                    fields: stored.fields,
                    deleted: stored.deleted,
                    $version: stored.version,
                    $($kept: meta.$kept,)*
                })
            }
        }

        impl SavedDoc for $doc {
            fn key(&self) -> DocKey {
                (self.content_type.clone(), self.id)
            }

            fn row(&self, now_ms: u64) -> documents::Model {
                let (_, meta) = self.version_and_meta();
                let doc = (&self.content_type, self.id, &self.fields, self.deleted);
                doc_row(doc, self.$version, meta, now_ms)
            }

            fn version_and_meta(&self) -> (i64, String) {
                let meta = $meta {
                    $($kept: self.$kept.clone(),)*
                };
                (to_i64(self.$version), to_json(&meta))
            }
        }
    };
}

role_doc!(MasterDoc at version, MasterMeta("field versions") { stamps, delete_stamp });
role_doc!(ReplicaDoc at base_version, ReplicaMeta("document marks") { marks, delete_mark, unseen });

/// Document `ct`/`id` (a tombstone too), as `D`.
pub(super) async fn doc<D: ReadDoc>(
    c: &impl ConnectionTrait,
    ct: &ContentType,
    id: DocumentId,
) -> Result<Option<D>> {
    row(c, ct, id).await?.map(D::read).transpose()
}

/// The documents of type `ct` among `ids` (tombstones included), in one query per
/// [`ROWS_PER_STATEMENT`] ids.
async fn docs_among<D: ReadDoc>(
    c: &impl ConnectionTrait,
    ct: &ContentType,
    ids: &[DocumentId],
) -> Result<Vec<D>> {
    let mut docs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let rows = documents::Entity::find()
            .filter(documents::Column::ContentType.eq(ct.as_str()))
            .filter(documents::Column::DocumentId.is_in(chunk.iter().map(DocumentId::to_string)))
            .all(c)
            .await?;
        for row in rows {
            docs.push(D::read(row)?);
        }
    }
    Ok(docs)
}

/// Document `ct`/`id` as a batch's read-ahead `docs` holds it, read by `load` (not polled on
/// a hit) and kept the first time.
pub(super) async fn cached<D: Clone>(
    docs: &mut BTreeMap<DocKey, Option<D>>,
    ct: &ContentType,
    id: DocumentId,
    load: impl std::future::Future<Output = Result<Option<D>>>,
) -> Result<Option<D>> {
    let key = (ct.clone(), id);
    if let Some(doc) = docs.get(&key) {
        return Ok(doc.clone());
    }
    let doc = load.await?;
    docs.insert(key, doc.clone());
    Ok(doc)
}

/// The documents a batch touches, as it has left them so far: read ahead in one query per
/// type (or from the database the first time), and the changed ones saved together by
/// [`BatchDocs::flush`]. Later changes of the batch see what earlier ones did through it.
pub(super) struct BatchDocs<D> {
    docs: BTreeMap<DocKey, Option<D>>,
    /// The documents saved since the last flush, each with whether its content (fields,
    /// deletion) may differ from its row.
    changed: BTreeMap<DocKey, bool>,
}

impl<D: SavedDoc> BatchDocs<D> {
    pub(super) fn new() -> Self {
        Self {
            docs: BTreeMap::new(),
            changed: BTreeMap::new(),
        }
    }

    /// Reads the documents of type `ct` among `ids` (knowing those missing are missing).
    pub(super) async fn read_ahead(
        &mut self,
        c: &impl ConnectionTrait,
        ct: &ContentType,
        ids: &[DocumentId],
    ) -> Result<()> {
        for id in ids {
            self.docs.insert((ct.clone(), *id), None);
        }
        for doc in docs_among::<D>(c, ct, ids).await? {
            self.docs.insert(doc.key(), Some(doc));
        }
        Ok(())
    }

    /// Document `ct`/`id` as the batch has left it so far, read from the database the first
    /// time.
    pub(super) async fn get(
        &mut self,
        c: &impl ConnectionTrait,
        ct: &ContentType,
        id: DocumentId,
    ) -> Result<Option<D>> {
        cached(&mut self.docs, ct, id, doc(c, ct, id)).await
    }

    /// Keeps `doc` as the batch leaves it, to be saved by [`BatchDocs::flush`].
    pub(super) fn save(&mut self, doc: D) {
        let key = doc.key();
        self.changed.insert(key.clone(), true);
        self.docs.insert(key, Some(doc));
    }

    /// Keeps `doc` as the batch leaves it, its content (fields, deletion) as the batch last
    /// had it from [`BatchDocs::get`]: only its version and meta need saving, unless an earlier
    /// save of the batch changed its content.
    pub(super) fn save_meta(&mut self, doc: D) {
        let key = doc.key();
        self.changed.entry(key.clone()).or_insert(false);
        self.docs.insert(key, Some(doc));
    }

    /// Saves every document the batch changed since the last flush: those whose content
    /// changed whole, the others' version and meta only.
    pub(super) async fn flush(&mut self, c: &impl ConnectionTrait, now_ms: u64) -> Result<()> {
        let changed = std::mem::take(&mut self.changed);
        let (whole, meta): (Vec<_>, Vec<_>) = changed
            .iter()
            .filter_map(|(key, content)| Some((self.docs.get(key)?.as_ref()?, *content)))
            .partition(|(_, content)| *content);
        save_docs(c, whole.into_iter().map(|(doc, _)| doc), now_ms).await?;
        let metas = meta
            .into_iter()
            .map(|(doc, _)| (doc.key(), doc.version_and_meta()));
        update_meta_many(c, metas.collect(), now_ms).await
    }
}

/// Writes the version and meta of document rows that exist, their content left as it is: one
/// `UPDATE … FROM` a list of values per type and [`statements`] group (a join, where a `CASE`
/// per row would compare every row with every value). Fails, and so undoes the transaction,
/// when a row is missing.
async fn update_meta_many<C: ConnectionTrait>(
    c: &C,
    rows: Vec<(DocKey, (i64, String))>,
    now_ms: u64,
) -> Result<()> {
    let backend = c.get_database_backend();
    let mut by_type: BTreeMap<ContentType, Vec<(String, i64, String)>> = BTreeMap::new();
    for ((ct, id), (version, meta)) in rows {
        by_type
            .entry(ct)
            .or_default()
            .push((id.to_string(), version, meta));
    }
    for (ct, rows) in by_type {
        for group in statements(rows, |(_, _, meta)| meta.len()) {
            let n = group.len();
            let mut values: Vec<sea_orm::Value> = Vec::with_capacity(3 * n + 2);
            let mut param = |v: sea_orm::Value| {
                values.push(v);
                match backend {
                    sea_orm::DbBackend::Postgres => format!("${}", values.len()),
                    _ => "?".to_owned(),
                }
            };
            let mut list = Vec::with_capacity(n);
            for (id, version, meta) in group {
                let (id, version, meta) = (param(id.into()), param(version.into()), param(meta.into()));
                list.push(format!("({id}, CAST({version} AS BIGINT), {meta})"));
            }
            let (at, of) = (param(to_i64(now_ms).into()), param(ct.as_str().into()));
            let sql = format!(
                "WITH v(document_id, version, meta) AS (VALUES {}) \
                 UPDATE documents SET version = v.version, meta = v.meta, updated_at_ms = {at} \
                 FROM v WHERE documents.content_type = {of} AND documents.document_id = v.document_id",
                list.join(", ")
            );
            let res = c
                .execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, values))
                .await?;
            if res.rows_affected() != n as u64 {
                return Err(Error::Internal {
                    context: format!(
                        "saving the versions of {n} documents of {ct} found {} rows",
                        res.rows_affected()
                    ),
                    source: None,
                });
            }
        }
    }
    Ok(())
}

pub(super) async fn save_doc<C: ConnectionTrait>(c: &C, doc: &impl SavedDoc, now_ms: u64) -> Result<()> {
    save_docs(c, [doc], now_ms).await
}

/// Saves documents, each at most once, in multi-row statements.
pub(super) async fn save_docs<'a, C: ConnectionTrait, D: SavedDoc + 'a>(
    c: &C,
    docs: impl IntoIterator<Item = &'a D>,
    now_ms: u64,
) -> Result<()> {
    upsert_many(c, docs.into_iter().map(|doc| doc.row(now_ms)).collect()).await
}

/// A replica's live documents last saved at or before `ms`.
pub(super) async fn replica_docs_saved_by<C: ConnectionTrait>(c: &C, ms: u64) -> Result<Vec<ReplicaDoc>> {
    documents::Entity::find()
        .filter(documents::Column::Deleted.eq(false))
        .filter(documents::Column::UpdatedAtMs.lte(to_i64(ms)))
        .all(c)
        .await?
        .into_iter()
        .map(ReplicaDoc::read)
        .collect()
}

/// How many documents and tombstones have a version above `after`.
pub(super) async fn snapshot_size<C: ConnectionTrait>(c: &C, after: u64) -> Result<u64> {
    Ok(documents::Entity::find()
        .filter(documents::Column::Version.gt(to_i64(after)))
        .count(c)
        .await?)
}

/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;

pub(super) async fn changes_per_minute<C: ConnectionTrait>(c: &C, since_ms: u64) -> Result<Vec<(u64, u64)>> {
    let since = to_i64(since_ms);
    let minute = |col: &str| Expr::cust(format!("{col} / {MINUTE_MS}"));
    let commits: Vec<(i64, i64)> = broadcasts::Entity::find()
        .select_only()
        .column_as(minute("created_at_ms"), "minute")
        .column_as(broadcasts::Column::Id.count(), "n")
        .filter(broadcasts::Column::Csn.is_not_null())
        .filter(broadcasts::Column::CreatedAtMs.gte(since))
        .group_by(minute("created_at_ms"))
        .into_tuple()
        .all(c)
        .await?;
    let writes: Vec<(i64, i64)> = outbox::Entity::find()
        .select_only()
        .column_as(minute("created_at_ms"), "minute")
        .column_as(outbox::Column::Seq.count(), "n")
        .filter(outbox::Column::CreatedAtMs.gte(since))
        .group_by(minute("created_at_ms"))
        .into_tuple()
        .all(c)
        .await?;
    let mut per_minute = BTreeMap::new();
    for (m, n) in commits.into_iter().chain(writes) {
        *per_minute.entry(to_u64(m) * MINUTE_MS as u64).or_insert(0) += to_u64(n);
    }
    Ok(per_minute.into_iter().collect())
}

pub(super) async fn prune<C: ConnectionTrait>(c: &C, before_ms: u64) -> Result<u64> {
    let before = to_i64(before_ms);
    let answered = [OutboxState::Acked.as_str(), OutboxState::Rejected.as_str()];
    let outbox = outbox::Entity::delete_many()
        .filter(outbox::Column::State.is_in(answered))
        .filter(outbox::Column::AckedAtMs.lt(before))
        .exec(c)
        .await?;
    let broadcasts = broadcasts::Entity::delete_many()
        .filter(broadcasts::Column::Id.lte(to_i64(super::master::published_up_to(c).await?)))
        .filter(broadcasts::Column::CreatedAtMs.lt(before))
        .exec(c)
        .await?;
    let handled = [
        DeadLetterStatus::Resolved.as_str(),
        DeadLetterStatus::Discarded.as_str(),
    ];
    let letters = dead_letters::Entity::delete_many()
        .filter(dead_letters::Column::Status.is_in(handled))
        .filter(dead_letters::Column::HandledAtMs.lt(before))
        .exec(c)
        .await?;
    let feed = prune_feed(c, before).await?;
    Ok(outbox.rows_affected + broadcasts.rows_affected + letters.rows_affected + feed)
}

/// Refuses a write made against another version than the document's current one
/// (`current`: whether it is deleted and its version), in the write's transaction.
pub(super) fn check_expected(current: Option<(bool, u64)>, expected: Option<u64>) -> Result<()> {
    let Some(expected) = expected else { return Ok(()) };
    match current {
        None | Some((true, _)) => Err(Error::NotFound),
        Some((false, current)) if current != expected => Err(Error::Stale { expected, current }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_cut_by_rows_and_by_bytes_in_order() {
        let rows: Vec<usize> = (0..1_200).collect();
        let groups = statements(rows, |_| 1);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [500, 500, 200]);
        assert_eq!(groups.concat(), (0..1_200).collect::<Vec<_>>());

        let big = BYTES_PER_STATEMENT / 2;
        let sizes = vec![big, big, 1, big * 3, 1];
        let groups = statements(sizes.clone(), |n| *n);
        assert_eq!(groups, [vec![big, big], vec![1], vec![big * 3], vec![1]]);
        assert!(statements(Vec::<usize>::new(), |n| *n).is_empty());
    }
}
