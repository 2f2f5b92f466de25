//! Request and response bodies, separate from the engine's and storage's types. Names are
//! camelCase, as the seed's clients expect.

use offline_sync_engine::{
    AuditEntry, DeadLetter, DeadLetterStatus, FeedEvent, OutboxEntry, OutboxState, PeerKey, ShipStatus,
    StoredDoc,
};
use offline_sync_model::{Conflict, ConflictStatus, Csn, Fields};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Result};

/// Milliseconds since the epoch as an RFC 3339 UTC timestamp with milliseconds
/// (`2024-01-15T10:30:00.000Z`), the seed's format.
pub(crate) fn timestamp(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Members of `data` that describe a document rather than hold its fields, as a Strapi client
/// sends them back after reading a document: accepted and ignored, never stored.
const SYSTEM_MEMBERS: [&str; 4] = ["id", "createdAt", "updatedAt", "publishedAt"];

/// Body of a document create or update: `{"data":{...fields}}`. In `data`, `documentId`
/// chooses the id of a new document (on update the path names the document and it is
/// ignored), `version` asks for an optimistic check on update (ignored on create), and the
/// [`SYSTEM_MEMBERS`] are ignored; none of them is stored as a field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentBody {
    pub(crate) data: Map<String, Value>,
}

/// What a document body asks for.
#[derive(Debug, PartialEq)]
pub(crate) struct DocumentInput {
    pub(crate) document_id: Option<String>,
    pub(crate) version: Option<Csn>,
    pub(crate) fields: Fields,
}

impl DocumentBody {
    pub(crate) fn into_input(self) -> Result<DocumentInput> {
        let mut fields = self.data;
        let document_id = match fields.remove("documentId") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(ApiError::bad_request("data.documentId must be a string (a UUID)")),
        };
        let version = match fields.remove("version") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| ApiError::bad_request("data.version must be a whole number ≥ 0"))?,
            ),
        };
        for member in SYSTEM_MEMBERS {
            fields.remove(member);
        }
        offline_sync_model::validate_fields(&fields).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(DocumentInput {
            document_id,
            version,
            fields,
        })
    }
}

/// A document as the content API shows it: its fields plus `documentId`, `version`,
/// `createdAt` and `updatedAt`.
pub(crate) fn document(doc: StoredDoc) -> Value {
    let mut out = doc.fields;
    out.insert("documentId".into(), json!(doc.id.to_string()));
    out.insert("version".into(), json!(doc.version));
    out.insert("createdAt".into(), json!(timestamp(doc.created_at_ms)));
    out.insert("updatedAt".into(), json!(timestamp(doc.updated_at_ms)));
    Value::Object(out)
}

/// Strapi's name of the model of content type `uid`: what follows its last `.`
/// (`api::article.article` → `article`), or all of it.
pub(crate) fn model(uid: &str) -> &str {
    uid.rsplit_once('.').map_or(uid, |(_, name)| name)
}

/// A change of the feed as Strapi's webhooks show an entry event: `event`
/// (`entry.create`, `entry.update`, `entry.delete`), `createdAt` (when the node applied it),
/// `model`, `uid` and `entry` (the document after it, as [`document`] shows it; for a delete,
/// its last content). `id` is the event's place in the node's feed.
pub(crate) fn feed_event(e: FeedEvent) -> Value {
    let uid = e.doc.content_type.as_str().to_owned();
    json!({
        "id": e.seq,
        "event": format!("entry.{}", e.kind.as_str()),
        "createdAt": timestamp(e.doc.updated_at_ms),
        "model": model(&uid),
        "uid": uid,
        "entry": document(e.doc),
    })
}

