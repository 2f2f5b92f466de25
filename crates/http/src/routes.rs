//! The route table: every endpoint once, with its method, path, the modes that serve it, who
//! may call it and its OpenAPI description. The server registers routes from it, the token
//! middleware reads access from it, and the OpenAPI document is made from it, so the three
//! cannot disagree.

/// Admin handlers that differ only in a fixed argument: each takes the caller's role and one
/// path segment (of type `$segment`) and hands them, with its `$arg`, to `$shared`.
macro_rules! admin_actions {
    ($shared:ident($segment:ty): $($(#[$doc:meta])* $name:ident => $arg:expr,)+) => {
        $(
            $(#[$doc])*
            pub(crate) async fn $name(
                state: actix_web::web::Data<crate::state::AppState>,
                role: actix_web::web::ReqData<crate::auth::Role>,
                segment: actix_web::web::Path<$segment>,
            ) -> crate::error::Result<actix_web::HttpResponse> {
                $shared(state, *role, segment.into_inner(), $arg).await
            }
        )+
    };
}

mod audit;
mod changes;

pub(crate) use changes::MAX_LISTENERS;
mod conflicts;
mod dead_letters;
mod documents;
mod health;
mod keys;
mod session;
mod sync;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use offline_sync_engine::Mode;
use offline_sync_model::ContentType;
use serde_json::Value;

use crate::auth::{ResourceAccess, Tokens};
use crate::error::ApiError;
use crate::openapi::Documented;
use crate::openapi::spec;
use crate::table::{Access, Op, PLURAL, Serves};
use documents::{ByPlural, ByUid};

macro_rules! op {
    ($method:ident $path:expr, $serves:ident, $access:ident, $id:literal, $tag:literal, $summary:literal,
     $handler:path, $spec:path) => {
        Op {
            method: Method::$method,
            path: $path,
            serves: Serves::$serves,
            access: Access::$access,
            id: $id,
            tag: $tag,
            summary: $summary,
            route: || web::route().to($handler),
            spec: $spec,
        }
    };
}

/// Every endpoint.
pub(crate) static OPS: &[Op] = &[
    op!(GET "/admin", Both, Public, "adminPage", "admin", "The admin page (HTML; it asks for a token and calls this API)", crate::admin::page, spec::admin_page),
    op!(GET "/admin/{asset}", Both, Public, "adminAsset", "admin", "A script, style sheet or icon of the admin page", crate::admin::asset, spec::admin_asset),
    op!(GET "/api/offline-sync/session", Both, Read, "getSession", "admin", "Who the token is to this node: its role, whether it may write, which node this is", session::session, spec::session),
    op!(GET "/api/offline-sync/stats", Both, Read, "getStats", "admin", "Changes per minute over the last hour, and records read since the start", session::stats, spec::stats),
    op!(GET "/api/offline-sync/status", Both, Read, "getStatus", "sync", "Sync status of this node", sync::status, spec::status),
    op!(POST "/api/offline-sync/push", Replica, Admin, "push", "sync", "Send every queued change now", sync::push, spec::push),
    op!(POST "/api/offline-sync/pull", Replica, Admin, "pull", "sync", "Apply what the master published, now", sync::pull, spec::pull),
    op!(POST "/api/offline-sync/resync", Replica, Admin, "resync", "sync", "Resync from the master's state: pages of documents, then master-updates on from there", sync::resync, spec::resync),
    op!(GET "/api/offline-sync/queue", Replica, Read, "listQueue", "sync", "The outbox: local changes and their delivery state", sync::queue, spec::queue),
    op!(GET "/api/offline-sync/queue/pending", Replica, Read, "getPendingCount", "sync", "How many local changes the master has not answered", sync::pending, spec::pending),
    op!(GET "/api/offline-sync/snapshot", Master, Read, "getSnapshot", "sync", "A page of the master's state for a replica's resync", sync::snapshot, spec::snapshot),
    op!(GET "/api/offline-sync/ships", Master, Read, "listShips", "sync", "The ship registry", sync::ships, spec::ships),
    op!(POST "/api/offline-sync/ships/{ship_id}/decommission", Master, Admin, "decommissionShip", "sync", "Decommission a ship: it no longer holds the collection of tombstones back", sync::decommission, spec::ship_action),
    op!(POST "/api/offline-sync/ships/{ship_id}/readmit", Master, Admin, "readmitShip", "sync", "Put a decommissioned ship in service again (a full resync if it missed collected tombstones)", sync::readmit, spec::ship_action),
    op!(GET "/api/offline-sync/conflicts", Master, Read, "listConflicts", "conflicts", "Conflicts (open ones unless status says otherwise)", conflicts::list, spec::conflicts),
    op!(GET "/api/offline-sync/conflicts/{id}", Master, Read, "getConflict", "conflicts", "One conflict", conflicts::get, spec::conflict),
    op!(POST "/api/offline-sync/conflicts/{id}/preview", Master, Admin, "previewResolution", "conflicts", "The document a resolution would leave, without applying it", conflicts::preview, spec::resolve_preview),
    op!(POST "/api/offline-sync/conflicts/{id}/resolve", Master, Admin, "resolveConflict", "conflicts", "Resolve a conflict: keep-ship, keep-master or merge", conflicts::resolve, spec::resolve),
    op!(GET "/api/offline-sync/changes", Both, Read, "getChanges", "sync", "Every change of a document this node applied, in order: Server-Sent Events (Accept: text/event-stream) or a long poll", changes::changes, spec::changes),
    op!(GET "/api/offline-sync/webhooks", Both, Read, "listWebhooks", "sync", "Where the deliveries to each webhook (SYNC_WEBHOOKS) stand", changes::webhooks, spec::webhooks),
    op!(GET "/api/offline-sync/dead-letters", Both, Read, "listDeadLetters", "dead letters", "Records that could not be processed", dead_letters::list, spec::dead_letters),
    op!(GET "/api/offline-sync/dead-letters/{id}", Both, Read, "getDeadLetter", "dead letters", "One dead letter", dead_letters::get, spec::dead_letter),
    op!(POST "/api/offline-sync/dead-letters/{id}/retry", Both, Admin, "retryDeadLetter", "dead letters", "Process a dead letter again", dead_letters::retry, spec::dead_letter_action),
    op!(POST "/api/offline-sync/dead-letters/{id}/discard", Both, Admin, "discardDeadLetter", "dead letters", "Drop a dead letter", dead_letters::discard, spec::dead_letter_action),
    op!(GET "/api/offline-sync/keys", Both, Read, "listKeys", "security", "This node's public key and the keys pinned for its peers", keys::list, spec::keys),
    op!(POST "/api/offline-sync/keys/{signer}/approve", Both, Admin, "approveKey", "security", "Trust a peer's key: the one given, or the one seen", keys::approve, spec::approve_key),
    op!(POST "/api/offline-sync/keys/{signer}/revoke", Both, Admin, "revokeKey", "security", "Refuse a peer's records from now on", keys::revoke, spec::revoke_key),
    op!(GET "/api/offline-sync/audit", Both, Read, "listAudit", "security", "Admin actions, newest first", audit::list, spec::audit),
    op!(GET "/api/offline-sync/health/live", Both, Public, "live", "health", "Liveness probe", health::live, spec::live),
    op!(GET "/api/offline-sync/health/ready", Both, Public, "ready", "health", "Readiness probe: the database answers", health::ready, spec::ready),
    op!(GET "/api/offline-sync/health", Both, Public, "health", "health", "Detailed health report", health::health, spec::health),
    op!(GET "/api/offline-sync/health/metrics", Both, Public, "metrics", "health", "Prometheus metrics", health::metrics, spec::metrics),
    op!(GET "/metrics", Both, Public, "metricsRoot", "health", "Prometheus metrics (same as health/metrics)", health::metrics, spec::metrics),
    op!(GET "/api/offline-sync/openapi.json", Both, Public, "openapi", "health", "This OpenAPI document", health::openapi, spec::openapi),
    op!(GET "/api/documents/{content_type}", Both, Read, "listDocuments", "documents", "Documents of a content type", documents::list::<ByUid>, spec::list_documents),
    op!(POST "/api/documents/{content_type}", Both, Admin, "createDocument", "documents", "Create a document", documents::create::<ByUid>, spec::create_document),
    op!(GET "/api/documents/{content_type}/{document_id}", Both, Read, "getDocument", "documents", "One document", documents::get::<ByUid>, spec::get_document),
    op!(PUT "/api/documents/{content_type}/{document_id}", Both, Admin, "updateDocument", "documents", "Set fields of a document", documents::update::<ByUid>, spec::update_document),
    op!(DELETE "/api/documents/{content_type}/{document_id}", Both, Admin, "deleteDocument", "documents", "Delete a document", documents::delete::<ByUid>, spec::delete_document),
    // Strapi's routes of the types SYNC_CONTENT_TYPES names, last: every path above wins.
    op!(GET "/api/{plural}", Both, Read, "strapiList", "documents", "Documents of this content type (its Strapi route)", documents::list::<ByPlural>, spec::plural_list),
    op!(POST "/api/{plural}", Both, Admin, "strapiCreate", "documents", "Create a document of this content type (its Strapi route)", documents::create::<ByPlural>, spec::plural_create),
    op!(GET "/api/{plural}/{document_id}", Both, Read, "strapiGet", "documents", "One document of this content type (its Strapi route)", documents::get::<ByPlural>, spec::plural_get),
    op!(PUT "/api/{plural}/{document_id}", Both, Admin, "strapiUpdate", "documents", "Set fields of a document of this content type (its Strapi route)", documents::update::<ByPlural>, spec::plural_update),
    op!(DELETE "/api/{plural}/{document_id}", Both, Admin, "strapiDelete", "documents", "Delete a document of this content type (its Strapi route)", documents::delete::<ByPlural>, spec::plural_delete),
];

/// The endpoints a node of `mode` serves.
pub(crate) fn served(mode: Mode) -> impl Iterator<Item = &'static Op> + Clone {
    OPS.iter().filter(move |op| op.serves.includes(mode))
}

/// The OpenAPI document of a node of `mode`: exactly the routes it serves, a Strapi plural
/// route once for each of `plurals`.
pub(crate) fn openapi(mode: Mode, version: &str, plurals: &BTreeMap<String, ContentType>) -> Value {
    let documented = served(mode).flat_map(|op| {
        let at: Vec<Documented<'_>> = if op.is_plural() {
            plurals
                .keys()
                .map(|plural| Documented {
                    path: op.path.replace(PLURAL, plural),
                    id: format!("{}{}", op.id, camel(plural)),
                    op,
                })
                .collect()
        } else {
            vec![Documented {
                path: op.path.to_owned(),
                id: op.id.to_owned(),
                op,
            }]
        };
        at
    });
    crate::openapi::document(mode, documented, version)
}

/// `crew-members` as `CrewMembers`: a plural in an operation id. A `-` before a letter gives
/// way to the letter in upper case; any other stays, so two plurals never give one id.
fn camel(plural: &str) -> String {
    let mut out = String::with_capacity(plural.len());
    let mut chars = plural.chars().peekable();
    let mut upper = true;
    while let Some(c) = chars.next() {
        if c == '-' && chars.peek().is_some_and(char::is_ascii_lowercase) {
            upper = true;
            continue;
        }
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = false;
    }
    out
}

/// Registers the routes a node of `mode` serves, each resource with its own token check
/// (see [`crate::auth`]); any other method on a known path answers 405 with the allowed ones.
pub(crate) fn configure(
    mode: Mode,
    tokens: Arc<Tokens>,
    plurals: &BTreeMap<String, ContentType>,
) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    // A Strapi plural route matches only the plurals configured, and is not registered at
    // all without one: any other /api/x stays a 404.
    let plural_segment = format!(
        "{{plural:(?:{})}}",
        plurals.keys().cloned().collect::<Vec<_>>().join("|")
    );
    let any_plural = !plurals.is_empty();
    move |cfg| {
        let mut paths: Vec<&'static str> = Vec::new();
        for op in served(mode).filter(|op| any_plural || !op.is_plural()) {
            if !paths.contains(&op.path) {
                paths.push(op.path);
            }
        }
        for path in paths {
            let ops: Vec<&Op> = served(mode).filter(|op| op.path == path).collect();
            let pattern = path.replace(PLURAL, &plural_segment);
            let allow = ops
                .iter()
                .map(|op| op.method.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let mut access = ResourceAccess::default();
            let mut resource = web::resource(pattern);
            for op in &ops {
                access.add(op.method.clone(), op.access);
                resource = resource.route((op.route)().method(op.method.clone()));
            }
            let access = Rc::new(access);
            let resource = resource
                .default_service(web::to(move |req: HttpRequest| {
                    let allow = allow.clone();
                    async move { method_not_allowed(&req, &allow) }
                }))
                .wrap(from_fn({
                    let tokens = Arc::clone(&tokens);
                    move |req: ServiceRequest, next: Next<BoxBody>| {
                        crate::auth::require_token(Arc::clone(&tokens), Rc::clone(&access), req, next)
                    }
                }));
            cfg.service(resource);
        }
    }
}

fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    use actix_web::ResponseError;
    let mut res = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here; use {allow}", req.method()),
    )
    .error_response();
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    res
}

