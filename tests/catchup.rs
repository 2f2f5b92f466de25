//! Catch-up: a ship whose database was restored from a backup, or that falls behind what
//! `master-updates` still holds, loses nothing and converges with the master. Over the
//! in-memory transport, on a PostgreSQL and on a SQLite master.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use offline_sync::engine::SnapshotSource;
use offline_sync::kafka::testing::Tansu;
use offline_sync::kafka::{KafkaConfig, KafkaTransport};
use offline_sync::model::Strategy;
use offline_sync::model::{Commit, Message, Origin, decode, unseal};
use offline_sync::storage::{OutboxState, Page, ResyncPhase};
use offline_sync::transport::{FetchLimit, Transport};
use serde_json::{Value, json};
use support::process::{Node, Proxy, brisk, eventually, fresh_postgres};
use support::{Fleet, Setup, create_doc, ct, edit, fields, open_conflicts, read, remove, until};

const ADMIN: &str = "admin-token-of-the-catch-up-tests";
const CT: &str = "api::article.article";
const WAIT: Duration = Duration::from_secs(60);

/// The master's commits of `ship`'s changes on `master-updates`, by seq.
async fn applied_from(broker: &dyn Transport, ship: &str) -> std::collections::BTreeMap<u64, Commit> {
    let all = broker
        .fetch("master-updates", 0, 0, FetchLimit::new(100_000, Duration::ZERO))
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
        ids.push(create_doc(&f.ships[0], json!({"n": n})).await.id);
    }
    f.sync().await;
    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("ship-0.db");
    f.backup_ship(0, &copy);
    // Written and applied after the backup: seqs 4 to 8, which the restored copy never saw.
    for (k, id) in ids.iter().cycle().take(5).enumerate() {
        edit(&f.ships[0], *id, json!({"lost": k})).await;
    }
    f.sync().await;
    f.restore_ship(0, &copy).await;
    // Written after the restore, with the seqs the master already used.
    for (k, id) in ids.iter().cycle().take(5).enumerate() {
        edit(&f.ships[0], *id, json!({"after": 100 + k})).await;
    }
    f.sync().await;
    f.sync().await;
    f.assert_converged().await;
    for (k, id) in ids.iter().cycle().take(5).enumerate().skip(2) {
        let doc = read(&f.master, *id).await.unwrap();
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

/// A ship restored from a backup that holds a change not yet sent, after the ship sent it and
/// then wrote a newer value the master applied (and the answers left the topic, and the master
/// forgot the seqs the ship had answered): the old change, sent again under a new seq, does
/// not silently overwrite the newer value — it is a conflict an operator decides.
async fn a_restored_ship_does_not_overwrite_its_own_newer_value(db: Setup) {
    let mut f = Fleet::new(1, db, "restored_older").await;
    let id = create_doc(&f.ships[0], json!({"t": "first"})).await.id;
    f.sync().await;
    edit(&f.ships[0], id, json!({"t": "older"})).await;
    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("ship-0.db");
    f.backup_ship(0, &copy);
    f.sync().await;
    edit(&f.ships[0], id, json!({"t": "newer"})).await;
    f.sync().await;
    // The master forgets what it applied under answered seqs; the answers leave the topic.
    heartbeats(&f).await;
    lose_master_updates(&f, Lost::Retention).await;
    f.resync_from_master();
    f.restore_ship(0, &copy).await;
    f.sync().await;
    f.sync().await;
    let doc = read(&f.master, id).await.unwrap();
    assert_eq!(
        doc.fields["t"],
        json!("newer"),
        "an older value of the restored ship overwrote its newer one"
    );
    let open = open_conflicts(&f.master).await;
    assert_eq!(open.len(), 1, "the operator decides: {open:?}");
    f.master.resolve(open[0].id, &Strategy::KeepMaster).await.unwrap();
    f.sync().await;
    f.assert_converged().await;
}

/// Every record `topic` holds, from all its partitions.
async fn records_of(broker: &dyn Transport, topic: &str) -> Vec<offline_sync::transport::Fetched> {
    let mut all = Vec::new();
    for p in 0..broker.partitions(topic).await.unwrap() {
        all.extend(
            broker
                .fetch(topic, p, 0, FetchLimit::new(100_000, Duration::ZERO))
                .await
                .unwrap()
                .records,
        );
    }
    all
}

/// How `master-updates` lost what a ship had not read.
#[derive(Clone, Copy, Debug)]
enum Lost {
    /// Retention removed the head of the topic.
    Retention,
    /// The topic was deleted and created again.
    Recreated,
}

/// Removes what `master-updates` holds, as retention or a recreated topic would.
async fn lose_master_updates(f: &Fleet, how: Lost) {
    let mem = f.memory().expect("an in-memory fleet");
    match how {
        Lost::Retention => {
            let latest = f.broker.offsets("master-updates", 0).await.unwrap().latest;
            mem.truncate("master-updates", 0, latest).unwrap();
        }
        Lost::Recreated => mem.recreate("master-updates").unwrap(),
    }
}

/// A new ship joins after retention removed the head of `master-updates`: without a way to
/// the master's state it says so and holds nothing; with one it takes the master's state in
/// pages and ends equal to the master, deleted documents included, and reads on from there.
async fn a_new_ship_joins_after_retention_removed_the_head(db: Setup) {
    let mut f = Fleet::new(2, db, "new_ship_joins").await;
    let mut ids = vec![];
    for n in 0..120 {
        ids.push(create_doc(&f.master, json!({"n": n})).await.id);
    }
    for id in &ids[..20] {
        remove(&f.master, *id).await;
    }
    f.master.publish_all().await.unwrap();
    lose_master_updates(&f, Lost::Retention).await;

    let err = f.ships[0].pull_once().await.unwrap_err();
    assert!(
        matches!(err, offline_sync::engine::Error::ResyncRequired { .. }),
        "{err}"
    );
    let st = f.ships[0].status().await.unwrap();
    assert!(
        st.resync_required.is_some(),
        "the ship does not say it needs a resync"
    );
    assert!(f.ship_docs(0).await.is_empty());

    f.resync_from_master();
    f.sync().await;
    f.assert_converged().await;
    for i in 0..2 {
        let resync = f.ships[i].status().await.unwrap().resync.expect("a resync ran");
        assert_eq!(resync.state.phase, ResyncPhase::Done);
        assert_eq!(resync.state.total, Some(120), "tombstones count too");
        assert_eq!(resync.state.received, 120);
        assert!(f.ships[i].status().await.unwrap().resync_required.is_none());
    }
    // It reads on from the master's point: later commits arrive as usual.
    edit(&f.master, ids[50], json!({"n": "later"})).await;
    f.sync().await;
    f.assert_converged().await;
    assert_eq!(
        read(&f.ships[0], ids[50]).await.unwrap().fields["n"],
        json!("later")
    );
}

/// A ship comes back after `master-updates` lost what it had not read, holding 30 unsent
/// changes, some on documents the master changed or deleted meanwhile: it resyncs, keeps and
/// pushes its changes (conflicts where both sides changed the same thing), deleted documents
/// stay deleted, and every node converges.
async fn a_ship_back_after_the_topic_lost_its_head_keeps_its_changes(db: Setup, how: Lost) {
    let mut f = Fleet::new(2, db, &format!("back_past_{how:?}").to_lowercase()).await;
    f.resync_from_master();
    let mut ids = vec![];
    for n in 0..40 {
        ids.push(create_doc(&f.master, json!({"n": n})).await.id);
    }
    f.sync().await;
    f.links[0].set_offline(true);
    let ship = &f.ships[0];
    // Documents only the ship changes.
    for (k, id) in ids[0..10].iter().enumerate() {
        edit(ship, *id, json!({"ship": k})).await;
    }
    // Documents the ship changes and the master deletes: update-delete conflicts.
    for (k, id) in ids[15..20].iter().enumerate() {
        edit(ship, *id, json!({"ship": k})).await;
    }
    // Both change other fields: merged, no conflict.
    for (k, id) in ids[20..25].iter().enumerate() {
        edit(ship, *id, json!({"ship": k})).await;
        edit(&f.master, *id, json!({"m": k})).await;
    }
    // Both change the same field: a master change the ship never saw is not overwritten.
    for id in &ids[25..30] {
        edit(ship, *id, json!({"t": "ship"})).await;
        edit(&f.master, *id, json!({"t": "master"})).await;
    }
    let mut created = vec![];
    for n in 0..5 {
        created.push(create_doc(ship, json!({"new": n})).await.id);
    }
    for id in &ids[10..20] {
        remove(&f.master, *id).await;
    }
    for id in &ids[30..35] {
        remove(&f.ships[1], *id).await;
    }
    assert_eq!(f.ships[0].status().await.unwrap().pending, 30);
    f.sync().await;
    lose_master_updates(&f, how).await;
    f.links[0].set_offline(false);
    f.sync().await;

    let st = f.ships[0].status().await.unwrap();
    let resync = st.resync.expect("the ship resynced");
    assert_eq!(resync.state.phase, ResyncPhase::Done);
    assert!(!resync.state.full);
    for (k, id) in ids[0..10].iter().chain(&ids[20..25]).enumerate() {
        let doc = read(&f.master, *id).await.unwrap();
        assert_eq!(doc.fields["ship"], json!(k % 10), "a change of the ship was lost");
    }
    for id in &ids[20..25] {
        let doc = read(&f.master, *id).await.unwrap();
        assert!(doc.fields.contains_key("m"), "the master's own change was lost");
    }
    for id in &created {
        assert!(
            read(&f.master, *id).await.is_some(),
            "a new document never arrived"
        );
    }
    for id in ids[10..15].iter().chain(&ids[30..35]) {
        assert!(
            read(&f.ships[0], *id).await.is_none(),
            "a document deleted while the ship was away came back on it"
        );
    }
    let open = open_conflicts(&f.master).await;
    let in_conflict: std::collections::BTreeSet<_> = open.iter().map(|c| c.document_id).collect();
    for id in ids[15..20].iter().chain(&ids[25..30]) {
        assert!(
            in_conflict.contains(id),
            "a real conflict was not raised for {id}"
        );
    }
    assert_eq!(open.len(), 10, "only real conflicts are raised: {open:?}");
    for c in open {
        f.master.resolve(c.id, &Strategy::KeepMaster).await.unwrap();
    }
    f.sync().await;
    f.assert_converged().await;
    for id in &ids[25..30] {
        let doc = read(&f.ships[0], *id).await.unwrap();
        assert_eq!(doc.fields["t"], json!("master"));
    }
}

async fn a_ship_back_past_retention_keeps_its_changes(db: Setup) {
    a_ship_back_after_the_topic_lost_its_head_keeps_its_changes(db, Lost::Retention).await;
}

async fn a_ship_back_after_the_topic_was_recreated_keeps_its_changes(db: Setup) {
    a_ship_back_after_the_topic_lost_its_head_keeps_its_changes(db, Lost::Recreated).await;
}

/// Pushes and pulls on every ship, with the master running in the background (it answers
/// requests over the broker), until every ship holds the master's documents with nothing
/// unanswered.
async fn settle_with_the_master_running(f: &Fleet) {
    until(WAIT, "the fleet converged over the broker", async || {
        for s in &f.ships {
            let _ = s.push_all().await;
            let _ = s.pull_all().await;
        }
        let want = f.master_docs().await;
        let mut done = true;
        for (i, s) in f.ships.iter().enumerate() {
            let st = s.status().await.unwrap();
            done &= f.ship_docs(i).await == want && st.pending + st.in_flight == 0;
        }
        done
    })
    .await;
}

/// Ships that reach only the broker resync over it: a new ship after retention, and a ship
/// back past retention with unsent changes, ask the master for pages on `ship-updates` and
/// take them from the snapshot topic, signed by the master; both end equal to the master with
/// nothing lost, and read `master-updates` on.
async fn ships_that_reach_only_the_broker_resync_over_it(db: Setup) {
    let mut f = Fleet::new(2, db, "over_broker").await;
    f.set_ship_tuning(|c| c.resync_page = 25);
    f.restart_ship(0).await;
    f.restart_ship(1).await;
    f.resync_over_broker(Duration::from_secs(20));
    let running = f.master.start();
    let mut ids = vec![];
    for n in 0..60 {
        ids.push(create_doc(&f.master, json!({"n": n})).await.id);
    }
    settle_with_the_master_running(&f).await;
    f.links[1].set_offline(true);
    for (k, id) in ids[..5].iter().enumerate() {
        edit(&f.ships[1], *id, json!({"ship": k})).await;
    }
    for n in 60..100 {
        ids.push(create_doc(&f.master, json!({"n": n})).await.id);
    }
    for id in &ids[40..50] {
        remove(&f.master, *id).await;
    }
    f.master.publish_all().await.unwrap();
    lose_master_updates(&f, Lost::Retention).await;
    f.links[1].set_offline(false);
    settle_with_the_master_running(&f).await;

    for (k, id) in ids[..5].iter().enumerate() {
        let doc = read(&f.master, *id).await.unwrap();
        assert_eq!(doc.fields["ship"], json!(k), "a change of the ship was lost");
    }
    let resync = f.resync_of(1).await;
    assert_eq!(resync.state.phase, ResyncPhase::Done);
    assert_eq!(
        resync.state.received, 55,
        "above its CSN: the 40 documents created, the 10 deleted, and its own 5 changes (sent before it asked)"
    );
    assert_eq!(resync.state.pages, 3, "pages of 25");
    assert!(resync.state.bytes > 0);
    let parts = records_of(f.broker.as_ref(), "master-snapshots").await.len();
    assert!(
        parts as u64 >= resync.state.pages,
        "the pages came over the snapshot topic: {parts} parts"
    );

    // Read on from the master's point: a later commit arrives as usual.
    edit(&f.master, ids[70], json!({"n": "later"})).await;
    settle_with_the_master_running(&f).await;
    assert!(running.shutdown_within(WAIT).await);
    f.assert_converged().await;
}

/// Someone who can write to the broker reads a new ship's resync request and answers it first,
/// signing as the master with a key of its own: the ship, which pinned the master's key from
/// `master-updates` before it asked, refuses the forged page and takes the master's.
async fn a_forged_answer_on_the_snapshot_topic_is_refused(db: Setup) {
    let mut f = Fleet::new(1, db, "forged_answer").await;
    f.resync_over_broker(Duration::from_secs(20));
    let id = create_doc(&f.master, json!({"n": 1})).await.id;
    f.master.publish_all().await.unwrap();
    let ship = f.ships[0].ship().clone();
    // Asked for (a new ship), then sent on its way; the master does not answer yet.
    f.ships[0].pull_once().await.unwrap();
    f.ships[0].pull_once().await.unwrap();
    let asked = records_of(f.broker.as_ref(), "ship-updates")
        .await
        .into_iter()
        .find_map(|r| match unseal(&r.record.value).map(|s| decode(s.msg)) {
            Ok(Ok(Message::ResyncRequest(r))) => Some(r),
            _ => None,
        })
        .expect("the ship asked on ship-updates");
    let forged_id = offline_sync::model::DocumentId::new_v7();
    let forged = offline_sync::engine::Snapshot {
        at: offline_sync::storage::Published {
            csn: 1,
            next_offset: 1,
        },
        documents: vec![offline_sync::storage::StoredDoc {
            content_type: ct(),
            id: forged_id,
            fields: fields(json!({"forged": true})),
            deleted: false,
            version: 1,
            updated_at_ms: 0,
            created_at_ms: 0,
        }],
        next: None,
        last_seq: None,
        applied: vec![],
        touched: vec![],
        resolved: vec![],
        total: Some(1),
        collected: 0,
    };
    let evil = offline_sync::model::SigningKey::from_seed([7; 32]);
    let records: Vec<Vec<u8>> = offline_sync::engine::snapshot::into_parts(&ship, asked.request, &forged)
        .into_iter()
        .map(|p| evil.seal("master", &offline_sync::model::encode(&Message::SnapshotPart(p))))
        .collect();
    f.broker
        .publish("master-snapshots", Some(ship.as_str().as_bytes()), records)
        .await
        .unwrap();
    f.ships[0].pull_once().await.unwrap();
    f.master.pull_all().await.unwrap();
    until(WAIT, "the ship took the master's page", async || {
        let resync = f.ships[0].status().await.unwrap().resync;
        if resync.is_some_and(|r| r.state.phase == ResyncPhase::Done) {
            return true;
        }
        let _ = f.ships[0].pull_once().await;
        false
    })
    .await;
    assert!(
        read(&f.ships[0], forged_id).await.is_none(),
        "the ship took a forged page"
    );
    assert!(read(&f.ships[0], id).await.is_some());
    f.sync().await;
    f.assert_converged().await;
}

/// Records the master did not sign, written to a waiting ship's partition of the snapshot topic
/// again and again, do not keep it waiting: with no answer from the master for its wait, it
/// says so and asks again.
async fn junk_on_the_snapshot_topic_does_not_keep_a_ship_waiting(db: Setup) {
    let mut f = Fleet::new(1, db, "junk_wait").await;
    f.resync_over_broker(Duration::from_millis(800));
    create_doc(&f.master, json!({"n": 1})).await;
    f.master.publish_all().await.unwrap();
    let ship = f.ships[0].ship().clone();
    f.ships[0].pull_once().await.unwrap();
    until(
        WAIT,
        "the ship stopped waiting past records the master did not sign",
        async || {
            let junk = vec![b"junk".to_vec()];
            f.broker
                .publish("master-snapshots", Some(ship.as_str().as_bytes()), junk)
                .await
                .unwrap();
            let pulled = f.ships[0].pull_once().await;
            matches!(pulled, Err(e) if e.to_string().contains("no answer from the master"))
        },
    )
    .await;
}

/// A new ship resyncing over the broker learns the master's key even when the oldest record
/// `master-updates` holds is one it refuses: it reads the newest records, not only the oldest.
async fn a_new_ship_learns_the_masters_key_past_a_refused_record(db: Setup) {
    let mut f = Fleet::new(1, db, "key_past_junk").await;
    f.resync_over_broker(Duration::from_secs(20));
    f.broker
        .publish(
            "master-updates",
            None,
            vec![b"not a record of the master".to_vec()],
        )
        .await
        .unwrap();
    let id = create_doc(&f.master, json!({"n": 1})).await.id;
    f.master.publish_all().await.unwrap();
    let running = f.master.start();
    until(WAIT, "the ship took the master's state", async || {
        if read(&f.ships[0], id).await.is_some() {
            return true;
        }
        let _ = f.ships[0].pull_all().await;
        false
    })
    .await;
    assert!(running.shutdown_within(WAIT).await);
}

/// Sends each ship's heartbeat and lets the master take them in.
async fn heartbeats(f: &Fleet) {
    for s in &f.ships {
        let _ = s.heartbeat().await;
    }
    f.master.pull_all().await.unwrap();
}

/// A ship taken out of service comes back holding an update of a document the master deleted
/// and whose tombstone was collected meanwhile: the update is decided against the collected
/// tombstone — an update-after-delete conflict, as with the tombstone — not a silent
/// resurrection of part of the document.
async fn an_update_of_a_collected_document_is_a_conflict_not_a_resurrection(db: Setup) {
    let mut f = Fleet::new(2, db, "collected_update").await;
    f.resync_from_master();
    let id = create_doc(&f.master, json!({"a": 1, "b": 2})).await.id;
    f.sync().await;
    heartbeats(&f).await;
    f.links[1].set_offline(true);
    edit(&f.ships[1], id, json!({"a": 9})).await;
    remove(&f.master, id).await;
    f.sync().await;
    heartbeats(&f).await;
    let away = f.ships[1].ship().clone();
    f.master.decommission(&away).await.unwrap();
    assert_eq!(f.master.collect_tombstones().await.unwrap(), 1);
    f.master.readmit(&away).await.unwrap();
    f.links[1].set_offline(false);
    f.sync().await;
    f.sync().await;
    assert!(
        read(&f.master, id).await.is_none(),
        "a document whose tombstone was collected came back"
    );
    let open = open_conflicts(&f.master).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].document_id, id);
    assert_eq!(
        open[0].draft.kind,
        offline_sync::model::ConflictKind::UpdateDelete
    );
    f.master.resolve(open[0].id, &Strategy::KeepMaster).await.unwrap();
    f.sync().await;
    f.assert_converged().await;
}

