//! The seed's sync endpoints: `status` (both), `push`, `pull`, `queue`, `queue/pending`
//! (replica) and `ships` (master).

use actix_web::{HttpResponse, web};
use offline_sync_engine::OutboxState;
use serde_json::json;

use crate::auth::Role;
use crate::dto::{self, PageQuery};
use crate::error::{ApiError, Result};
use crate::state::{AppState, Node};

fn link(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

pub(crate) async fn status(state: web::Data<AppState>) -> Result<HttpResponse> {
    let body = match state.node()? {
        Node::Master(m) => {
            let s = state.run(async move { m.status().await }).await?;
            json!({
                "mode": "master",
                "shipId": null,
                "link": link(s.online),
                "online": s.online,
                "lastCsn": s.last_csn,
                "openConflicts": s.open_conflicts,
                "shipsTotal": s.ships_total,
                "shipsOnline": s.ships_online,
            })
        }
        Node::Replica(r) => {
            let s = state.run(async move { r.status().await }).await?;
            json!({
                "mode": "replica",
                "shipId": s.ship.as_str(),
                "link": link(s.online),
                "online": s.online,
                "pending": s.pending + s.in_flight,
                "unsent": s.pending,
                "inFlight": s.in_flight,
                "rejected": s.rejected,
                "lastSeq": s.last_seq,
                "appliedCsn": s.applied_csn,
                "oldestUnackedAgeMs": s.oldest_unacked_age_ms,
                "offset": s.offset,
                "resyncRequired": s.resync_required,
            })
        }
    };
    Ok(HttpResponse::Ok().json(dto::data(body)))
}

/// Sends every queued change now instead of waiting for the pusher.
pub(crate) async fn push(state: web::Data<AppState>, role: web::ReqData<Role>) -> Result<HttpResponse> {
    let r = state.replica()?;
    let pushed = state.run(async move { r.push_all().await }).await?;
    state
        .audit(*role, "push", "outbox".into(), json!({ "pushed": pushed }))
        .await;
    Ok(HttpResponse::Ok().json(dto::data(json!({ "pushed": pushed }))))
}

/// Reads and applies what the master has published, now.
pub(crate) async fn pull(state: web::Data<AppState>, role: web::ReqData<Role>) -> Result<HttpResponse> {
    let r = state.replica()?;
    let pulled = state.run(async move { r.pull_all().await }).await?;
    state
        .audit(
            *role,
            "pull",
            "master-updates".into(),
            json!({ "pulled": pulled }),
        )
        .await;
    Ok(HttpResponse::Ok().json(dto::data(json!({ "pulled": pulled }))))
}

fn outbox_state(raw: Option<&str>) -> Result<Option<OutboxState>> {
    Ok(match raw {
        None | Some("all") => None,
        Some("pending") => Some(OutboxState::Pending),
        Some("sent") => Some(OutboxState::Sent),
        Some("acked") => Some(OutboxState::Acked),
        Some("rejected") => Some(OutboxState::Rejected),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status {other:?} is not one of pending, sent, acked, rejected, all"
            )));
        }
    })
}

pub(crate) async fn queue(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let filter = outbox_state(query.status.as_deref())?;
    let page = query.page()?;
    let r = state.replica()?;
    let (rows, total) = state
        .run(async move { r.queue(filter, page.storage()).await })
        .await?;
    let items = rows.into_iter().map(dto::queue_entry).collect();
    Ok(HttpResponse::Ok().json(dto::list(items, page, total)))
}

pub(crate) async fn pending(state: web::Data<AppState>) -> Result<HttpResponse> {
    let r = state.replica()?;
    let s = state.run(async move { r.status().await }).await?;
    Ok(HttpResponse::Ok().json(dto::data(json!({
        "pending": s.pending + s.in_flight,
        "unsent": s.pending,
        "inFlight": s.in_flight,
        "rejected": s.rejected,
        "oldestUnackedAgeMs": s.oldest_unacked_age_ms,
    }))))
}

/// `after`, `from` (`{contentType}/{documentId}`: the page starts after it), `limit`, `ship`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotQuery {
    after: Option<u64>,
    from: Option<String>,
    limit: Option<u64>,
    ship: Option<String>,
}

/// Default documents per snapshot page.
const SNAPSHOT_PAGE: u64 = 500;

pub(crate) async fn snapshot(
    state: web::Data<AppState>,
    query: web::Query<SnapshotQuery>,
) -> Result<HttpResponse> {
    let q = query.into_inner();
    let from = match q.from {
        None => None,
        Some(from) => {
            let (ct, id) = from
                .rsplit_once('/')
                .ok_or_else(|| ApiError::bad_request("from: expected {contentType}/{documentId}"))?;
            Some((
                offline_sync_model::ContentType::new(ct)
                    .map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
                id.parse()
                    .map_err(|e: offline_sync_model::Error| ApiError::bad_request(format!("from: {e}")))?,
            ))
        }
    };
    let ship = q
        .ship
        .map(offline_sync_model::ShipId::new)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("ship: {e}")))?;
    let m = state.master()?;
    let (after, limit) = (q.after.unwrap_or(0), q.limit.unwrap_or(SNAPSHOT_PAGE));
    let s = state
        .run(async move { m.snapshot(after, from, limit, ship.as_ref()).await })
        .await?;
    Ok(HttpResponse::Ok().json(dto::data(dto::snapshot(s))))
}

pub(crate) async fn ships(state: web::Data<AppState>) -> Result<HttpResponse> {
    let m = state.master()?;
    let (ships, last_csn) = state
        .run(async move {
            let ships = m.ships().await?;
            Ok((ships, m.last_csn().await?))
        })
        .await?;
    let items: Vec<_> = ships.into_iter().map(|s| dto::ship(s, last_csn)).collect();
    Ok(HttpResponse::Ok().json(dto::data(items)))
}
