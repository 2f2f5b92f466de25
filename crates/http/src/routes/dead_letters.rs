//! Dead letters: records from the broker that could not be processed, kept with their
//! reason; an operator retries or discards them.

use actix_web::{HttpResponse, web};
use offline_sync_engine::DeadLetterStatus;
use serde_json::json;

use crate::auth::Role;
use crate::dto::{self, PageQuery};
use crate::error::{ApiError, Result};
use crate::state::AppState;

fn status_filter(raw: Option<&str>) -> Result<Option<DeadLetterStatus>> {
    Ok(match raw {
        None | Some("all") => None,
        Some(raw) => match DeadLetterStatus::parse(raw) {
            Some(status) => Some(status),
            None => {
                return Err(ApiError::bad_request(format!(
                    "status {raw:?} is not one of pending, retrying, exhausted, resolved, discarded, all"
                )));
            }
        },
    })
}

pub(crate) async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let status = status_filter(query.status.as_deref())?;
    let page = query.page()?;
    let node = state.node()?;
    let (rows, total) = state
        .run(async move { node.dead_letters(status, page.storage()).await })
        .await?;
    let items = rows.into_iter().map(dto::dead_letter).collect();
    Ok(HttpResponse::Ok().json(dto::list(items, page, total)))
}

pub(crate) async fn get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse> {
    let id = id.into_inner();
    let node = state.node()?;
    let d = state
        .run(async move { node.dead_letter(id).await })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {id}")))?;
    Ok(HttpResponse::Ok().json(dto::data(dto::dead_letter(d))))
}

/// Processes the record again with this build; 409 if it still fails (it stays pending).
pub(crate) async fn retry(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    id: web::Path<u64>,
) -> Result<HttpResponse> {
    settle(state, *role, id.into_inner(), "retry").await
}

/// Drops a waiting dead letter for good.
pub(crate) async fn discard(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    id: web::Path<u64>,
) -> Result<HttpResponse> {
    settle(state, *role, id.into_inner(), "discard").await
}

/// Retries (`retry`) or discards a dead letter, and records the action in the audit log.
async fn settle(
    state: web::Data<AppState>,
    role: Role,
    id: u64,
    action: &'static str,
) -> Result<HttpResponse> {
    let node = state.node()?;
    let d = state
        .run(async move {
            match action {
                "retry" => node.retry_dead_letter(id).await,
                _ => node.discard_dead_letter(id).await,
            }
        })
        .await?;
    let detail = json!({"status": d.status.as_str(), "reason": d.letter.reason});
    state
        .audit(role, action, format!("dead letter {id}"), detail)
        .await;
    Ok(HttpResponse::Ok().json(dto::data(dto::dead_letter(d))))
}