/// Tombstones are collected once every ship in service applied them: a ship away holds them
/// back until it is decommissioned; back past the collection (and readmitted), it takes a
/// full resync and the deleted documents stay deleted. Over a long run the master's
/// tombstones and what it keeps of ships' changes stay bounded.
async fn tombstones_are_collected_once_every_ship_applied_them(db: Setup) {
    let mut f = Fleet::new(2, db, "tombstones").await;
    f.resync_from_master();
    let mut ids = vec![];
    for n in 0..10 {
        ids.push(create_doc(&f.master, json!({"n": n})).await.id);
    }
    f.sync().await;
    heartbeats(&f).await;
    f.links[1].set_offline(true);
    for id in &ids[..5] {
        remove(&f.master, *id).await;
    }
    f.sync().await;
    heartbeats(&f).await;
    assert_eq!(
        f.master.collect_tombstones().await.unwrap(),
        0,
        "a ship that has not applied the deletes holds their tombstones back"
    );
    let tombstone = async || f.master.storage().master_doc(&ct(), ids[0]).await.unwrap();
    assert!(tombstone().await.is_some());

    let away = f.ships[1].ship().clone();
    f.master.decommission(&away).await.unwrap();
    heartbeats(&f).await;
    assert_eq!(f.master.collect_tombstones().await.unwrap(), 5);
    assert!(
        tombstone().await.is_none(),
        "the tombstone every ship in service passed is gone"
    );

    lose_master_updates(&f, Lost::Retention).await;
    f.master.readmit(&away).await.unwrap();
    f.links[1].set_offline(false);
    f.sync().await;
    let resync = f.resync_of(1).await;
    assert!(
        resync.state.full,
        "a ship below the collection takes every document"
    );
    for id in &ids[..5] {
        assert!(
            read(&f.ships[1], *id).await.is_none(),
            "a deleted document came back on the ship"
        );
    }
    f.assert_converged().await;

    // A long run: documents come and go, ships write, heartbeats and collections run.
    let mut sizes = vec![];
    for round in 0..20 {
        let mut made = vec![];
        for n in 0..10 {
            made.push(create_doc(&f.master, json!({"round": round, "n": n})).await.id);
        }
        f.sync().await;
        for id in &made {
            edit(&f.ships[0], *id, json!({"seen": true})).await;
        }
        f.sync().await;
        for id in made {
            remove(&f.master, id).await;
        }
        f.sync().await;
        heartbeats(&f).await;
        f.master.prune().await.unwrap();
        let rows = f.master.storage().snapshot_size(0).await.unwrap();
        let kept = f
            .master
            .storage()
            .ship_seqs(f.ships[0].ship(), 100_000)
            .await
            .unwrap()
            .len();
        sizes.push((rows, kept));
    }
    println!("master documents and tombstones, and ship-0 changes kept, per round: {sizes:?}");
    let (rows, kept) = *sizes.last().unwrap();
    assert!(rows <= 5 + 10, "tombstones pile up: {sizes:?}");
    assert!(
        kept <= 10,
        "what the master keeps of a ship's changes piles up: {sizes:?}"
    );
    f.assert_converged().await;
}