/// `page`/`pageSize` (or Strapi's `pagination[page]`/`pagination[pageSize]`), or Strapi's
/// `pagination[start]`/`pagination[limit]`, and `pagination[withCount]`, of a listing.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    page: Option<u64>,
    #[serde(rename = "pageSize")]
    page_size: Option<u64>,
    #[serde(rename = "pagination[page]")]
    pagination_page: Option<u64>,
    #[serde(rename = "pagination[pageSize]")]
    pagination_page_size: Option<u64>,
    #[serde(rename = "pagination[start]")]
    pagination_start: Option<u64>,
    #[serde(rename = "pagination[limit]")]
    pagination_limit: Option<u64>,
    #[serde(rename = "pagination[withCount]")]
    pagination_with_count: Option<String>,
    /// Every other parameter, for the check that no `pagination[...]` name is unknown.
    #[serde(flatten)]
    others: std::collections::BTreeMap<String, String>,
    /// Status filter of listings that have one.
    pub(crate) status: Option<String>,
    /// Ship filter of the conflict listing.
    pub(crate) ship: Option<String>,
    /// Content type filter of the conflict listing.
    #[serde(rename = "contentType")]
    pub(crate) content_type: Option<String>,
}

/// Refuses a query holding a parameter not in `accepted`, naming it: a filter, sort or field
/// selection a route does not apply must never pass for one that matched everything.
pub(crate) fn only_params(query: &str, accepted: &[&str]) -> Result<()> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    match pairs.iter().find(|(name, _)| !accepted.contains(&name.as_str())) {
        None => Ok(()),
        Some((name, _)) if accepted.is_empty() => Err(ApiError::bad_request(format!(
            "query parameter {name:?} is not supported: this route takes no query parameters"
        ))),
        Some((name, _)) => Err(ApiError::bad_request(format!(
            "query parameter {name:?} is not supported: this route takes {}",
            accepted.join(", ")
        ))),
    }
}

/// Default and largest page size.
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 25;
pub(crate) const MAX_PAGE_SIZE: u64 = 100;
/// Highest page number.
pub(crate) const MAX_PAGE: u64 = 1_000_000;

/// Highest `pagination[start]`: as far as the highest page of the largest pages.
pub(crate) const MAX_START: u64 = MAX_PAGE * MAX_PAGE_SIZE;

/// A resolved page request: which rows, and whether the answer counts them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) window: Window,
    pub(crate) with_count: bool,
}

/// Which rows of a listing a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    /// Page `page` (from 1) of pages of `size`.
    Page { page: u64, size: u64 },
    /// `limit` rows after the first `start`.
    Offset { start: u64, limit: u64 },
}

