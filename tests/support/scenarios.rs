//! The end-to-end scenarios, written once and run by `tests/scenarios.rs` over the
//! in-memory transport and by `tests/kafka.rs` over a real Kafka-protocol broker.

use std::time::Instant;

use offline_sync::model::{ConflictKind, ContentType, SigningKey, Strategy};
use offline_sync::storage::Page;
use offline_sync::transport::FetchLimit;
use serde_json::json;

use super::{Fleet, Setup, all_conflicts, create_doc, ct, edit, fields, open_conflicts, read, remove};

pub async fn create_on_a_ship_reaches_the_master_and_the_other_ships(db: Setup) {
    let f = Fleet::new(3, db, "create").await;
    let doc = create_doc(&f.ships[0], json!({"title": "Deck log", "crew": 12})).await;
    f.sync().await;
    let on_master = read(&f.master, doc.id).await.expect("on the master");
    assert_eq!(on_master.fields, fields(json!({"title": "Deck log", "crew": 12})));
    for s in &f.ships[1..] {
        assert_eq!(read(s, doc.id).await.unwrap().fields, on_master.fields);
    }
    f.assert_converged().await;
}

pub async fn master_edits_reach_every_ship(db: Setup) {
    let f = Fleet::new(3, db, "master_edits").await;
    let doc = create_doc(&f.master, json!({"title": "Manifest"})).await;
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
        let got = read(s, doc.id).await.unwrap();
        assert_eq!(
            got.fields,
            fields(json!({"title": "Manifest v2", "port": "Oslo"}))
        );
    }
    remove(&f.master, doc.id).await;
    f.sync().await;
    for s in &f.ships {
        assert!(read(s, doc.id).await.is_none());
    }
    f.assert_converged().await;
}

pub async fn different_field_edits_merge_without_conflict(db: Setup) {
    let f = Fleet::new(2, db, "merge").await;
    let doc = create_doc(&f.master, json!({"title": "t", "body": "b", "tags": []})).await;
    f.sync().await;
    f.links[0].set_offline(true);
    edit(&f.ships[0], doc.id, json!({"title": "ship title"})).await;
    edit(&f.master, doc.id, json!({"body": "master body"})).await;
    edit(&f.ships[1], doc.id, json!({"tags": ["x"]})).await;
    f.sync().await;
    f.links[0].set_offline(false);
    f.sync().await;
    assert_eq!(
        all_conflicts(&f.master).await,
        vec![],
        "no conflict, open or resolved"
    );
    let want = fields(json!({"title": "ship title", "body": "master body", "tags": ["x"]}));
    assert_eq!(read(&f.master, doc.id).await.unwrap().fields, want);
    f.assert_converged().await;
}

pub async fn same_field_edits_make_one_conflict_and_every_resolution_converges(db: Setup) {
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
        let doc = create_doc(&f.master, json!({"title": "t0", "body": "b"})).await;
        f.sync().await;
        f.links[0].set_offline(true);
        edit(&f.ships[0], doc.id, json!({"title": "ship 1"})).await;
        edit(&f.ships[0], doc.id, json!({"title": "ship 2"})).await;
        edit(&f.master, doc.id, json!({"title": "master"})).await;
        f.sync().await;
        f.links[0].set_offline(false);
        f.sync().await;
        // Replaying the ship's changes does not make a second conflict either.
        f.ships[0].resend_unacked(1).await.unwrap();
        f.sync().await;
        let all = all_conflicts(&f.master).await;
        assert_eq!(all.len(), 1, "exactly one conflict: {all:?}");
        let c = &all[0];
        assert_eq!(c.draft.kind, ConflictKind::UpdateUpdate);
        assert_eq!(c.draft.ship_values, fields(json!({"title": "ship 2"})));
        assert_eq!(c.draft.master_values, fields(json!({"title": "master"})));
        // While open, the ship keeps its own value and the master its own.
        assert_eq!(
            read(&f.ships[0], doc.id).await.unwrap().fields["title"],
            json!("ship 2")
        );
        assert_eq!(
            read(&f.ships[1], doc.id).await.unwrap().fields["title"],
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
            read(&f.master, doc.id).await.unwrap().fields["title"],
            json!(expected)
        );
        f.assert_converged().await;

        // The next edits, from both sides, raise no new conflict.
        edit(&f.ships[0], doc.id, json!({"title": "after"})).await;
        f.sync().await;
        edit(&f.master, doc.id, json!({"title": "after master"})).await;
        f.sync().await;
        edit(&f.ships[1], doc.id, json!({"title": "after ship 1"})).await;
        f.sync().await;
        let open = open_conflicts(&f.master).await;
        assert!(
            open.is_empty(),
            "no new conflict after {}: {open:?}",
            strategy.as_str()
        );
        f.assert_converged().await;
    }
}

