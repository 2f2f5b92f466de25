//! The real `master` and `replica` binaries, started as processes against a real PostgreSQL,
//! SQLite files and a tansu broker, driven only through their HTTP API: what an operator
//! installs and runs.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use offline_sync::kafka::testing::Tansu;
use serde_json::{Value, json};
use support::process::{
    ADMIN, Node, Proxy, READ, eventually, free_port, fresh_postgres, request, start_master, start_replica,
    with_tokens,
};

const CT: &str = "api::article.article";
const WAIT: Duration = Duration::from_secs(60);

/// Brisk loops, both tokens, a ship offline after 5 s of silence, and three attempts.
fn common(broker: &str) -> Vec<(&'static str, String)> {
    let mut env = with_tokens(broker);
    env.push(("SYNC_RETRY_ATTEMPTS", "3".to_owned()));
    env
}

fn master(dir: &Path, broker: &str, database_url: String) -> Node {
    start_master(dir, common(broker), database_url)
}

fn replica(dir: &Path, broker: &str, ship: &str, extra: &[(&'static str, String)]) -> Node {
    let mut env = common(broker);
    env.extend(extra.iter().cloned());
    start_replica(dir, env, ship)
}

fn doc_path(id: &str) -> String {
    format!("/api/documents/{CT}/{id}")
}

fn field_is(node: &Node, id: &str, field: &str, value: &Value) -> bool {
    node.article(id).is_some_and(|d| d[field] == *value)
}

fn pending(node: &Node) -> u64 {
    let a = node.call("GET", "/api/offline-sync/queue/pending", None);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["data"]["pending"].as_u64().unwrap()
}

/// A master on PostgreSQL and two replicas on SQLite over tansu, through their HTTP APIs: a
/// document created on one ship reaches the master and the other ship, a master edit reaches
/// both, a same-field concurrent edit becomes one conflict that an operator resolves, and all
/// three converge.
#[test]
fn a_fleet_of_binaries_syncs_and_resolves_a_conflict() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path(), &broker.address(), fresh_postgres("nodes_fleet"));
    // Ship A pushes slowly, so its edit and the master's are concurrent.
    let a = replica(
        dir.path(),
        &broker.address(),
        "ship-a",
        &[("SYNC_DEBOUNCE_MS", "1500".into())],
    );
    let b = replica(dir.path(), &broker.address(), "ship-b", &[]);

    let created = a.call(
        "POST",
        &format!("/api/documents/{CT}"),
        Some(&json!({"data": {"title": "Hello", "body": "first"}})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let data = created.json()["data"].clone();
    let id = data["documentId"].as_str().unwrap().to_owned();
    assert_eq!(data["title"], "Hello");
    assert!(created.headers.get("location").is_some_and(|l| l.ends_with(&id)));
    assert!(
        eventually(WAIT, || m.article(&id).is_some()),
        "the master never got the ship's document"
    );
    assert!(
        eventually(WAIT, || field_is(&b, &id, "body", &json!("first"))),
        "ship-b never got it"
    );

    let edit = m.call(
        "PUT",
        &doc_path(&id),
        Some(&json!({"data": {"body": "edited onshore"}})),
    );
    assert_eq!(edit.status, 200, "{}", edit.body);
    for ship in [&a, &b] {
        assert!(
            eventually(WAIT, || field_is(ship, &id, "body", &json!("edited onshore"))),
            "{} never got the master's edit",
            ship.name
        );
    }

    // The same field edited on ship A and on the master before A's change arrives.
    let on_ship = a.call(
        "PUT",
        &doc_path(&id),
        Some(&json!({"data": {"title": "Ship title"}})),
    );
    assert_eq!(on_ship.status, 200, "{}", on_ship.body);
    let onshore = m.call(
        "PUT",
        &doc_path(&id),
        Some(&json!({"data": {"title": "Master title"}})),
    );
    assert_eq!(onshore.status, 200, "{}", onshore.body);
    let mut conflicts = Vec::new();
    assert!(
        eventually(WAIT, || {
            conflicts = m.call("GET", "/api/offline-sync/conflicts", None).json()["data"]
                .as_array()
                .unwrap()
                .clone();
            !conflicts.is_empty()
        }),
        "no conflict recorded"
    );
    assert_eq!(conflicts.len(), 1, "one conflict per document: {conflicts:?}");
    let c = &conflicts[0];
    assert_eq!(
        (c["documentId"].as_str(), c["shipId"].as_str()),
        (Some(id.as_str()), Some("ship-a"))
    );
    assert_eq!(c["conflictType"], "update-update");
    assert_eq!(c["fields"], json!(["title"]));
    assert_eq!(c["shipData"]["title"], "Ship title");
    assert_eq!(c["masterData"]["title"], "Master title");
    assert_eq!(c["status"], "open");
    let cid = c["id"].as_u64().unwrap();
    let one = m.call("GET", &format!("/api/offline-sync/conflicts/{cid}"), None);
    assert_eq!(one.json()["data"]["id"], cid);

    let merged = json!({"strategy": "merge", "mergeData": {"title": "Merged title"}});
    let resolved = m.call(
        "POST",
        &format!("/api/offline-sync/conflicts/{cid}/resolve"),
        Some(&merged),
    );
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.json()["data"]["status"], "resolved");
    assert_eq!(resolved.json()["data"]["resolutionStrategy"], "merge");
    let again = m.call(
        "POST",
        &format!("/api/offline-sync/conflicts/{cid}/resolve"),
        Some(&merged),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        m.call("GET", "/api/offline-sync/conflicts", None).json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    for node in [&m, &a, &b] {
        assert!(
            eventually(WAIT, || field_is(node, &id, "title", &json!("Merged title"))),
            "{} never got the resolution",
            node.name
        );
    }
    assert!(
        eventually(WAIT, || pending(&a) == 0 && pending(&b) == 0),
        "changes left unanswered"
    );
    let onshore = m.articles();
    assert!(
        eventually(WAIT, || a.articles() == onshore && b.articles() == onshore),
        "not converged: master {onshore:?}, ship-a {:?}, ship-b {:?}",
        a.articles(),
        b.articles()
    );
    assert_eq!(onshore[0]["body"], "edited onshore");
}

/// The official Strapi client, `@strapi/client` 1.6.2 from npm (installed by
/// `./scripts/test.sh` into `tests/strapi-client`), against a running master and replica:
/// `tests/strapi-client/client.mjs` creates, reads, updates and deletes through
/// `/api/articles`, asks filters that match and that match nothing, sorts, selects fields and
/// pages both ways, each request answered alike at `/api/documents/api::article.article`; an
/// unsupported operator and an unsupported parameter are 400s naming them.
#[test]
fn the_official_strapi_client_works_against_master_and_replica() {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/strapi-client");
    assert!(
        client.join("node_modules/@strapi/client").is_dir(),
        "@strapi/client is not installed: ./scripts/test.sh installs it (npm ci in tests/strapi-client)"
    );
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Indexed, so the filters on `tag` and `n` read through the indexes.
    let types = [
        ("SYNC_CONTENT_TYPES", format!("{CT}=articles")),
        ("SYNC_INDEXES", "tag,n".to_owned()),
    ];
    let mut env = common(&broker.address());
    env.extend(types.iter().cloned());
    let m = start_master(dir.path(), env, fresh_postgres("nodes_strapi_client"));
    let r = replica(dir.path(), &broker.address(), "ship-strapi", &types);
    for (node, tag) in [(&m, "on-the-master"), (&r, "on-the-replica")] {
        let out = std::process::Command::new("node")
            .arg("client.mjs")
            .current_dir(&client)
            .env("BASE_URL", node.url(""))
            .env("TOKEN", ADMIN)
            .env("TAG", tag)
            .output()
            .expect("Node.js (node) is required for the Strapi client test");
        assert!(
            out.status.success(),
            "@strapi/client {tag}:\n{}\n{}\nnode log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            node.log()
        );
        assert_eq!(
            node.log().matches("field index created").count(),
            2,
            "{}",
            node.log()
        );
    }
}

/// A replica started with no broker in reach serves its documents, reports its writes
/// pending, and delivers them by itself once the broker comes up.
#[test]
fn a_replica_starts_without_a_broker_and_delivers_once_it_comes_up() {
    let port = free_port();
    let broker = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    // The type named without its plural: its Strapi route is derived, /api/articles.
    let r = replica(
        dir.path(),
        &broker,
        "ship-offline",
        &[("SYNC_CONTENT_TYPES", CT.to_owned())],
    );
    let status = r.call("GET", "/api/offline-sync/status", None).json()["data"].clone();
    assert_eq!(
        (status["link"].as_str(), status["online"].as_bool()),
        (Some("offline"), Some(false))
    );
    let health = r.call("GET", "/api/offline-sync/health", None);
    assert_eq!(
        health.status, 200,
        "offline at sea is degraded, not down: {}",
        health.body
    );
    assert_eq!(health.json()["status"], "degraded");
    assert_eq!(health.json()["checks"]["kafka"]["status"], "offline");

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(r.create_article(json!({"n": i})));
    }
    assert_eq!(pending(&r), 3);
    let queue = r
        .call("GET", "/api/offline-sync/queue?status=pending", None)
        .json();
    assert_eq!(queue["meta"]["pagination"]["total"], 3);
    assert_eq!(queue["data"][0]["operation"], "create");
    let listed = r.call("GET", "/api/articles?pagination[pageSize]=2", None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()["meta"]["pagination"]["total"], 3);
    let one = r.call("GET", &format!("/api/articles/{}", ids[0]), None);
    assert_eq!(one.json(), r.call("GET", &doc_path(&ids[0]), None).json());

    let broker = Tansu::start_advertising("memory://tansu/", &[], port, port).unwrap();
    let m = master(dir.path(), &broker.address(), fresh_postgres("nodes_offline"));
    for id in &ids {
        assert!(
            eventually(WAIT, || m.article(id).is_some()),
            "the master never got {id}"
        );
    }
    assert!(
        eventually(WAIT, || pending(&r) == 0),
        "the replica's queue never drained"
    );
    assert!(eventually(WAIT, || r
        .call("GET", "/api/offline-sync/status", None)
        .json()["data"]["link"]
        == "online"));
}

/// Probes and the detailed health report field by field; readiness follows the database
/// (503 while it is unreachable, 200 again after); metrics carry the seed's names and ours.
#[test]
fn health_readiness_and_metrics_report_what_is_true() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pg = fresh_postgres("nodes_health");
    let proxy = Proxy::start(("127.0.0.1".into(), 5432));
    let via_proxy = pg.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(via_proxy, pg, "the test database URL goes through 127.0.0.1:5432");
    let m = master(dir.path(), &broker.address(), via_proxy);
    let r = replica(dir.path(), &broker.address(), "ship-health", &[]);
    let created = r.call(
        "POST",
        &format!("/api/documents/{CT}"),
        Some(&json!({"data": {"n": 1}})),
    );
    let id = created.json()["data"]["documentId"].as_str().unwrap().to_owned();
    assert!(eventually(WAIT, || m.article(&id).is_some()));
    assert!(eventually(WAIT, || {
        m.call("GET", "/api/offline-sync/ships", None).json()["data"][0]["online"] == true
    }));

    let live = request("GET", &m.url("/api/offline-sync/health/live"), None, None);
    assert_eq!((live.status, live.json()), (200, json!({"status": "alive"})));
    let ready = request("GET", &m.url("/api/offline-sync/health/ready"), None, None);
    assert_eq!((ready.status, ready.json()), (200, json!({"status": "ready"})));

    let h = request("GET", &m.url("/api/offline-sync/health"), None, None);
    assert_eq!(h.status, 200, "{}", h.body);
    let h = h.json();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["mode"], "master");
    assert_eq!(h["shipId"], Value::Null);
    let ts = h["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    assert!(h["uptime"].as_f64().unwrap() > 0.0);
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    let checks = &h["checks"];
    assert_eq!(checks["database"]["status"], "healthy");
    assert_eq!(checks["database"]["type"], "postgres");
    assert!(checks["database"]["latency"].as_f64().unwrap() >= 0.0);
    assert_eq!(checks["kafka"]["status"], "healthy");
    assert_eq!(checks["kafka"]["role"], "consumer");
    assert_eq!(checks["kafka"]["topics"], "ship-updates");
    let tracker = &checks["messageTracker"];
    assert!(tracker["processed"].as_u64().unwrap() >= 1, "{tracker}");
    assert_eq!(tracker["failed"], 0);
    assert_eq!(
        tracker["total"].as_u64(),
        Some(tracker["processed"].as_u64().unwrap() + tracker["failed"].as_u64().unwrap())
    );
    assert_eq!(
        checks["deadLetterQueue"],
        json!({"status": "healthy", "pending": 0, "retrying": 0, "exhausted": 0, "resolved": 0, "discarded": 0})
    );
    assert_eq!(
        checks["ships"],
        json!({"status": "healthy", "total": 1, "online": 1, "offline": 0})
    );

    let rh = request("GET", &r.url("/api/offline-sync/health"), None, None).json();
    assert_eq!(
        (rh["mode"].as_str(), rh["shipId"].as_str()),
        (Some("replica"), Some("ship-health"))
    );
    assert_eq!(rh["checks"]["database"]["type"], "sqlite");
    assert_eq!(rh["checks"]["kafka"]["role"], "producer");

    let metrics = request("GET", &m.url("/metrics"), None, None);
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"].starts_with("text/plain"));
    let text = metrics.body;
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in:\n{text}"))
    };
    assert_eq!(value("offline_sync_info{mode=\"master\",ship_id=\"master\""), 1.0);
    assert!(value("offline_sync_uptime_seconds") > 0.0);
    assert!(value("offline_sync_messages_total{status=\"processed\"}") >= 1.0);
    assert_eq!(value("offline_sync_ships_total"), 1.0);
    assert_eq!(value("offline_sync_ships_online"), 1.0);
    assert_eq!(value("offline_sync_dead_letter_total{status=\"pending\"}"), 0.0);
    assert_eq!(value("offline_sync_conflicts_open"), 0.0);
    assert!(value("offline_sync_ship_lag_csn{ship_id=\"ship-health\"}") >= 0.0);
    assert!(value("offline_sync_ship_oldest_unacked_seconds{ship_id=\"ship-health\"}") >= 0.0);
    assert!(value("offline_sync_transport_received_bytes_total") > 0.0);
    assert!(value("offline_sync_apply_duration_seconds_count") >= 1.0);
    assert!(
        text.contains("offline_sync_apply_duration_seconds_bucket{le=\"0.005\"}"),
        "{text}"
    );
    let seed = request("GET", &m.url("/api/offline-sync/health/metrics"), None, None);
    assert!(seed.body.contains("offline_sync_ships_online 1"), "{}", seed.body);
    let rm = request("GET", &r.url("/metrics"), None, None).body;
    assert!(
        rm.contains("offline_sync_info{mode=\"replica\",ship_id=\"ship-health\""),
        "{rm}"
    );
    // The ship's change is answered in the background, after the master applied it and sent
    // the answer.
    assert!(
        eventually(WAIT, || request("GET", &r.url("/metrics"), None, None)
            .body
            .contains("offline_sync_queue_pending 0")),
        "{rm}"
    );
    let sent = request("GET", &m.url("/metrics"), None, None).body;
    assert!(
        sent.lines()
            .find_map(|l| l.strip_prefix("offline_sync_transport_sent_bytes_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|v| v > 0.0),
        "{sent}"
    );

    proxy.set_down(true);
    let down = eventually(Duration::from_secs(20), || {
        request("GET", &m.url("/api/offline-sync/health/ready"), None, None).status == 503
    });
    assert!(down, "readiness stayed 200 with the database unreachable");
    let not_ready = request("GET", &m.url("/api/offline-sync/health/ready"), None, None).json();
    assert_eq!(not_ready["error"]["code"], "not_ready");
    let h = request("GET", &m.url("/api/offline-sync/health"), None, None);
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "unhealthy");
    assert_eq!(h.json()["checks"]["database"]["status"], "unhealthy");
    assert_eq!(
        request("GET", &m.url("/api/offline-sync/health/live"), None, None).status,
        200
    );
    proxy.set_down(false);
    assert!(
        eventually(Duration::from_secs(30), || {
            request("GET", &m.url("/api/offline-sync/health/ready"), None, None).status == 200
        }),
        "readiness did not come back with the database"
    );
}

