//! The OpenAPI 3 document of a node, made from the route table, so it lists exactly the
//! routes the node serves.

use offline_sync_engine::Mode;
use serde_json::{Map, Value, json};

use crate::table::{Access, Op};

/// One operation as the document lists it: at `path`, as `id`.
pub(crate) struct Documented<'a> {
    pub(crate) path: String,
    pub(crate) id: String,
    pub(crate) op: &'a Op,
}

/// The document for a node of `mode` that serves `ops`.
pub(crate) fn document<'a>(
    mode: Mode,
    ops: impl IntoIterator<Item = Documented<'a>>,
    version: &str,
) -> Value {
    let mut paths = Map::new();
    for Documented { path, id, op } in ops {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(id));
        operation.insert("summary".into(), json!(op.summary));
        operation.insert("tags".into(), json!([op.tag]));
        if let Value::Object(spec) = (op.spec)() {
            operation.extend(spec);
        }
        let responses = match operation.remove("responses") {
            Some(Value::Object(r)) => r,
            _ => Map::new(),
        };
        operation.insert(
            "responses".into(),
            Value::Object(with_errors(responses, op.access)),
        );
        let security = match op.access {
            Access::Public => json!([]),
            Access::Read | Access::Admin => json!([{"bearerAuth": []}]),
        };
        operation.insert("security".into(), security);
        operation.insert("x-access".into(), json!(op.access.as_str()));
        if let Value::Object(item) = paths.entry(path).or_insert_with(|| json!({})) {
            item.insert(op.method.as_str().to_lowercase(), Value::Object(operation));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("offline-sync {}", mode.as_str()),
            "version": version,
            "description": "Offline-first sync between a master and its replicas over Kafka. \
                Endpoints marked with bearerAuth need `Authorization: Bearer <token>`: \
                the read token (SYNC_READ_TOKEN) for reads, the admin token (SYNC_ADMIN_TOKEN) for writes; \
                each operation's `x-access` says which (`public`, `read` or `admin`). \
                Errors are `{\"error\":{\"code\",\"message\"}}`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// Adds the error answers every operation may give.
fn with_errors(mut responses: Map<String, Value>, access: Access) -> Map<String, Value> {
    let mut add = |code: &str, description: &str| {
        responses
            .entry(code.to_owned())
            .or_insert_with(|| error_response(description));
    };
    if access != Access::Public {
        add("401", "No token, or not a known one");
        add("503", "The database is not connected yet or unreachable");
    }
    if access == Access::Admin {
        add("403", "A read-only token on a write");
    }
    add("default", "An error");
    responses
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn id_param(description: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": description,
           "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX}})
}

fn page_params() -> Vec<Value> {
    use crate::dto::{MAX_PAGE, MAX_PAGE_SIZE};
    let int = |name: &str, min: u64, max: u64, description: &str| {
        json!({"name": name, "in": "query", "required": false, "description": description,
               "schema": {"type": "integer", "minimum": min, "maximum": max}})
    };
    vec![
        int("page", 1, MAX_PAGE, "Page number, from 1"),
        int("pageSize", 1, MAX_PAGE_SIZE, "Items per page (default 25)"),
        pagination_param(),
    ]
}

/// Strapi's `pagination[...]` (a deep object, winning over `page` and `pageSize`): by page or
/// by offset, not both; `withCount` with either.
fn pagination_param() -> Value {
    use crate::dto::{MAX_PAGE, MAX_PAGE_SIZE, MAX_START};
    let int = |min: u64, max: u64, description: &str| json!({"type": "integer", "minimum": min, "maximum": max, "description": description});
    let with_count = json!({"type": "boolean",
        "description": "Whether meta.pagination counts every row (total; pageCount by page). Default true"});
    let by_page = json!({"type": "object", "additionalProperties": false, "properties": {
        "page": int(1, MAX_PAGE, "Page number, from 1"),
        "pageSize": int(1, MAX_PAGE_SIZE, "Items per page (default 25)"),
        "withCount": with_count.clone(),
    }});
    let by_offset = json!({"type": "object", "additionalProperties": false, "properties": {
        "start": int(0, MAX_START, "Rows to skip"),
        "limit": int(1, MAX_PAGE_SIZE, "Rows at most (default 25)"),
        "withCount": with_count,
    }});
    json!({"name": "pagination", "in": "query", "required": false, "style": "deepObject", "explode": true,
           "description": "Strapi's pagination: pagination[page] and pagination[pageSize], or pagination[start] and pagination[limit]; it wins over page and pageSize",
           "schema": {"anyOf": [by_page, by_offset]}})
}

/// What a document listing says of Strapi's `filters`, which nest deeper than OpenAPI's
/// `deepObject` parameters can describe.
fn filters_description() -> String {
    format!(
        "Takes Strapi 5's filters: filters[field][operator]=value (filters[field]=value for $eq), nested in \
         $and, $or and $not (filters[$or][0][n][$lt]=5&filters[$or][1][title][$eq]=x), a member of an object \
         field as filters[field][member][operator], and documentId, createdAt, updatedAt and version. \
         Operators: {}. Any other operator, and any parameter not described here, is refused with 400 naming it.",
        crate::query::OPERATORS.join(" ")
    )
}

/// Strapi's `sort` and `fields` of a document listing.
fn strapi_list_params() -> Vec<Value> {
    vec![
        json!({"name": "sort", "in": "query", "required": false,
               "description": "Sort keys, most significant first: field, field:asc or field:desc, comma-separated or as sort[0], sort[1]; ties go by documentId",
               "schema": {"type": "string", "pattern": "^[^\\x00,:]*(:([aA][sS][cC]|[dD][eE][sS][cC]))?(,[^\\x00,:]*(:([aA][sS][cC]|[dD][eE][sS][cC]))?)*$"}}),
        fields_param(),
    ]
}

/// Strapi's `fields`: the members shown besides `documentId`.
fn fields_param() -> Value {
    json!({"name": "fields", "in": "query", "required": false,
           "description": "Members shown besides documentId, comma-separated or as fields[0], fields[1]; * for all",
           "schema": {"type": "string", "pattern": "^[^\\x00]*$"}})
}

fn status_param(values: &[&str], description: &str) -> Value {
    json!({"name": "status", "in": "query", "required": false, "description": description,
           "schema": {"type": "string", "enum": values}})
}

fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {"type": "array", "items": reference(item)},
            "meta": {"type": "object", "required": ["pagination"],
                     "properties": {"pagination": reference("Pagination")}},
        },
    })
}

