//! Two `master` processes on one PostgreSQL database: one applies, the other stands by (its
//! probes answer, readiness says not ready) and takes over when the first is killed. No CSN
//! is used twice and every ship converges.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use offline_sync::kafka::testing::Tansu;
use serde_json::{Value, json};
use support::process::{Node, brisk, eventually, fresh_postgres};

const ADMIN: &str = "admin-token-of-the-failover-test";
const CT: &str = "api::article.article";
const WAIT: Duration = Duration::from_secs(90);

fn env(broker: &str) -> Vec<(&'static str, String)> {
    brisk(broker, ADMIN)
}

fn master(dir: &Path, name: &str, broker: &str, database_url: &str) -> Node {
    let mut e = env(broker);
    e.push(("DATABASE_URL", database_url.to_owned()));
    Node::start("master", name, dir, &e)
}

fn replica(dir: &Path, ship: &str, broker: &str) -> Node {
    let mut e = env(broker);
    e.push(("SYNC_SHIP_ID", ship.to_owned()));
    let r = Node::start("replica", ship, dir, &e);
    r.wait_ready();
    r
}

fn ready(node: &Node) -> bool {
    node.call("GET", "/api/offline-sync/health/ready", None).status == 200
}

/// Every live document of the content type: id → fields (without the node-local times).
fn docs(node: &Node) -> BTreeMap<String, Value> {
    let mut docs = node.documents(CT);
    for d in docs.values_mut() {
        d.as_object_mut().unwrap().remove("createdAt");
    }
    docs
}

fn psql(database_url: &str, sql: &str) -> String {
    let db = database_url.rsplit('/').next().unwrap();
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes `rounds` of articles: one on each ship every round, one on `master` (named
/// `name`) every fourth; how many.
fn write_rounds(rounds: std::ops::Range<u32>, ships: &[Node], master: &Node, name: &str) -> usize {
    let mut written = 0;
    for round in rounds {
        for (i, s) in ships.iter().enumerate() {
            s.create_article(json!({ "round": round, "ship": i }));
            written += 1;
        }
        if round % 4 == 0 {
            master.create_article(json!({ "round": round, "ship": name }));
            written += 1;
        }
    }
    written
}

#[test]
fn a_second_master_stands_by_and_takes_over_without_reusing_a_csn() {
    let broker = Tansu::start().expect("tansu must be installed (./scripts/test.sh installs it)");
    let addr = broker.address();
    let dir = tempfile::tempdir().unwrap();
    let pg = fresh_postgres("failover");
    let mut first = master(dir.path(), "master-1", &addr, &pg);
    first.wait_ready();
    let second = master(dir.path(), "master-2", &addr, &pg);
    assert!(
        eventually(WAIT, || second.log().contains("standing by")),
        "{}",
        second.log()
    );
    assert!(!ready(&second), "a standby master says it is ready");
    let ships = [
        replica(&dir.path().join("a"), "ship-a", &addr),
        replica(&dir.path().join("b"), "ship-b", &addr),
    ];

    let mut written = write_rounds(0..40, &ships, &first, "master-1");
    first.kill();
    assert!(eventually(WAIT, || ready(&second)), "{}", second.log());
    assert!(second.log().contains("taking over"), "{}", second.log());
    written += write_rounds(40..80, &ships, &second, "master-2");

    let converged = eventually(WAIT, || {
        let want = docs(&second);
        want.len() == written && ships.iter().all(|s| docs(s) == want)
    });
    assert!(
        converged,
        "not converged: master {} documents of {written}, ships {:?}",
        docs(&second).len(),
        ships.iter().map(|s| docs(s).len()).collect::<Vec<_>>()
    );
    let reused = psql(
        &pg,
        "SELECT csn FROM broadcasts WHERE csn IS NOT NULL GROUP BY csn HAVING count(*) > 1",
    );
    assert_eq!(reused.trim(), "", "CSNs given to two commits");
}
