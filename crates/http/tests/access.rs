//! Who gets in, route by route: every operation of the route table (read back from the
//! OpenAPI document the table makes, so a new route is covered by adding it), on a master and
//! a replica, with no token, a wrong token, the read token and the admin token — and with
//! spellings of its path an attacker would try (percent-encoded letters, doubled slashes, a
//! trailing slash, changed case, dot segments, an encoded slash). Requests go over a raw
//! socket so that no client library normalises the path first.

#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use offline_sync_engine::{Master, MasterConfig, Mode, Page, Replica, ReplicaConfig};
use offline_sync_http::{HttpConfig, Node, NodeSlot, Server, serve};
use offline_sync_model::{ContentType, ShipId};
use offline_sync_storage::{DeadLetterStatus, NewDeadLetter, SeaStorage, Storage, TopicOffset};
use offline_sync_transport::{MemoryTransport, Transport};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-of-the-access-test";
const READ: &str = "read-token-of-the-access-test";
const CT: &str = "api::note.note";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    None,
    Wrong,
    Read,
    Admin,
}

impl Token {
    fn header(self) -> Option<String> {
        match self {
            Token::None => None,
            Token::Wrong => Some(format!("Bearer {ADMIN}x")),
            Token::Read => Some(format!("Bearer {READ}")),
            Token::Admin => Some(format!("Bearer {ADMIN}")),
        }
    }

    /// Whether this token is enough for an operation of `access`.
    fn enough(self, access: &str) -> bool {
        match access {
            "public" => true,
            "read" => matches!(self, Token::Read | Token::Admin),
            "admin" => self == Token::Admin,
            other => panic!("unknown x-access {other:?}"),
        }
    }
}

/// Sends one request exactly as written, with a body every write endpoint would take apart,
/// and returns the status code.
fn raw(addr: SocketAddr, method: &str, target: &str, token: Token) -> u16 {
    let body = json!({"data": {"title": "forged"}, "strategy": "keep-master"}).to_string();
    raw_with(addr, method, target, token, &body)
}

fn raw_with(addr: SocketAddr, method: &str, target: &str, token: Token, body: &str) -> u16 {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(h) = token.header() {
        req.push_str(&format!("Authorization: {h}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in answer to {method} {target}: {text}"))
}

fn encode_byte(b: u8) -> String {
    format!("%{b:02x}")
}

/// Spellings of `path` that an attacker would try, each different from `path`.
fn variants(path: &str) -> Vec<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let join = |segs: &[String]| format!("/{}", segs.join("/"));
    let owned: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let Some(first) = seg.bytes().next() else { continue };
        // The first letter percent-encoded, in lower- and uppercase hex.
        let mut s = owned.clone();
        s[i] = format!("{}{}", encode_byte(first), &seg[1..]);
        out.push(join(&s));
        s[i] = format!("%{first:02X}{}", &seg[1..]);
        out.push(join(&s));
        // Every byte percent-encoded.
        s[i] = seg.bytes().map(encode_byte).collect();
        out.push(join(&s));
        // Changed case.
        s[i] = seg.to_uppercase();
        out.push(join(&s));
        // A doubled slash before the segment.
        s[i] = format!("/{seg}");
        out.push(join(&s));
        // Dot segments before it.
        s[i] = format!("./{seg}");
        out.push(join(&s));
        s[i] = format!("x/../{seg}");
        out.push(join(&s));
        s[i] = format!("%2e/{seg}");
        out.push(join(&s));
        s[i] = format!("x/%2e%2e/{seg}");
        out.push(join(&s));
    }
    for i in 1..segments.len() {
        // An encoded slash instead of a real one.
        let (a, b) = owned.split_at(i);
        out.push(format!("/{}%2F{}", a.join("/"), b.join("/")));
        out.push(format!("/{}%2f{}", a.join("/"), b.join("/")));
    }
    out.push(format!("{path}/"));
    out.push(format!("/{path}"));
    out.push(format!("{path}/."));
    out.push(format!("{path}?x=1"));
    out.retain(|v| v != path);
    out
}

struct Node1 {
    server: Server,
    storage: Arc<dyn Storage>,
    _dir: tempfile::TempDir,
    doc_id: String,
}