/// No token → 401, the read token on a write → 403, the admin token → success; probes need
/// none; tokens never reach the log. With no token configured the API listens on 127.0.0.1
/// only and says so.
#[test]
fn tokens_guard_the_api_and_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let broker = format!("127.0.0.1:{}", free_port());
    let r = replica(dir.path(), &broker, "ship-auth", &[]);
    let url = |p: &str| r.url(p);
    let docs = format!("/api/documents/{CT}");
    let body = json!({"data": {"title": "T"}});

    let none = request("GET", &url("/api/offline-sync/status"), None, None);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "unauthorized");
    assert_eq!(
        none.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    assert_eq!(
        request("GET", &url("/api/offline-sync/status"), Some("wrong-token"), None).status,
        401
    );
    assert_eq!(request("POST", &url(&docs), None, Some(&body)).status, 401);
    assert_eq!(
        request("GET", &url("/api/offline-sync/status"), Some(READ), None).status,
        200
    );
    assert_eq!(request("GET", &url(&docs), Some(READ), None).status, 200);
    let forbidden = request("POST", &url(&docs), Some(READ), Some(&body));
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.json()["error"]["code"], "forbidden");
    assert_eq!(
        request("POST", &url("/api/offline-sync/push"), Some(READ), None).status,
        403
    );
    let created = request("POST", &url(&docs), Some(ADMIN), Some(&body));
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["data"]["documentId"].as_str().unwrap().to_owned();
    assert_eq!(
        request("DELETE", &url(&doc_path(&id)), Some(READ), None).status,
        403
    );
    for public in [
        "/api/offline-sync/health/live",
        "/api/offline-sync/health/ready",
        "/api/offline-sync/health",
        "/api/offline-sync/health/metrics",
        "/metrics",
        "/api/offline-sync/openapi.json",
    ] {
        assert_eq!(request("GET", &url(public), None, None).status, 200, "{public}");
    }
    let mut r = r;
    let (status, _) = r.terminate(Duration::from_secs(15));
    assert!(status.success());
    let log = r.log();
    assert!(
        !log.contains(ADMIN) && !log.contains(READ),
        "a token reached the log:\n{log}"
    );

    let open = Node::start(
        "replica",
        "ship-open",
        dir.path(),
        &[
            ("SYNC_SHIP_ID", "ship-open".into()),
            ("KAFKA_BROKERS", broker),
            ("HOST", "0.0.0.0".into()),
        ],
    );
    // Live before its database is connected; the status needs the node.
    open.wait_ready();
    assert_eq!(
        request("GET", &open.url("/api/offline-sync/status"), None, None).status,
        200
    );
    let log = open.log();
    assert!(log.contains("127.0.0.1 only"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{}", open.port)), "{log}");
}

/// An invalid setting stops start-up with one line naming it (and what it accepts) and a
/// non-zero status; `--help` documents every setting.
#[test]
fn bad_settings_stop_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    /// Binary, environment, the setting the error must name.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("master", &[("SYNC_BATCH_SIZE", "lots")], "SYNC_BATCH_SIZE"),
        ("master", &[("DATABASE_CLIENT", "mysql")], "DATABASE_CLIENT"),
        ("master", &[("PORT", "99999")], "PORT"),
        (
            "master",
            &[("KAFKA_SASL_MECHANISM", "gssapi")],
            "KAFKA_SASL_MECHANISM",
        ),
        (
            "master",
            &[("SYNC_CONFLICT_POLICY", "coin-toss")],
            "SYNC_CONFLICT_POLICY",
        ),
        ("master", &[("SYNC_MODE", "replica")], "SYNC_MODE"),
        ("replica", &[], "SYNC_SHIP_ID"),
        ("replica", &[("SYNC_SHIP_ID", "no spaces please")], "SYNC_SHIP_ID"),
        (
            "replica",
            &[("SYNC_SHIP_ID", "s1"), ("SYNC_DEBOUNCE_MS", "-5")],
            "SYNC_DEBOUNCE_MS",
        ),
        (
            "replica",
            &[("SYNC_SHIP_ID", "s1"), ("KAFKA_SSL_ENABLED", "maybe")],
            "KAFKA_SSL_ENABLED",
        ),
    ];
    for (bin, env, setting) in cases {
        let out = std::process::Command::new(support::process::binary(bin))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bin} {env:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{bin} {env:?}: one line, got {stderr}"
        );
        assert!(stderr.contains(setting), "{bin} {env:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{bin} {env:?}");
    }
    let secret = "never-print-this-password";
    let out = std::process::Command::new(support::process::binary("master"))
        .current_dir(dir.path())
        .env_clear()
        .env("KAFKA_SASL_MECHANISM", "scram-sha-256")
        .env("KAFKA_SASL_PASSWORD", secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KAFKA_SASL_USERNAME") && !stderr.contains(secret),
        "{stderr}"
    );
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "sync_batch_sise = 10\n").unwrap();
    let out = std::process::Command::new(support::process::binary("master"))
        .args(["--config", file.to_str().unwrap()])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync_batch_sise"));

    for (bin, mode) in [
        ("master", offline_sync::engine::Mode::Master),
        ("replica", offline_sync::engine::Mode::Replica),
    ] {
        let out = std::process::Command::new(support::process::binary(bin))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for s in offline_sync_config::SETTINGS {
            let here = s.modes == "both" || s.modes == mode.as_str();
            assert_eq!(help.contains(s.name), here, "{bin} --help and {}", s.name);
        }
    }
}

