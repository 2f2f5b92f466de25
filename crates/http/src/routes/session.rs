//! Who the caller is to this node (`session`) and what the node did lately (`stats`): what
//! the admin page needs to draw itself.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::auth::Role;
use crate::dto;
use crate::error::Result;
use crate::state::AppState;

/// The role of the token sent, whether it may write, and which node this is. A wrong token
/// never gets here (401).
pub(crate) async fn session(state: web::Data<AppState>, role: web::ReqData<Role>) -> HttpResponse {
    let role = *role;
    let can_write = role == Role::Admin || !state.tokens.enabled();
    HttpResponse::Ok().json(dto::data(json!({
        "role": role.as_str(),
        "canWrite": can_write,
        "mode": state.info.mode.as_str(),
        "shipId": state.info.ship_id,
        "version": state.info.version,
    })))
}

/// Minutes of history in `stats`.
const MINUTES: u64 = 60;
const MINUTE_MS: u64 = 60_000;

/// Changes per minute over the last hour (commits on a master, local writes on a replica),
/// every minute listed, oldest first; and the records read from the broker since the start.
pub(crate) async fn stats(state: web::Data<AppState>) -> Result<HttpResponse> {
    let node = state.node()?;
    let counts = node.message_counts();
    let now = dto::now_ms();
    let first = (now / MINUTE_MS).saturating_sub(MINUTES - 1) * MINUTE_MS;
    let counted = state
        .run(async move { node.changes_per_minute(first).await })
        .await?;
    let minutes: Vec<_> = (0..MINUTES)
        .map(|i| {
            let at = first + i * MINUTE_MS;
            let changes = counted.iter().find(|(m, _)| *m == at).map_or(0, |(_, n)| *n);
            json!({"at": dto::timestamp(at), "changes": changes})
        })
        .collect();
    Ok(HttpResponse::Ok().json(dto::data(json!({
        "changesPerMinute": minutes,
        "messages": {"processed": counts.processed, "failed": counts.failed},
    }))))
}