/// The master's state, fetched through a link that does what the test says: it goes down
/// once `pages_left` pages have come through, and with `ask_full` an operator asks for a full
/// resync while the first page is on its way.
#[derive(Debug)]
struct ScriptedLink {
    master: offline_sync::engine::Master,
    pages_left: std::sync::atomic::AtomicUsize,
    fetched: std::sync::atomic::AtomicUsize,
    ask_full: std::sync::atomic::AtomicBool,
}

impl ScriptedLink {
    fn new(master: &offline_sync::engine::Master, pages_left: usize, ask_full: bool) -> std::sync::Arc<Self> {
        std::sync::Arc::new(ScriptedLink {
            master: master.clone(),
            pages_left: pages_left.into(),
            fetched: 0.into(),
            ask_full: ask_full.into(),
        })
    }
}

#[async_trait::async_trait]
impl SnapshotSource for ScriptedLink {
    async fn page(
        &self,
        replica: &offline_sync::engine::Replica,
        query: offline_sync::engine::PageQuery,
    ) -> offline_sync::engine::Result<Option<(offline_sync::engine::Snapshot, u64)>> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.ask_full.swap(false, SeqCst) {
            replica.request_resync(true, "asked for by an operator").await?;
        }
        if self
            .pages_left
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(offline_sync::engine::Error::Snapshot {
                reason: "the link is down".into(),
                retryable: true,
            });
        }
        self.fetched.fetch_add(1, SeqCst);
        self.master.page(replica, query).await
    }
}

