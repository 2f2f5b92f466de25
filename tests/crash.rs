//! The crash test with real processes: tansu on `sqlite://` storage, a PostgreSQL master and
//! two SQLite replicas, each a process. Writers create documents through the HTTP API of all
//! three nodes (`OFFLINE_SYNC_CRASH_CHANGES`, 10,000 by default, each with content of its
//! own) while the nodes are killed with SIGKILL at random moments and restarted, and the
//! broker is stopped and restarted once. At quiescence every acknowledged write is on every
//! node exactly once, checked by content, nothing is there twice, and no outbox row is left
//! unanswered. It prints the changes, the kills and the seconds to quiesce.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offline_sync::kafka::testing::Tansu;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use support::process::{Node, brisk, eventually, fresh_postgres, try_request};

const ADMIN: &str = "admin-token-of-the-crash-test";
const CT: &str = "api::article.article";

fn env(broker: &str) -> Vec<(&'static str, String)> {
    let mut e = brisk(broker, ADMIN);
    e.push(("SYNC_BATCH_SIZE", "200".to_owned()));
    e
}

/// The number in environment variable `name`, if it is set to one.
fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn json_of(node_url: &str, path: &str) -> Option<Value> {
    let a = try_request("GET", &format!("{node_url}{path}"), Some(ADMIN), None).ok()?;
    (a.status == 200).then(|| a.json())
}

/// Every live document's content on a node: `writer/n` → how many documents carry it.
fn contents(url: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for page in 1.. {
        let a = json_of(url, &format!("/api/documents/{CT}?page={page}&pageSize=100"))
            .expect("the node lists its documents");
        let rows = a["data"].as_array().unwrap().clone();
        if rows.is_empty() {
            break;
        }
        for d in rows {
            let key = format!("{}/{}", d["writer"].as_str().unwrap(), d["n"]);
            *out.entry(key).or_default() += 1;
        }
    }
    out
}

#[test]
fn nothing_acknowledged_is_lost_or_doubled_when_every_process_is_killed() {
    let total = env_number("OFFLINE_SYNC_CRASH_CHANGES").unwrap_or(10_000);
    let seed = env_number("OFFLINE_SYNC_CRASH_SEED").unwrap_or(7);
    let mut broker = Tansu::start_sqlite().expect("tansu must be installed (./scripts/test.sh installs it)");
    let addr = broker.address();
    let dir = tempfile::tempdir().unwrap();
    let mut master_env = env(&addr);
    master_env.push(("DATABASE_URL", fresh_postgres("crash")));
    let master = Node::start("master", "master", dir.path(), &master_env);
    master.wait_ready();
    let replica = |ship: &str| {
        let mut e = env(&addr);
        e.push(("SYNC_SHIP_ID", ship.to_owned()));
        let r = Node::start("replica", ship, &dir.path().join(ship), &e);
        r.wait_ready();
        r
    };
    let nodes = vec![master, replica("ship-a"), replica("ship-b")];
    let urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    let nodes = Arc::new(Mutex::new(nodes));

    // Writers: one per node, each write with content of its own; a write is acknowledged
    // when its node answered 201. A failed write is never repeated with the same content (it
    // may have been committed before the process died), so "exactly once" is exact.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let per_writer = total.div_ceil(urls.len() as u64);
    let started = Instant::now();
    let writers: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(w, url)| {
            let url = url.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let attempted = Arc::clone(&attempted);
            std::thread::spawn(move || {
                let writer = format!("w{w}");
                let mut n = 0u64;
                let mut done = 0u64;
                while done < per_writer {
                    n += 1;
                    attempted.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"data": {"writer": writer, "n": n}});
                    let a = try_request(
                        "POST",
                        &format!("{url}/api/documents/{CT}"),
                        Some(ADMIN),
                        Some(&body),
                    );
                    if a.is_ok_and(|a| a.status == 201) {
                        acknowledged.lock().unwrap().push(format!("{writer}/{n}"));
                        done += 1;
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    // The killer: SIGKILL a random node every few seconds and start it again; the broker once.
    let writing = Arc::new(AtomicBool::new(true));
    let killer = {
        let nodes = Arc::clone(&nodes);
        let writing = Arc::clone(&writing);
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut kills = 0u32;
            while writing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(rng.random_range(700..2_500)));
                if !writing.load(Ordering::SeqCst) {
                    break;
                }
                let i = rng.random_range(0..3);
                let mut nodes = nodes.lock().unwrap();
                nodes[i].kill();
                kills += 1;
                std::thread::sleep(Duration::from_millis(rng.random_range(50..500)));
                nodes[i].restart();
            }
            kills
        })
    };
    let half = Instant::now();
    while acknowledged.lock().unwrap().len() < (total / 2) as usize {
        std::thread::sleep(Duration::from_millis(100));
        assert!(half.elapsed() < Duration::from_secs(900), "writes stalled");
    }
    broker.stop();
    std::thread::sleep(Duration::from_secs(1));
    broker.restart().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    let wrote = started.elapsed();

    // Quiescence: both ships have every change answered and every commit applied.
    let quiet = Instant::now();
    let settled = eventually(Duration::from_secs(600), || {
        let Some(m) = json_of(&urls[0], "/api/offline-sync/status") else {
            return false;
        };
        let last = m["data"]["lastCsn"].as_u64().unwrap_or(0);
        urls[1..].iter().all(|u| {
            json_of(u, "/api/offline-sync/status")
                .is_some_and(|s| s["data"]["pending"] == 0 && s["data"]["appliedCsn"].as_u64() == Some(last))
        })
    });
    let nodes = nodes.lock().unwrap();
    assert!(
        settled,
        "no quiescence:\n{}\n{}",
        nodes[1]
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        nodes[0]
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let quiesced = quiet.elapsed();

    let acknowledged = acknowledged.lock().unwrap().clone();
    let want = contents(&urls[0]);
    for (name, url) in ["master", "ship-a", "ship-b"].iter().zip(&urls) {
        let got = if *name == "master" {
            want.clone()
        } else {
            contents(url)
        };
        assert_eq!(got, want, "{name} differs from the master");
        let doubled: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
        assert!(doubled.is_empty(), "{name} holds writes twice: {doubled:?}");
        let lost: Vec<_> = acknowledged.iter().filter(|k| !got.contains_key(*k)).collect();
        assert!(
            lost.is_empty(),
            "{name} lost {} acknowledged writes, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
    println!(
        "crash test: {} changes acknowledged ({} attempted), {kills} kills and 1 broker restart in {:.0} s; quiesced in {:.1} s; {} documents on every node",
        acknowledged.len(),
        attempted.load(Ordering::SeqCst),
        wrote.as_secs_f64(),
        quiesced.as_secs_f64(),
        want.len()
    );
}
