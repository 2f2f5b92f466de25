//! End-to-end scenarios over the in-memory transport: SQLite replicas, a PostgreSQL master
//! (and the same on a SQLite master).

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Instant;

use offline_sync::model::{ConflictKind, ConflictStatus, ContentType, Strategy};
use offline_sync::storage::Page;
use offline_sync::transport::Transport;
use serde_json::json;
use support::{Fleet, MasterDb, ct, fields};

async fn create_on_a_ship_reaches_the_master_and_the_other_ships(db: MasterDb) {
    let f = Fleet::new(3, db, "create").await;
    let doc = f.ships[0]
        .create(&ct(), fields(json!({"title": "Deck log", "crew": 12})))
        .await
        .unwrap();
    f.sync().await;
    let on_master = f.master.get(&ct(), doc.id).await.unwrap().expect("on the master");
    assert_eq!(on_master.fields, fields(json!({"title": "Deck log", "crew": 12})));
    for s in &f.ships[1..] {
        assert_eq!(
            s.get(&ct(), doc.id).await.unwrap().unwrap().fields,
            on_master.fields
        );
    }
    f.assert_converged().await;
}

async fn master_edits_reach_every_ship(db: MasterDb) {
    let f = Fleet::new(3, db, "master_edits").await;
    let doc = f
        .master
        .create(&ct(), fields(json!({"title": "Manifest"})))
        .await
        .unwrap();
    f.master
        .update(
            &ct(),
            doc.id,
            fields(json!({"title": "Manifest v2", "port": "Oslo"})),
        )
        .await
        .unwrap();
    f.sync().await;
    for s in &f.ships {
        let got = s.get(&ct(), doc.id).await.unwrap().unwrap();
        assert_eq!(
            got.fields,
            fields(json!({"title": "Manifest v2", "port": "Oslo"}))
        );
    }
    f.master.delete(&ct(), doc.id).await.unwrap();
    f.sync().await;
    for s in &f.ships {
        assert!(s.get(&ct(), doc.id).await.unwrap().is_none());
    }
    f.assert_converged().await;
}

