//! Catch-up: a ship whose database was restored from a backup, or that falls behind what
//! `master-updates` still holds, loses nothing and converges with the master. Over the
//! in-memory transport, on a PostgreSQL and on a SQLite master.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use offline_sync::kafka::testing::Tansu;
use offline_sync::kafka::{KafkaConfig, KafkaTransport};
use offline_sync::model::{Commit, Message, Origin, decode, unseal};
use offline_sync::storage::{OutboxState, Page};
use offline_sync::transport::Transport;
use serde_json::{Value, json};
use support::process::{Node, brisk, eventually, fresh_postgres};
use support::{Fleet, Setup, ct, fields};

const ADMIN: &str = "admin-token-of-the-catch-up-tests";
const CT: &str = "api::article.article";
const WAIT: Duration = Duration::from_secs(60);

/// The master's commits of `ship`'s changes on `master-updates`, by seq.
async fn applied_from(broker: &dyn Transport, ship: &str) -> std::collections::BTreeMap<u64, Commit> {
    let all = broker
        .fetch("master-updates", 0, 0, 100_000, Duration::ZERO)
        .await
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for r in all.records {
        if let Ok(Ok(Message::Commit(c))) = unseal(&r.record.value).map(|s| decode(s.msg))
            && let (Origin::Ship(s), Some(seq)) = (&c.origin, c.seq)
            && s.as_str() == ship
        {
            out.insert(seq, c);
        }
    }
    out
}

/// A ship restored from a file copy after the master applied more of its changes: every value
/// written after the restore reaches the master and the other ship, and no outbox row is marked
/// acknowledged that the master did not apply as that very change.
async fn a_restored_ship_loses_no_write_made_after_the_restore(db: Setup) {
    let mut f = Fleet::new(2, db, "restored_ship").await;
    let mut ids = vec![];
    for n in 0..3 {
        ids.push(
            f.ships[0]
                .create(&ct(), fields(json!({"n": n})))
                .await
                .unwrap()
                .id,
        );
    }
    f.sync().await;
    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("ship-0.db");
    f.backup_ship(0, &copy);
    // Written and applied after the backup: seqs 4 to 8, which the restored copy never saw.
    for (k, id) in ids.iter().cycle().take(5).enumerate() {
        f.ships[0]
            .update(&ct(), *id, fields(json!({"lost": k})))
            .await
            .unwrap();
    }
    f.sync().await;
    f.restore_ship(0, &copy).await;
    // Written after the restore, with the seqs the master already used.
    for (k, id) in ids.iter().cycle().take(5).enumerate() {
        f.ships[0]
            .update(&ct(), *id, fields(json!({"after": 100 + k})))
            .await
            .unwrap();
    }
    f.sync().await;
    f.sync().await;
    f.assert_converged().await;
    for (k, id) in ids.iter().cycle().take(5).enumerate().skip(2) {
        let doc = f.master.get(&ct(), *id).await.unwrap().unwrap();
        assert_eq!(
            doc.fields.get("after"),
            Some(&json!(100 + k)),
            "a value written after the restore never reached the master"
        );
    }
    let applied = applied_from(f.broker.as_ref(), "ship-0").await;
    let (rows, _) = f.ships[0]
        .queue(Some(OutboxState::Acked), Page::all())
        .await
        .unwrap();
    for row in rows {
        assert_eq!(
            applied.get(&row.change.seq).map(|c| c.hlc),
            Some(row.change.hlc),
            "row {} is marked acknowledged but the master applied another change under its seq",
            row.change.seq
        );
    }
}

on_both_masters!(a_restored_ship_loses_no_write_made_after_the_restore);

/// Copies a replica's SQLite file and its write-ahead log (the replica stopped) from `from`
/// to `to`, replacing what is there.
fn copy_ship_database(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let target = to.join(format!("offline-sync-replica.db{suffix}"));
        let _ = std::fs::remove_file(&target);
        let source = from.join(format!("offline-sync-replica.db{suffix}"));
        if source.exists() {
            std::fs::copy(source, target).unwrap();
        }
    }
}