impl PageQuery {
    /// The rows asked for; every number given must be in range, Strapi's `pagination[...]`
    /// names win over the short ones (by offset too), and `pagination[...]` is by page or by
    /// offset, not both.
    pub(crate) fn page(&self) -> Result<PageRequest> {
        let in_range = |value: Option<u64>, min: u64, max: u64, name: &str| match value {
            Some(v) if v < min || v > max => Err(ApiError::bad_request(format!(
                "{name} must be from {min} to {max}"
            ))),
            _ => Ok(()),
        };
        for page in [self.page, self.pagination_page] {
            in_range(page, 1, MAX_PAGE, "page")?;
        }
        for size in [self.page_size, self.pagination_page_size] {
            in_range(size, 1, MAX_PAGE_SIZE, "pageSize")?;
        }
        in_range(self.pagination_start, 0, MAX_START, "pagination[start]")?;
        in_range(self.pagination_limit, 1, MAX_PAGE_SIZE, "pagination[limit]")?;
        if let Some(unknown) = self.others.keys().find(|k| k.starts_with("pagination")) {
            return Err(ApiError::bad_request(format!(
                "query parameter {unknown:?} is not supported: pagination takes pagination[page], \
                 pagination[pageSize], pagination[start], pagination[limit] and pagination[withCount]"
            )));
        }
        let with_count = match self.pagination_with_count.as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "pagination[withCount] must be true or false, not {other:?}"
                )));
            }
        };
        // As Strapi: pagination[page]/[pageSize] or pagination[start]/[limit], never both; the
        // short page/pageSize only where no pagination[...] name says otherwise.
        let by_page = [self.pagination_page, self.pagination_page_size];
        let by_offset = [self.pagination_start, self.pagination_limit];
        let window = match (
            by_page.iter().any(Option::is_some),
            by_offset.iter().any(Option::is_some),
        ) {
            (true, true) => {
                return Err(ApiError::bad_request(
                    "pagination by page (pagination[page], pagination[pageSize]) or by offset \
                     (pagination[start], pagination[limit]), not both",
                ));
            }
            (false, true) => Window::Offset {
                start: self.pagination_start.unwrap_or(0),
                limit: self.pagination_limit.unwrap_or(DEFAULT_PAGE_SIZE),
            },
            (_, false) => Window::Page {
                page: self.pagination_page.or(self.page).unwrap_or(1),
                size: self
                    .pagination_page_size
                    .or(self.page_size)
                    .unwrap_or(DEFAULT_PAGE_SIZE),
            },
        };
        Ok(PageRequest { window, with_count })
    }

    /// The `status` filter: `default` when none is given, no filter for `all`, else the value
    /// `named` gives the name; a name it does not hold is refused, listing the accepted ones.
    pub(crate) fn status_filter<T: Copy>(
        &self,
        default: Option<T>,
        named: &[(&str, T)],
    ) -> Result<Option<T>> {
        let Some(raw) = self.status.as_deref() else {
            return Ok(default);
        };
        if raw == "all" {
            return Ok(None);
        }
        match named.iter().find(|(name, _)| *name == raw) {
            Some(&(_, value)) => Ok(Some(value)),
            None => {
                let names: Vec<&str> = named.iter().map(|(name, _)| *name).chain(["all"]).collect();
                Err(ApiError::bad_request(format!(
                    "status {raw:?} is not one of {}",
                    names.join(", ")
                )))
            }
        }
    }
}

impl PageRequest {
    /// The rows to read.
    pub(crate) fn storage(self) -> offline_sync_engine::Page {
        match self.window {
            Window::Page { page, size } => offline_sync_engine::Page {
                offset: (page - 1) * size,
                limit: size,
            },
            Window::Offset { start, limit } => offline_sync_engine::Page { offset: start, limit },
        }
    }

    /// Strapi's `{"pagination":{"page","pageSize","pageCount","total"}}` of a request by page,
    /// `{"pagination":{"start","limit","total"}}` of one by offset; without the count when it
    /// was not asked for.
    pub(crate) fn meta(self, total: u64) -> Value {
        let mut pagination = match self.window {
            Window::Page { page, size } => json!({
                "page": page,
                "pageSize": size,
                "pageCount": total.div_ceil(size),
            }),
            Window::Offset { start, limit } => json!({"start": start, "limit": limit}),
        };
        if let Value::Object(p) = &mut pagination {
            if self.with_count {
                p.insert("total".into(), json!(total));
            } else {
                p.remove("pageCount");
            }
        }
        json!({"pagination": pagination})
    }
}

/// A list response: `{"data":[...],"meta":{"pagination":{...}}}`.
pub(crate) fn list(items: Vec<Value>, page: PageRequest, total: u64) -> Value {
    json!({"data": items, "meta": page.meta(total)})
}

/// The names of the `status` filter of the conflict listing (`all` aside).
pub(crate) const CONFLICT_STATUSES: &[(&str, ConflictStatus)] = &[
    ("open", ConflictStatus::Open),
    ("resolved", ConflictStatus::Resolved),
];