async fn different_field_edits_merge_without_conflict(db: MasterDb) {
    let f = Fleet::new(2, db, "merge").await;
    let doc = f
        .master
        .create(&ct(), fields(json!({"title": "t", "body": "b", "tags": []})))
        .await
        .unwrap();
    f.sync().await;
    f.links[0].set_offline(true);
    f.ships[0]
        .update(&ct(), doc.id, fields(json!({"title": "ship title"})))
        .await
        .unwrap();
    f.master
        .update(&ct(), doc.id, fields(json!({"body": "master body"})))
        .await
        .unwrap();
    f.ships[1]
        .update(&ct(), doc.id, fields(json!({"tags": ["x"]})))
        .await
        .unwrap();
    f.sync().await;
    f.links[0].set_offline(false);
    f.sync().await;
    assert!(
        f.master
            .conflicts(None, Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    let want = fields(json!({"title": "ship title", "body": "master body", "tags": ["x"]}));
    assert_eq!(f.master.get(&ct(), doc.id).await.unwrap().unwrap().fields, want);
    f.assert_converged().await;
}

async fn same_field_edits_make_one_conflict_and_every_resolution_converges(db: MasterDb) {
    for (n, strategy) in [
        Strategy::KeepShip,
        Strategy::KeepMaster,
        Strategy::Merge {
            merge_data: fields(json!({"title": "merged"})),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let f = Fleet::new(2, db, &format!("conflict{n}")).await;
        let doc = f
            .master
            .create(&ct(), fields(json!({"title": "t0", "body": "b"})))
            .await
            .unwrap();
        f.sync().await;
        f.links[0].set_offline(true);
        f.ships[0]
            .update(&ct(), doc.id, fields(json!({"title": "ship 1"})))
            .await
            .unwrap();
        f.ships[0]
            .update(&ct(), doc.id, fields(json!({"title": "ship 2"})))
            .await
            .unwrap();
        f.master
            .update(&ct(), doc.id, fields(json!({"title": "master"})))
            .await
            .unwrap();
        f.sync().await;
        f.links[0].set_offline(false);
        f.sync().await;
        // Replaying the ship's changes does not make a second conflict either.
        f.ships[0].resend_unacked(1).await.unwrap();
        f.sync().await;
        let all = f.master.conflicts(None, Page::default()).await.unwrap();
        assert_eq!(all.len(), 1, "exactly one conflict: {all:?}");
        let c = &all[0];
        assert_eq!(c.draft.kind, ConflictKind::UpdateUpdate);
        assert_eq!(c.draft.ship_values, fields(json!({"title": "ship 2"})));
        assert_eq!(c.draft.master_values, fields(json!({"title": "master"})));
        // While open, the ship keeps its own value and the master its own.
        assert_eq!(
            f.ships[0].get(&ct(), doc.id).await.unwrap().unwrap().fields["title"],
            json!("ship 2")
        );
        assert_eq!(
            f.ships[1].get(&ct(), doc.id).await.unwrap().unwrap().fields["title"],
            json!("master")
        );

        f.master.resolve(c.id, &strategy).await.unwrap();
        f.sync().await;
        let expected = match &strategy {
            Strategy::KeepShip => "ship 2",
            Strategy::KeepMaster => "master",
            Strategy::Merge { .. } => "merged",
        };
        assert_eq!(
            f.master.get(&ct(), doc.id).await.unwrap().unwrap().fields["title"],
            json!(expected)
        );
        f.assert_converged().await;

        // The next edits, from both sides, raise no new conflict.
        f.ships[0]
            .update(&ct(), doc.id, fields(json!({"title": "after"})))
            .await
            .unwrap();
        f.sync().await;
        f.master
            .update(&ct(), doc.id, fields(json!({"title": "after master"})))
            .await
            .unwrap();
        f.sync().await;
        f.ships[1]
            .update(&ct(), doc.id, fields(json!({"title": "after ship 1"})))
            .await
            .unwrap();
        f.sync().await;
        let open = f
            .master
            .conflicts(Some(ConflictStatus::Open), Page::default())
            .await
            .unwrap();
        assert!(
            open.is_empty(),
            "no new conflict after {}: {open:?}",
            strategy.as_str()
        );
        f.assert_converged().await;
    }
}

async fn update_vs_delete_and_delete_vs_update_are_conflicts(db: MasterDb) {
    let f = Fleet::new(2, db, "deletes").await;
    let a = f
        .master
        .create(&ct(), fields(json!({"title": "a"})))
        .await
        .unwrap();
    let b = f
        .master
        .create(&ct(), fields(json!({"title": "b"})))
        .await
        .unwrap();
    f.sync().await;
    f.links[0].set_offline(true);
    // Ship updates a, master deletes it; ship deletes b, master updates it.
    f.ships[0]
        .update(&ct(), a.id, fields(json!({"title": "a by ship"})))
        .await
        .unwrap();
    f.master.delete(&ct(), a.id).await.unwrap();
    f.ships[0].delete(&ct(), b.id).await.unwrap();
    f.master
        .update(&ct(), b.id, fields(json!({"title": "b by master"})))
        .await
        .unwrap();
    f.sync().await;
    f.links[0].set_offline(false);
    f.sync().await;
    let open = f
        .master
        .conflicts(Some(ConflictStatus::Open), Page::default())
        .await
        .unwrap();
    let kinds: Vec<_> = open.iter().map(|c| (c.document_id, c.draft.kind)).collect();
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(kinds.contains(&(a.id, ConflictKind::UpdateDelete)));
    assert!(kinds.contains(&(b.id, ConflictKind::DeleteUpdate)));
    // The ship keeps its view until the operator rules.
    assert!(f.ships[0].get(&ct(), a.id).await.unwrap().is_some());
    assert!(f.ships[0].get(&ct(), b.id).await.unwrap().is_none());
    for c in &open {
        f.master.resolve(c.id, &Strategy::KeepShip).await.unwrap();
    }
    f.sync().await;
    assert_eq!(
        f.master.get(&ct(), a.id).await.unwrap().unwrap().fields["title"],
        json!("a by ship")
    );
    assert!(f.master.get(&ct(), b.id).await.unwrap().is_none());
    f.assert_converged().await;
}

async fn an_offline_ship_drains_a_thousand_changes_in_order(db: MasterDb) {
    let f = Fleet::new(2, db, "drain").await;
    f.links[0].set_offline(true);
    let doc = f.ships[0].create(&ct(), fields(json!({"n": 0}))).await.unwrap();
    let mut others = vec![];
    for i in 1..1_000 {
        if i % 10 == 0 {
            others.push(
                f.ships[0]
                    .create(&ct(), fields(json!({"n": i})))
                    .await
                    .unwrap()
                    .id,
            );
        } else {
            f.ships[0]
                .update(&ct(), doc.id, fields(json!({"n": i})))
                .await
                .unwrap();
        }
    }
    let st = f.ships[0].status().await.unwrap();
    assert_eq!((st.pending, st.last_seq), (1_000, 1_000));
    assert!(f.ships[0].push_once().await.is_err(), "no link, nothing sent");
    f.links[0].set_offline(false);
    let start = Instant::now();
    f.sync().await;
    let elapsed = start.elapsed();
    println!(
        "drain on {db:?} master: 1000 changes in {:.2?} = {:.0} changes/s",
        elapsed,
        1_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(
        f.master.get(&ct(), doc.id).await.unwrap().unwrap().fields["n"],
        json!(999)
    );
    let ships = f.master.ships().await.unwrap();
    let s0 = ships
        .iter()
        .find(|s| s.record.ship == *f.ships[0].ship())
        .unwrap();
    assert_eq!((s0.record.last_seq, s0.record.changes_applied), (1_000, 1_000));
    assert_eq!(
        f.master.storage().last_csn().await.unwrap(),
        1_000,
        "every change applied exactly once"
    );
    assert_eq!(f.ship_docs(1).await.len(), others.len() + 1);
    f.assert_converged().await;
}

async fn duplicated_and_replayed_messages_change_nothing(db: MasterDb) {
    let f = Fleet::new(2, db, "replay").await;
    f.links[0].duplicate_publishes(5);
    f.master_link.duplicate_publishes(5);
    let doc = f.ships[0]
        .create(&ct(), fields(json!({"title": "x", "n": 1})))
        .await
        .unwrap();
    f.ships[0]
        .update(&ct(), doc.id, fields(json!({"n": 2})))
        .await
        .unwrap();
    f.sync().await;
    f.ships[1]
        .update(&ct(), doc.id, fields(json!({"title": "y"})))
        .await
        .unwrap();
    f.sync().await;
    assert!(f.links[0].injected().duplicates > 0 && f.master_link.injected().duplicates > 0);
    let before = f.master_docs().await;
    let csn = f.master.storage().last_csn().await.unwrap();

    // Replay both topics from the start, as a broker or an operator re-sending history would.
    for topic in ["ship-updates", "master-updates"] {
        for p in 0..f.broker.partitions(topic).await.unwrap() {
            let all = f
                .broker
                .fetch(topic, p, 0, 10_000, std::time::Duration::ZERO)
                .await
                .unwrap();
            for r in all.records {
                f.broker
                    .publish(topic, r.record.key.as_deref(), vec![r.record.value])
                    .await
                    .unwrap();
            }
        }
    }
    f.sync().await;
    assert_eq!(f.master_docs().await, before);
    assert_eq!(
        f.master.storage().last_csn().await.unwrap(),
        csn,
        "nothing applied twice"
    );
    assert!(
        f.master
            .conflicts(None, Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    f.assert_converged().await;
}

async fn a_node_dropped_mid_batch_loses_nothing_and_applies_nothing_twice(db: MasterDb) {
    let mut f = Fleet::new(2, db, "crash").await;
    let doc = f.ships[0].create(&ct(), fields(json!({"n": 0}))).await.unwrap();
    for i in 1..50 {
        f.ships[0]
            .update(&ct(), doc.id, fields(json!({"n": i})))
            .await
            .unwrap();
    }
    // The broker takes the batch but the ship never hears so, then the ship dies.
    f.links[0].lose_publish_acks(1);
    assert!(f.ships[0].push_once().await.is_err());
    f.restart_ship(0).await;
    assert_eq!(
        f.ships[0].status().await.unwrap().pending,
        50,
        "nothing marked sent that was not acknowledged"
    );
    // The master commits the batch, then dies before broadcasting it.
    f.ships[0].push_all().await.unwrap();
    f.master_link.fail_next(1);
    let _ = f.master.pull_once().await;
    f.restart_master().await;
    f.sync().await;
    assert_eq!(
        f.master.get(&ct(), doc.id).await.unwrap().unwrap().fields["n"],
        json!(49)
    );
    assert_eq!(
        f.master.storage().last_csn().await.unwrap(),
        50,
        "each change committed once"
    );
    // A replica dropped in the middle of taking in the broadcasts resumes from its offset.
    f.master
        .update(&ct(), doc.id, fields(json!({"n": 100})))
        .await
        .unwrap();
    f.master.publish_all().await.unwrap();
    f.restart_ship(1).await;
    f.sync().await;
    f.assert_converged().await;
}

async fn malformed_envelopes_become_dead_letters_and_consumption_goes_on(db: MasterDb) {
    let f = Fleet::new(1, db, "dead").await;
    let doc = f.ships[0]
        .create(&ct(), fields(json!({"title": "ok"})))
        .await
        .unwrap();
    f.sync().await;
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("malformed json", b"{\"v\":1,".to_vec()),
        ("unknown envelope version", br#"{"v":7,"kind":"change"}"#.to_vec()),
        ("unknown envelope kind", br#"{"v":1,"kind":"telepathy"}"#.to_vec()),
        ("missing field", br#"{"v":1,"kind":"change","ship":"ship-0"}"#.to_vec()),
        ("invalid", br#"{"v":1,"kind":"change","ship":"ship-0","seq":9,"ct":"no spaces allowed","id":"0190e5a6-0000-7000-8000-000000000000","op":"create","base":0,"hlc":{"ms":1,"c":0}}"#.to_vec()),
        ("exceeds", vec![b' '; 2 * 1024 * 1024]),
    ];
    for (_, g) in &garbage {
        f.broker
            .publish("ship-updates", Some(b"ship-0"), vec![g.clone()])
            .await
            .unwrap();
        f.broker
            .publish("master-updates", None, vec![g.clone()])
            .await
            .unwrap();
    }
    f.ships[0]
        .update(&ct(), doc.id, fields(json!({"title": "still flowing"})))
        .await
        .unwrap();
    f.sync().await;
    assert_eq!(
        f.master.get(&ct(), doc.id).await.unwrap().unwrap().fields["title"],
        json!("still flowing")
    );
    let master_dl = f.master.storage().dead_letters(Page::all()).await.unwrap();
    let ship_dl = f.ships[0].storage().dead_letters(Page::all()).await.unwrap();
    for dl in [&master_dl, &ship_dl] {
        assert_eq!(dl.len(), garbage.len(), "{dl:?}");
        for (reason, _) in &garbage {
            assert!(
                dl.iter().any(|l| l.letter.reason.contains(reason)),
                "no dead letter for {reason}: {dl:?}"
            );
        }
    }
    f.assert_converged().await;
}

async fn a_change_of_a_content_type_the_master_does_not_sync_is_refused(db: MasterDb) {
    let mut cfg = support::master_config();
    cfg.content_types = Some([ct()].into_iter().collect());
    let f = Fleet::with_config(1, db, "unsynced", cfg).await;
    let other = ContentType::new("api::other.other").unwrap();
    let stray = f.ships[0].create(&other, fields(json!({"a": 1}))).await.unwrap();
    let kept = f.ships[0].create(&ct(), fields(json!({"a": 2}))).await.unwrap();
    f.sync().await;
    assert!(
        f.master
            .storage()
            .document(&other, stray.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(f.master.get(&ct(), kept.id).await.unwrap().is_some());
    let st = f.ships[0].status().await.unwrap();
    assert_eq!((st.rejected, st.pending, st.in_flight), (1, 0, 0));
    assert!(matches!(
        f.master.create(&other, fields(json!({}))).await,
        Err(offline_sync::engine::Error::NotSynced(_))
    ));
}

macro_rules! scenarios {
    ($db:ident, $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(MasterDb::$db).await;
            }
        )*
    };
}

macro_rules! all_scenarios {
    ($db:ident) => {
        scenarios!(
            $db,
            create_on_a_ship_reaches_the_master_and_the_other_ships,
            master_edits_reach_every_ship,
            different_field_edits_merge_without_conflict,
            same_field_edits_make_one_conflict_and_every_resolution_converges,
            update_vs_delete_and_delete_vs_update_are_conflicts,
            an_offline_ship_drains_a_thousand_changes_in_order,
            duplicated_and_replayed_messages_change_nothing,
            a_node_dropped_mid_batch_loses_nothing_and_applies_nothing_twice,
            malformed_envelopes_become_dead_letters_and_consumption_goes_on,
            a_change_of_a_content_type_the_master_does_not_sync_is_refused,
        );
    };
}

mod postgres_master {
    use super::*;
    all_scenarios!(Postgres);
}

mod sqlite_master {
    use super::*;
    all_scenarios!(Sqlite);
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
    let doc = f.ships[0].create(&ct(), fields(json!({"n": 0}))).await.unwrap();
    for i in 1..20 {
        f.ships[0]
            .update(&ct(), doc.id, fields(json!({"n": i})))
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!f.ships[0].is_online(), "the link is reported down");
    assert_eq!(f.ships[0].status().await.unwrap().pending, 20);
    f.links[0].set_offline(false);
    let ship1 = f.ships[1].clone();
    let arrived = until(async || {
        ship1
            .get(&ct(), doc.id)
            .await
            .unwrap()
            .is_some_and(|d| d.fields["n"] == json!(19))
    })
    .await;
    assert!(arrived, "timed out waiting for ship-1 to see the offline edits");
    // Stop while a burst is in flight, then restart every node from its database.
    for i in 0..20 {
        f.ships[1]
            .update(&ct(), doc.id, fields(json!({"m": i})))
            .await
            .unwrap();
    }
    for r in running {
        r.shutdown().await;
    }
    f.restart_master().await;
    f.restart_ship(0).await;
    f.restart_ship(1).await;
    f.sync().await;
    assert_eq!(
        f.master.get(&ct(), doc.id).await.unwrap().unwrap().fields,
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
    f.ships[0].create(&ct(), fields(json!({"a": 1}))).await.unwrap();
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
