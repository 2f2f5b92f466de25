//! The change feed and the webhooks of the real binaries: an app on board follows every
//! change its replica applied (its own writes and the master's commits) as Server-Sent
//! Events or by long polling, and a local HTTP receiver gets Strapi's webhook events, signed,
//! whatever its own ups and downs.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use offline_sync::kafka::testing::Tansu;
use serde_json::{Value, json};
use sha2::Sha256;
use support::process::{ARTICLE, Node, READ, eventually, free_port};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "webhook-secret-0123456789";

use support::process::{master_with_tokens as master, replica_with_tokens as replica};

fn update(node: &Node, id: &str, data: Value) {
    let a = node.call(
        "PUT",
        &format!("/api/documents/{ARTICLE}/{id}"),
        Some(&json!({ "data": data })),
    );
    assert_eq!(a.status, 200, "{}", a.body);
}

fn delete(node: &Node, id: &str) {
    let a = node.call("DELETE", &format!("/api/documents/{ARTICLE}/{id}"), None);
    assert!(a.status == 200 || a.status == 204, "{} {}", a.status, a.body);
}

/// One event of the feed, as an SSE client reads it: its id and its data.
#[derive(Clone, Debug)]
struct Event {
    id: u64,
    data: Value,
}

impl Event {
    /// (document, event, field `n`).
    fn what(&self) -> (String, String, Value) {
        (
            self.data["entry"]["documentId"].as_str().unwrap().to_owned(),
            self.data["event"].as_str().unwrap().to_owned(),
            self.data["entry"]["n"].clone(),
        )
    }
}

/// What a stream gave: an event, or a comment (a keep-alive).
enum Frame {
    Event(Event),
    Comment,
}

/// An EventSource as a browser runs it: reads one stream, and reconnects with the last id
/// it saw when the stream ends or cannot be opened.
struct Sse {
    url: String,
    last: Option<u64>,
    reader: Option<BufReader<Box<dyn Read + Send>>>,
}

impl Sse {
    fn new(node: &Node, since: &str) -> Sse {
        Sse {
            url: node.url(&format!("/api/offline-sync/changes?since={since}")),
            last: None,
            reader: None,
        }
    }

    fn open(&mut self) -> Result<(), String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(40)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent
            .get(&self.url)
            .header("Accept", "text/event-stream")
            .header("Authorization", format!("Bearer {READ}"));
        if let Some(last) = self.last {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let res = req.call().map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        if status != 200 {
            return Err(format!("answered {status}"));
        }
        let kind = res.headers().get("content-type").unwrap().to_str().unwrap();
        assert_eq!(kind, "text/event-stream");
        let reader: Box<dyn Read + Send> = Box::new(res.into_body().into_reader());
        self.reader = Some(BufReader::new(reader));
        Ok(())
    }

    /// The next frame, reconnecting (as an EventSource does, with `Last-Event-ID`) until
    /// `limit`.
    fn next(&mut self, limit: Duration) -> Frame {
        let start = Instant::now();
        let (mut id, mut data) = (None, None);
        loop {
            assert!(start.elapsed() < limit, "no event within {limit:?}");
            if self.reader.is_none() {
                if let Err(e) = self.open() {
                    eprintln!("change feed: {e}; trying again");
                    std::thread::sleep(Duration::from_millis(300));
                }
                continue;
            }
            let mut line = String::new();
            let read = self.reader.as_mut().unwrap().read_line(&mut line);
            if !matches!(read, Ok(n) if n > 0) {
                // The stream ended (the node stopped) or broke: reconnect.
                self.reader = None;
                (id, data) = (None, None);
                continue;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                // An id alone moves the last event id too, as an EventSource has it.
                if let Some(id) = id.take() {
                    self.last = Some(id);
                }
                if let Some(data) = data.take() {
                    let id = self.last.expect("an event without an id");
                    return Frame::Event(Event { id, data });
                }
            } else if line.starts_with(':') {
                return Frame::Comment;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            } else {
                assert!(line.starts_with("retry: "), "unexpected line {line:?}");
            }
        }
    }

    /// The next `n` events (keep-alives skipped).
    fn take(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::new();
        while events.len() < n {
            if let Frame::Event(e) = self.next(WAIT) {
                events.push(e);
            }
        }
        events
    }

    /// Drops the connection, as a client whose link failed.
    fn drop_connection(&mut self) {
        self.reader = None;
    }
}