pub async fn update_vs_delete_and_delete_vs_update_are_conflicts(db: Setup) {
    let f = Fleet::new(2, db, "deletes").await;
    let a = create_doc(&f.master, json!({"title": "a"})).await;
    let b = create_doc(&f.master, json!({"title": "b"})).await;
    f.sync().await;
    f.links[0].set_offline(true);
    // Ship updates a, master deletes it; ship deletes b, master updates it.
    edit(&f.ships[0], a.id, json!({"title": "a by ship"})).await;
    remove(&f.master, a.id).await;
    remove(&f.ships[0], b.id).await;
    edit(&f.master, b.id, json!({"title": "b by master"})).await;
    f.sync().await;
    f.links[0].set_offline(false);
    f.sync().await;
    let open = open_conflicts(&f.master).await;
    let kinds: Vec<_> = open.iter().map(|c| (c.document_id, c.draft.kind)).collect();
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(kinds.contains(&(a.id, ConflictKind::UpdateDelete)));
    assert!(kinds.contains(&(b.id, ConflictKind::DeleteUpdate)));
    // The ship keeps its view until the operator rules.
    assert!(read(&f.ships[0], a.id).await.is_some());
    assert!(read(&f.ships[0], b.id).await.is_none());
    for c in &open {
        f.master.resolve(c.id, &Strategy::KeepShip).await.unwrap();
    }
    f.sync().await;
    assert_eq!(
        read(&f.master, a.id).await.unwrap().fields["title"],
        json!("a by ship")
    );
    assert!(read(&f.master, b.id).await.is_none());
    f.assert_converged().await;
}

