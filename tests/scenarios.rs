//! End-to-end scenarios over the in-memory transport: SQLite replicas, a PostgreSQL master
//! (and the same on a SQLite master).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{Fleet, MasterDb, create_doc, ct, edit, fields, read};

mod postgres_master {
    use super::*;
    crate::offline_sync_scenarios!(support::Setup::from(MasterDb::Postgres));
}

mod sqlite_master {
    use super::*;
    crate::offline_sync_scenarios!(support::Setup::from(MasterDb::Sqlite));
}

/// The background loops (debounce, backoff while offline, heartbeats) deliver by themselves,
/// and a stop in the middle loses nothing: after a restart from the databases everything
/// converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_loops_deliver_by_themselves_and_stop_gracefully() {
    let mut f = Fleet::new(2, MasterDb::Postgres, "loops").await;
    async fn until<F: AsyncFnMut() -> bool>(mut check: F) -> bool {
        for _ in 0..500 {
            if check().await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }
    let running: Vec<_> = std::iter::once(f.master.start())
        .chain(f.ships.iter().map(|s| s.start()))
        .collect();
    f.links[0].set_offline(true);
    let doc = create_doc(&f.ships[0], json!({"n": 0})).await;
    for i in 1..20 {
        edit(&f.ships[0], doc.id, json!({"n": i})).await;
    }
    let ship0 = f.ships[0].clone();
    assert!(
        until(async || !ship0.is_online()).await,
        "the link is reported down"
    );
    assert_eq!(f.ships[0].status().await.unwrap().pending, 20);
    f.links[0].set_offline(false);
    let ship1 = f.ships[1].clone();
    let arrived = until(async || {
        read(&ship1, doc.id)
            .await
            .is_some_and(|d| d.fields["n"] == json!(19))
    })
    .await;
    assert!(arrived, "timed out waiting for ship-1 to see the offline edits");
    // Stop while a burst is in flight, then restart every node from its database.
    for i in 0..20 {
        edit(&f.ships[1], doc.id, json!({"m": i})).await;
    }
    for r in running {
        r.shutdown().await;
    }
    f.restart_master().await;
    f.restart_ship(0).await;
    f.restart_ship(1).await;
    f.sync().await;
    assert_eq!(
        read(&f.master, doc.id).await.unwrap().fields,
        fields(json!({"n": 19, "m": 19}))
    );
    f.assert_converged().await;
}

/// Heartbeats fill the master's ship registry; a ship not heard from within the threshold is
/// reported offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_the_ship_registry_and_its_online_state() {
    let cfg = offline_sync::engine::MasterConfig {
        offline_after: std::time::Duration::from_millis(300),
        ..support::master_config()
    };
    let f = Fleet::with_config(2, MasterDb::Postgres, "registry", cfg).await;
    f.links[1].set_offline(true);
    create_doc(&f.ships[0], json!({"a": 1})).await;
    f.ships[0].heartbeat().await.unwrap();
    assert!(
        f.ships[1].heartbeat().await.is_err(),
        "no heartbeat without a link"
    );
    f.master.pull_all().await.unwrap();
    let ships = f.master.ships().await.unwrap();
    assert_eq!(ships.len(), 1);
    assert_eq!(ships[0].record.ship, *f.ships[0].ship());
    assert!(ships[0].online);
    assert_eq!(ships[0].record.pending, 1, "the heartbeat carries the backlog");
    let status = f.master.status().await.unwrap();
    assert_eq!((status.ships_total, status.ships_online), (1, 1));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        !f.master.ships().await.unwrap()[0].online,
        "silent past the threshold: offline"
    );
    assert_eq!(f.master.status().await.unwrap().ships_online, 0);
}