/// SIGTERM while changes are in flight: both binaries exit 0 within seconds, and after a
/// restart nothing written before the stop is missing.
#[test]
fn sigterm_stops_cleanly_and_loses_nothing() {
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut m = master(dir.path(), &broker.address(), fresh_postgres("nodes_sigterm"));
    let mut r = replica(dir.path(), &broker.address(), "ship-term", &[]);
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(r.create_article(json!({"n": i})));
    }
    let (status, took) = r.terminate(Duration::from_secs(15));
    assert!(status.success(), "replica exit {status}:\n{}", r.log());
    assert!(took < Duration::from_secs(10), "replica took {took:?} to stop");
    let (status, took) = m.terminate(Duration::from_secs(15));
    assert!(status.success(), "master exit {status}:\n{}", m.log());
    assert!(took < Duration::from_secs(10), "master took {took:?} to stop");
    assert!(m.log().contains("stopped") && r.log().contains("stopped"));

    m.restart();
    m.wait_ready();
    r.restart();
    r.wait_ready();
    assert_eq!(
        r.articles().len(),
        30,
        "the replica kept every write across the stop"
    );
    assert!(
        eventually(WAIT, || pending(&r) == 0),
        "queued changes not delivered after the restart"
    );
    let onshore = m.articles();
    assert_eq!(onshore.len(), 30, "the master has every change");
    for id in &ids {
        assert!(onshore.iter().any(|d| d["documentId"] == *id), "{id} lost");
    }
    assert!(
        eventually(WAIT, || r.articles() == onshore),
        "the replica and the master differ"
    );
}