/// A conflict, with the seed's names (`conflictType`, `shipData`, `masterData`, `contentId`)
/// beside ours.
pub(crate) fn conflict(c: Conflict) -> Value {
    let d = c.draft;
    json!({
        "id": c.id,
        "contentType": c.content_type.as_str(),
        "documentId": c.document_id.to_string(),
        "contentId": c.document_id.to_string(),
        "shipId": d.ship.as_str(),
        "shipSeq": d.ship_seq,
        "conflictType": d.kind.as_str(),
        "fields": d.fields,
        "shipData": d.ship_values,
        "masterData": d.master_values,
        "shipDeleted": d.ship_deleted,
        "masterDeleted": d.master_deleted,
        "shipVersion": d.base_version,
        "fieldBases": d.field_bases,
        "masterVersion": d.master_version,
        "status": match c.status {
            offline_sync_model::ConflictStatus::Open => "open",
            offline_sync_model::ConflictStatus::Resolved => "resolved",
        },
        "resolutionStrategy": c.resolution.as_ref().map(|s| s.as_str()),
        "resolvedCsn": c.resolved_csn,
        "resolvedAt": (c.status == offline_sync_model::ConflictStatus::Resolved).then(|| timestamp(c.updated_at_ms)),
        "createdAt": timestamp(c.created_at_ms),
        "updatedAt": timestamp(c.updated_at_ms),
    })
}

/// A conflict with what its fields held at the ship's base version (`baseData`; fields
/// whose base is no longer known are listed in `baseUnknown`).
pub(crate) fn conflict_with_base(c: Conflict, base: offline_sync_engine::ConflictBase) -> Value {
    let mut out = conflict(c);
    out["baseData"] = json!(base.values);
    out["baseUnknown"] = json!(base.unknown);
    out["baseDeleted"] = json!(base.deleted);
    out
}

/// What resolving a conflict would leave: `{"deleted", "document", "revision"}`.
pub(crate) fn preview(doc: offline_sync_model::MasterDoc, revision: String) -> Value {
    json!({
        "deleted": doc.deleted,
        "revision": revision,
        "document": if doc.deleted { Value::Null } else { Value::Object(doc.fields) },
    })
}

/// Body of `POST /conflicts/{id}/resolve`, the seed's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveBody {
    strategy: String,
    #[serde(rename = "mergeData")]
    merge_data: Option<Fields>,
    /// A preview's revision: resolve only while nothing changed since (409 otherwise).
    pub(crate) revision: Option<String>,
}

impl ResolveBody {
    pub(crate) fn strategy(self) -> Result<offline_sync_model::Strategy> {
        use offline_sync_model::Strategy;
        match (self.strategy.as_str(), self.merge_data) {
            ("keep-ship", None) => Ok(Strategy::KeepShip),
            ("keep-master", None) => Ok(Strategy::KeepMaster),
            ("merge", Some(merge_data)) => Ok(Strategy::Merge { merge_data }),
            ("merge", None) => Err(ApiError::bad_request(
                "mergeData is required with the merge strategy",
            )),
            ("keep-ship" | "keep-master", Some(_)) => Err(ApiError::bad_request(
                "mergeData is only accepted with the merge strategy",
            )),
            (other, _) => Err(ApiError::bad_request(format!(
                "strategy {other:?} is not one of keep-ship, keep-master, merge"
            ))),
        }
    }
}

/// A JSON answer, gzip-compressed when the client accepts it (resync pages go over costly
/// links; JSON documents shrink several times).
pub(crate) fn compressed(req: &actix_web::HttpRequest, json: Vec<u8>) -> actix_web::HttpResponse {
    let mut resp = actix_web::HttpResponse::Ok();
    resp.content_type("application/json")
        .insert_header((actix_web::http::header::VARY, "Accept-Encoding"));
    if accepts_gzip(req) {
        return resp
            .insert_header((actix_web::http::header::CONTENT_ENCODING, "gzip"))
            .body(offline_sync_engine::snapshot::gzip(&json));
    }
    resp.body(json)
}

