//! Probes and the seed's detailed health report. None of them needs a token.
//!
//! Liveness answers as long as the process serves HTTP. Readiness depends on the database
//! only — a ship at sea without a link is still ready to take writes. The detailed report
//! says what is wrong: `unhealthy` (503) when the database does not answer, `degraded` when
//! the broker is out of reach or a replica stopped applying `master-updates` (`checks.sync`
//! says why), `healthy` otherwise.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use offline_sync_engine::{DeadLetterCounts, MessageCounts};
use serde_json::{Value, json};

use crate::dto;
use crate::error::{ApiError, Result};
use crate::state::{AppState, Node};

/// Longest a probe waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the node's database within [`PING_TIMEOUT`]; the round trip in milliseconds, or why
/// not.
async fn ping(state: &AppState) -> std::result::Result<f64, String> {
    let node = state
        .node()
        .map_err(|_| "the database is not connected yet".to_owned())?;
    let pinged = state
        .runtime
        .spawn(async move { tokio::time::timeout(PING_TIMEOUT, node.ping()).await })
        .await;
    match pinged {
        Ok(Ok(Ok(took))) => Ok(took.as_secs_f64() * 1000.0),
        Ok(Ok(Err(e))) => Err(format!("the database does not answer: {e}")),
        Ok(Err(_)) => Err(format!("the database did not answer within {PING_TIMEOUT:?}")),
        Err(_) => Err("the database check failed".to_owned()),
    }
}

pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse> {
    match ping(&state).await {
        Ok(_) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        Err(reason) => Err(ApiError::not_ready(reason)),
    }
}

/// What the detailed report reads from the database.
struct Stored {
    dead_letters: DeadLetterCounts,
    /// Ships: total and online (a replica counts itself).
    ships: (u64, u64),
    /// Why a replica stopped applying `master-updates`, if it did, and its resync if one runs.
    stalled: Option<(String, Option<offline_sync_engine::ResyncProgress>)>,
}

async fn stored(state: &AppState, node: Node) -> Option<Stored> {
    let online = node.is_online();
    state
        .run(async move {
            let dead_letters = node.dead_letter_counts().await?;
            let (ships, stalled) = match &node {
                Node::Master(m) => {
                    let s = m.ships().await?;
                    let online = s.iter().filter(|s| s.online).count() as u64;
                    ((s.len() as u64, online), None)
                }
                Node::Replica(r) => {
                    let s = r.status().await?;
                    let running = s.resync.filter(|p| p.state.active());
                    (
                        (1, u64::from(online)),
                        s.resync_required.map(|why| (why, running)),
                    )
                }
            };
            Ok(Stored {
                dead_letters,
                ships,
                stalled,
            })
        })
        .await
        .ok()
}

pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    let info = &state.info;
    let node = state.slot.get().cloned();
    let db = ping(&state).await;
    let online = node.as_ref().is_some_and(|n| n.is_online());
    let counts = node.as_ref().map(|n| n.message_counts()).unwrap_or_default();
    let stored = match (&node, &db) {
        (Some(n), Ok(_)) => stored(&state, n.clone()).await,
        _ => None,
    };
    let stalled = stored.as_ref().and_then(|s| s.stalled.clone());
    let status = match (&db, online, &stalled) {
        (Err(_), _, _) => "unhealthy",
        (Ok(_), false, _) | (Ok(_), true, Some(_)) => "degraded",
        (Ok(_), true, None) => "healthy",
    };
    let (kafka_role, kafka_topic) = match info.mode {
        offline_sync_engine::Mode::Master => ("consumer", &info.ship_updates_topic),
        offline_sync_engine::Mode::Replica => ("producer", &info.ship_updates_topic),
    };
    let body = json!({
        "status": status,
        "mode": info.mode.as_str(),
        "shipId": info.ship_id,
        "timestamp": dto::timestamp(dto::now_ms()),
        "uptime": info.started.elapsed().as_secs_f64(),
        "version": info.version,
        "checks": {
            "database": match &db {
                Ok(latency) => json!({"status": "healthy", "latency": latency, "type": info.database_type}),
                Err(reason) => json!({"status": "unhealthy", "latency": null, "type": info.database_type, "error": reason}),
            },
            "kafka": {
                "status": if online { "healthy" } else { "offline" },
                "role": kafka_role,
                "topics": kafka_topic,
                "subscribedTo": if info.mode == offline_sync_engine::Mode::Master { &info.ship_updates_topic } else { &info.master_updates_topic },
                "online": online,
            },
            "messageTracker": message_tracker(counts),
            "deadLetterQueue": dead_letter_check(stored.as_ref().map(|s| s.dead_letters)),
            "ships": ships_check(stored.as_ref().map(|s| s.ships)),
            "sync": match &stalled {
                Some((reason, Some(p))) => json!({
                    "status": "resyncing",
                    "reason": reason,
                    "received": p.state.received,
                    "total": p.state.total,
                    "etaMs": p.eta_ms,
                }),
                Some((reason, None)) => json!({"status": "stalled", "reason": reason}),
                None => json!({"status": "healthy"}),
            },
        }
    });
    if status == "unhealthy" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

fn message_tracker(c: MessageCounts) -> Value {
    json!({
        "status": "healthy",
        "total": c.processed + c.failed,
        "processed": c.processed,
        "failed": c.failed,
    })
}

fn dead_letter_check(counts: Option<DeadLetterCounts>) -> Value {
    match counts {
        Some(c) => json!({
            "status": if c.open() == 0 { "healthy" } else { "warning" },
            "pending": c.pending,
            "retrying": c.retrying,
            "exhausted": c.exhausted,
            "resolved": c.resolved,
            "discarded": c.discarded,
        }),
        None => json!({
            "status": "unknown", "pending": null, "retrying": null, "exhausted": null,
            "resolved": null, "discarded": null,
        }),
    }
}

fn ships_check(ships: Option<(u64, u64)>) -> Value {
    match ships {
        // Ships out of reach are normal at sea: the count is information, not a fault.
        Some((total, online)) => json!({
            "status": "healthy",
            "total": total,
            "online": online,
            "offline": total - online,
        }),
        None => json!({"status": "unknown", "total": null, "online": null, "offline": null}),
    }
}

pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::metrics::refresh(&state).await;
    let text = state.render.as_ref().map(|r| r()).unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

pub(crate) async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(super::openapi(
        state.info.mode,
        &state.info.version,
        &state.info.plurals,
    ))
}