/// schemathesis (PyPI) runs every check it has against the OpenAPI document of a running
/// master and a running replica: no 5xx, no response contradicting the document, no invalid
/// request accepted, no valid one refused.
#[test]
fn schemathesis_finds_nothing_wrong_with_master_or_replica() {
    let python = std::env::var("OFFLINE_SYNC_PYTHON")
        .expect("OFFLINE_SYNC_PYTHON must name a python with schemathesis (./scripts/test.sh sets it up)");
    let schemathesis = Path::new(&python).with_file_name("schemathesis");
    // A fixed seed keeps CI reproducible; OFFLINE_SYNC_SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("OFFLINE_SYNC_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261126".into());
    let broker = Tansu::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = master(
        dir.path(),
        &broker.address(),
        fresh_postgres("nodes_schemathesis"),
    );
    let r = replica(dir.path(), &broker.address(), "ship-fuzz", &[]);
    for node in [&m, &r] {
        let out = std::process::Command::new(&schemathesis)
            .current_dir(dir.path())
            .arg("run")
            .arg(node.url("/api/offline-sync/openapi.json"))
            .args(["--checks", "all", "--max-examples", "40", "--no-color"])
            // A long poll waits for a change by design (up to a minute a call): tests/feed.rs
            // drives the change feed instead.
            .args(["--exclude-operation-id", "getChanges"])
            .args(["--seed", &seed])
            .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (./scripts/test.sh installs it): {e}",
                    schemathesis.display()
                )
            });
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "schemathesis found problems on {}:\n{report}",
            node.name
        );
        assert!(report.contains("passed"), "{report}");
    }
    assert!(!m.log().contains("panicked") && !r.log().contains("panicked"));
}