/// Whether the client takes gzip (`Accept-Encoding`, not refused with `q=0`).
pub(crate) fn accepts_gzip(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.trim().split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                matches!(
                    p.trim().replace(' ', "").as_str(),
                    "q=0" | "q=0.0" | "q=0.00" | "q=0.000"
                )
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// A replica's resync from the master's state: the running one, or the last one.
pub(crate) fn resync(p: &offline_sync_engine::ResyncProgress) -> Value {
    let s = &p.state;
    json!({
        "phase": s.phase.as_str(),
        "full": s.full,
        "reason": s.reason,
        "after": s.after,
        "atCsn": s.at.map(|a| a.csn),
        "offset": s.at.map(|a| a.next_offset),
        "lastSeq": s.last_seq,
        "received": s.received,
        "total": s.total,
        "bytes": s.bytes,
        "pages": s.pages,
        "etaMs": p.eta_ms,
        "requestedAt": timestamp(s.requested_at_ms),
        "startedAt": s.started_at_ms.map(timestamp),
        "finishedAt": s.finished_at_ms.map(timestamp),
    })
}

/// A ship of the master's registry, with its lag behind `last_csn` (`lag_ms`: how long ago
/// the first commit it has not applied was made).
pub(crate) fn ship(s: ShipStatus, last_csn: Csn, lag_ms: Option<u64>) -> Value {
    let r = s.record;
    json!({
        "shipId": r.ship.as_str(),
        "status": if s.online { "online" } else { "offline" },
        "online": s.online,
        "onlineSince": r.online_since_ms.filter(|_| s.online).map(timestamp),
        "lagMs": lag_ms,
        "resync": r.resync,
        "lastSeen": r.last_seen_ms.map(timestamp),
        "lastSeq": r.last_seq,
        "changesApplied": r.changes_applied,
        "pending": r.pending,
        "oldestUnackedMs": r.oldest_unacked_ms,
        "appliedCsn": r.applied_csn,
        "lagCsn": last_csn.saturating_sub(r.applied_csn),
        "registeredAt": timestamp(r.registered_at_ms),
        "changesRefused": r.changes_refused,
        "lastRefusal": r.last_refusal,
        "decommissioned": r.decommissioned_at_ms.is_some(),
        "decommissionedAt": r.decommissioned_at_ms.map(timestamp),
    })
}

/// A node's link to the broker: `since` when it is in its state, and the last error of a
/// background step.
pub(crate) fn link(l: &offline_sync_engine::LinkState) -> Value {
    json!({
        "online": l.online,
        "since": l.since_ms.map(timestamp),
        "lastError": l.last_error.as_ref().map(|e| json!({
            "at": timestamp(e.at_ms),
            "step": e.step,
            "message": e.message,
        })),
    })
}

/// The names of the `status` filter of the outbox listing (`all` aside).
pub(crate) const OUTBOX_STATES: &[(&str, OutboxState)] = &[
    ("pending", OutboxState::Pending),
    ("sent", OutboxState::Sent),
    ("acked", OutboxState::Acked),
    ("rejected", OutboxState::Rejected),
];

/// An outbox row of a replica.
pub(crate) fn queue_entry(e: OutboxEntry) -> Value {
    json!({
        "seq": e.change.seq,
        "contentType": e.change.ct.as_str(),
        "documentId": e.change.id.to_string(),
        "operation": e.change.op.as_str(),
        "status": e.state.as_str(),
        "outcome": e.outcome,
        "baseVersion": e.change.base,
        "fields": e.change.fields,
        "createdAt": timestamp(e.created_at_ms),
        "sentAt": e.sent_at_ms.map(timestamp),
    })
}

/// The names of the `status` filter of the dead letter listing (`all` aside).
pub(crate) const DEAD_LETTER_STATUSES: &[(&str, DeadLetterStatus)] = &[
    ("pending", DeadLetterStatus::Pending),
    ("retrying", DeadLetterStatus::Retrying),
    ("exhausted", DeadLetterStatus::Exhausted),
    ("resolved", DeadLetterStatus::Resolved),
    ("discarded", DeadLetterStatus::Discarded),
];

/// Longest part of a dead letter's payload shown.
const PAYLOAD_SHOWN: usize = 64 * 1024;

/// A dead letter; the payload as (lossy) text, cut at 64 KiB.
pub(crate) fn dead_letter(d: DeadLetter) -> Value {
    let l = d.letter;
    let shown = &l.payload[..l.payload.len().min(PAYLOAD_SHOWN)];
    json!({
        "id": d.id,
        "topic": l.topic,
        "partition": l.partition,
        "offset": l.offset,
        "key": l.key.as_deref().map(String::from_utf8_lossy),
        "payload": String::from_utf8_lossy(shown),
        "payloadBytes": l.payload.len(),
        "reason": l.reason,
        "status": d.status.as_str(),
        "createdAt": timestamp(d.created_at_ms),
        "handledAt": d.handled_at_ms.map(timestamp),
        "attempts": d.attempts,
        "nextRetryAt": d.next_retry_at_ms.map(timestamp),
    })
}

/// A pinned key of a peer.
pub(crate) fn peer_key(k: PeerKey) -> Value {
    json!({
        "signer": k.signer,
        "publicKey": k.key.to_base64(),
        "status": k.status.as_str(),
        "source": k.source.as_str(),
        "firstSeenAt": timestamp(k.first_seen_ms),
        "updatedAt": timestamp(k.updated_at_ms),
    })
}

/// Body of a key approval: optionally the key to pin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ApproveBody {
    pub(crate) public_key: Option<String>,
}

