//! The end-to-end scenarios and a shortened simulation over a real Kafka-protocol broker
//! (tansu, one per test), with a PostgreSQL master and SQLite replicas.

#![allow(clippy::unwrap_used)]

mod support;

mod postgres_master_over_kafka {
    crate::offline_sync_scenarios!(crate::support::Setup {
        db: crate::support::MasterDb::Postgres,
        broker: crate::support::Broker::Kafka,
    });
}

/// The broker (tansu on `sqlite://`, so it keeps its data) goes down while the ships keep
/// writing, then comes back: every change arrives exactly once and all nodes converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_nothing_and_duplicates_nothing() {
    use serde_json::json;
    use support::{Broker, Fleet, MasterDb, Setup, create_doc, edit};

    let mut f = Fleet::new(
        2,
        Setup {
            db: MasterDb::Postgres,
            broker: Broker::KafkaDurable,
        },
        "outage",
    )
    .await;
    let a = create_doc(&f.ships[0], json!({"n": 0})).await;
    let b = create_doc(&f.ships[1], json!({"m": 0})).await;
    f.sync().await;
    f.stop_broker();
    for i in 1..=20 {
        edit(&f.ships[0], a.id, json!({"n": i})).await;
        edit(&f.ships[1], b.id, json!({"m": i})).await;
    }
    assert!(
        f.ships[0].push_once().await.is_err(),
        "nothing can be sent while the broker is down"
    );
    assert_eq!(f.ships[0].status().await.unwrap().pending, 20);
    f.restart_broker();
    let mut delivered = false;
    for _ in 0..60 {
        f.sync().await;
        let (s0, s1) = (
            f.ships[0].status().await.unwrap(),
            f.ships[1].status().await.unwrap(),
        );
        if s0.pending + s0.in_flight + s1.pending + s1.in_flight == 0 {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(delivered, "changes still queued after the broker came back");
    assert_eq!(
        f.master.storage().last_csn().await.unwrap(),
        42,
        "2 creates + 40 updates, each once"
    );
    let ships = f.master.ships().await.unwrap();
    assert!(ships.iter().all(|s| s.record.changes_applied == 21));
    f.assert_converged().await;
}