fn data_of(schema: Value) -> Value {
    json!({"type": "object", "required": ["data"], "properties": {"data": schema}})
}

fn content_type_param() -> Value {
    json!({"name": "content_type", "in": "path", "required": true,
           "description": "Content type, such as api::article.article",
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"}})
}

fn document_id_param() -> Value {
    json!({"name": "document_id", "in": "path", "required": true, "description": "Document id (UUID)",
           "schema": {"type": "string", "format": "uuid"}})
}

fn if_match_param() -> Value {
    json!({"name": "If-Match", "in": "header", "required": false,
           "description": "Only if the document is still at this version (optimistic check; 409 otherwise)",
           "schema": {"type": "string", "pattern": "^\"?[0-9]{1,18}\"?$"}})
}

/// A document body: `data` holds fields whose names are 1–128 characters without control
/// characters, plus the members with a meaning of their own (`members`).
fn document_body(members: Value) -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "additionalProperties": false,
        "properties": {"data": {
            "type": "object",
            "description": "The document's fields. documentId picks the id of a new document; \
                version asks for an optimistic check on update; id, createdAt, updatedAt and \
                publishedAt are ignored, so a document read from this API can be sent back.",
            "properties": members,
            "patternProperties": {"^[^\\u0000-\\u001F\\u007F-\\u009F]{1,128}$": {}},
            "additionalProperties": false,
        }},
    })
}

/// Parameters, bodies and success responses of each operation.
pub(crate) mod spec {
    use super::*;

    pub(crate) fn status() -> Value {
        json!({"responses": {"200": ok("This node's sync status", data_of(json!({"oneOf": [reference("MasterStatus"), reference("ReplicaStatus")]})))}})
    }

    pub(crate) fn push() -> Value {
        json!({"responses": {"200": ok("How many changes were sent", data_of(json!({
            "type": "object", "required": ["pushed"], "properties": {"pushed": {"type": "integer"}}})))}})
    }

    pub(crate) fn pull() -> Value {
        json!({"responses": {"200": ok("How many records were applied", data_of(json!({
            "type": "object", "required": ["pulled"], "properties": {"pulled": {"type": "integer"}}})))}})
    }

