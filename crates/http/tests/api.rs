//! The HTTP server in-process over a real socket, with a replica and a master on SQLite and
//! the in-memory transport: error shapes and statuses, limits, the document API, dead
//! letters, and 503 before the node is there.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use offline_sync_engine::{Master, MasterConfig, Mode, Replica, ReplicaConfig};
use offline_sync_http::{HttpConfig, Node, NodeSlot, Server, serve};
use offline_sync_model::{ContentType, ShipId};
use offline_sync_storage::{SeaStorage, Storage};
use offline_sync_transport::{FetchLimit, MemoryTransport, Transport};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-the-api-tests";
const CT: &str = "api::note.note";
/// The Strapi route the test servers give [`CT`].
const PLURAL: &str = "notes";

struct Api {
    server: Server,
    _dir: tempfile::TempDir,
    slot: NodeSlot,
    storage: Arc<dyn Storage>,
    transport: Arc<dyn Transport>,
}

/// An answer, its body as text ([`Answer`]) or as bytes ([`Bare`]).
struct Reply<B> {
    status: u16,
    headers: Vec<(String, String)>,
    body: B,
}

type Answer = Reply<String>;

/// An answer whose body is kept as bytes (it may be compressed).
type Bare = Reply<Vec<u8>>;

impl<B> Reply<B> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Api {
    async fn start(mode: Mode, with_node: bool) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let url = SeaStorage::sqlite_url(&dir.path().join("node.db"));
        let storage: Arc<dyn Storage> = Arc::new(SeaStorage::connect(&url).await.unwrap());
        let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
        let slot = NodeSlot::new();
        if with_node {
            let node = match mode {
                Mode::Master => Node::Master(Master::new(
                    MasterConfig::default(),
                    storage.clone(),
                    transport.clone(),
                )),
                Mode::Replica => Node::Replica(Replica::new(
                    ReplicaConfig::new(ShipId::new("ship-api").unwrap()),
                    storage.clone(),
                    transport.clone(),
                )),
            };
            assert!(slot.set(node));
        }
        let mut cfg = HttpConfig::new("127.0.0.1:0".parse().unwrap(), mode);
        cfg.admin_token = Some(ADMIN.into());
        cfg.workers = 1;
        cfg.plural_routes = [(PLURAL.to_owned(), ContentType::new(CT).unwrap())].into();
        let server = serve(cfg, slot.clone()).unwrap();
        Api {
            server,
            _dir: dir,
            slot,
            storage,
            transport,
        }
    }

    /// A request with `body`, the admin token and `content_type`.
    async fn call(&self, method: &str, path: &str, body: Option<String>, content_type: &str) -> Answer {
        let headers = vec![
            ("Authorization".to_owned(), format!("Bearer {ADMIN}")),
            ("Content-Type".to_owned(), content_type.to_owned()),
        ];
        let sent = self.send(method, path, headers, body).await;
        Answer {
            status: sent.status,
            headers: sent.headers,
            body: String::from_utf8_lossy(&sent.body).into_owned(),
        }
    }

    /// A request with exactly `headers`; the answer's body as bytes, as sent.
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: Option<String>,
    ) -> Bare {
        let url = format!("http://{}{path}", self.server.addr());
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into();
            let mut req = ureq::http::Request::builder().method(method.as_str()).uri(&url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let mut res = match body {
                Some(b) => agent.run(req.body(b).unwrap()),
                None => agent.run(req.body(()).unwrap()),
            }
            .unwrap();
            Bare {
                status: res.status().as_u16(),
                headers: res
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
                body: res.body_mut().read_to_vec().unwrap_or_default(),
            }
        })
        .await
        .unwrap()
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> Answer {
        self.call(method, path, Some(body.to_string()), "application/json")
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, "application/json").await
    }

    /// A GET without a token and with only `headers`; the body as bytes, as sent.
    async fn bare(&self, path: &str, headers: &[(&str, &str)]) -> Bare {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.send("GET", path, headers, None).await
    }
}