/// Answers paths no route matches.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_listed_once_with_a_unique_id() {
        let mut seen = std::collections::BTreeSet::new();
        for op in OPS {
            assert!(
                seen.insert((op.method.as_str(), op.path)),
                "{} {} twice",
                op.method,
                op.path
            );
        }
        let ids: std::collections::BTreeSet<_> = OPS.iter().map(|op| op.id).collect();
        assert_eq!(ids.len(), OPS.len(), "operation ids are unique");
    }

    #[test]
    fn writes_need_the_admin_token_and_probes_none() {
        for op in OPS {
            if op.method != Method::GET {
                assert_eq!(op.access, Access::Admin, "{} {}", op.method, op.path);
            }
            if op.path.contains("/health") || op.path == "/metrics" || op.path.ends_with("openapi.json") {
                assert_eq!(op.access, Access::Public, "{}", op.path);
            }
        }
    }

    #[test]
    fn modes_serve_the_seed_endpoints_where_the_seed_did() {
        let paths = |mode| served(mode).map(|op| op.path).collect::<Vec<_>>();
        let master = paths(Mode::Master);
        let replica = paths(Mode::Replica);
        assert!(
            master.contains(&"/api/offline-sync/conflicts")
                && !replica.contains(&"/api/offline-sync/conflicts")
        );
        assert!(replica.contains(&"/api/offline-sync/queue") && !master.contains(&"/api/offline-sync/queue"));
        assert!(
            master.contains(&"/api/documents/{content_type}")
                && replica.contains(&"/api/documents/{content_type}")
        );
    }

    fn plurals(names: &[&str]) -> BTreeMap<String, ContentType> {
        names
            .iter()
            .map(|p| {
                (
                    (*p).to_owned(),
                    ContentType::new(format!("api::{p}.{p}")).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_document_lists_exactly_the_served_routes() {
        for (mode, names) in [
            (Mode::Master, vec![]),
            (Mode::Replica, vec![]),
            (Mode::Master, vec!["articles", "crew-members"]),
            (Mode::Replica, vec!["articles"]),
        ] {
            let doc = openapi(mode, "0.1.0", &plurals(&names));
            let paths = doc["paths"].as_object().unwrap();
            let mut listed = 0;
            let mut ids = std::collections::BTreeSet::new();
            for (path, item) in paths {
                for (method, op) in item.as_object().unwrap() {
                    listed += 1;
                    assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
                    let route = names.iter().fold(path.clone(), |p, n| {
                        p.replacen(&format!("/api/{n}"), "/api/{plural}", 1)
                    });
                    let served = served(mode)
                        .any(|o| o.path == route && o.method.as_str().eq_ignore_ascii_case(method));
                    assert!(served, "{method} {path} documented but not served");
                    assert!(op["responses"]["default"].is_object());
                }
            }
            let plural_ops = served(mode).filter(|o| o.is_plural()).count();
            assert_eq!(plural_ops, 5);
            assert_eq!(
                listed,
                served(mode).count() - plural_ops + plural_ops * names.len()
            );
        }
        let replica = openapi(Mode::Replica, "0.1.0", &plurals(&["crew-members"]));
        let get = &replica["paths"]["/api/crew-members/{document_id}"]["get"];
        assert_eq!(get["operationId"], "strapiGetCrewMembers");
        let params: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["document_id", "fields"]);
        assert!(replica["paths"].get("/api/{plural}").is_none());
        let master = openapi(Mode::Master, "0.1.0", &BTreeMap::new());
        assert!(
            master["paths"]["/api/offline-sync/conflicts/{id}/resolve"]["post"]["security"][0]["bearerAuth"]
                .is_array()
        );
        assert_eq!(
            master["paths"]["/api/offline-sync/health/live"]["get"]["security"],
            serde_json::json!([])
        );
        assert!(master["paths"].get("/api/offline-sync/queue").is_none());
    }

    #[test]
    fn every_reference_resolves() {
        let doc = openapi(Mode::Replica, "0.1.0", &plurals(&["articles"]));
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "{name} is not defined"
            );
        }
    }
}
