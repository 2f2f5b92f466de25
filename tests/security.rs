//! Security of the real binaries against an attacker who can produce to the broker (a crew
//! laptop, a compromised ship): records forged with librdkafka and signed with Python's own
//! Ed25519 change nothing, each becomes a dead letter with its reason and counts in
//! `offline_sync_rejected_total{reason}`, replays change nothing, and valid traffic around them
//! is all applied. Also: sensitive fields never travel and each node keeps its own, the
//! content-type allow-list holds on both binaries, and admin actions reach the audit log.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use offline_sync::kafka::testing::Tansu;
use offline_sync::model::{
    Change, Commit, CommitOp, ContentType, DocumentId, Hlc, Message, Op, Origin, ShipId, SigningKey, encode,
};
use serde_json::json;
use support::librdkafka::{consume, produce, produce_signed};
use support::process::{Node, brisk, eventually, fresh_postgres, request};

const ADMIN: &str = "admin-token-of-the-security-test";
const READ: &str = "read-token-of-the-security-test";
const CT: &str = "api::article.article";
const WAIT: Duration = Duration::from_secs(60);

fn start(bin: &str, name: &str, dir: &Path, broker: &str, extra: &[(&'static str, String)]) -> Node {
    let mut env = brisk(broker, ADMIN);
    env.push(("SYNC_READ_TOKEN", READ.to_owned()));
    env.extend(extra.iter().cloned());
    let node = Node::start(bin, name, dir, &env);
    node.wait_ready();
    node
}

/// The reason labels of a node's dead letters still waiting (pending, or between or after
/// their automatic retries, which a forgery never passes), sorted.
fn dead_letter_reasons(node: &Node) -> Vec<String> {
    let a = node.call("GET", "/api/offline-sync/dead-letters?pageSize=100", None);
    assert_eq!(a.status, 200, "{}", a.body);
    let mut reasons: Vec<String> = a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| ["pending", "retrying", "exhausted"].contains(&l["status"].as_str().unwrap_or("")))
        .map(|l| {
            l["reason"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    reasons.sort();
    reasons
}

/// `offline_sync_rejected_total{reason}` of a node, as its Prometheus endpoint reports it.
fn rejected_metric(node: &Node, reason: &str) -> u64 {
    let text = request("GET", &node.url("/metrics"), None, None).body;
    let needle = format!("offline_sync_rejected_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn change(ship: &str, seq: u64, id: DocumentId, title: &str, base: u64) -> Vec<u8> {
    encode(&Message::Change(Change {
        resent: false,
        ship: ShipId::new(ship).unwrap(),
        seq,
        ct: ContentType::new(CT).unwrap(),
        id,
        op: Op::Update,
        fields: json!({"title": title}).as_object().unwrap().clone(),
        base,
        unseen: Default::default(),
        hlc: Hlc::default(),
    }))
}

fn commit(ct: &str, csn: u64, id: DocumentId, title: &str) -> Vec<u8> {
    encode(&Message::Commit(Commit {
        csn,
        origin: Origin::Master,
        seq: None,
        ct: ContentType::new(ct).unwrap(),
        id,
        op: CommitOp::Put,
        fields: json!({"title": title}).as_object().unwrap().clone(),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    }))
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort_unstable();
    v.into_iter().map(str::to_owned).collect()
}

/// Production settings (keys pinned ahead, unknown ships refused, an allow-list), then every
/// forgery an attacker on the broker could try, interleaved with valid traffic.
#[test]
fn forged_records_change_nothing_and_each_becomes_a_dead_letter() {
    let broker = Tansu::start().unwrap();
    let addr = broker.address();
    let dir = tempfile::tempdir().unwrap();
    let master_key = SigningKey::from_seed([11; 32]);
    let key_a = SigningKey::from_seed([12; 32]);
    let key_b = SigningKey::from_seed([13; 32]);
    let attacker = SigningKey::from_seed([66; 32]).to_base64();
    let m = start(
        "master",
        "master",
        dir.path(),
        &addr,
        &[
            ("DATABASE_URL", fresh_postgres("security_forged")),
            ("SYNC_SIGNING_KEY", master_key.to_base64()),
            (
                "SYNC_SHIP_KEYS",
                format!("ship-a={},ship-b={}", key_a.public(), key_b.public()),
            ),
            ("SYNC_REQUIRE_KNOWN_SHIPS", "true".into()),
            ("SYNC_CONTENT_TYPES", CT.into()),
        ],
    );
    let ship = |name: &str, key: &SigningKey| {
        start(
            "replica",
            name,
            dir.path(),
            &addr,
            &[
                ("SYNC_SHIP_ID", name.to_owned()),
                ("SYNC_SIGNING_KEY", key.to_base64()),
                ("SYNC_MASTER_PUBLIC_KEY", master_key.public().to_base64()),
                ("SYNC_CONTENT_TYPES", CT.into()),
            ],
        )
    };
    let a = ship("ship-a", &key_a);
    let b = ship("ship-b", &key_b);

    let id_text = a.create_article(json!({"title": "real"}));
    let id: DocumentId = id_text.parse().unwrap();
    for node in [&m, &b] {
        assert!(
            eventually(WAIT, || node.article(&id_text).is_some()),
            "{} never got the document",
            node.name
        );
    }
    let last_csn = m.call("GET", "/api/offline-sync/status", None).json()["data"]["lastCsn"]
        .as_u64()
        .unwrap();

    // On ship-updates.
    let su = "ship-updates";
    produce(&addr, su, "ship-a", &change("ship-a", 2, id, "forged", last_csn));
    produce_signed(
        &addr,
        su,
        "ship-a",
        "ship-a",
        &attacker,
        &change("ship-a", 2, id, "forged", last_csn),
    );
    produce_signed(
        &addr,
        su,
        "ship-b",
        "ship-a",
        &key_a.to_base64(),
        &change("ship-a", 2, id, "forged", last_csn),
    );
    produce_signed(
        &addr,
        su,
        "ship-ghost",
        "ship-ghost",
        &attacker,
        &change("ship-ghost", 1, id, "forged", last_csn),
    );
    produce_signed(
        &addr,
        su,
        "ship-b",
        "ship-b",
        &key_b.to_base64(),
        &change("ship-a", 2, id, "forged", last_csn),
    );
    produce_signed(
        &addr,
        su,
        "ship-a",
        "ship-a",
        &key_a.to_base64(),
        &change("ship-a", 1_000_000, id, "forged", 1_000_000_069),
    );
    // On master-updates.
    let mu = "master-updates";
    produce(&addr, mu, "", &commit(CT, last_csn + 1, id, "forged"));
    produce_signed(
        &addr,
        mu,
        "",
        "master",
        &attacker,
        &commit(CT, 1_000_000_000_000_000, id, "forged"),
    );
    produce_signed(
        &addr,
        mu,
        "",
        "ship-b",
        &key_b.to_base64(),
        &commit(CT, last_csn + 1, id, "forged"),
    );
    // Replays of valid signed records.
    let first_change = consume(&addr, su, 1).remove(0);
    produce(&addr, su, "ship-a", first_change.as_bytes());
    let first_commit = consume(&addr, mu, 1).remove(0);
    produce(&addr, mu, "", first_commit.as_bytes());

    // Valid traffic after the forgeries.
    let edit = b.call(
        "PUT",
        &format!("/api/documents/{CT}/{id_text}"),
        Some(&json!({"data": {"body": "from ship-b"}})),
    );
    assert_eq!(edit.status, 200, "{}", edit.body);
    m.create_article(json!({"title": "onshore"}));

    let refused_by_master = [
        "unsigned",
        "wrong_key",
        "key_mismatch",
        "unknown_sender",
        "ship_mismatch",
        "impossible_base",
    ];
    let want_master = sorted(refused_by_master.to_vec());
    assert!(
        eventually(WAIT, || dead_letter_reasons(&m) == want_master),
        "master dead letters: {:?}",
        dead_letter_reasons(&m)
    );
    let want_ship = sorted(vec!["unsigned", "wrong_key", "not_master"]);
    for ship in [&a, &b] {
        assert!(
            eventually(WAIT, || dead_letter_reasons(ship) == want_ship),
            "{} dead letters: {:?}",
            ship.name,
            dead_letter_reasons(ship)
        );
    }
    for reason in refused_by_master {
        assert_eq!(rejected_metric(&m, reason), 1, "master {reason}");
    }
    for reason in ["unsigned", "wrong_key", "not_master"] {
        assert_eq!(rejected_metric(&a, reason), 1, "ship-a {reason}");
    }

    // Valid traffic is all applied, nothing forged is anywhere, and all converge.
    assert!(
        eventually(WAIT, || {
            let want = m.articles();
            want.len() == 2 && a.articles() == want && b.articles() == want
        }),
        "not converged: master {:?}, ship-a {:?}, ship-b {:?}",
        m.articles(),
        a.articles(),
        b.articles()
    );
    assert_eq!(m.article(&id_text).unwrap()["title"], "real");
    assert_eq!(m.article(&id_text).unwrap()["body"], "from ship-b");
    for node in [&m, &a, &b] {
        assert!(
            !json!(node.articles()).to_string().contains("forged"),
            "{}",
            node.name
        );
    }

    // The unknown ship waits for an admin, and approving it is audited.
    let keys = m.call("GET", "/api/offline-sync/keys", None).json()["data"].clone();
    assert_eq!(keys["publicKey"], master_key.public().to_base64());
    let ghost = keys["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["signer"] == "ship-ghost")
        .cloned()
        .unwrap();
    assert_eq!(ghost["status"], "pending");
    let unverified = m.call("POST", "/api/offline-sync/keys/ship-ghost/approve", None);
    assert_eq!(
        unverified.status, 409,
        "a pending key needs the key the ship reports: {}",
        unverified.body
    );
    let approved = m.call(
        "POST",
        "/api/offline-sync/keys/ship-ghost/approve",
        Some(&json!({"publicKey": ghost["publicKey"]})),
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    let revoked = m.call("POST", "/api/offline-sync/keys/ship-ghost/revoke", None);
    assert_eq!(revoked.json()["data"]["status"], "revoked");
    let audit = request("GET", &m.url("/api/offline-sync/audit"), Some(READ), None).json();
    let actions: Vec<(String, String)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("revoke-key".to_owned(), "admin".to_owned()),
            ("approve-key".to_owned(), "admin".to_owned())
        ]
    );

    // The allow-list holds on both binaries, for reads and writes.
    for node in [&m, &a] {
        for path in [
            "/api/documents/api::other.other",
            "/api/documents/plugin::users-permissions.user",
        ] {
            assert_eq!(
                node.call("GET", path, None).status,
                404,
                "{} GET {path}",
                node.name
            );
            let post = node.call("POST", path, Some(&json!({"data": {"password": "x"}})));
            assert_eq!(post.status, 404, "{} POST {path}", node.name);
        }
        let reserved = node.call("GET", "/api/documents/plugin::offline-sync.dead-letter", None);
        assert!(matches!(reserved.status, 400 | 404), "{}", reserved.status);
    }
}

/// Sensitive fields written on a ship never reach the broker, the master or the other ship,
/// and the ship keeps them — with the seed's variables alone (keys pinned at first contact).
#[test]
fn sensitive_fields_never_leave_the_ship_that_wrote_them() {
    let broker = Tansu::start().unwrap();
    let addr = broker.address();
    let dir = tempfile::tempdir().unwrap();
    let m = start(
        "master",
        "master",
        dir.path(),
        &addr,
        &[("DATABASE_URL", fresh_postgres("security_sensitive"))],
    );
    let [a, b] = ["ship-a", "ship-b"].map(|ship| {
        start(
            "replica",
            ship,
            dir.path(),
            &addr,
            &[("SYNC_SHIP_ID", ship.into())],
        )
    });

    let secrets = json!({
        "title": "crew member",
        "password": "secret-password-1",
        "token": "secret-token-2",
        "secret": "secret-secret-3",
        "apiKey": "secret-apikey-4",
        "resetPasswordToken": "secret-reset-5",
        "auth": {"password": "secret-nested-6", "user": "bosun"},
    });
    let id = a.create_article(secrets);
    for node in [&m, &b] {
        assert!(
            eventually(WAIT, || node
                .article(&id)
                .is_some_and(|d| d["auth"]["user"] == "bosun")),
            "{} never got the document",
            node.name
        );
    }
    // An update of a sensitive field alone, and a master edit of the object holding one.
    let only_secret = a.call(
        "PUT",
        &format!("/api/documents/{CT}/{id}"),
        Some(&json!({"data": {"password": "secret-password-7"}})),
    );
    assert_eq!(only_secret.status, 200, "{}", only_secret.body);
    let onshore = m.call(
        "PUT",
        &format!("/api/documents/{CT}/{id}"),
        Some(&json!({"data": {"auth": {"user": "captain"}}})),
    );
    assert_eq!(onshore.status, 200, "{}", onshore.body);
    assert!(
        eventually(WAIT, || a
            .article(&id)
            .is_some_and(|d| d["auth"]["user"] == "captain")),
        "ship-a never got the master's edit"
    );

    assert!(
        eventually(WAIT, || a
            .call("GET", "/api/offline-sync/queue/pending", None)
            .json()["data"]["pending"]
            == 0),
        "ship-a's changes were never all answered"
    );
    let on_a = a.article(&id).unwrap();
    assert_eq!(
        on_a["password"], "secret-password-7",
        "the writing ship keeps its value"
    );
    assert_eq!(on_a["auth"]["password"], "secret-nested-6", "and its nested one");
    assert_eq!(on_a["apiKey"], "secret-apikey-4");
    for node in [&m, &b] {
        let d = node.article(&id).unwrap().to_string();
        assert!(!d.contains("secret-"), "{}: {d}", node.name);
    }
    let wire = [
        consume(&addr, "ship-updates", 0).join("\n"),
        consume(&addr, "master-updates", 0).join("\n"),
    ]
    .join("\n");
    assert!(wire.contains("crew member"), "the records were read: {wire}");
    assert!(!wire.contains("secret-"), "a sensitive value travelled: {wire}");
    assert!(!wire.to_lowercase().contains("redacted"), "{wire}");
}