/// An app follows a replica's change feed from the start while the ship writes and the
/// master's commits arrive, loses its connection, and later sees the replica restart: it
/// gets every change once, in order, the ids with no gap, and keep-alives while nothing
/// happens. The long poll gives the same events.
#[test]
fn the_change_feed_streams_every_change_in_order_across_a_drop_and_a_restart() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path(), &broker.address(), "feed_stream");
    let mut r = replica(dir.path(), &broker.address(), "ship-feed", &[]);
    let mut expected = Vec::new();
    let mut want =
        |id: &str, event: &str, n: Value| expected.push((id.to_owned(), format!("entry.{event}"), n));

    let a = r.create_article(json!({"n": 1}));
    want(&a, "create", json!(1));
    let b = r.create_article(json!({"n": 1}));
    want(&b, "create", json!(1));
    update(&r, &a, json!({"n": 2}));
    want(&a, "update", json!(2));
    delete(&r, &b);
    want(&b, "delete", json!(1));
    let c = m.create_article(json!({"n": 10}));
    want(&c, "create", json!(10));
    assert!(
        eventually(WAIT, || r.article(&c).is_some()),
        "the master's commit did not arrive"
    );

    let mut sse = Sse::new(&r, "0");
    let mut seen = sse.take(5);
    sse.drop_connection();

    // While the app is away: a ship write and a master commit.
    update(&r, &c, json!({"n": 11}));
    want(&c, "update", json!(11));
    let d = m.create_article(json!({"n": 20}));
    want(&d, "create", json!(20));
    assert!(
        eventually(WAIT, || r.article(&d).is_some()),
        "the master's commit did not arrive"
    );
    seen.extend(sse.take(2));

    // The replica restarts under the open stream; the app reconnects by itself.
    let (status, took) = r.terminate(Duration::from_secs(15));
    assert!(status.success(), "replica exit {status}:\n{}", r.log());
    assert!(
        took < Duration::from_secs(10),
        "an open stream held the stop for {took:?}"
    );
    r.restart();
    r.wait_ready();
    let e = r.create_article(json!({"n": 30}));
    want(&e, "create", json!(30));
    seen.extend(sse.take(1));

    let got: Vec<_> = seen.iter().map(Event::what).collect();
    assert_eq!(got, expected);
    let ids: Vec<u64> = seen.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "ids with a gap or a repeat: {ids:?}"
    );
    for e in &seen {
        assert_eq!(e.data["uid"], ARTICLE);
        assert_eq!(e.data["model"], "article");
        assert!(e.data["createdAt"].is_string() && e.data["entry"]["updatedAt"].is_string());
    }
    assert!(
        seen[3].data["entry"]["version"].is_u64(),
        "a delete shows the document it deleted"
    );

    // Nothing happens: the stream says it is alive.
    let quiet = Instant::now();
    assert!(matches!(sse.next(Duration::from_secs(30)), Frame::Comment));
    assert!(
        quiet.elapsed() >= Duration::from_secs(10),
        "a keep-alive before any silence"
    );

    // The long poll gives the same events, and waits for the next one.
    let poll = |since: u64, timeout: u64| {
        let a = r.call(
            "GET",
            &format!("/api/offline-sync/changes?since={since}&timeout={timeout}&limit=3"),
            None,
        );
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    };
    let first = poll(0, 0);
    let page: Vec<_> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(page, ids[..3]);
    assert_eq!(first["meta"]["lastEventId"], ids[2]);
    assert_eq!(poll(ids[ids.len() - 1], 0)["data"], json!([]));
    let last = ids[ids.len() - 1];
    let waiting = std::thread::spawn({
        let url = r.url(&format!("/api/offline-sync/changes?since={last}&timeout=30"));
        move || support::process::request("GET", &url, Some(READ), None)
    });
    std::thread::sleep(Duration::from_millis(500));
    let f = r.create_article(json!({"n": 40}));
    let answer = waiting.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let next = answer.json();
    assert_eq!(next["data"][0]["entry"]["documentId"], f.as_str());
    assert_eq!(next["data"][0]["id"], last + 1);

    // A position the feed never reached (a database restored from an older backup) is gone.
    let a = r.call(
        "GET",
        &format!("/api/offline-sync/changes?since={}", last + 100),
        None,
    );
    assert_eq!(a.status, 410, "{}", a.body);
    let a = r.call("GET", "/api/offline-sync/changes?since=x", None);
    assert_eq!(a.status, 400, "{}", a.body);
    let anonymous =
        support::process::request("GET", &r.url("/api/offline-sync/changes?timeout=0"), None, None);
    assert_eq!(anonymous.status, 401);
}