/// A resync cut half-way by the link, then by a restart of the ship, continues from the last
/// page received: every page is fetched once, every document received once.
async fn a_cut_resync_continues_from_the_last_page(db: Setup) {
    let mut f = Fleet::new(1, db, "cut_resync").await;
    f.set_ship_tuning(|c| c.resync_page = 10);
    f.restart_ship(0).await;
    for n in 0..95 {
        create_doc(&f.master, json!({"n": n})).await;
    }
    f.master.publish_all().await.unwrap();
    lose_master_updates(&f, Lost::Retention).await;
    let link = ScriptedLink::new(&f.master, 4, false);
    f.ships[0].set_snapshot_source(link.clone());
    let err = f.ships[0].pull_all().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let st = f.resync_of(0).await.state;
    assert_eq!((st.phase, st.pages, st.received), (ResyncPhase::Fetching, 4, 40));
    println!("cut after {} pages of {:?} documents", st.pages, st.total);

    f.restart_ship(0).await;
    link.pages_left
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    f.ships[0].set_snapshot_source(link.clone());
    f.ships[0].pull_all().await.unwrap();
    let st = f.resync_of(0).await.state;
    println!(
        "resumed: {} pages fetched in all, {} documents received",
        link.fetched.load(std::sync::atomic::Ordering::SeqCst),
        st.received
    );
    assert_eq!((st.phase, st.pages, st.received), (ResyncPhase::Done, 10, 95));
    assert_eq!(
        link.fetched.load(std::sync::atomic::Ordering::SeqCst),
        10,
        "a page was fetched twice"
    );
    f.assert_converged().await;
}