/// A stop with a bound: a loop stuck on a broker that does not answer is abandoned after the
/// limit, and what it was sending is still queued after a restart and delivered then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_stop_abandons_a_stuck_step_and_loses_nothing() {
    let mut f = Fleet::new(1, MasterDb::Sqlite, "bounded_stop").await;
    f.links[0].set_delay(std::time::Duration::from_secs(60));
    let running = f.ships[0].start();
    let doc = create_doc(&f.ships[0], json!({"t": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let clean = running
        .shutdown_within(std::time::Duration::from_millis(300))
        .await;
    assert!(!clean, "a step waiting on the broker cannot finish by itself");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the stop kept its bound"
    );
    f.restart_ship(0).await;
    assert_eq!(
        f.ships[0].status().await.unwrap().pending,
        1,
        "the change is still queued"
    );
    f.sync().await;
    assert!(read(&f.master, doc.id).await.is_some());
    f.assert_converged().await;
}

/// An update against a version that is not the document's current one is refused without
/// writing anything, on the master and on a ship.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_versions_are_refused_without_a_write() {
    use offline_sync::engine::Error;
    let f = Fleet::new(1, MasterDb::Sqlite, "stale").await;
    let doc = create_doc(&f.master, json!({"t": 1})).await;
    let v = doc.version;
    let ok = f
        .master
        .update_if(&ct(), doc.id, fields(json!({"t": 2})), Some(v))
        .await
        .unwrap();
    assert!(ok.version > v);
    let stale = f
        .master
        .update_if(&ct(), doc.id, fields(json!({"t": 3})), Some(v))
        .await;
    assert!(
        matches!(stale, Err(Error::Stale { expected, current }) if expected == v && current == ok.version)
    );
    assert!(matches!(
        f.master.delete_if(&ct(), doc.id, Some(v)).await,
        Err(Error::Stale { .. })
    ));
    assert_eq!(
        read(&f.master, doc.id).await.unwrap().fields,
        fields(json!({"t": 2}))
    );
    f.sync().await;
    let base = read(&f.ships[0], doc.id).await.unwrap().version;
    assert_eq!(
        base, ok.version,
        "a ship's version is the CSN it last incorporated"
    );
    let stale = f.ships[0]
        .update_if(&ct(), doc.id, fields(json!({"t": 4})), Some(base - 1))
        .await;
    assert!(matches!(stale, Err(Error::Stale { .. })));
    assert_eq!(f.ships[0].status().await.unwrap().pending, 0, "nothing queued");
    f.ships[0]
        .update_if(&ct(), doc.id, fields(json!({"t": 4})), Some(base))
        .await
        .unwrap();
    f.sync().await;
    f.assert_converged().await;
}

/// The master reads its last CSN for the impossible-base check after its fetch returns: a
/// change based on a commit made while the master was waiting in that fetch is applied, not
/// refused. (Reading it before the fetch refused such a change and its write was lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_based_on_a_commit_made_during_the_masters_fetch_is_applied() {
    let mut cfg = support::master_config();
    cfg.poll_wait = std::time::Duration::from_secs(2);
    cfg.ship_partitions = 1;
    let f = Fleet::with_config(1, MasterDb::Sqlite, "base_during_fetch", cfg).await;
    f.ships[0].heartbeat().await.unwrap();
    f.master.pull_all().await.unwrap();
    let master = f.master.clone();
    let pulling = tokio::spawn(async move { master.pull_once().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let doc = create_doc(&f.master, json!({"t": 1})).await;
    f.master.publish_all().await.unwrap();
    f.ships[0].pull_all().await.unwrap();
    edit(&f.ships[0], doc.id, json!({"t": 2})).await;
    f.ships[0].push_all().await.unwrap();
    assert_eq!(
        pulling.await.unwrap().unwrap(),
        1,
        "the waiting fetch got the change"
    );
    f.sync().await;
    let (letters, _) = f
        .master
        .dead_letters(None, offline_sync::storage::Page::all())
        .await
        .unwrap();
    assert!(letters.is_empty(), "{letters:?}");
    assert_eq!(read(&f.master, doc.id).await.unwrap().fields["t"], json!(2));
    f.assert_converged().await;
}

/// An admin's revocation outlives a restart, even of a key the settings pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stays_revoked_after_a_restart() {
    let key = offline_sync::model::SigningKey::from_seed([21; 32]).public();
    let mut cfg = support::master_config();
    cfg.signing.pinned.insert("ship-9".into(), key);
    let mut f = Fleet::with_config(0, MasterDb::Sqlite, "revoked", cfg).await;
    let status = |f: &Fleet| {
        let master = f.master.clone();
        async move {
            let admin = master.key_admin().await.unwrap();
            let peer = admin.peers().into_iter().find(|p| p.signer == "ship-9").unwrap();
            (peer.status, peer.key)
        }
    };
    use offline_sync::engine::KeyStatus;
    assert_eq!(status(&f).await, (KeyStatus::Trusted, key));
    f.master
        .key_admin()
        .await
        .unwrap()
        .revoke("ship-9")
        .await
        .unwrap();
    f.restart_master().await;
    assert_eq!(status(&f).await, (KeyStatus::Revoked, key));
}