/// A request a receiver was sent: its request line (as `:request`) and headers (names in
/// lower case), and its body.
type Delivery = (BTreeMap<String, String>, Vec<u8>);

/// A webhook receiver: a local HTTP server that keeps what it was sent and answers 200,
/// unless it is holding (then it keeps requests waiting, unanswered, as a very slow receiver
/// does).
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    holding: Arc<AtomicBool>,
    /// Requests read and not answered yet.
    waiting: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(listener: TcpListener) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let holding = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(AtomicUsize::new(0));
        let (g, h, w) = (Arc::clone(&got), Arc::clone(&holding), Arc::clone(&waiting));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (g, h, w) = (Arc::clone(&g), Arc::clone(&h), Arc::clone(&w));
                std::thread::spawn(move || serve(stream, &g, &h, &w));
            }
        });
        Receiver {
            got,
            holding,
            waiting,
        }
    }

    /// The deliveries, each event once (by its id), in the order they first came.
    fn events(&self) -> Vec<Delivery> {
        let mut seen = std::collections::BTreeSet::new();
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|(h, _)| seen.insert(h.get("x-offline-sync-event-id").cloned()))
            .cloned()
            .collect()
    }
}

/// Reads one request and answers it (once the receiver stops holding). A request it cannot
/// read is kept as it came, for the test to see.
fn serve(stream: TcpStream, got: &Mutex<Vec<Delivery>>, holding: &AtomicBool, waiting: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = BTreeMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    headers.insert(":request".to_owned(), line.trim_end().to_owned());
    loop {
        line.clear();
        if reader.read_line(&mut line).is_err() {
            break;
        }
        let Some((k, v)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(k.to_ascii_lowercase(), v.trim().to_owned());
    }
    let length = headers
        .get("content-length")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    waiting.fetch_add(1, Ordering::SeqCst);
    while holding.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    waiting.fetch_sub(1, Ordering::SeqCst);
    got.lock().unwrap().push((headers, body));
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

/// Each document's events in the order they came, as (event, field `n`).
fn per_document(events: &[Delivery]) -> BTreeMap<String, Vec<(String, Value)>> {
    let mut docs: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for (_, body) in events {
        let v: Value = serde_json::from_slice(body).unwrap();
        let id = v["entry"]["documentId"].as_str().unwrap().to_owned();
        docs.entry(id)
            .or_default()
            .push((v["event"].as_str().unwrap().to_owned(), v["entry"]["n"].clone()));
    }
    docs
}

/// A replica's webhook receiver is down while the ship writes and the replica restarts,
/// then comes up: it gets every event, in order per document, each signed with the secret,
/// carrying its headers and none of the sensitive fields. Then it stalls: the ship's writes
/// still reach the master at once, and the receiver gets them once it answers again. A
/// second receiver asked for deletes only, and gets them only.
#[test]
fn webhooks_get_every_event_signed_and_in_order_whatever_the_receiver_does() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path(), &broker.address(), "feed_webhooks");
    // The first receiver is down: nothing listens on its port yet.
    let port = free_port();
    let deletes = TcpListener::bind("127.0.0.1:0").unwrap();
    let deletes_port = deletes.local_addr().unwrap().port();
    let only_deletes = Receiver::start(deletes);
    let hooks = json!([
        {
            "url": format!("http://127.0.0.1:{port}/hook?token=hook-t0ken-in-url"),
            "headers": {"X-Api-Key": "receiver-key"},
        },
        {"url": format!("http://127.0.0.1:{deletes_port}/deletes"), "events": ["entry.delete"]},
    ]);
    let mut r = replica(
        dir.path(),
        &broker.address(),
        "ship-hooks",
        &[
            ("SYNC_WEBHOOKS", hooks.to_string()),
            ("SYNC_WEBHOOK_SECRET", SECRET.to_owned()),
        ],
    );
    let hook_state = |r: &Node| {
        let a = r.call("GET", "/api/offline-sync/webhooks", None);
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()["data"][0].clone()
    };

    // The receiver is down.
    let mut expected: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = r.create_article(json!({"n": i * 10, "password": "hunter2-never-sent"}));
        expected
            .entry(id.clone())
            .or_default()
            .push(("entry.create".into(), json!(i * 10)));
        ids.push(id);
    }
    for step in 1..=2 {
        for (i, id) in ids.iter().enumerate() {
            update(&r, id, json!({"n": i * 10 + step}));
            expected
                .get_mut(id)
                .unwrap()
                .push(("entry.update".into(), json!(i * 10 + step)));
        }
    }
    delete(&r, &ids[0]);
    expected
        .get_mut(&ids[0])
        .unwrap()
        .push(("entry.delete".into(), json!(2)));
    assert!(
        eventually(WAIT, || hook_state(&r)["failed"].as_u64().unwrap() >= 2),
        "no failed delivery reported: {}",
        hook_state(&r)
    );
    let state = hook_state(&r);
    let label = state["webhook"].as_str().unwrap();
    assert!(
        label.starts_with(&format!("http://127.0.0.1:{port}/…")),
        "{state}"
    );
    assert!(
        state["lastError"].is_string() && state["pending"].as_u64().unwrap() >= 1,
        "{state}"
    );
    let metrics = r.call("GET", "/metrics", None).body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("offline_sync_webhook_deliveries_total")
                && l.contains("outcome=\"failed\"")),
        "{metrics}"
    );

    // The replica restarts with every event still undelivered.
    let (status, _) = r.terminate(Duration::from_secs(15));
    assert!(status.success(), "replica exit {status}:\n{}", r.log());
    r.restart();
    r.wait_ready();

    // The receiver comes up: every event arrives, in order per document, signed.
    let receiver = Receiver::start(TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert!(
        eventually(WAIT, || receiver.events().len() >= 10),
        "{} of 10 events delivered: {}",
        receiver.events().len(),
        hook_state(&r)
    );
    let events = receiver.events();
    assert_eq!(per_document(&events), expected);
    for (headers, body) in &events {
        assert_eq!(headers[":request"], "POST /hook?token=hook-t0ken-in-url HTTP/1.1");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(headers["x-offline-sync-signature"], format!("sha256={hex}"));
        assert_eq!(headers["x-api-key"], "receiver-key");
        assert_eq!(headers["content-type"], "application/json");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["x-offline-sync-event"], v["event"].as_str().unwrap());
        assert_eq!(headers["x-offline-sync-event-id"], v["id"].to_string());
        assert_eq!(
            (v["model"].as_str(), v["uid"].as_str()),
            (Some("article"), Some(ARTICLE))
        );
        assert!(v["createdAt"].is_string(), "{v}");
        assert!(
            !String::from_utf8_lossy(body).contains("hunter2"),
            "a sensitive field was sent: {v}"
        );
    }

    // It stalls: sync goes on without it.
    receiver.holding.store(true, Ordering::SeqCst);
    let mut later = Vec::new();
    for i in 0..5 {
        later.push(r.create_article(json!({"n": 100 + i})));
    }
    assert!(
        eventually(WAIT, || receiver.waiting.load(Ordering::SeqCst) >= 1),
        "no delivery reached the stalled receiver"
    );
    assert!(
        eventually(WAIT, || later.iter().all(|id| m.article(id).is_some())),
        "the ship's writes did not reach the master while the receiver stalled"
    );
    assert!(
        receiver.waiting.load(Ordering::SeqCst) >= 1,
        "the receiver answered meanwhile"
    );
    receiver.holding.store(false, Ordering::SeqCst);
    assert!(
        eventually(WAIT, || receiver.events().len() >= 15),
        "{} of 15 events delivered",
        receiver.events().len()
    );
    let docs = per_document(&receiver.events());
    for (i, id) in later.iter().enumerate() {
        assert_eq!(docs[id], [("entry.create".to_owned(), json!(100 + i))]);
    }
    assert!(
        eventually(WAIT, || hook_state(&r)["pending"] == 0),
        "{}",
        hook_state(&r)
    );

    // The second receiver got the delete, and nothing else.
    let deleted = only_deletes.events();
    assert_eq!(
        per_document(&deleted),
        BTreeMap::from([(ids[0].clone(), vec![("entry.delete".to_owned(), json!(2))])])
    );
    assert_eq!(deleted[0].0[":request"], "POST /deletes HTTP/1.1");
    assert!(!r.log().contains("hook-t0ken-in-url") && !r.log().contains("receiver-key"));
}
