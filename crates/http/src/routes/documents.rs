//! The document API, the content API a Strapi user knows: `/api/documents/{content_type}`
//! (list, create) and `/api/documents/{content_type}/{document_id}` (get, update, delete),
//! and the same at each Strapi route `SYNC_CONTENT_TYPES` names (`/api/{plural}`).
//! On a replica every write is queued for the master in the same transaction.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use offline_sync_engine::DocumentQuery;
use offline_sync_model::{ContentType, Csn, DocumentId};

use crate::dto::{self, DocumentBody, PageQuery};
use crate::error::{ApiError, Result};
use crate::query::{self, Takes};
use crate::state::{AppState, Node};

/// The content type a request's path addresses, and where its documents are found.
pub(crate) struct Collection {
    ct: ContentType,
    path: String,
}

/// How a route's first path segment names the content type.
pub(crate) trait Addressing {
    fn collection(state: &AppState, segment: &str) -> Result<Collection>;
}

/// `/api/documents/{content_type}`: the segment is the type's uid.
pub(crate) struct ByUid;

impl Addressing for ByUid {
    fn collection(_: &AppState, segment: &str) -> Result<Collection> {
        let ct = ContentType::new(segment).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Collection {
            path: format!("/api/documents/{ct}"),
            ct,
        })
    }
}

/// `/api/{plural}`: the segment is the plural `SYNC_CONTENT_TYPES` gives a type.
pub(crate) struct ByPlural;

impl Addressing for ByPlural {
    fn collection(state: &AppState, segment: &str) -> Result<Collection> {
        let ct = state.info.plurals.get(segment).ok_or_else(|| {
            ApiError::not_found(format!(
                "no route for /api/{segment}: no content type of SYNC_CONTENT_TYPES is served there"
            ))
        })?;
        Ok(Collection {
            ct: ct.clone(),
            path: format!("/api/{segment}"),
        })
    }
}

fn document_id(raw: &str) -> Result<DocumentId> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a document id (a UUID)")))
}

/// The version asked for by `If-Match` (`"3"` or `3`), if any; `data.version` wins.
fn if_match(req: &HttpRequest) -> Result<Option<Csn>> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match must hold a document version (a whole number)"))
}

pub(crate) async fn list<A: Addressing>(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse> {
    let strapi = query::parse(req.query_string(), Takes::List)?;
    let ct = A::collection(&state, &path)?.ct;
    let filter = DocumentQuery {
        uncounted: !page.page()?.with_count,
        ..strapi.query
    };
    let rows = move |node: Node, page| async move { node.find(&ct, &filter, page).await };
    let fields = strapi.fields;
    let show = move |doc| query::select(dto::document(doc), fields.as_deref());
    state.list(&page, AppState::node, rows, show).await
}

pub(crate) async fn create<A: Addressing>(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<DocumentBody>,
) -> Result<HttpResponse> {
    dto::only_params(req.query_string(), &[])?;
    let Collection { ct, path } = A::collection(&state, &path)?;
    let input = body.into_inner().into_input()?;
    let id = match input.document_id {
        Some(raw) => document_id(&raw)?,
        None => DocumentId::new_v7(),
    };
    let node = state.node()?;
    let fields = input.fields;
    let doc = state
        .run(async move { node.create_with_id(&ct, id, fields).await })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("{path}/{}", doc.id)))
        .json(dto::data(dto::document(doc))))
}

pub(crate) async fn get<A: Addressing>(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let fields = query::parse(req.query_string(), Takes::One)?.fields;
    let ct = A::collection(&state, &path.0)?.ct;
    let id = document_id(&path.1)?;
    let node = state.node()?;
    let doc = state
        .run(async move { node.get(&ct, id).await })
        .await?
        .ok_or_else(|| ApiError::not_found("no such document"))?;
    let shown = query::select(dto::document(doc), fields.as_deref());
    Ok(HttpResponse::Ok().json(dto::data(shown)))
}

pub(crate) async fn update<A: Addressing>(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<DocumentBody>,
) -> Result<HttpResponse> {
    dto::only_params(req.query_string(), &[])?;
    let ct = A::collection(&state, &path.0)?.ct;
    let id = document_id(&path.1)?;
    let input = body.into_inner().into_input()?;
    let expected = input.version.or(if_match(&req)?);
    let node = state.node()?;
    let fields = input.fields;
    let doc = state
        .run(async move { node.update_if(&ct, id, fields, expected).await })
        .await?;
    Ok(HttpResponse::Ok().json(dto::data(dto::document(doc))))
}

pub(crate) async fn delete<A: Addressing>(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    dto::only_params(req.query_string(), &[])?;
    let ct = A::collection(&state, &path.0)?.ct;
    let id = document_id(&path.1)?;
    let expected = if_match(&req)?;
    let node = state.node()?;
    state
        .run(async move { node.delete_if(&ct, id, expected).await })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