pub async fn an_offline_ship_drains_a_thousand_changes_in_order(db: Setup) {
    let f = Fleet::new(2, db, "drain").await;
    f.links[0].set_offline(true);
    let doc = create_doc(&f.ships[0], json!({"n": 0})).await;
    let mut others = vec![];
    for i in 1..1_000 {
        if i % 10 == 0 {
            others.push(create_doc(&f.ships[0], json!({"n": i})).await.id);
        } else {
            edit(&f.ships[0], doc.id, json!({"n": i})).await;
        }
    }
    let st = f.ships[0].status().await.unwrap();
    assert_eq!((st.pending, st.last_seq), (1_000, 1_000));
    assert!(f.ships[0].push_once().await.is_err(), "no link, nothing sent");
    f.links[0].set_offline(false);
    let start = Instant::now();
    f.sync().await;
    let elapsed = start.elapsed();
    // What signing costs of that, measured in the same run: each drained change is sealed by
    // its ship and verified by the master, its commit sealed by the master and verified by
    // both ships.
    let key = SigningKey::from_seed([7; 32]);
    let sample = offline_sync::model::encode(&offline_sync::model::Message::Change(
        offline_sync::model::Change {
            resent: false,
            ship: f.ships[0].ship().clone(),
            seq: 1,
            ct: ct(),
            id: doc.id,
            op: offline_sync::model::Op::Update,
            fields: fields(json!({"n": 1})),
            base: 1,
            unseen: Default::default(),
            hlc: Default::default(),
        },
    ));
    let crypto = Instant::now();
    for _ in 0..1_000 {
        let sealed = key.seal("ship-0", &sample);
        let opened = offline_sync::model::unseal(&sealed).unwrap();
        assert!(opened.verify_with(&key.public()));
    }
    let one_each = crypto.elapsed();
    let verify = Instant::now();
    let sealed = key.seal("ship-0", &sample);
    for _ in 0..1_000 {
        assert!(
            offline_sync::model::unseal(&sealed)
                .unwrap()
                .verify_with(&key.public())
        );
    }
    let verify_only = verify.elapsed();
    let signing = one_each * 2 + verify_only;
    println!(
        "drain on {db:?} master: 1000 changes in {:.2?} = {:.0} changes/s; of that, signing and verifying (2 seals + 3 verifications a change, measured alone) {:.2?} = {:.1}%",
        elapsed,
        1_000.0 / elapsed.as_secs_f64(),
        signing,
        100.0 * signing.as_secs_f64() / elapsed.as_secs_f64()
    );
    assert_eq!(read(&f.master, doc.id).await.unwrap().fields["n"], json!(999));
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

pub async fn duplicated_and_replayed_messages_change_nothing(db: Setup) {
    let f = Fleet::new(2, db, "replay").await;
    f.links[0].duplicate_publishes(5);
    f.master_link.duplicate_publishes(5);
    let doc = create_doc(&f.ships[0], json!({"title": "x", "n": 1})).await;
    edit(&f.ships[0], doc.id, json!({"n": 2})).await;
    f.sync().await;
    edit(&f.ships[1], doc.id, json!({"title": "y"})).await;
    f.sync().await;
    assert!(f.links[0].injected().duplicates > 0 && f.master_link.injected().duplicates > 0);
    let before = f.master_docs().await;
    let csn = f.master.storage().last_csn().await.unwrap();

    // Replay both topics from the start, as a broker or an operator re-sending history would.
    for topic in ["ship-updates", "master-updates"] {
        for p in 0..f.broker.partitions(topic).await.unwrap() {
            let all = f
                .broker
                .fetch(topic, p, 0, FetchLimit::new(10_000, std::time::Duration::ZERO))
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
    assert_eq!(
        all_conflicts(&f.master).await,
        vec![],
        "no conflict, open or resolved"
    );
    f.assert_converged().await;
}

pub async fn a_node_dropped_mid_batch_loses_nothing_and_applies_nothing_twice(db: Setup) {
    let mut f = Fleet::new(2, db, "crash").await;
    let doc = create_doc(&f.ships[0], json!({"n": 0})).await;
    for i in 1..50 {
        edit(&f.ships[0], doc.id, json!({"n": i})).await;
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
    assert_eq!(read(&f.master, doc.id).await.unwrap().fields["n"], json!(49));
    assert_eq!(
        f.master.storage().last_csn().await.unwrap(),
        50,
        "each change committed once"
    );
    // A replica dropped in the middle of taking in the broadcasts resumes from its offset.
    edit(&f.master, doc.id, json!({"n": 100})).await;
    f.master.publish_all().await.unwrap();
    f.restart_ship(1).await;
    f.sync().await;
    f.assert_converged().await;
}

pub async fn malformed_envelopes_become_dead_letters_and_consumption_goes_on(db: Setup) {
    let f = Fleet::new(1, db, "dead").await;
    let doc = create_doc(&f.ships[0], json!({"title": "ok"})).await;
    f.sync().await;
    // Each node's own key, read from its database: the envelopes inside are signed
    // properly, so that what refuses them is the envelope decoder.
    let ship_key = SigningKey::from_seed(f.ships[0].storage().signing_seed([0; 32], 0).await.unwrap());
    let master_key = SigningKey::from_seed(f.master.storage().signing_seed([0; 32], 0).await.unwrap());
    let garbage: Vec<(&str, Vec<u8>, bool)> = vec![
        ("malformed", b"{\"v\":1,".to_vec(), false),
        ("unsigned", br#"{"v":1,"kind":"change"}"#.to_vec(), false),
        ("unknown envelope version", br#"{"v":7,"kind":"change"}"#.to_vec(), true),
        ("unknown envelope kind", br#"{"v":1,"kind":"telepathy"}"#.to_vec(), true),
        ("missing field", br#"{"v":1,"kind":"change","ship":"ship-0"}"#.to_vec(), true),
        ("invalid", br#"{"v":1,"kind":"change","ship":"ship-0","seq":9,"ct":"no spaces allowed","id":"0190e5a6-0000-7000-8000-000000000000","op":"create","base":0,"hlc":{"ms":1,"c":0}}"#.to_vec(), true),
        ("exceeds", vec![b' '; 2 * 1024 * 1024], false),
    ];
    for (_, g, signed) in &garbage {
        let (to_master, to_ship) = if *signed {
            (ship_key.seal("ship-0", g), master_key.seal("master", g))
        } else {
            (g.clone(), g.clone())
        };
        f.broker
            .publish("ship-updates", Some(b"ship-0"), vec![to_master])
            .await
            .unwrap();
        f.broker
            .publish("master-updates", None, vec![to_ship])
            .await
            .unwrap();
    }
    edit(&f.ships[0], doc.id, json!({"title": "still flowing"})).await;
    f.sync().await;
    assert_eq!(
        read(&f.master, doc.id).await.unwrap().fields["title"],
        json!("still flowing")
    );
    let (master_dl, _) = f.master.storage().dead_letters(None, Page::all()).await.unwrap();
    let (ship_dl, _) = f.ships[0]
        .storage()
        .dead_letters(None, Page::all())
        .await
        .unwrap();
    for dl in [&master_dl, &ship_dl] {
        assert_eq!(dl.len(), garbage.len(), "{dl:?}");
        for (reason, _, _) in &garbage {
            assert!(
                dl.iter().any(|l| l.letter.reason.contains(reason)),
                "no dead letter for {reason}: {dl:?}"
            );
        }
    }
    f.assert_converged().await;
}

pub async fn a_change_of_a_content_type_the_master_does_not_sync_is_refused(db: Setup) {
    let mut cfg = super::master_config();
    cfg.content_types = Some([ct()].into_iter().collect());
    let f = Fleet::with_config(1, db, "unsynced", cfg).await;
    let other = ContentType::new("api::other.other").unwrap();
    let stray = f.ships[0].create(&other, fields(json!({"a": 1}))).await.unwrap();
    let kept = create_doc(&f.ships[0], json!({"a": 2})).await;
    f.sync().await;
    assert!(
        f.master
            .storage()
            .document(&other, stray.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(read(&f.master, kept.id).await.is_some());
    let st = f.ships[0].status().await.unwrap();
    assert_eq!((st.rejected, st.pending, st.in_flight), (1, 0, 0));
    assert!(matches!(
        f.master.create(&other, fields(json!({}))).await,
        Err(offline_sync::engine::Error::NotSynced(_))
    ));
}

/// One `#[tokio::test]` per scenario, on the given [`Setup`](super::Setup) expression.
#[macro_export]
macro_rules! offline_sync_scenarios {
    ($setup:expr) => {
        $crate::offline_sync_scenarios!(@each $setup;
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
    (@each $setup:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::support::scenarios::$name($setup).await;
            }
        )*
    };
}