/// A full resync asked for while the first page of another resync is on its way is the one
/// that runs: the page fetched for the other is not taken as its first, so no document the
/// ship holds is lost.
async fn a_full_resync_asked_for_during_a_page_takes_every_document(db: Setup) {
    let mut f = Fleet::new(1, db, "full_meanwhile").await;
    f.resync_from_master();
    for n in 0..30 {
        create_doc(&f.master, json!({"n": n})).await;
    }
    f.sync().await;
    for n in 30..40 {
        create_doc(&f.master, json!({"n": n})).await;
    }
    f.master.publish_all().await.unwrap();
    lose_master_updates(&f, Lost::Retention).await;
    // The request lands while the first page of the running resync is on its way.
    f.ships[0].set_snapshot_source(ScriptedLink::new(&f.master, usize::MAX, true));
    f.sync().await;
    let st = f.resync_of(0).await.state;
    assert_eq!((st.phase, st.full), (ResyncPhase::Done, true));
    assert_eq!(st.received, 40, "the full resync took every document");
    f.assert_converged().await;
}

/// A ship's own writes go on while its resync waits, on a slow link, for the broker to say
/// where `master-updates` is to be read on: the broker is asked before the writer lock is
/// taken, not under it.
async fn a_ship_writes_while_its_resync_waits_on_a_slow_link(db: Setup) {
    let mut f = Fleet::new(1, db, "slow_resync").await;
    f.resync_from_master();
    let id = create_doc(&f.master, json!({"n": 1})).await.id;
    f.sync().await;
    f.ships[0]
        .request_resync(true, "asked for by the test")
        .await
        .unwrap();
    f.links[0].set_delay(Duration::from_secs(600));
    let ship = f.ships[0].clone();
    // The page comes from the master in this process; then the resync asks the broker.
    let resync = tokio::spawn(async move { ship.resync_all().await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ct = ct();
    let wrote = tokio::time::timeout(WAIT, f.ships[0].update(&ct, id, fields(json!({"n": 2})))).await;
    assert!(
        matches!(wrote, Ok(Ok(_))),
        "the ship's write waited on the resync's call over the slow link: {wrote:?}"
    );
    resync.abort();
}

/// Copies a replica's SQLite file and its write-ahead log (the replica stopped) from `from`
/// to `to`, replacing what is there.
fn copy_ship_database(from: &Path, to: &Path, ship: &str) {
    let file = format!("offline-sync-{ship}.db");
    assert!(
        from.join(&file).exists(),
        "no database {file} in {}",
        from.display()
    );
    for suffix in ["", "-wal", "-shm"] {
        let target = to.join(format!("{file}{suffix}"));
        let _ = std::fs::remove_file(&target);
        let source = from.join(format!("{file}{suffix}"));
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
    let ids: Vec<String> = (0..3).map(|n| a.create_article(json!({"n": n}))).collect();
    let on_master =
        |id: &str, field: &str, v: u64| eventually(WAIT, || field_of(&master, id, field) == Some(json!(v)));
    assert!(on_master(&ids[2], "n", 2), "the creates never reached the master");

    let backup = tempfile::tempdir().unwrap();
    a.terminate(Duration::from_secs(30));
    copy_ship_database(&a.dir, backup.path(), "ship-a");
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
    copy_ship_database(backup.path(), &a.dir, "ship-a");
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

const READ: &str = "read-token-of-the-catch-up-tests";

/// The offsets `master-updates` holds on the broker at `addr`.
fn master_updates_range(addr: &str) -> offline_sync::transport::OffsetRange {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let t = KafkaTransport::new(KafkaConfig::new(vec![addr.to_owned()])).unwrap();
        t.offsets("master-updates", 0).await.unwrap()
    })
}

/// Resolves every open conflict on `master` with keep-master; returns how many.
fn resolve_all_keep_master(master: &Node) -> usize {
    let open = master.call("GET", "/api/offline-sync/conflicts?pageSize=100", None);
    assert_eq!(open.status, 200, "{}", open.body);
    let list = open.json()["data"].as_array().cloned().unwrap_or_default();
    for c in &list {
        let id = c["id"].as_u64().unwrap();
        let r = master.call(
            "POST",
            &format!("/api/offline-sync/conflicts/{id}/resolve"),
            Some(&json!({"strategy": "keep-master"})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    list.len()
}

/// Where a ship process fetches the master's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// The master's API (`SYNC_MASTER_URL`).
    Api,
    /// The broker: a request on `ship-updates`, pages on `master-snapshots`.
    Broker,
}

/// A ship process comes back after `master-updates` lost what it had not read (retention on
/// tansu's `sqlite://` storage, or the topic deleted and created again), holding 100 unsent
/// changes, some on documents the master changed or deleted meanwhile. It resyncs from the
/// master's state (`way`), keeps and pushes its changes (conflicts where both sides changed
/// the same thing), deleted documents stay deleted, and every node converges.
fn a_ship_process_back_after_the_topic_lost_its_head(how: Lost, way: Way) {
    // Retention needs tansu's `sqlite://` storage; deleting a topic there kills its storage
    // task (tansu 0.6.0: "more or less than one row"), so a topic is recreated on `memory://`.
    let storage = match how {
        Lost::Retention => "sqlite://tansu.db?maintenance_interval=1s",
        Lost::Recreated => "memory://tansu/",
    };
    let broker =
        Tansu::start_with(storage, &[]).expect("tansu must be installed (./scripts/test.sh installs it)");
    let addr = broker.address();
    let retention: &[&str] = match how {
        Lost::Retention => &["cleanup.policy=delete", "retention.ms=3000"],
        Lost::Recreated => &[],
    };
    broker.topic_create("master-updates", 1, retention).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut master_env = brisk(&addr, ADMIN);
    master_env.push(("SYNC_READ_TOKEN", READ.to_owned()));
    master_env.push((
        "DATABASE_URL",
        fresh_postgres(&format!("process_back_{how:?}").to_lowercase()),
    ));
    let master = Node::start("master", "master", dir.path(), &master_env);
    master.wait_ready();
    let replica = |ship: &str| {
        let mut e = brisk(&addr, ADMIN);
        e.push(("SYNC_SHIP_ID", ship.to_owned()));
        if way == Way::Api {
            e.push(("SYNC_MASTER_URL", master.url("")));
            e.push(("SYNC_MASTER_TOKEN", READ.to_owned()));
        }
        let r = Node::start("replica", ship, &dir.path().join(ship), &e);
        r.wait_ready();
        r
    };
    let mut a = replica("ship-a");
    let b = replica("ship-b");
    let ids: Vec<String> = (0..70).map(|n| master.create_article(json!({"n": n}))).collect();
    assert!(
        eventually(WAIT, || a.documents(CT).len() == 70),
        "ship-a never received the master's documents"
    );

    // The ship goes on without a link: its broker is somewhere it cannot reach.
    a.terminate(Duration::from_secs(30));
    a.set_env(
        "KAFKA_BROKERS",
        &format!("127.0.0.1:{}", support::process::free_port()),
    );
    a.restart();
    a.wait_ready();
    let put = |node: &Node, id: &str, data: Value| {
        let r = node.call(
            "PUT",
            &format!("/api/documents/{CT}/{id}"),
            Some(&json!({"data": data})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    for (k, id) in ids[0..40].iter().enumerate() {
        put(&a, id, json!({"ship": k}));
    }
    for id in &ids[40..60] {
        put(&a, id, json!({"t": "ship"}));
    }
    let mut created = vec![];
    for n in 0..40 {
        created.push(a.create_article(json!({"new": n})));
    }
    let pending = a.call("GET", "/api/offline-sync/status", None).json()["data"]["pending"].clone();
    assert_eq!(pending, json!(100), "the ship holds 100 unsent changes");
    for (k, id) in ids[30..40].iter().enumerate() {
        put(&master, id, json!({"m": k}));
    }
    for id in &ids[40..50] {
        put(&master, id, json!({"t": "master"}));
    }
    for id in ids[50..70].iter() {
        let r = master.call("DELETE", &format!("/api/documents/{CT}/{id}"), None);
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let stored = a.call("GET", "/api/offline-sync/status", None).json()["data"]["offset"]
        .as_i64()
        .unwrap();
    match how {
        Lost::Retention => assert!(
            eventually(Duration::from_secs(60), || master_updates_range(&addr).earliest
                > stored),
            "retention never removed what ship-a had not read"
        ),
        Lost::Recreated => {
            broker
                .topic_delete("master-updates")
                .unwrap_or_else(|e| panic!("{e}\n{}", broker.log()));
            broker
                .topic_create("master-updates", 1, &[])
                .unwrap_or_else(|e| panic!("{e}\n{}", broker.log()));
        }
    }
    println!(
        "{how:?}: master-updates holds {:?}; ship-a stopped at offset {stored}",
        master_updates_range(&addr)
    );

    a.terminate(Duration::from_secs(30));
    a.set_env("KAFKA_BROKERS", &addr);
    a.restart();
    a.wait_ready();
    let status = |n: &Node| n.call("GET", "/api/offline-sync/status", None).json()["data"].clone();
    assert!(
        eventually(WAIT, || {
            let s = status(&a);
            s["resync"]["phase"] == json!("done") && s["pending"] == json!(0)
        }),
        "ship-a did not resync and deliver its changes: {}\nbroker log:\n{}",
        status(&a),
        broker.log()
    );
    // Both sides changed `t` of 40..50, and the ship changed 50..60 the master deleted.
    let mut resolved = 0;
    assert!(
        eventually(WAIT, || {
            resolved += resolve_all_keep_master(&master);
            resolved >= 20
        }),
        "the real conflicts were not raised: {resolved}"
    );
    assert_eq!(resolved, 20, "only real conflicts are raised");
    let want = || master.documents(CT);
    assert!(
        eventually(WAIT, || a.documents(CT) == want() && b.documents(CT) == want()),
        "the nodes did not converge:\nmaster {:?}\nship-a {:?}",
        want(),
        a.documents(CT)
    );
    let docs = want();
    for (k, id) in ids[0..40].iter().enumerate() {
        assert_eq!(docs[id]["ship"], json!(k), "a change of the ship was lost");
    }
    for (k, id) in ids[30..40].iter().enumerate() {
        assert_eq!(docs[id]["m"], json!(k), "a change of the master was lost");
    }
    for id in &ids[40..50] {
        assert_eq!(docs[id]["t"], json!("master"));
    }
    for id in &ids[50..70] {
        assert!(!docs.contains_key(id), "a deleted document came back");
    }
    for id in &created {
        assert!(docs.contains_key(id), "a document created on the ship was lost");
    }
    let s = status(&a);
    println!(
        "{how:?} over the {way:?}: ship-a resynced {} documents in {} pages, {} bytes on the link",
        s["resync"]["received"], s["resync"]["pages"], s["resync"]["bytes"]
    );
}

#[test]
fn a_ship_process_back_past_retention_resyncs_and_keeps_its_changes() {
    a_ship_process_back_after_the_topic_lost_its_head(Lost::Retention, Way::Api);
}

/// Without `SYNC_MASTER_URL`, the ship takes the master's state over the broker.
#[test]
fn a_ship_process_back_after_the_topic_was_recreated_resyncs_over_the_broker() {
    a_ship_process_back_after_the_topic_lost_its_head(Lost::Recreated, Way::Broker);
}

/// Documents the master holds when a new ship joins.
const FLEET_DOCUMENTS: usize = 50_000;

/// A new, empty ship process joins a fleet whose master (PostgreSQL) already holds 50,000
/// documents, after retention removed the head of `master-updates` on tansu: it takes the
/// master's state in pages over the master's API and ends equal to the master. Its link to the
/// master is cut half-way and the ship restarted meanwhile: it goes on from the last page
/// received (what the link carried in all stays within a page or so of what the pages hold).
/// Prints the time and the bytes on the link (recorded in BENCHMARKS.md).
#[test]
fn a_new_ship_process_joins_a_master_of_50000_documents_after_retention() {
    let broker = Tansu::start_with("sqlite://tansu.db?maintenance_interval=1s", &[])
        .expect("tansu must be installed (./scripts/test.sh installs it)");
    let addr = broker.address();
    broker
        .topic_create(
            "master-updates",
            1,
            &["cleanup.policy=delete", "retention.ms=2000"],
        )
        .unwrap();
    let db = fresh_postgres("new_ship_50000");
    let filled = std::time::Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<offline_sync::model::DocumentId> = rt.block_on(async {
        // The master's documents, written through the engine as its API would, then published;
        // this filler does not wait for each commit to reach the disk (the master process
        // started later does).
        let filler = format!("{db}?options=-c%20synchronous_commit%3Doff");
        let storage = std::sync::Arc::new(offline_sync::storage::SeaStorage::connect(&filler).await.unwrap());
        let transport =
            std::sync::Arc::new(KafkaTransport::new(KafkaConfig::new(vec![addr.clone()])).unwrap());
        let m = offline_sync::engine::Master::new(support::master_config(), storage, transport);
        let mut ids = Vec::with_capacity(FLEET_DOCUMENTS);
        for n in 0..FLEET_DOCUMENTS {
            let f = fields(json!({"n": n, "title": format!("document {n}"), "body": "x".repeat(200)}));
            ids.push(m.create(&ct(), f).await.unwrap().id);
        }
        m.publish_all().await.unwrap();
        ids
    });
    println!(
        "{FLEET_DOCUMENTS} documents written and published in {:.1?}",
        filled.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(60), || master_updates_range(&addr).earliest
            > 0),
        "retention never removed the head of master-updates"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut master_env = brisk(&addr, ADMIN);
    master_env.push(("SYNC_READ_TOKEN", READ.to_owned()));
    let master_db = db.clone();
    master_env.push(("DATABASE_URL", db));
    let master = Node::start("master", "master", dir.path(), &master_env);
    master.wait_ready();

    // The ship reaches the master's API through a link that is cut half-way.
    let link = Proxy::start(("127.0.0.1".into(), master.port));
    let joined = std::time::Instant::now();
    let mut e = brisk(&addr, ADMIN);
    e.push(("SYNC_SHIP_ID", "ship-new".to_owned()));
    e.push(("SYNC_MASTER_URL", format!("http://127.0.0.1:{}", link.port)));
    e.push(("SYNC_MASTER_TOKEN", READ.to_owned()));
    let mut ship = Node::start("replica", "ship-new", &dir.path().join("ship-new"), &e);
    let status = |ship: &Node| ship.call("GET", "/api/offline-sync/status", None).json()["data"].clone();
    let pages = |ship: &Node| status(ship)["resync"]["pages"].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(300), || pages(&ship) >= 30),
        "the new ship did not start taking the master's state: {}",
        status(&ship)
    );
    link.set_down(true);
    let cut_at = pages(&ship);
    std::thread::sleep(Duration::from_secs(3));
    let s = status(&ship);
    assert_eq!(s["resync"]["phase"], json!("fetching"), "{s}");
    // A restart while the link is down: the ship goes on from what its database holds.
    ship.terminate(Duration::from_secs(30));
    ship.restart();
    ship.wait_ready();
    let resumed_at = pages(&ship);
    assert!(
        resumed_at >= cut_at,
        "pages received before the cut were lost: {resumed_at} < {cut_at}"
    );
    link.set_down(false);
    assert!(
        eventually(Duration::from_secs(600), || status(&ship)["resync"]["phase"]
            == json!("done")),
        "the new ship did not take the master's state: {}",
        status(&ship)
    );
    let took = joined.elapsed();
    let s = status(&ship);
    let bytes = s["resync"]["bytes"].as_u64().unwrap();
    println!(
        "link cut after {cut_at} pages and the ship restarted; went on from page {resumed_at}; the link carried {} bytes for {bytes} bytes of pages received",
        link.carried()
    );
    assert!(
        link.carried() < bytes + 150_000,
        "the resync started again from zero: the link carried {} bytes for {bytes} bytes of pages",
        link.carried()
    );
    let raw: u64 = ids.len() as u64 * 260;
    println!(
        "new ship joined {FLEET_DOCUMENTS} documents in {took:.1?}: {} pages, {bytes} bytes on the link ({:.1} bytes per document, about {raw} bytes of fields)",
        s["resync"]["pages"],
        bytes as f64 / FLEET_DOCUMENTS as f64
    );
    assert_eq!(s["resync"]["received"], json!(FLEET_DOCUMENTS));
    // Every document, compared in the two databases (reading 50,000 through the API page by
    // page would take longer than the resync).
    let (on_master, on_ship) = rt.block_on(async {
        let all = |url: String| async move {
            let db = offline_sync::storage::SeaStorage::connect(&url).await.unwrap();
            let (docs, _) = offline_sync::storage::CommonStorage::documents(&db, None, Page::all())
                .await
                .unwrap();
            docs.into_iter().map(|d| (d.id, d.fields)).collect::<Vec<_>>()
        };
        let ship_db =
            offline_sync::storage::SeaStorage::sqlite_url(&ship.dir.join("offline-sync-ship-new.db"));
        (all(master_db.clone()).await, all(ship_db).await)
    });
    assert_eq!(on_ship.len(), FLEET_DOCUMENTS);
    assert!(on_ship == on_master, "the new ship differs from the master");
    // It reads on from the master's point.
    let r = master.call(
        "PUT",
        &format!("/api/documents/{CT}/{}", ids[7]),
        Some(&json!({"data": {"n": "later"}})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        eventually(WAIT, || field_of(&ship, &ids[7].to_string(), "n")
            == Some(json!("later"))),
        "a commit after the resync never reached the new ship"
    );
}

on_both_masters!(
    tombstones_are_collected_once_every_ship_applied_them,
    a_restored_ship_loses_no_write_made_after_the_restore,
    a_new_ship_joins_after_retention_removed_the_head,
    a_ship_back_past_retention_keeps_its_changes,
    a_ship_back_after_the_topic_was_recreated_keeps_its_changes,
    a_cut_resync_continues_from_the_last_page,
    ships_that_reach_only_the_broker_resync_over_it,
    a_full_resync_asked_for_during_a_page_takes_every_document,
    a_restored_ship_does_not_overwrite_its_own_newer_value,
    an_update_of_a_collected_document_is_a_conflict_not_a_resurrection,
    a_forged_answer_on_the_snapshot_topic_is_refused,
    junk_on_the_snapshot_topic_does_not_keep_a_ship_waiting,
    a_new_ship_learns_the_masters_key_past_a_refused_record,
    a_ship_writes_while_its_resync_waits_on_a_slow_link,
);