/// An entry of the audit log.
pub(crate) fn audit_entry(a: AuditEntry) -> Value {
    json!({
        "id": a.id,
        "at": timestamp(a.entry.at_ms),
        "role": a.entry.role,
        "action": a.entry.action,
        "target": a.entry.target,
        "detail": a.entry.detail,
    })
}

/// `{"data": value}`.
pub(crate) fn data(value: impl Serialize) -> Value {
    json!({ "data": value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_the_seed_format() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_705_314_600_123), "2024-01-15T10:30:00.123Z");
    }

    #[test]
    fn document_bodies_split_reserved_members() {
        let body: DocumentBody =
            serde_json::from_value(json!({"data": {"title": "T", "version": 3, "documentId": "x"}})).unwrap();
        let input = body.into_input().unwrap();
        assert_eq!(input.version, Some(3));
        assert_eq!(input.document_id.as_deref(), Some("x"));
        assert_eq!(Value::Object(input.fields), json!({"title": "T"}));
        let bad: DocumentBody = serde_json::from_value(json!({"data": {"version": -1}})).unwrap();
        assert!(bad.into_input().is_err());
        let round_trip: DocumentBody =
            serde_json::from_value(json!({"data": {"id": 1, "updatedAt": "x", "title": "T"}})).unwrap();
        assert_eq!(
            Value::Object(round_trip.into_input().unwrap().fields),
            json!({"title": "T"})
        );
        let control: DocumentBody = serde_json::from_value(json!({"data": {"\u{1}": 1}})).unwrap();
        assert!(control.into_input().is_err());
        assert!(serde_json::from_value::<DocumentBody>(json!({"data": {}, "extra": 1})).is_err());
        assert!(serde_json::from_value::<DocumentBody>(json!({"data": []})).is_err());
    }

    #[test]
    fn resolve_bodies_follow_the_seed() {
        let parse = |v: Value| serde_json::from_value::<ResolveBody>(v).unwrap().strategy();
        assert!(parse(json!({"strategy": "keep-ship"})).is_ok());
        assert!(parse(json!({"strategy": "merge", "mergeData": {"a": 1}})).is_ok());
        assert!(parse(json!({"strategy": "merge"})).is_err());
        assert!(parse(json!({"strategy": "keep-master", "mergeData": {}})).is_err());
        assert!(parse(json!({"strategy": "newest"})).is_err());
    }

    #[test]
    fn status_filters_name_the_accepted_values() {
        let query = |status: &str| PageQuery {
            status: Some(status.to_owned()),
            ..PageQuery::default()
        };
        let open = Some(ConflictStatus::Open);
        assert_eq!(
            PageQuery::default().status_filter(open, CONFLICT_STATUSES),
            Ok(open)
        );
        assert_eq!(query("all").status_filter(open, CONFLICT_STATUSES), Ok(None));
        assert_eq!(
            query("sent").status_filter(None, OUTBOX_STATES),
            Ok(Some(OutboxState::Sent))
        );
        fn refused<T>(accepted: &str) -> Result<Option<T>> {
            Err(ApiError::bad_request(format!(
                "status \"x\" is not one of {accepted}"
            )))
        }
        assert_eq!(
            query("x").status_filter(None, CONFLICT_STATUSES),
            refused("open, resolved, all")
        );
        assert_eq!(
            query("x").status_filter(None, DEAD_LETTER_STATUSES),
            refused("pending, retrying, exhausted, resolved, discarded, all")
        );
        assert_eq!(
            query("x").status_filter(None, OUTBOX_STATES),
            refused("pending, sent, acked, rejected, all")
        );
    }

    #[test]
    fn pages_are_bounded() {
        let q: PageQuery = serde_json::from_value(json!({"pagination[page]": 2, "pageSize": 10})).unwrap();
        let p = q.page().unwrap();
        assert_eq!(
            p,
            PageRequest {
                window: Window::Page { page: 2, size: 10 },
                with_count: true
            }
        );
        assert_eq!(p.storage().offset, 10);
        assert_eq!(p.meta(21)["pagination"]["pageCount"], 3);
        let zero: PageQuery = serde_json::from_value(json!({"page": 0})).unwrap();
        assert!(zero.page().is_err());
        let huge: PageQuery = serde_json::from_value(json!({"pageSize": 1000})).unwrap();
        assert!(huge.page().is_err());
        let shadowed: PageQuery =
            serde_json::from_value(json!({"pageSize": 0, "pagination[pageSize]": 5})).unwrap();
        assert!(
            shadowed.page().is_err(),
            "an out-of-range number is refused even when another wins"
        );
    }

    #[test]
    fn strapi_pages_by_offset_with_or_without_the_count() {
        let page = |q: Value| serde_json::from_value::<PageQuery>(q).unwrap().page();
        let p = page(json!({"pagination[start]": 30, "pagination[limit]": 10})).unwrap();
        assert_eq!((p.storage().offset, p.storage().limit), (30, 10));
        assert_eq!(
            p.meta(42),
            json!({"pagination": {"start": 30, "limit": 10, "total": 42}})
        );
        let p = page(json!({"pagination[start]": 5, "pagination[withCount]": "false"})).unwrap();
        assert_eq!((p.storage().offset, p.storage().limit), (5, DEFAULT_PAGE_SIZE));
        assert_eq!(p.meta(42), json!({"pagination": {"start": 5, "limit": 25}}));
        let p = page(json!({"page": 3, "pageSize": 5, "pagination[start]": 7})).unwrap();
        assert_eq!(
            (p.storage().offset, p.storage().limit),
            (7, DEFAULT_PAGE_SIZE),
            "pagination[...] wins over the short names"
        );
        let p = page(json!({"page": 2, "pagination[withCount]": "false"})).unwrap();
        assert_eq!(p.meta(42), json!({"pagination": {"page": 2, "pageSize": 25}}));
        for refused in [
            json!({"pagination[start]": 0, "pagination[page]": 1}),
            json!({"pagination[pageSize]": 5, "pagination[limit]": 5}),
            json!({"pageSize": 0, "pagination[limit]": 5}),
            json!({"pagination[limit]": 0}),
            json!({"pagination[limit]": 101}),
            json!({"pagination[start]": MAX_START + 1}),
            json!({"pagination[withCount]": "yes"}),
            json!({"pagination[offset]": "5"}),
            json!({"pagination[start][0]": "5"}),
        ] {
            assert!(page(refused.clone()).is_err(), "{refused}");
        }
    }
}
