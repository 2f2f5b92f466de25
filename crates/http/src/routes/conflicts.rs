//! Conflicts on the master: list (open ones by default), one, resolve.

use actix_web::{HttpResponse, web};
use offline_sync_model::ConflictStatus;

use crate::auth::Role;
use crate::dto::{self, PageQuery, ResolveBody};
use crate::error::{ApiError, Result};
use crate::state::AppState;

fn status_filter(raw: Option<&str>) -> Result<Option<ConflictStatus>> {
    Ok(match raw {
        None | Some("open") => Some(ConflictStatus::Open),
        Some("resolved") => Some(ConflictStatus::Resolved),
        Some("all") => None,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status {other:?} is not one of open, resolved, all"
            )));
        }
    })
}

pub(crate) async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let status = status_filter(query.status.as_deref())?;
    let page = query.page()?;
    let m = state.master()?;
    let (rows, total) = state
        .run(async move {
            let rows = m.conflicts(status, page.storage()).await?;
            Ok((rows, m.count_conflicts(status).await?))
        })
        .await?;
    let items = rows.into_iter().map(dto::conflict).collect();
    Ok(HttpResponse::Ok().json(dto::list(items, page, total)))
}

pub(crate) async fn get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse> {
    let id = id.into_inner();
    let m = state.master()?;
    let c = state
        .run(async move { m.conflict(id).await })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no conflict {id}")))?;
    Ok(HttpResponse::Ok().json(dto::data(dto::conflict(c))))
}

/// Resolves an open conflict; the result is committed and broadcast like any change.
pub(crate) async fn resolve(
    state: web::Data<AppState>,
    role: web::ReqData<Role>,
    id: web::Path<u64>,
    body: web::Json<ResolveBody>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    let strategy = body.into_inner().strategy()?;
    let detail = serde_json::json!({
        "strategy": strategy.as_str(),
        // Field names only: values may be secrets, and the document keeps them anyway.
        "mergeFields": match &strategy {
            offline_sync_model::Strategy::Merge { merge_data } => merge_data.keys().cloned().collect::<Vec<_>>(),
            _ => Vec::new(),
        },
    });
    let m = state.master()?;
    let c = state.run(async move { m.resolve(id, &strategy).await }).await?;
    let mut detail = detail;
    detail["csn"] = serde_json::json!(c.resolved_csn);
    detail["document"] = serde_json::json!(format!("{}/{}", c.content_type, c.document_id));
    state
        .audit(*role, "resolve", format!("conflict {id}"), detail)
        .await;
    Ok(HttpResponse::Ok().json(dto::data(dto::conflict(c))))
}