fn field_of(node: &Node, id: &str, field: &str) -> Option<Value> {
    let a = node.call("GET", &format!("/api/documents/{CT}/{id}"), None);
    (a.status == 200).then(|| a.json()["data"][field].clone())
}

/// The restored ship as processes, over tansu with a PostgreSQL master: a ship's SQLite file is
/// copied, the ship writes and syncs more, the copy is put back and the ship restarted; every
/// value it writes then reaches the master and the other ship, and its outbox marks no row
/// acknowledged that the master did not apply as that change.
#[test]
fn a_restored_ship_process_loses_nothing_written_after_the_restore() {
    let broker = Tansu::start().expect("tansu must be installed (./scripts/test.sh installs it)");
    let addr = broker.address();
    let dir = tempfile::tempdir().unwrap();
    let mut master_env = brisk(&addr, ADMIN);
    master_env.push(("DATABASE_URL", fresh_postgres("restored_process")));
    let master = Node::start("master", "master", dir.path(), &master_env);
    master.wait_ready();
    let replica = |ship: &str| {
        let mut e = brisk(&addr, ADMIN);
        e.push(("SYNC_SHIP_ID", ship.to_owned()));
        let r = Node::start("replica", ship, &dir.path().join(ship), &e);
        r.wait_ready();
        r
    };
    let mut a = replica("ship-a");
    let b = replica("ship-b");
    let write = |node: &Node, id: &str, field: &str, v: u64| {
        let r = node.call(
            "PUT",
            &format!("/api/documents/{CT}/{id}"),
            Some(&json!({"data": {field: v}})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let r = a.call(
                "POST",
                &format!("/api/documents/{CT}"),
                Some(&json!({"data": {"n": n}})),
            );
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["data"]["documentId"].as_str().unwrap().to_owned()
        })
        .collect();
    let on_master =
        |id: &str, field: &str, v: u64| eventually(WAIT, || field_of(&master, id, field) == Some(json!(v)));
    assert!(on_master(&ids[2], "n", 2), "the creates never reached the master");

    let backup = tempfile::tempdir().unwrap();
    a.terminate(Duration::from_secs(30));
    copy_ship_database(&a.dir, backup.path());
    a.restart();
    a.wait_ready();
    for (k, id) in ids.iter().enumerate() {
        write(&a, id, "lost", k as u64);
    }
    assert!(
        on_master(&ids[2], "lost", 2),
        "the writes after the backup never reached the master"
    );

    a.terminate(Duration::from_secs(30));
    copy_ship_database(backup.path(), &a.dir);
    a.restart();
    a.wait_ready();
    for (k, id) in ids.iter().enumerate() {
        write(&a, id, "after", 100 + k as u64);
    }
    for (k, id) in ids.iter().enumerate() {
        let v = 100 + k as u64;
        assert!(
            on_master(id, "after", v),
            "a value written after the restore never reached the master"
        );
        assert!(
            eventually(WAIT, || field_of(&b, id, "after") == Some(json!(v))),
            "a value written after the restore never reached the other ship"
        );
    }
    assert!(
        eventually(WAIT, || {
            let p = a.call("GET", "/api/offline-sync/queue/pending", None).json();
            p["data"]["pending"] == json!(0)
        }),
        "the restored ship keeps unanswered changes"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let applied = rt.block_on(async {
        let t = KafkaTransport::new(KafkaConfig::new(vec![addr.clone()])).unwrap();
        applied_from(&t, "ship-a").await
    });
    let acked = a
        .call("GET", "/api/offline-sync/queue?status=acked&pageSize=100", None)
        .json();
    let rows = acked["data"].as_array().unwrap();
    assert!(rows.len() >= 6, "{acked}");
    for row in rows {
        let seq = row["seq"].as_u64().unwrap();
        let commit = applied.get(&seq);
        let fields = row["fields"].as_object().unwrap();
        assert!(
            commit.is_some_and(|c| fields.iter().all(|(k, v)| c.fields.get(k) == Some(v))),
            "row {seq} ({fields:?}) is marked acknowledged, but the master applied {commit:?} under its seq"
        );
    }
}