async fn start(mode: Mode) -> Node1 {
    let dir = tempfile::tempdir().unwrap();
    let url = SeaStorage::sqlite_url(&dir.path().join("node.db"));
    let storage: Arc<dyn Storage> = Arc::new(SeaStorage::connect(&url).await.unwrap());
    let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    let ct = ContentType::new(CT).unwrap();
    let fields = json!({"title": "kept"}).as_object().unwrap().clone();
    let (node, doc_id) = match mode {
        Mode::Master => {
            let m = Master::new(MasterConfig::default(), storage.clone(), transport.clone());
            let doc = m.create(&ct, fields).await.unwrap();
            (Node::Master(m), doc.id.to_string())
        }
        Mode::Replica => {
            let r = Replica::new(
                ReplicaConfig::new(ShipId::new("ship-access").unwrap()),
                storage.clone(),
                transport.clone(),
            );
            let doc = r.create(&ct, fields).await.unwrap();
            (Node::Replica(r), doc.id.to_string())
        }
    };
    // A pending dead letter, so that retry and discard have something to act on.
    storage
        .master_apply(
            &offline_sync_storage::MasterBatch {
                dead_letters: vec![NewDeadLetter {
                    topic: "ship-updates".into(),
                    partition: 0,
                    offset: 0,
                    key: None,
                    payload: b"{}".to_vec(),
                    reason: "test".into(),
                }],
                offsets: vec![TopicOffset::new("unused", 0, 0)],
                ..Default::default()
            },
            &Default::default(),
            0,
        )
        .await
        .unwrap();
    let slot = NodeSlot::new();
    assert!(slot.set(node));
    let mut cfg = HttpConfig::new("127.0.0.1:0".parse().unwrap(), mode);
    cfg.admin_token = Some(ADMIN.into());
    cfg.read_token = Some(READ.into());
    cfg.workers = 1;
    let server = serve(cfg, slot).unwrap();
    Node1 {
        server,
        storage,
        _dir: dir,
        doc_id,
    }
}

/// What an unauthorised request must not have changed: the documents and the dead letters.
async fn snapshot(storage: &dyn Storage) -> Value {
    let (docs, _) = storage.documents(None, Page::all()).await.unwrap();
    let (letters, _) = storage.dead_letters(None, Page::all()).await.unwrap();
    json!({
        "docs": docs.iter().map(|d| json!([d.id.to_string(), d.fields, d.deleted, d.version])).collect::<Vec<_>>(),
        "pending_letters": letters.iter().filter(|l| l.status == DeadLetterStatus::Pending).count(),
    })
}

async fn check_mode(mode: Mode) {
    let node = start(mode).await;
    let addr = node.server.addr();
    let spec: Value = {
        let status = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(
                    format!("GET /api/offline-sync/openapi.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        let body = status.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    };
    let before = snapshot(node.storage.as_ref()).await;
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let access = op["x-access"].as_str().unwrap().to_owned();
            let concrete = path
                .replace("{content_type}", CT)
                .replace("{document_id}", &node.doc_id)
                .replace("{id}", "1");
            ops.push((method.to_uppercase(), concrete, access));
        }
    }
    assert!(
        ops.len() >= 15,
        "the route table lists the node's operations: {ops:?}"
    );

    let checked = tokio::task::spawn_blocking(move || {
        let mut requests = 0;
        // First every spelling an attacker would try, without enough token: none may reach a
        // handler (the handler would answer 2xx, 400 or 409; the check answers 401 or 403;
        // the router 404 for what it does not know).
        for (method, path, access) in &ops {
            for token in [Token::None, Token::Wrong, Token::Read] {
                if token.enough(access) {
                    continue;
                }
                for target in std::iter::once(path.clone()).chain(variants(path)) {
                    let status = raw(addr, method, &target, token);
                    requests += 1;
                    assert!(
                        matches!(status, 401 | 403 | 404),
                        "{mode}: {method} {target} ({access}) with {token:?} answered {status}"
                    );
                    if target == *path {
                        let expected = if token == Token::Read { 403 } else { 401 };
                        assert_eq!(status, expected, "{mode}: {method} {target} with {token:?}");
                    }
                }
            }
        }
        // Then the documented combinations: the right token gets past the check.
        for (method, path, access) in &ops {
            for token in [Token::None, Token::Wrong, Token::Read, Token::Admin] {
                if !token.enough(access) || method != "GET" {
                    continue;
                }
                let status = raw(addr, method, path, token);
                requests += 1;
                assert!(
                    !matches!(status, 401 | 403),
                    "{mode}: {method} {path} ({access}) with {token:?} answered {status}"
                );
            }
        }
        requests
    })
    .await
    .unwrap();
    assert!(checked > 1000, "{checked} requests");
    assert_eq!(
        snapshot(node.storage.as_ref()).await,
        before,
        "{mode}: requests without the right token changed nothing"
    );

    // Writes with the admin token do get through (the check is not simply closed).
    let docs = format!("/api/documents/{CT}");
    let body = json!({"data": {"title": "by the admin"}}).to_string();
    let status = tokio::task::spawn_blocking(move || raw_with(addr, "POST", &docs, Token::Admin, &body))
        .await
        .unwrap();
    assert_eq!(status, 201, "{mode}: the admin token creates");
    node.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_documented_tokens_reach_a_master_route_however_the_path_is_spelled() {
    check_mode(Mode::Master).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_documented_tokens_reach_a_replica_route_however_the_path_is_spelled() {
    check_mode(Mode::Replica).await;
}

#[test]
fn the_variants_differ_from_the_path() {
    let v = variants("/api/offline-sync/push");
    assert!(v.contains(&"/api/offline-sync/%70ush".to_owned()));
    assert!(v.contains(&"//api/offline-sync/push".to_owned()));
    assert!(v.contains(&"/api/offline-sync/push/".to_owned()));
    assert!(v.contains(&"/api/OFFLINE-SYNC/push".to_owned()));
    assert!(v.contains(&"/api/x/../offline-sync/push".to_owned()));
    assert!(!v.contains(&"/api/offline-sync/push".to_owned()));
}
