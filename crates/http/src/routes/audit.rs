//! The audit log: every admin action through the API, newest first.

use actix_web::{HttpResponse, web};

use crate::dto::{self, PageQuery};
use crate::error::Result;
use crate::state::AppState;

pub(crate) async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let page = query.page()?;
    let node = state.node()?;
    let (rows, total) = state
        .run(async move { node.audit_log(page.storage()).await })
        .await?;
    let items = rows.into_iter().map(dto::audit_entry).collect();
    Ok(HttpResponse::Ok().json(dto::list(items, page, total)))
}
