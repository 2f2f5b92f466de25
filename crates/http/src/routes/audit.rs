//! The audit log: every admin action through the API, newest first.

use actix_web::{HttpResponse, web};

use crate::dto::{self, PageQuery};
use crate::error::Result;
use crate::state::{AppState, Node};

pub(crate) async fn list(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse> {
    let rows = |node: Node, page| async move { node.audit_log(page).await };
    state.list(&query, AppState::node, rows, dto::audit_entry).await
}