    pub(crate) fn resync() -> Value {
        json!({"parameters": [{"name": "full", "in": "query", "required": false,
                               "description": "Every document, and local documents the master no longer holds removed (default false: only what changed above the applied CSN)",
                               "schema": {"type": "boolean"}}],
               "responses": {"202": ok("The resync asked for; the pull loop runs it", data_of(reference("Resync"))),
                             "400": error_response("A parameter is not valid"),
                             "409": error_response("No way to fetch the master's state is set (SYNC_MASTER_URL)")}})
    }

    pub(crate) fn queue() -> Value {
        let mut params = page_params();
        params.push(status_param(
            &["pending", "sent", "acked", "rejected", "all"],
            "Delivery state (default all)",
        ));
        json!({"parameters": params, "responses": {"200": ok("Outbox rows, newest first", list_of("QueueEntry"))}})
    }

    pub(crate) fn pending() -> Value {
        json!({"responses": {"200": ok("Unanswered local changes", data_of(reference("PendingCount")))}})
    }

    pub(crate) fn snapshot() -> Value {
        let param = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
        json!({"parameters": [
                   param("after", json!({"type": "integer", "minimum": 0}), "Only what changed above this CSN (the replica's applied CSN; default 0: everything)"),
                   param("from", json!({"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}),
                         "{contentType}/{documentId}: the page starts after this document (the previous page's next)"),
                   param("limit", json!({"type": "integer", "minimum": 1, "maximum": 5000}), "Documents per page (default 500)"),
                   param("ship", json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}), "A ship id: the answer then says the last seq the master applied from it"),
               ],
               "responses": {"200": ok("Documents and tombstones ordered by content type and id, with the point to read master-updates on from", data_of(reference("Snapshot"))),
                             "400": error_response("A parameter is not valid")}})
    }

    pub(crate) fn admin_page() -> Value {
        json!({"responses": {"200": {"description": "The admin page",
            "content": {"text/html": {"schema": {"type": "string"}}}},
            "304": {"description": "Not modified (If-None-Match)"}}})
    }

    pub(crate) fn admin_asset() -> Value {
        json!({"parameters": [{"name": "asset", "in": "path", "required": true,
                               "description": "app.js, admin.css or icon.svg",
                               "schema": {"type": "string"}}],
               "responses": {"200": {"description": "The file",
                   "content": {"text/javascript": {"schema": {"type": "string"}},
                               "text/css": {"schema": {"type": "string"}},
                               "image/svg+xml": {"schema": {"type": "string"}}}},
                             "304": {"description": "Not modified (If-None-Match)"},
                             "404": error_response("No such file")}})
    }

    pub(crate) fn session() -> Value {
        json!({"responses": {"200": ok("The caller's role on this node", data_of(reference("Session")))}})
    }

    pub(crate) fn stats() -> Value {
        json!({"responses": {"200": ok("What the node did lately", data_of(reference("Stats")))}})
    }

    pub(crate) fn resolve_preview() -> Value {
        let mut spec = resolve();
        spec["responses"] = json!({
            "200": ok("The document the resolution would leave; nothing is applied", data_of(reference("Preview"))),
            "400": error_response("Bad body or merge data"),
            "404": error_response("No such conflict"),
            "409": error_response("Already resolved"),
            "413": error_response("Body too large"),
        });
        spec
    }

    pub(crate) fn ships() -> Value {
        json!({"responses": {"200": ok("Every registered ship", data_of(json!({"type": "array", "items": reference("Ship")})))}})
    }

    pub(crate) fn conflicts() -> Value {
        let mut params = page_params();
        params.push(status_param(
            &["open", "resolved", "all"],
            "Which conflicts (default open)",
        ));
        params.push(json!({"name": "ship", "in": "query", "required": false,
            "description": "Only conflicts raised by this ship (empty: every ship)",
            "schema": {"type": "string"}}));
        params.push(json!({"name": "contentType", "in": "query", "required": false,
            "description": "Only conflicts on documents of this content type (empty: every type)",
            "schema": {"type": "string"}}));
        json!({"parameters": params, "responses": {"200": ok("Conflicts, newest first", list_of("Conflict")),
                                                   "400": error_response("A filter or page is not valid")}})
    }

    pub(crate) fn conflict() -> Value {
        json!({"parameters": [id_param("Conflict id")],
               "responses": {"200": ok("The conflict", data_of(reference("Conflict"))),
                             "404": error_response("No such conflict")}})
    }

