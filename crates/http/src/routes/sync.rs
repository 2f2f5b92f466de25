//! The seed's sync endpoints: `status` (both), `push`, `pull`, `queue`, `queue/pending`
//! (replica) and `ships` (master).

use actix_web::{HttpResponse, web};
use offline_sync_engine::Replica;
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
            let link_state = m.link_state();
            let s = state.run(async move { m.status().await }).await?;
            json!({
                "mode": "master",
                "shipId": null,
                "link": link(s.online),
                "online": s.online,
                "broker": dto::link(&link_state),
                "lastCsn": s.last_csn,
                "openConflicts": s.open_conflicts,
                "shipsTotal": s.ships_total,
                "shipsOnline": s.ships_online,
            })
        }
        Node::Replica(r) => {
            let link_state = r.link_state();
            let s = state.run(async move { r.status().await }).await?;
            json!({
                "mode": "replica",
                "shipId": s.ship.as_str(),
                "link": link(s.online),
                "online": s.online,
                "broker": dto::link(&link_state),
                "acked": s.acked,
                "inConflict": s.in_conflict,
                "pending": s.pending + s.in_flight,
                "unsent": s.pending,
                "inFlight": s.in_flight,
                "rejected": s.rejected,
                "lastSeq": s.last_seq,
                "appliedCsn": s.applied_csn,
                "oldestUnackedAgeMs": s.oldest_unacked_age_ms,
                "offset": s.offset,
                "resyncRequired": s.resync_required,
                "resync": s.resync.as_ref().map(dto::resync),
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

/// `full`: every document, not only those changed above the applied CSN.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResyncQuery {
    full: Option<bool>,
}

/// Asks for a resync from the master's state; the pull loop runs it, page by page.
pub(crate) async fn resync(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    query: web::Query<ResyncQuery>,
) -> Result<HttpResponse> {
    let full = query.full.unwrap_or(false);
    let r = state.replica()?;
    let progress = state
        .run(async move {
            r.request_resync(full, "asked for through the API").await?;
            r.resync_progress().await
        })
        .await?;
    state
        .audit(*role, "resync", "master-updates".into(), json!({ "full": full }))
        .await;
    let body = progress.as_ref().map(dto::resync);
    Ok(HttpResponse::Accepted().json(dto::data(body)))
}

pub(crate) async fn queue(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let filter = query.status_filter(None, dto::OUTBOX_STATES)?;
    let rows = move |r: Replica, page| async move { r.queue(filter, page).await };
    state
        .list(&query, AppState::replica, rows, dto::queue_entry)
        .await
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
    req: actix_web::HttpRequest,
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
    let body = serde_json::to_vec(&dto::data(s.to_json())).map_err(|_| ApiError::internal())?;
    Ok(dto::compressed(&req, body))
}

admin_actions! {
    ship_action(String):
    /// Decommissions a ship of the registry.
    decommission => true,
    /// Puts a decommissioned ship in service again.
    readmit => false,
}

async fn ship_action(
    state: web::Data<AppState>,
    role: Role,
    ship: String,
    decommission: bool,
) -> Result<HttpResponse> {
    let ship =
        offline_sync_model::ShipId::new(ship).map_err(|e| ApiError::bad_request(format!("ship_id: {e}")))?;
    let m = state.master()?;
    let target = ship.as_str().to_owned();
    let (record, last_csn, lag) = state
        .run(async move {
            let record = if decommission {
                m.decommission(&ship).await?
            } else {
                m.readmit(&ship).await?
            };
            let online = m
                .ships()
                .await?
                .into_iter()
                .find(|s| s.record.ship == record.ship)
                .is_some_and(|s| s.online);
            let last_csn = m.last_csn().await?;
            let lag = m.lags_ms(&[&record], last_csn).await?.pop().flatten();
            Ok((offline_sync_engine::ShipStatus { record, online }, last_csn, lag))
        })
        .await?;
    let action = if decommission { "decommission" } else { "readmit" };
    state.audit(role, action, target, json!({})).await;
    Ok(HttpResponse::Ok().json(dto::data(dto::ship(record, last_csn, lag))))
}

pub(crate) async fn ships(state: web::Data<AppState>) -> Result<HttpResponse> {
    let m = state.master()?;
    let items = state
        .run(async move {
            let last_csn = m.last_csn().await?;
            let ships = m.ships().await?;
            let records: Vec<_> = ships.iter().map(|s| &s.record).collect();
            let lags = m.lags_ms(&records, last_csn).await?;
            Ok(ships
                .into_iter()
                .zip(lags)
                .map(|(s, lag)| dto::ship(s, last_csn, lag))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(dto::data(items)))
}
