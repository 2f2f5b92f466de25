//! Conflicts on the master: list (open ones by default, by ship and content type), one with
//! what its base held, a preview of a resolution, resolve.

use actix_web::{HttpResponse, web};
use offline_sync_engine::{ConflictFilter, Master};
use offline_sync_model::ConflictStatus;

use crate::auth::Role;
use crate::dto::{self, PageQuery, ResolveBody};
use crate::error::{ApiError, Result};
use crate::state::AppState;

/// An exact-match filter: `None` when not given or empty (an empty form field), `Some(None)`
/// when the value is no valid name (nothing can match it).
fn exact<T>(raw: Option<&str>, parse: impl Fn(String) -> offline_sync_model::Result<T>) -> Option<Option<T>> {
    raw.filter(|v| !v.is_empty()).map(|v| parse(v.to_owned()).ok())
}

pub(crate) async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let status = query.status_filter(Some(ConflictStatus::Open), dto::CONFLICT_STATUSES)?;
    let ship = exact(query.ship.as_deref(), offline_sync_model::ShipId::new);
    let content_type = exact(
        query.content_type.as_deref(),
        offline_sync_model::ContentType::new,
    );
    // A ship or content type that is no valid name matches nothing.
    let filter = match (ship, content_type) {
        (Some(None), _) | (_, Some(None)) => None,
        (ship, content_type) => Some(ConflictFilter {
            status,
            ship: ship.flatten(),
            content_type: content_type.flatten(),
        }),
    };
    let rows = move |m: Master, page| async move {
        match filter {
            Some(filter) => m.find_conflicts(&filter, page).await,
            None => Ok((Vec::new(), 0)),
        }
    };
    state.list(&query, AppState::master, rows, dto::conflict).await
}

pub(crate) async fn get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse> {
    let id = id.into_inner();
    let m = state.master()?;
    let found = state
        .run(async move {
            let Some(c) = m.conflict(id).await? else {
                return Ok(None);
            };
            let base = m.conflict_base(&c).await?;
            Ok(Some((c, base)))
        })
        .await?;
    let (c, base) = found.ok_or_else(|| ApiError::not_found(format!("no conflict {id}")))?;
    Ok(HttpResponse::Ok().json(dto::data(dto::conflict_with_base(c, base))))
}

/// The document resolving a conflict would leave; nothing is committed.
pub(crate) async fn preview(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    body: web::Json<ResolveBody>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    let strategy = body.into_inner().strategy()?;
    let m = state.master()?;
    let (doc, revision) = state.run(async move { m.preview(id, &strategy).await }).await?;
    Ok(HttpResponse::Ok().json(dto::data(dto::preview(doc, revision))))
}

/// Resolves an open conflict; the result is committed and broadcast like any change.
pub(crate) async fn resolve(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    id: web::Path<u64>,
    body: web::Json<ResolveBody>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    let mut body = body.into_inner();
    let revision = body.revision.take();
    let strategy = body.strategy()?;
    let detail = serde_json::json!({
        "strategy": strategy.as_str(),
        // Field names only: values may be secrets, and the document keeps them anyway.
        "mergeFields": match &strategy {
            offline_sync_model::Strategy::Merge { merge_data } => merge_data.keys().cloned().collect::<Vec<_>>(),
            _ => Vec::new(),
        },
    });
    let m = state.master()?;
    let c = state
        .run(async move { m.resolve_if(id, &strategy, revision.as_deref()).await })
        .await?;
    let mut detail = detail;
    detail["csn"] = serde_json::json!(c.resolved_csn);
    detail["document"] = serde_json::json!(format!("{}/{}", c.content_type, c.document_id));
    state
        .audit(*role, "resolve", format!("conflict {id}"), detail)
        .await;
    Ok(HttpResponse::Ok().json(dto::data(dto::conflict(c))))
}