    pub(crate) fn resolve() -> Value {
        let revision = json!({"type": "string",
            "description": "A preview's revision: resolve only while neither the conflict nor its document changed since (409 otherwise)"});
        json!({
            "parameters": [id_param("Conflict id")],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [
                {"type": "object", "required": ["strategy"], "additionalProperties": false,
                 "properties": {"strategy": {"type": "string", "enum": ["keep-ship", "keep-master"]},
                                "revision": revision}},
                {"type": "object", "required": ["strategy", "mergeData"], "additionalProperties": false,
                 "properties": {"strategy": {"type": "string", "enum": ["merge"]},
                                "mergeData": {"type": "object", "description": "Values written over the master's document"},
                                "revision": revision}},
            ]}}}},
            "responses": {
                "200": ok("The resolved conflict; the result is committed and broadcast", data_of(reference("Conflict"))),
                "400": error_response("Bad body or merge data"),
                "404": error_response("No such conflict"),
                "409": error_response("Already resolved, or changed since the preview whose revision was given"),
                "413": error_response("Body too large"),
            },
        })
    }

    fn signer_param() -> Value {
        json!({"name": "signer", "in": "path", "required": true,
               "description": "A ship id on the master, master on a ship",
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}})
    }

    pub(crate) fn keys() -> Value {
        json!({"responses": {"200": ok("This node's signing key and its peers' pinned keys", data_of(json!({
        "type": "object", "required": ["signer", "publicKey", "peers"],
        "properties": {
            "signer": {"type": "string"},
            "publicKey": {"type": "string", "description": "Ed25519 public key, base64"},
            "peers": {"type": "array", "items": reference("PeerKey")},
        }})))}})
    }

    pub(crate) fn approve_key() -> Value {
        json!({
            "parameters": [signer_param()],
            "requestBody": {"required": false, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": false,
                "properties": {"publicKey": {"type": "string", "pattern": "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$",
                    "description": "The Ed25519 public key to pin (32 bytes, base64); without it the key already seen is approved"}},
            }}}},
            "responses": {
                "200": ok("The key, now trusted", data_of(reference("PeerKey"))),
                "400": error_response("publicKey is not 32 bytes of base64"),
                "404": error_response("Not a peer of this node, or no key seen for it and none given"),
                "409": error_response("A pending key approved without publicKey"),
            },
        })
    }

    pub(crate) fn ship_action() -> Value {
        json!({
            "parameters": [{"name": "ship_id", "in": "path", "required": true, "description": "A ship of the registry",
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}}],
            "responses": {
                "200": ok("The ship as the registry now holds it", data_of(reference("Ship"))),
                "400": error_response("Not a ship id"),
                "404": error_response("No such ship in the registry"),
            },
        })
    }

    pub(crate) fn revoke_key() -> Value {
        json!({
            "parameters": [signer_param()],
            "responses": {
                "200": ok("The key, now revoked", data_of(reference("PeerKey"))),
                "404": error_response("Not a peer of this node, or no key seen for it"),
            },
        })
    }

    pub(crate) fn changes() -> Value {
        let int = |name: &str, max: u64, description: &str| {
            json!({"name": name, "in": "query", "required": false, "description": description,
                   "schema": {"type": "integer", "minimum": 0, "maximum": max}})
        };
        let event = json!({"type": "object", "required": ["id", "event", "createdAt", "model", "uid", "entry"],
        "properties": {
            "id": {"type": "integer", "description": "Its place in this node's feed: pass it as since (or Last-Event-ID) to read on"},
            "event": {"type": "string", "enum": ["entry.create", "entry.update", "entry.delete"]},
            "createdAt": {"type": "string", "description": "When this node applied it"},
            "model": {"type": "string"},
            "uid": {"type": "string"},
            "entry": reference("Document"),
        }});
        json!({
            "description": "Every change of a document's content this node applied (its own writes, the master's commits, a resync's pages), in the order it applied them. With Accept: text/event-stream, a stream of Server-Sent Events (each event's id is its place in the feed, its data the JSON of the event; a comment every 15 s keeps it alive) that an EventSource resumes with Last-Event-ID; otherwise a long poll that answers as soon as there is an event after since, or empty at the timeout. 410 when the events after since are no longer kept, or the feed never reached since: list the documents again and resume from the end.",
            "parameters": [
                {"name": "since", "in": "query", "required": false,
                 "description": "The id of the last event the client has (default 0: the whole feed kept), or now for only what comes next",
                 "schema": {"type": "string", "pattern": "^(now|[0-9]{1,19})$"}},
                {"name": "Last-Event-ID", "in": "header", "required": false,
                 "description": "The id of the last event the client has, as an EventSource sends it when it reconnects: wins over since",
                 "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}},
                int("timeout", 60, "Long poll: seconds to wait for an event (default 25; 0 answers at once)"),
                {"name": "limit", "in": "query", "required": false,
                 "description": "Long poll: events at most (default 100)",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ],
            "responses": {
                "200": {"description": "The events after since",
                        "content": {
                            "application/json": {"schema": {"type": "object", "required": ["data", "meta"],
                                "properties": {"data": {"type": "array", "items": event},
                                               "meta": {"type": "object", "required": ["lastEventId"],
                                                        "properties": {"lastEventId": {"type": "integer"}}}}}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        }},
                "400": error_response("since, Last-Event-ID, timeout or limit is not valid"),
                "410": error_response("The feed no longer holds (or never held) the events after since"),
            },
        })
    }

    pub(crate) fn webhooks() -> Value {
        let opt = |t: &str| json!({"type": [t, "null"]});
        let hook = json!({"type": "object",
        "required": ["webhook", "events", "position", "pending", "delivered", "failed", "dropped", "retries"],
        "properties": {
            "webhook": {"type": "string", "description": "Its URL without user information or query"},
            "events": {"type": "array", "items": {"type": "string"}, "description": "The events it gets (all when empty)"},
            "position": {"type": "integer", "description": "The change feed id it has had every event up to"},
            "pending": {"type": "integer", "description": "Events of the feed after its position"},
            "delivered": {"type": "integer"},
            "failed": {"type": "integer", "description": "Failed attempts since the start"},
            "dropped": {"type": "integer", "description": "Events pruned from the feed before it got them"},
            "retries": {"type": "integer", "description": "Failed attempts in a row of the event in flight"},
            "lastStatus": opt("integer"),
            "lastError": opt("string"),
            "lastDeliveredAt": opt("string"),
            "nextAttemptAt": opt("string"),
        }});
        json!({"responses": {"200": ok("Each webhook's deliveries", data_of(json!({"type": "array", "items": hook})))}})
    }

    pub(crate) fn audit() -> Value {
        json!({"parameters": page_params(), "responses": {"200": ok("Admin actions, newest first", list_of("AuditEntry"))}})
    }

    pub(crate) fn dead_letters() -> Value {
        let mut params = page_params();
        params.push(status_param(
            &["pending", "retrying", "exhausted", "resolved", "discarded", "all"],
            "Which dead letters (default all)",
        ));
        json!({"parameters": params, "responses": {"200": ok("Dead letters, newest first", list_of("DeadLetter"))}})
    }

    pub(crate) fn dead_letter() -> Value {
        json!({"parameters": [id_param("Dead letter id")],
               "responses": {"200": ok("The dead letter", data_of(reference("DeadLetter"))),
                             "404": error_response("No such dead letter")}})
    }

    pub(crate) fn dead_letter_action() -> Value {
        json!({"parameters": [id_param("Dead letter id")],
               "responses": {"200": ok("The dead letter after the action", data_of(reference("DeadLetter"))),
                             "404": error_response("No such dead letter"),
                             "409": error_response("Not pending any more, or it still fails")}})
    }

    pub(crate) fn live() -> Value {
        json!({"responses": {"200": ok("The process serves HTTP", reference("Probe"))}})
    }

    pub(crate) fn ready() -> Value {
        json!({"responses": {"200": ok("The database answers", reference("Probe")),
                             "503": error_response("The database does not answer")}})
    }

    pub(crate) fn health() -> Value {
        json!({"responses": {"200": ok("Healthy or degraded (broker out of reach)", reference("Health")),
                             "503": ok("Unhealthy: the database does not answer", reference("Health"))}})
    }

    pub(crate) fn metrics() -> Value {
        json!({"responses": {"200": {"description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}})
    }

    pub(crate) fn openapi() -> Value {
        json!({"responses": {"200": ok("This document", json!({"type": "object"}))}})
    }

    /// The operations of `/api/documents/{content_type}[/{document_id}]`, and of a Strapi
    /// plural route `/api/{plural}[/{document_id}]`, whose path names the type.
    macro_rules! collection_ops {
        ($($uid:ident, $plural:ident => $spec:ident;)+) => {
            $(
                pub(crate) fn $uid() -> Value {
                    $spec(vec![content_type_param()])
                }

                pub(crate) fn $plural() -> Value {
                    $spec(Vec::new())
                }
            )+
        };
    }

    collection_ops! {
        list_documents, plural_list => list;
        create_document, plural_create => create;
        get_document, plural_get => get;
        update_document, plural_update => update;
        delete_document, plural_delete => delete;
    }

    fn list(mut params: Vec<Value>) -> Value {
        params.extend(page_params());
        params.extend(strapi_list_params());
        json!({"description": filters_description(), "parameters": params, "responses": {
            "200": ok("Live documents of the type", list_of("Document")),
            "400": error_response("Bad content type, page, filter, sort or fields; an unsupported parameter or operator, named"),
            "404": error_response("Content type not synced by this node"),
        }})
    }

    fn create(params: Vec<Value>) -> Value {
        json!({
            "parameters": params,
            "requestBody": {"required": true, "content": {"application/json": {"schema": document_body(json!({"documentId": {"type": "string", "format": "uuid"}}))}}},
            "responses": {
                "201": ok("Created; on a replica also queued for the master", data_of(reference("Document"))),
                "400": error_response("Bad body"),
                "404": error_response("Content type not synced by this node"),
                "409": error_response("A document with this id exists"),
                "413": error_response("Body too large"),
            },
        })
    }

    fn get(mut params: Vec<Value>) -> Value {
        params.extend([document_id_param(), fields_param()]);
        json!({"parameters": params, "responses": {
            "200": ok("The document", data_of(reference("Document"))),
            "400": error_response("Bad content type or id"),
            "404": error_response("No such document"),
        }})
    }

    fn update(mut params: Vec<Value>) -> Value {
        params.extend([document_id_param(), if_match_param()]);
        json!({
            "parameters": params,
            "requestBody": {"required": true, "content": {"application/json": {"schema": document_body(json!({"version": {"type": "integer", "minimum": 0, "maximum": i64::MAX}}))}}},
            "responses": {
                "200": ok("The document after the update", data_of(reference("Document"))),
                "400": error_response("Bad body"),
                "404": error_response("No such document"),
                "409": error_response("Version conflict: the document changed since that version"),
                "413": error_response("Body too large"),
            },
        })
    }

    fn delete(mut params: Vec<Value>) -> Value {
        params.extend([document_id_param(), if_match_param()]);
        json!({"parameters": params, "responses": {
            "204": {"description": "Deleted; on a replica also queued for the master"},
            "400": error_response("Bad content type, id or If-Match"),
            "404": error_response("No such document"),
            "409": error_response("Version conflict"),
        }})
    }
}

fn schemas() -> Value {
    let int = json!({"type": "integer"});
    let nint = json!({"type": "integer", "nullable": true});
    let string = json!({"type": "string"});
    let nstring = json!({"type": "string", "nullable": true});
    let resync = json!({"type": "object", "required": ["phase", "full", "reason", "after", "received", "bytes", "pages", "requestedAt"],
        "properties": {
            "phase": {"type": "string", "enum": ["requested", "fetching", "done"]}, "full": {"type": "boolean"},
            "reason": string, "after": int, "atCsn": nint, "offset": nint, "lastSeq": nint,
            "received": int, "total": nint, "bytes": int, "pages": int, "etaMs": nint,
            "requestedAt": string, "startedAt": nstring, "finishedAt": nstring}});
    let mut nullable_resync = resync.clone();
    nullable_resync["nullable"] = json!(true);
    let sync_check = json!({"type": "object", "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["healthy", "stalled", "resyncing"]}, "reason": string,
                       "received": int, "total": nint, "etaMs": nint}});
    let mut schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": string, "message": string}}}},
        "PeerKey": {"type": "object", "required": ["signer", "publicKey", "status", "source", "firstSeenAt", "updatedAt"],
            "properties": {
                "signer": string, "publicKey": string,
                "status": {"type": "string", "enum": ["trusted", "pending", "revoked"]},
                "source": {"type": "string", "enum": ["first-contact", "setting", "admin"]},
                "firstSeenAt": string, "updatedAt": string}},
        "AuditEntry": {"type": "object", "required": ["id", "at", "role", "action", "target", "detail"],
            "properties": {"id": int, "at": string, "role": string, "action": string, "target": string, "detail": {}}},
        "Pagination": {"anyOf": [
            {"type": "object", "required": ["page", "pageSize"], "additionalProperties": false,
             "description": "By page; pageCount and total unless pagination[withCount]=false",
             "properties": {"page": int, "pageSize": int, "pageCount": int, "total": int}},
            {"type": "object", "required": ["start", "limit"], "additionalProperties": false,
             "description": "By offset; total unless pagination[withCount]=false",
             "properties": {"start": int, "limit": int, "total": int}},
        ]},
        "Document": {"type": "object", "required": ["documentId"],
            "description": "A document's fields with documentId, version, createdAt and updatedAt; a fields parameter keeps documentId and the members it names",
            "properties": {"documentId": string, "version": int, "createdAt": string, "updatedAt": string},
            "additionalProperties": true},
        "Conflict": {"type": "object",
            "required": ["id", "contentType", "documentId", "shipId", "conflictType", "fields", "shipData",
                         "masterData", "status", "createdAt", "updatedAt"],
            "properties": {
                "id": int, "contentType": string, "documentId": string, "contentId": string,
                "shipId": string, "shipSeq": int,
                "conflictType": {"type": "string", "enum": ["update-update", "update-delete", "delete-update"]},
                "fields": {"type": "array", "items": string},
                "shipData": {"type": "object"}, "masterData": {"type": "object"},
                "shipDeleted": {"type": "boolean"}, "masterDeleted": {"type": "boolean"},
                "shipVersion": int, "masterVersion": int,
                "fieldBases": {"type": "object", "additionalProperties": int,
                               "description": "The version the ship had seen of a field, where it differs from shipVersion"},
                "status": {"type": "string", "enum": ["open", "resolved"]},
                "resolutionStrategy": {"type": "string", "nullable": true, "enum": ["keep-ship", "keep-master", "merge", null]},
                "resolvedCsn": nint, "resolvedAt": nstring, "createdAt": string, "updatedAt": string,
                "baseData": {"type": "object", "description": "What the fields held at the ship's base version (one conflict only)"},
                "baseUnknown": {"type": "array", "items": string, "description": "Fields whose base value is not known (pruned, or the ship had seen no master version)"},
                "baseDeleted": {"type": "boolean"}}},
        "Ship": {"type": "object", "required": ["shipId", "status", "online", "lastSeq", "appliedCsn", "lagCsn"],
            "properties": {
                "shipId": string, "status": {"type": "string", "enum": ["online", "offline"]},
                "online": {"type": "boolean"}, "onlineSince": nstring, "lagMs": nint, "resync": nstring,
                "lastSeen": nstring, "lastSeq": int, "changesApplied": int,
                "pending": int, "oldestUnackedMs": nint, "appliedCsn": int, "lagCsn": int, "registeredAt": string,
                "changesRefused": int, "lastRefusal": nstring,
                "decommissioned": {"type": "boolean"}, "decommissionedAt": nstring}},
        "QueueEntry": {"type": "object", "required": ["seq", "contentType", "documentId", "operation", "status"],
            "properties": {
                "seq": int, "contentType": string, "documentId": string,
                "operation": {"type": "string", "enum": ["create", "update", "delete"]},
                "status": {"type": "string", "enum": ["pending", "sent", "acked", "rejected"]},
                "outcome": nstring, "baseVersion": int, "fields": {"type": "object"},
                "createdAt": string, "sentAt": nstring}},
        "Snapshot": {"type": "object", "required": ["at", "offset", "documents", "next"],
            "properties": {"at": int, "offset": int, "lastSeq": nint, "total": nint, "collected": int,
                "resolved": {"type": "array", "items": {"type": "object", "required": ["conflict", "contentType", "documentId"], "properties": {
                    "conflict": int, "contentType": string, "documentId": string}}},
                "applied": {"type": "array", "items": {"type": "object", "required": ["seq", "hlc"], "properties": {
                    "seq": int, "hlc": {"type": "object", "nullable": true, "required": ["ms", "c"], "properties": {"ms": int, "c": int}},
                    "contentType": nstring, "documentId": nstring}}},
                "touched": {"type": "array", "items": {"type": "object",
                    "required": ["contentType", "documentId", "fields", "deleted", "version"],
                    "properties": {"contentType": string, "documentId": string, "fields": {"type": "object"},
                                   "deleted": {"type": "boolean"}, "version": int}}},
                "documents": {"type": "array", "items": {"type": "object",
                    "required": ["contentType", "documentId", "fields", "deleted", "version"],
                    "properties": {"contentType": string, "documentId": string, "fields": {"type": "object"},
                                   "deleted": {"type": "boolean"}, "version": int}}},
                "next": nstring}},
        "PendingCount": {"type": "object", "required": ["pending", "unsent", "inFlight", "rejected"],
            "properties": {"pending": int, "unsent": int, "inFlight": int, "rejected": int, "oldestUnackedAgeMs": nint}},
        "DeadLetter": {"type": "object", "required": ["id", "topic", "partition", "offset", "payload", "reason", "status"],
            "properties": {
                "id": int, "topic": string, "partition": int, "offset": int, "key": nstring,
                "payload": string, "payloadBytes": int, "reason": string,
                "status": {"type": "string", "enum": ["pending", "retrying", "exhausted", "resolved", "discarded"]},
                "createdAt": string, "handledAt": nstring, "attempts": int, "nextRetryAt": nstring}},
        "MasterStatus": {"type": "object", "required": ["mode", "link", "online", "lastCsn", "openConflicts", "shipsTotal", "shipsOnline"],
            "properties": {
                "mode": {"type": "string", "enum": ["master"]}, "shipId": {"type": "string", "nullable": true},
                "link": {"type": "string", "enum": ["online", "offline"]}, "online": {"type": "boolean"},
                "broker": reference("Link"),
                "lastCsn": int, "openConflicts": int, "shipsTotal": int, "shipsOnline": int}},
        "ReplicaStatus": {"type": "object", "required": ["mode", "shipId", "link", "online", "pending", "appliedCsn"],
            "properties": {
                "mode": {"type": "string", "enum": ["replica"]}, "shipId": string,
                "link": {"type": "string", "enum": ["online", "offline"]}, "online": {"type": "boolean"},
                "broker": reference("Link"), "acked": int, "inConflict": int,
                "pending": int, "unsent": int, "inFlight": int, "rejected": int, "lastSeq": int, "appliedCsn": int,
                "oldestUnackedAgeMs": nint, "offset": nint, "resyncRequired": nstring,
                "resync": nullable_resync}},
        "Resync": resync,
        "Probe": {"type": "object", "required": ["status"], "properties": {"status": string}},
        "Health": {"type": "object", "required": ["status", "mode", "timestamp", "uptime", "version", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
                "mode": {"type": "string", "enum": ["master", "replica"]},
                "shipId": nstring, "timestamp": string, "uptime": {"type": "number"}, "version": string,
                "checks": {"type": "object",
                    "required": ["database", "kafka", "messageTracker", "deadLetterQueue", "ships", "sync"],
                    "properties": {
                        "database": {"type": "object", "required": ["status", "type"],
                            "properties": {"status": string, "latency": {"type": "number", "nullable": true}, "type": string}},
                        "kafka": {"type": "object", "required": ["status", "role", "topics", "online"]},
                        "messageTracker": {"type": "object", "required": ["status", "total", "processed", "failed"]},
                        "deadLetterQueue": {"type": "object", "required": ["status", "pending"]},
                        "ships": {"type": "object", "required": ["status", "total", "online", "offline"]},
                        "sync": sync_check}}}},
    });
    if let (Value::Object(all), Value::Object(page)) = (&mut schemas, admin_schemas(string, int, nstring)) {
        all.extend(page);
    }
    schemas
}

/// The schemas of what the admin page reads: the session, the stats, a link's state, a
/// resolution's preview.
fn admin_schemas(string: Value, int: Value, nstring: Value) -> Value {
    json!({
        "Preview": {"type": "object", "required": ["deleted", "revision", "document"],
            "properties": {"deleted": {"type": "boolean"}, "revision": string,
                           "document": {"type": "object", "nullable": true}}},
        "Session": {"type": "object", "required": ["role", "canWrite", "mode", "version"],
            "properties": {"role": {"type": "string", "enum": ["admin", "read", "anonymous"]},
                           "canWrite": {"type": "boolean"},
                           "mode": {"type": "string", "enum": ["master", "replica"]},
                           "shipId": nstring, "version": string}},
        "Stats": {"type": "object", "required": ["changesPerMinute", "messages"],
            "properties": {
                "changesPerMinute": {"type": "array", "items": {"type": "object", "required": ["at", "changes"],
                    "properties": {"at": string, "changes": int}}},
                "messages": {"type": "object", "required": ["processed", "failed"],
                    "properties": {"processed": int, "failed": int}}}},
        "Link": {"type": "object", "required": ["online", "since", "lastError"],
            "properties": {"online": {"type": "boolean"}, "since": nstring,
                "lastError": {"type": "object", "nullable": true, "required": ["at", "step", "message"],
                    "properties": {"at": string, "step": string, "message": string}}}},
    })
}