fn error_code(a: &Answer) -> String {
    a.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// `a` is an error answer with `status` and `code`.
fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!((a.status, error_code(a).as_str()), (status, code), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_api_creates_reads_updates_and_deletes() {
    let api = Api::start(Mode::Replica, true).await;
    let docs = format!("/api/documents/{CT}");
    let created = api
        .json("POST", &docs, json!({"data": {"title": "A", "tags": ["x"]}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let doc = created.json()["data"].clone();
    let id = doc["documentId"].as_str().unwrap().to_owned();
    assert_eq!(
        (doc["title"].as_str(), doc["version"].as_u64()),
        (Some("A"), Some(0))
    );
    let one = format!("{docs}/{id}");
    assert_eq!(api.get(&one).await.json()["data"]["tags"], json!(["x"]));

    let updated = api
        .json("PUT", &one, json!({"data": {"title": "B", "version": 0}}))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["data"]["title"], "B");
    let stale = api
        .json("PUT", &one, json!({"data": {"title": "C", "version": 7}}))
        .await;
    assert_error(&stale, 409, "version_conflict");
    assert_eq!(
        api.get(&one).await.json()["data"]["title"],
        "B",
        "a stale write changes nothing"
    );

    let chosen = "0190e5a6-0000-7000-8000-000000000001";
    let with_id = api
        .json("POST", &docs, json!({"data": {"documentId": chosen, "n": 1}}))
        .await;
    assert_eq!(with_id.status, 201, "{}", with_id.body);
    assert_eq!(with_id.json()["data"]["documentId"], chosen);
    let twice = api
        .json("POST", &docs, json!({"data": {"documentId": chosen, "n": 2}}))
        .await;
    assert_error(&twice, 409, "already_exists");

    let list = api.get(&format!("{docs}?pageSize=1&page=2")).await.json();
    assert_eq!(
        list["meta"]["pagination"],
        json!({"page": 2, "pageSize": 1, "pageCount": 2, "total": 2})
    );
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let deleted = api.call("DELETE", &one, None, "application/json").await;
    assert_eq!(deleted.status, 204);
    assert_eq!(api.get(&one).await.status, 404);
    let queue = api.get("/api/offline-sync/queue").await.json();
    assert_eq!(
        queue["meta"]["pagination"]["total"], 4,
        "create, update, create, delete queued"
    );
    assert_eq!(queue["data"][0]["operation"], "delete");
    assert_eq!(
        api.get("/api/offline-sync/queue/pending").await.json()["data"]["pending"],
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strapi_plural_route_serves_what_the_documents_route_serves() {
    for mode in [Mode::Master, Mode::Replica] {
        let api = Api::start(mode, true).await;
        let docs = format!("/api/documents/{CT}");
        let plural = format!("/api/{PLURAL}");
        let created = api.json("POST", &plural, json!({"data": {"n": 1}})).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.json()["data"]["documentId"].as_str().unwrap().to_owned();
        let version = created.json()["data"]["version"].as_u64().unwrap();
        assert_eq!(
            created.header("location"),
            Some(format!("{plural}/{id}").as_str())
        );
        let by_uid = api.get(&format!("{docs}/{id}")).await;
        let by_plural = api.get(&format!("{plural}/{id}")).await;
        assert_eq!((by_plural.status, by_plural.json()), (200, by_uid.json()));
        assert_eq!(by_plural.json()["data"]["n"], 1);

        let other = api.json("POST", &docs, json!({"data": {"n": 2}})).await;
        assert_eq!(other.status, 201, "{}", other.body);
        for query in [
            "",
            "?pageSize=1&page=2",
            "?pagination[page]=1&pagination[pageSize]=1",
            "?pagination[start]=1&pagination[limit]=1",
            "?pagination[withCount]=false",
        ] {
            let by_uid = api.get(&format!("{docs}{query}")).await.json();
            let by_plural = api.get(&format!("{plural}{query}")).await.json();
            assert_eq!(by_plural, by_uid, "{query}");
        }
        assert_eq!(api.get(&plural).await.json()["meta"]["pagination"]["total"], 2);
        let offset = api
            .get(&format!("{plural}?pagination[start]=1&pagination[limit]=5"))
            .await
            .json();
        assert_eq!(
            offset["meta"]["pagination"],
            json!({"start": 1, "limit": 5, "total": 2})
        );
        assert_eq!(offset["data"].as_array().unwrap().len(), 1);

        let one = format!("{plural}/{id}");
        let updated = api
            .json("PUT", &one, json!({"data": {"n": 3, "version": version}}))
            .await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        assert_eq!(api.get(&format!("{docs}/{id}")).await.json()["data"]["n"], 3);
        let stale = api
            .json("PUT", &one, json!({"data": {"n": 4, "version": version + 7}}))
            .await;
        assert_error(&stale, 409, "version_conflict");
        let deleted = api.call("DELETE", &one, None, "application/json").await;
        assert_eq!(deleted.status, 204);
        assert_error(&api.get(&format!("{docs}/{id}")).await, 404, "not_found");

        // A plural no type is served at, or a type's uid in its place, is no route; the
        // node's own routes keep their paths; a write still needs the admin token.
        assert_error(&api.get("/api/articles").await, 404, "not_found");
        // Only the configured plurals are routes: any other path is no route, for anyone.
        let anonymous = api.send("GET", "/api/articles/x", vec![], None).await;
        assert_eq!(anonymous.status, 404);
        if mode == Mode::Master {
            let push = api
                .call("POST", "/api/offline-sync/push", None, "application/json")
                .await;
            assert_error(&push, 404, "not_found");
        }
        assert_error(&api.get(&format!("/api/{CT}")).await, 404, "not_found");
        assert_eq!(api.get("/api/offline-sync/status").await.status, 200);
        let anonymous = api
            .send(
                "POST",
                &plural,
                vec![],
                Some(json!({"data": {"n": 5}}).to_string()),
            )
            .await;
        assert_eq!(anonymous.status, 401);

        let spec = api.get("/api/offline-sync/openapi.json").await.json();
        assert!(spec["paths"][&plural]["post"].is_object());
        assert!(spec["paths"][&format!("{plural}/{{document_id}}")]["delete"].is_object());
        assert!(spec["paths"].get("/api/{plural}").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strapi_filters_sort_and_fields_answer_alike_on_both_routes() {
    let api = Api::start(Mode::Replica, true).await;
    let docs = format!("/api/documents/{CT}");
    let plural = format!("/api/{PLURAL}");
    for (n, title) in [
        (1, "alpha"),
        (2, "Beta"),
        (3, "gamma"),
        (4, "delta"),
        (5, "50% off"),
    ] {
        let created = api
            .json("POST", &plural, json!({"data": {"n": n, "title": title}}))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let n_of = |answer: &Value| -> Vec<i64> {
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["n"].as_i64().unwrap())
            .collect()
    };
    for (query, expected, total) in [
        // The request of the issue: it once answered with every document.
        ("?filters[n][$eq]=99&sort=n:desc&fields[0]=n", vec![], 0),
        ("?filters[n][$gte]=3&sort=n:desc&fields[0]=n", vec![5, 4, 3], 3),
        (
            "?filters[$or][0][n][$lt]=2&filters[$or][1][title][$containsi]=BET",
            vec![1, 2],
            2,
        ),
        ("?filters[title][$contains]=%25&sort[0]=n", vec![5], 1),
        ("?filters[title][$notContains]=a&sort=title:desc", vec![5], 1),
        (
            "?filters[n][$in][0]=2&filters[n][$in][1]=4&fields=n,title",
            vec![2, 4],
            2,
        ),
        (
            "?filters[$not][n][$between][0]=2&filters[$not][n][$between][1]=4",
            vec![1, 5],
            2,
        ),
        ("?filters[title][$null]=true", vec![], 0),
        (
            "?sort=n:desc&pagination[start]=1&pagination[limit]=2",
            vec![4, 3],
            5,
        ),
        (
            "?filters[n][$gt]=1&sort=n&pagination[page]=2&pagination[pageSize]=3",
            vec![5],
            4,
        ),
    ] {
        let by_uid = api.get(&format!("{docs}{query}")).await;
        let by_plural = api.get(&format!("{plural}{query}")).await;
        assert_eq!(by_plural.status, 200, "{query}: {}", by_plural.body);
        assert_eq!(by_plural.json(), by_uid.json(), "{query}");
        let answer = by_plural.json();
        assert_eq!(n_of(&answer), expected, "{query}");
        assert_eq!(answer["meta"]["pagination"]["total"], total, "{query}");
    }
    let selected = api
        .get(&format!("{plural}?filters[n][$eq]=1&fields[0]=title"))
        .await
        .json();
    let doc = selected["data"][0].as_object().unwrap();
    let mut members: Vec<&str> = doc.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["documentId", "title"]);
    let id = doc["documentId"].as_str().unwrap();
    let one = api.get(&format!("{plural}/{id}?fields=n,version")).await.json();
    assert_eq!(one["data"]["n"], 1);
    assert!(one["data"]["version"].is_u64(), "{one}");
    assert!(one["data"].get("title").is_none(), "{one}");
    let by_id = api
        .get(&format!("{docs}?filters[documentId][$eq]={id}"))
        .await
        .json();
    assert_eq!(n_of(&by_id), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_query_parameter_is_refused_by_name_never_ignored() {
    let api = Api::start(Mode::Replica, true).await;
    for base in [format!("/api/documents/{CT}"), format!("/api/{PLURAL}")] {
        let created = api.json("POST", &base, json!({"data": {"n": 1}})).await;
        let id = created.json()["data"]["documentId"].as_str().unwrap().to_owned();
        let one = format!("{base}/{id}");
        let body = Some(json!({"data": {"n": 2}}).to_string());
        for (method, path, named) in [
            (
                "GET",
                format!("{base}?filters[n][$regex]=99&sort=n:desc"),
                "$regex",
            ),
            (
                "GET",
                format!("{base}?filters[n][$eq]=1&populate=*"),
                "\"populate\"",
            ),
            ("GET", format!("{base}?page=1&locale=fr"), "\"locale\""),
            ("GET", format!("{base}?status=draft"), "\"status\""),
            ("GET", format!("{one}?sort=n"), "\"sort\""),
            ("POST", format!("{base}?fields[0]=n"), "\"fields[0]\""),
            ("POST", format!("{base}?locale=fr"), "\"locale\""),
            ("PUT", format!("{one}?populate=*"), "\"populate\""),
            (
                "DELETE",
                format!("{one}?filters[n][$eq]=1"),
                "\"filters[n][$eq]\"",
            ),
        ] {
            let answer = api.call(method, &path, body.clone(), "application/json").await;
            assert_error(&answer, 400, "bad_request");
            let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.contains(named), "{method} {path}: {message}");
        }
        // Refused before anything was done: the document is as it was, and there is one.
        assert_eq!(api.get(&one).await.json()["data"]["n"], 1);
        let page = api
            .get(&format!("{base}?pagination[page]=1&pagination[pageSize]=5"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let listed = api.get(&format!("/api/{PLURAL}")).await.json();
    assert_eq!(listed["meta"]["pagination"]["total"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_with_the_right_status() {
    let api = Api::start(Mode::Replica, true).await;
    let docs = format!("/api/documents/{CT}");
    let cases = [
        (
            api.call("POST", &docs, Some("{not json".into()), "application/json")
                .await,
            400,
        ),
        (
            api.json("POST", &docs, json!({"title": "no data member"})).await,
            400,
        ),
        (api.json("POST", &docs, json!({"data": {"\u{1}": 1}})).await, 400),
        (
            api.json("POST", &docs, json!({"data": {}, "extra": true})).await,
            400,
        ),
        (
            api.json("POST", "/api/documents/bad%20type", json!({"data": {}}))
                .await,
            400,
        ),
        (api.get(&format!("{docs}/not-a-uuid")).await, 400),
        (api.get(&format!("{docs}?page=0")).await, 400),
        (api.get(&format!("{docs}?pageSize=abc")).await, 400),
        (
            api.get(&format!("{docs}/0190e5a6-0000-7000-8000-0000000000ff"))
                .await,
            404,
        ),
        (api.get("/api/offline-sync/conflicts").await, 404),
        (api.get("/nowhere").await, 404),
        (api.call("PATCH", &docs, None, "application/json").await, 405),
        (
            api.call(
                "POST",
                &docs,
                Some("x=1".into()),
                "application/x-www-form-urlencoded",
            )
            .await,
            415,
        ),
        (api.get("/api/offline-sync/queue?status=lost").await, 400),
    ];
    for (i, (answer, status)) in cases.iter().enumerate() {
        assert_eq!(answer.status, *status, "case {i}: {}", answer.body);
        assert!(!error_code(answer).is_empty(), "case {i}: {}", answer.body);
        assert!(answer.json()["error"]["message"].is_string());
    }
    assert_eq!(cases[11].0.header("allow"), Some("GET, POST"));
    let big = json!({"data": {"text": "x".repeat(offline_sync_http::MAX_BODY_BYTES)}});
    let too_large = api.json("POST", &docs, big).await;
    assert_error(&too_large, 413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_database_is_connected_only_liveness_answers_200() {
    let api = Api::start(Mode::Master, false).await;
    assert_eq!(api.get("/api/offline-sync/health/live").await.status, 200);
    let ready = api.get("/api/offline-sync/health/ready").await;
    assert_error(&ready, 503, "not_ready");
    let docs = api.get(&format!("/api/documents/{CT}")).await;
    assert_eq!(docs.status, 503);
    let health = api.get("/api/offline-sync/health").await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (503, Some("unhealthy"))
    );
    assert!(api.slot.get().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_dead_letters_answer_not_found_and_bad_bodies() {
    let api = Api::start(Mode::Master, true).await;
    assert_eq!(
        api.get("/api/offline-sync/conflicts").await.json()["data"],
        json!([])
    );
    assert_eq!(api.get("/api/offline-sync/conflicts/9").await.status, 404);
    let resolve = "/api/offline-sync/conflicts/9/resolve";
    assert_eq!(
        api.json("POST", resolve, json!({"strategy": "keep-ship"}))
            .await
            .status,
        404
    );
    assert_eq!(
        api.json("POST", resolve, json!({"strategy": "merge"}))
            .await
            .status,
        400
    );
    assert_eq!(
        api.json("POST", resolve, json!({"strategy": "newest"}))
            .await
            .status,
        400
    );
    assert_eq!(api.get("/api/offline-sync/conflicts/abc").await.status, 400);
    assert_eq!(
        api.get("/api/offline-sync/dead-letters").await.json()["meta"]["pagination"]["total"],
        0
    );
    assert_eq!(
        api.call(
            "POST",
            "/api/offline-sync/dead-letters/3/retry",
            None,
            "application/json"
        )
        .await
        .status,
        404
    );
    assert_eq!(
        api.get("/api/offline-sync/queue").await.status,
        404,
        "a master has no outbox"
    );
    let openapi = api.get("/api/offline-sync/openapi.json").await.json();
    assert_eq!(openapi["openapi"], "3.0.3");
    assert!(openapi["paths"]["/api/offline-sync/conflicts/{id}/resolve"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_retried_and_discarded() {
    use offline_sync_model::{Commit, CommitOp, ContentType, DocumentId, Hlc, Message, Origin, encode};
    use offline_sync_storage::{NewDeadLetter, ReplicaBatch, TopicOffset};

    let api = Api::start(Mode::Replica, true).await;
    let Some(Node::Replica(replica)) = api.slot.get().cloned() else {
        panic!("a replica")
    };
    // Garbage on master-updates becomes dead letters; consumption goes on.
    api.transport.ensure_topic("master-updates", 1).await.unwrap();
    api.transport
        .publish(
            "master-updates",
            None,
            vec![b"\x00garbage".to_vec(), br#"{"v":9}"#.to_vec()],
        )
        .await
        .unwrap();
    replica.pull_all().await.unwrap();
    let list = api
        .get("/api/offline-sync/dead-letters?status=pending")
        .await
        .json();
    assert_eq!(list["meta"]["pagination"]["total"], 2, "{list}");
    let newest = &list["data"][0];
    assert_eq!(
        (newest["topic"].as_str(), newest["offset"].as_i64()),
        (Some("master-updates"), Some(1))
    );
    assert!(
        newest["reason"].as_str().unwrap().contains("version 9"),
        "{newest}"
    );
    let id = newest["id"].as_u64().unwrap();
    assert_eq!(
        api.get(&format!("/api/offline-sync/dead-letters/{id}"))
            .await
            .json()["data"]["id"],
        id
    );

    let retry = api
        .call(
            "POST",
            &format!("/api/offline-sync/dead-letters/{id}/retry"),
            None,
            "application/json",
        )
        .await;
    assert_eq!(
        (retry.status, error_code(&retry).as_str()),
        (409, "conflict"),
        "it still fails"
    );
    let discard = format!("/api/offline-sync/dead-letters/{id}/discard");
    let discarded = api.call("POST", &discard, None, "application/json").await;
    assert_eq!(discarded.status, 200, "{}", discarded.body);
    assert_eq!(discarded.json()["data"]["status"], "discarded");
    assert!(discarded.json()["data"]["handledAt"].is_string());
    assert_eq!(
        api.call("POST", &discard, None, "application/json").await.status,
        409
    );

    // A record an older build could not read, kept as a dead letter: a retry verifies and
    // applies it.
    let doc = DocumentId::new_v7();
    let commit = Message::Commit(Commit {
        csn: 1,
        origin: Origin::Master,
        seq: None,
        ct: ContentType::new(CT).unwrap(),
        id: doc,
        op: CommitOp::Put,
        fields: serde_json::from_value(json!({"title": "late"})).unwrap(),
        hlc: Hlc { ms: 1, c: 0 },
        resolves: None,
        conflict: None,
    });
    let next = api.storage.offset("master-updates", 0).await.unwrap().unwrap();
    let batch = ReplicaBatch::read(
        vec![],
        vec![NewDeadLetter {
            topic: "master-updates".into(),
            partition: 0,
            offset: next - 1,
            key: None,
            payload: offline_sync_model::SigningKey::from_seed([3; 32]).seal("master", &encode(&commit)),
            reason: "unknown to an older build".into(),
        }],
        TopicOffset::new("master-updates", 0, next),
    );
    api.storage
        .replica_apply(replica.ship(), &batch, 1)
        .await
        .unwrap();
    let pending = api
        .get("/api/offline-sync/dead-letters?status=pending")
        .await
        .json();
    let late = pending["data"][0]["id"].as_u64().unwrap();
    let retried = api
        .call(
            "POST",
            &format!("/api/offline-sync/dead-letters/{late}/retry"),
            None,
            "application/json",
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json()["data"]["status"], "resolved");
    let got = api.get(&format!("/api/documents/{CT}/{doc}")).await;
    assert_eq!(got.json()["data"]["title"], "late", "{}", got.body);
    assert_eq!(
        api.storage.offset("master-updates", 0).await.unwrap(),
        Some(next),
        "a retry never moves the offset"
    );

    // The admin actions that succeeded are in the audit log, newest first, with the role.
    let audit = api.get("/api/offline-sync/audit").await.json();
    let actions: Vec<_> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].clone(), e["role"].clone(), e["target"].clone()))
        .collect();
    assert_eq!(
        actions,
        [
            (
                json!("retry"),
                json!("admin"),
                json!(format!("dead letter {late}"))
            ),
            (
                json!("discard"),
                json!("admin"),
                json!(format!("dead letter {id}"))
            ),
        ]
    );
}

/// A replica that found a CSN missing on `master-updates` stops applying and says why in its
/// status and its health report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_at_a_csn_gap_says_so() {
    use offline_sync_model::{Commit, CommitOp, ContentType, DocumentId, Hlc, Message, Origin, encode};

    let api = Api::start(Mode::Replica, true).await;
    let Some(Node::Replica(replica)) = api.slot.get().cloned() else {
        panic!("a replica")
    };
    let commit = Message::Commit(Commit {
        csn: 2,
        origin: Origin::Master,
        seq: None,
        ct: ContentType::new(CT).unwrap(),
        id: DocumentId::new_v7(),
        op: CommitOp::Put,
        fields: serde_json::from_value(json!({"title": "after a gap"})).unwrap(),
        hlc: Hlc { ms: 1, c: 0 },
        resolves: None,
        conflict: None,
    });
    api.transport.ensure_topic("master-updates", 1).await.unwrap();
    let record = offline_sync_model::SigningKey::from_seed([4; 32]).seal("master", &encode(&commit));
    api.transport
        .publish("master-updates", None, vec![record])
        .await
        .unwrap();
    assert!(replica.pull_all().await.is_err());
    let health = api.get("/api/offline-sync/health").await.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["checks"]["sync"]["status"], "stalled", "{health}");
    assert!(
        health["checks"]["sync"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("commit 1 is missing")),
        "{health}"
    );
    let status = api.get("/api/offline-sync/status").await.json();
    assert!(
        status["data"]["resyncRequired"]
            .as_str()
            .is_some_and(|r| r.contains("commit 1 is missing")),
        "{status}"
    );
    let pull = api
        .call("POST", "/api/offline-sync/pull", None, "application/json")
        .await;
    assert_error(&pull, 503, "resync_required");
}

/// The master serves its state in pages for a resync: tombstones included, sensitive fields
/// left out, with the published point to read `master-updates` on from — the record before
/// `offset` is the commit `at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_serves_its_state_in_pages_for_a_resync() {
    let api = Api::start(Mode::Master, true).await;
    let Some(Node::Master(m)) = api.slot.get() else {
        panic!("a master");
    };
    let ct = "api::article.article";
    let mut ids = vec![];
    for n in 0..3 {
        let a = api
            .json(
                "POST",
                &format!("/api/documents/{ct}"),
                json!({"data": {"n": n, "password": "secret"}}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        ids.push(a.json()["data"]["documentId"].as_str().unwrap().to_owned());
    }
    let gone = api
        .call("DELETE", &format!("/api/documents/{ct}/{}", ids[0]), None, "")
        .await;
    assert!(gone.status < 300, "{}", gone.body);
    m.publish_all().await.unwrap();

    let first = api.get("/api/offline-sync/snapshot?limit=2&ship=ship-x").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let page = first.json()["data"].clone();
    assert_eq!(page["at"], json!(4), "{page}");
    assert_eq!(page["lastSeq"], Value::Null, "a ship never heard of");
    let next = &page["next"];
    let rest = api
        .get(&format!(
            "/api/offline-sync/snapshot?limit=2&from={}",
            next.as_str().unwrap()
        ))
        .await
        .json()["data"]
        .clone();
    assert_eq!(rest["next"], Value::Null);
    let docs: Vec<Value> = page["documents"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["documents"].as_array().unwrap())
        .cloned()
        .collect();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        docs.iter()
            .map(|d| d["documentId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        want
    );
    for d in &docs {
        assert!(
            d["fields"].get("password").is_none(),
            "a sensitive field left the master: {d}"
        );
        assert_eq!(d["deleted"], json!(d["documentId"] == json!(ids[0])));
    }
    let above = api.get("/api/offline-sync/snapshot?after=3").await.json()["data"].clone();
    assert_eq!(
        above["documents"].as_array().unwrap().len(),
        1,
        "only the delete is above CSN 3"
    );

    let offset = page["offset"].as_i64().unwrap();
    let fetched = api
        .transport
        .fetch(
            "master-updates",
            0,
            offset - 1,
            FetchLimit::new(1, Duration::ZERO),
        )
        .await
        .unwrap();
    let record = offline_sync_model::unseal(&fetched.records[0].record.value).unwrap();
    match offline_sync_model::decode(record.msg).unwrap() {
        offline_sync_model::Message::Commit(c) => assert_eq!(c.csn, 4),
        other => panic!("the record before the offset is {other:?}"),
    }

    for bad in [
        "limit=0",
        "limit=5001",
        "from=api::article.article",
        "from=a/b",
        "after=x",
        "surprise=1",
    ] {
        let a = api.get(&format!("/api/offline-sync/snapshot?{bad}")).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_is_served_from_the_binary_with_strict_headers() {
    let api = Api::start(Mode::Master, true).await;
    let page = api.get("/admin").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.body.contains("/admin/app.js"), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    for rule in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // Revalidated with its ETag: a few bytes on a slow link.
    let tag = page.header("etag").unwrap().to_owned();
    let again = api.bare("/admin", &[("If-None-Match", &tag)]).await;
    assert_eq!(again.status, 304);

    let script = api.get("/admin/app.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        script.body.contains("sessionStorage"),
        "the script, uncompressed when not asked"
    );
    let gzip = [("Accept-Encoding", "gzip")];
    let zipped = api.bare("/admin/app.js", &gzip).await;
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let unzipped = offline_sync_engine::snapshot::gunzip(&zipped.body).unwrap();
    assert_eq!(
        unzipped,
        script.body.as_bytes(),
        "the same script, gzip-compressed"
    );
    assert!(
        zipped.body.len() * 2 < script.body.len(),
        "{} bytes zipped",
        zipped.body.len()
    );

    // API answers too, when asked: the page polls them.
    let zipped_api = api.bare("/api/offline-sync/openapi.json", &gzip).await;
    assert_eq!(zipped_api.header("content-encoding"), Some("gzip"));
    let spec: Value =
        serde_json::from_slice(&offline_sync_engine::snapshot::gunzip(&zipped_api.body).unwrap()).unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    assert_eq!(api.get("/admin/style.css").await.status, 404);
    assert_eq!(api.get("/admin/..%2Fadmin.css").await.status, 404);

    // API answers are never stored by a browser or a proxy, errors included.
    let status = api.get("/api/offline-sync/status").await;
    assert_eq!(status.header("cache-control"), Some("no-store"));
    assert!(status.header("content-security-policy").is_some());
    let missing = api.get("/api/offline-sync/conflicts/9").await;
    assert_eq!(
        (missing.status, missing.header("cache-control")),
        (404, Some("no-store"))
    );
    // A refusal of the token check too.
    let refused = api.bare("/api/offline-sync/status", &[]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    assert!(
        refused
            .header("content-security-policy")
            .is_some_and(|p| p.contains("frame-ancestors 'none'"))
    );
    assert_eq!(refused.header("x-frame-options"), Some("DENY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_and_stats_tell_the_page_who_and_what() {
    let api = Api::start(Mode::Replica, true).await;
    let session = api.get("/api/offline-sync/session").await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(
        session.json()["data"],
        json!({"role": "admin", "canWrite": true, "mode": "replica", "shipId": null,
               "version": env!("CARGO_PKG_VERSION")})
    );
    for i in 0..3 {
        let created = api
            .json("POST", &format!("/api/documents/{CT}"), json!({"data": {"n": i}}))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let stats = api.get("/api/offline-sync/stats").await.json();
    let minutes = stats["data"]["changesPerMinute"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "every minute of the last hour");
    let counts: Vec<u64> = minutes.iter().map(|m| m["changes"].as_u64().unwrap()).collect();
    assert_eq!(counts.iter().sum::<u64>(), 3, "{stats}");
    assert!(
        counts[..58].iter().all(|&n| n == 0),
        "the writes are in the newest minutes: {counts:?}"
    );
    assert!(minutes[0]["at"].as_str().unwrap() < minutes[59]["at"].as_str().unwrap());

    let status = api.get("/api/offline-sync/status").await.json()["data"].clone();
    assert_eq!(
        (status["unsent"].as_u64(), status["acked"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(status["broker"]["online"], false);
    assert!(status["broker"]["lastError"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_filtered_shown_with_their_base_and_previewed() {
    use offline_sync_model::{Change, ContentType, DocumentId, Hlc, Op, Policies};
    use offline_sync_storage::MasterBatch;

    let api = Api::start(Mode::Master, true).await;
    let created = api
        .json(
            "POST",
            &format!("/api/documents/{CT}"),
            json!({"data": {"title": "base", "body": "b0"}}),
        )
        .await;
    let id: DocumentId = created.json()["data"]["documentId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let base = created.json()["data"]["version"].as_u64().unwrap();
    let doc_path = format!("/api/documents/{CT}/{id}");
    let edited = api
        .json("PUT", &doc_path, json!({"data": {"title": "master"}}))
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    // The ship changed the same field from the base.
    let change = Change {
        resent: false,
        ship: ShipId::new("ship-x").unwrap(),
        seq: 1,
        ct: ContentType::new(CT).unwrap(),
        id,
        op: Op::Update,
        fields: json!({"title": "ship"}).as_object().unwrap().clone(),
        base,
        unseen: Default::default(),
        hlc: Hlc { ms: 1, c: 0 },
    };
    let batch = MasterBatch {
        changes: vec![change],
        ..MasterBatch::default()
    };
    let applied = api
        .storage
        .master_apply(&batch, &Policies::default(), 5)
        .await
        .unwrap();
    assert_eq!(applied.conflicts, 1);
    // Ship X has applied no commit: it lags by the age of the first one.
    let ships = api.get("/api/offline-sync/ships").await.json();
    let x = &ships["data"][0];
    assert_eq!(
        (x["shipId"].as_str(), x["appliedCsn"].as_u64()),
        (Some("ship-x"), Some(0))
    );
    assert!(x["lagCsn"].as_u64() > Some(0));
    assert!(x["lagMs"].as_u64().is_some(), "{x}");

    let listed = |query: &'static str| {
        let api = &api;
        async move {
            let a = api.get(&format!("/api/offline-sync/conflicts{query}")).await;
            assert_eq!(a.status, 200, "{}", a.body);
            a.json()["meta"]["pagination"]["total"].as_u64().unwrap()
        }
    };
    assert_eq!(listed("").await, 1);
    assert_eq!(listed("?ship=ship-x").await, 1);
    assert_eq!(listed("?ship=ship-y").await, 0);
    assert_eq!(listed("?contentType=api::note.note").await, 1);
    assert_eq!(listed("?contentType=api::crew.crew&ship=ship-x").await, 0);
    assert_eq!(listed("?ship=").await, 1, "an empty form field filters nothing");
    assert_eq!(listed("?ship=master").await, 0, "no ship has that name");

    let cid = api.get("/api/offline-sync/conflicts").await.json()["data"][0]["id"]
        .as_u64()
        .unwrap();
    let preview_path = format!("/api/offline-sync/conflicts/{cid}/preview");
    // Keep-ship, confirmed on the preview that gave `revision`.
    let resolve_keep_ship = async |revision: &str| {
        let path = format!("/api/offline-sync/conflicts/{cid}/resolve");
        api.json(
            "POST",
            &path,
            json!({"strategy": "keep-ship", "revision": revision}),
        )
        .await
    };
    let one = api
        .get(&format!("/api/offline-sync/conflicts/{cid}"))
        .await
        .json()["data"]
        .clone();
    assert_eq!(
        (&one["baseData"], &one["shipData"], &one["masterData"]),
        (
            &json!({"title": "base"}),
            &json!({"title": "ship"}),
            &json!({"title": "master"})
        )
    );
    assert_eq!(one["baseUnknown"], json!([]));

    let preview = api
        .json(
            "POST",
            &preview_path,
            json!({"strategy": "merge", "mergeData": {"title": "merged"}}),
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert_eq!(
        preview.json()["data"]["document"],
        json!({"title": "merged", "body": "b0"})
    );
    let keep_ship = api
        .json("POST", &preview_path, json!({"strategy": "keep-ship"}))
        .await;
    assert_eq!(keep_ship.json()["data"]["document"]["title"], "ship");
    // A resolution confirmed on a preview is refused once the document moved on.
    let revision = keep_ship.json()["data"]["revision"].as_str().unwrap().to_owned();
    let moved = api.json("PUT", &doc_path, json!({"data": {"body": "b1"}})).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let stale = resolve_keep_ship(&revision).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("preview it again"), "{}", stale.body);
    // Nothing was applied.
    let still = api
        .get(&format!("/api/offline-sync/conflicts/{cid}"))
        .await
        .json();
    assert_eq!(still["data"]["status"], "open");
    let doc = api.get(&doc_path).await.json();
    assert_eq!(doc["data"]["title"], "master");
    let fresh = api
        .json("POST", &preview_path, json!({"strategy": "keep-ship"}))
        .await
        .json()["data"]["revision"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, revision);
    let applied = resolve_keep_ship(&fresh).await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    let doc = api.get(&doc_path).await.json();
    assert_eq!(
        (&doc["data"]["title"], &doc["data"]["body"]),
        (&json!("ship"), &json!("b1"))
    );
    assert_eq!(
        api.json(
            "POST",
            "/api/offline-sync/conflicts/99/preview",
            json!({"strategy": "keep-ship"})
        )
        .await
        .status,
        404
    );
}
