//! Dead letters: records from the broker that could not be processed, kept with their
//! reason; an operator retries or discards them.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::auth::Role;
use crate::dto::{self, PageQuery};
use crate::error::{ApiError, Result};
use crate::state::{AppState, Node};

pub(crate) async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let status = query.status_filter(None, dto::DEAD_LETTER_STATUSES)?;
    let rows = move |node: Node, page| async move { node.dead_letters(status, page).await };
    state.list(&query, AppState::node, rows, dto::dead_letter).await
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

admin_actions! {
    settle(u64):
    /// Processes the record again with this build; 409 if it still fails (it stays pending).
    retry => "retry",
    /// Drops a waiting dead letter for good.
    discard => "discard",
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
