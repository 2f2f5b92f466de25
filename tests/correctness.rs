//! Correctness off the happy path: each test reproduces one way the engine lost a write, left
//! a ship different from the master, brought a deleted document back or stalled a ship, on a
//! PostgreSQL and on a SQLite master, over the in-memory transport.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use offline_sync::engine::{Error, Replica, ReplicaConfig};
use offline_sync::model::{
    Commit, CommitOp, ConflictKind, ContentType, DocumentId, Hlc, Message, Origin, Policy, SigningKey,
    Strategy, encode,
};
use offline_sync::storage::{
    DeadLetterStatus, NewDeadLetter, OutboxState, Page, ReplicaBatch, SeaStorage, TopicOffset,
};
use offline_sync::transport::{FetchLimit, Record, Transport, partition_for};
use serde_json::json;
use support::{Fleet, Setup, create_doc, ct, edit, fields, open_conflicts, read, remove, synced_doc};

const MASTER_UPDATES: &str = "master-updates";

/// A replica with settings of the test's own on a SQLite file in `dir`, on the fleet's
/// in-memory broker.
async fn own_replica(f: &Fleet, dir: &tempfile::TempDir, cfg: ReplicaConfig) -> Replica {
    let storage = SeaStorage::connect(&SeaStorage::sqlite_url(&dir.path().join("ship.db")))
        .await
        .unwrap();
    Replica::new(cfg, Arc::new(storage), Arc::new(f.memory().unwrap().clone()))
}

/// Has `ship` keep the master's first record on `master-updates` as the dead letters
/// `letters` makes of it (a key and a payload each), as a build that refused that record
/// would, and read on past it.
async fn refuse_first_record(
    f: &Fleet,
    ship: &Replica,
    letters: impl FnOnce(&Record) -> Vec<(Option<Vec<u8>>, Vec<u8>)>,
) {
    let fetched = f
        .broker
        .fetch(MASTER_UPDATES, 0, 0, FetchLimit::new(10, Duration::ZERO))
        .await
        .unwrap();
    let first = &fetched.records[0];
    let letters = letters(&first.record)
        .into_iter()
        .map(|(key, payload)| NewDeadLetter {
            topic: MASTER_UPDATES.into(),
            partition: 0,
            offset: first.offset,
            key,
            payload,
            reason: "malformed: refused by an older build".into(),
        })
        .collect();
    let refused = ReplicaBatch::read(
        vec![],
        letters,
        TopicOffset::new(MASTER_UPDATES, 0, first.offset + 1),
    );
    ship.storage()
        .replica_apply(ship.ship(), &refused, 1)
        .await
        .unwrap();
}

/// Finding 1: a commit a replica dead-lettered (here: refused by an older build) is applied
/// when its dead letter is retried, and the commits after it wait for it instead of being
/// applied over the gap.
async fn a_dead_lettered_commit_is_applied_by_its_retry_and_never_skipped(db: Setup) {
    let f = Fleet::new(1, db, "dead_lettered_commit").await;
    let a = create_doc(&f.master, json!({"n": 1})).await;
    let b = create_doc(&f.master, json!({"n": 2})).await;
    f.master.publish_all().await.unwrap();
    let ship = &f.ships[0];
    refuse_first_record(&f, ship, |r| vec![(r.key.clone(), r.value.clone())]).await;
    f.sync().await;
    assert!(
        read(ship, b.id).await.is_none(),
        "commit 2 was applied over the missing commit 1"
    );
    let stalled = ship.status().await.unwrap().resync_required;
    assert!(
        stalled
            .as_deref()
            .is_some_and(|r| r.contains("commit 1 is missing")),
        "the status says why applying stopped: {stalled:?}"
    );
    let (letters, _) = ship.dead_letters(None, Page::all()).await.unwrap();
    assert_eq!(letters.len(), 1);
    ship.retry_dead_letter(letters[0].id).await.unwrap();
    f.sync().await;
    assert_eq!(
        read(ship, a.id).await.map(|d| d.fields),
        Some(fields(json!({"n": 1})))
    );
    assert!(read(ship, b.id).await.is_some());
    assert_eq!(ship.status().await.unwrap().resync_required, None);
    f.assert_converged().await;
}

/// Finding 1: a commit whose CSN skips one (signed with the master's own key, as a record
/// lost on the way would leave it) is never applied, and the replica says so.
async fn a_commit_out_of_sequence_stops_applying(db: Setup) {
    let f = Fleet::new(1, db, "out_of_sequence").await;
    create_doc(&f.master, json!({"n": 1})).await;
    f.sync().await;
    let seed = f.master.storage().signing_seed([0; 32], 0).await.unwrap();
    let ahead = DocumentId::new_v7();
    let commit = Message::Commit(Commit {
        csn: 3,
        origin: Origin::Master,
        seq: None,
        ct: ct(),
        id: ahead,
        op: CommitOp::Put,
        fields: fields(json!({"n": 3})),
        hlc: Hlc::default(),
        resolves: None,
        conflict: None,
    });
    let record = SigningKey::from_seed(seed).seal("master", &encode(&commit));
    f.broker
        .publish(MASTER_UPDATES, None, vec![record])
        .await
        .unwrap();
    f.sync().await;
    let ship = &f.ships[0];
    assert!(
        read(ship, ahead).await.is_none(),
        "commit 3 applied over the missing commit 2"
    );
    let status = ship.status().await.unwrap();
    assert_eq!(status.applied_csn, 1);
    assert!(
        status
            .resync_required
            .as_deref()
            .is_some_and(|r| r.contains("commit 2 is missing")),
        "{status:?}"
    );
}

fn master_wins() -> offline_sync::engine::MasterConfig {
    let mut cfg = support::master_config();
    cfg.policies.default = Policy::MasterWins;
    cfg
}

/// Finding 5: a ship that kept its own pending value of a field when the master's commit of
/// that field arrived has not seen the master's value: its next write of the field is still
/// contested, and under `master-wins` the master's value stands.
async fn master_wins_holds_against_a_field_the_ship_never_incorporated(db: Setup) {
    let f = Fleet::with_config(1, db, "unseen_field", master_wins()).await;
    let doc = synced_doc(&f, json!({"x": "m0"})).await;
    let ship = &f.ships[0];
    edit(ship, doc.id, json!({"x": "s1"})).await;
    edit(&f.master, doc.id, json!({"x": "m1"})).await;
    f.master.publish_all().await.unwrap();
    ship.pull_all().await.unwrap();
    assert_eq!(read(ship, doc.id).await.unwrap().fields["x"], json!("s1"));
    edit(ship, doc.id, json!({"x": "s2"})).await;
    f.sync().await;
    assert_eq!(
        read(&f.master, doc.id).await.unwrap().fields["x"],
        json!("m1"),
        "the ship's second write overwrote a master value it never saw"
    );
    f.assert_converged().await;
}

/// Finding 5, delete variant: a ship that kept the document alive for its pending change when
/// the master deleted it has not seen the delete: its next write does not undo it.
async fn master_wins_holds_against_a_delete_the_ship_never_incorporated(db: Setup) {
    let f = Fleet::with_config(1, db, "unseen_delete", master_wins()).await;
    let doc = synced_doc(&f, json!({"x": "m0"})).await;
    let ship = &f.ships[0];
    edit(ship, doc.id, json!({"y": "s1"})).await;
    remove(&f.master, doc.id).await;
    f.master.publish_all().await.unwrap();
    ship.pull_all().await.unwrap();
    assert!(read(ship, doc.id).await.is_some());
    edit(ship, doc.id, json!({"z": "s2"})).await;
    f.assert_stays_deleted(doc.id, "the ship's second write undid the master's delete")
        .await;
}

/// Finding 8: one busy ship does not starve the ships whose changes are on another partition
/// of `ship-updates`: one pull of the master takes a share of every partition.
async fn a_busy_ship_does_not_starve_the_other_partitions(db: Setup) {
    let f = Fleet::new(4, db, "fair_pull").await;
    let partitions = f.master_cfg.ship_partitions;
    assert_eq!(partitions, 2);
    let on = |p: u32| {
        f.ships
            .iter()
            .position(|s| partition_for(Some(s.ship().as_str().as_bytes()), partitions) == p)
            .expect("a ship on every partition")
    };
    // The master creates `ship-updates` with its partitions before any ship does.
    f.master.pull_all().await.unwrap();
    let (busy, quiet) = (&f.ships[on(0)], &f.ships[on(1)]);
    let batch = f.master_cfg.batch_size;
    for i in 0..batch * 2 {
        create_doc(busy, json!({"n": i})).await;
    }
    let waiting = create_doc(quiet, json!({"quiet": true})).await;
    busy.push_all().await.unwrap();
    quiet.push_all().await.unwrap();
    assert_eq!(
        f.master.pull_once().await.unwrap(),
        batch,
        "what the quiet partition leaves of its share goes to the busy one"
    );
    assert!(
        read(&f.master, waiting.id).await.is_some(),
        "the quiet ship's change waited behind the busy ship's backlog"
    );
    f.sync().await;
    f.assert_converged().await;
}

/// Finding 2: a write that would make a document larger than one commit can carry is
/// refused (413 over HTTP), on the master and on a ship; when two ships' fields only add up
/// to too much on the master, the second change is refused and its ship converges.
async fn a_document_never_outgrows_one_commit(db: Setup) {
    let f = Fleet::new(2, db, "too_large").await;
    let big = "x".repeat(600 * 1024);
    let doc = create_doc(&f.master, json!({"a": big})).await;
    let refused = f.master.update(&ct(), doc.id, fields(json!({"b": big}))).await;
    assert!(matches!(refused, Err(Error::TooLarge { .. })), "{refused:?}");
    f.sync().await;
    let refused = f.ships[0].update(&ct(), doc.id, fields(json!({"b": big}))).await;
    assert!(matches!(refused, Err(Error::TooLarge { .. })), "{refused:?}");

    let small = synced_doc(&f, json!({"t": 1})).await;
    edit(&f.ships[0], small.id, json!({"a": big})).await;
    f.ships[0].push_all().await.unwrap();
    f.master.pull_all().await.unwrap();
    edit(&f.ships[1], small.id, json!({"b": big})).await;
    f.sync().await;
    let on_master = read(&f.master, small.id).await.unwrap();
    assert!(on_master.fields.contains_key("a") && !on_master.fields.contains_key("b"));
    let (rows, _) = f.ships[1]
        .queue(Some(OutboxState::Rejected), Page::all())
        .await
        .unwrap();
    assert!(
        rows[0].outcome.as_deref().is_some_and(|o| o.contains("limit")),
        "{:?}",
        rows[0].outcome
    );
    for s in &f.ships {
        assert_eq!(s.dead_letter_counts().await.unwrap().pending, 0);
    }
    f.assert_converged().await;
}

/// Finding 2: a broker that takes less per batch than a node sends refuses the batch as too
/// large; that is not an outage: the master and the ships send smaller batches and every
/// record gets through in order.
async fn a_broker_refusing_a_batch_as_too_large_is_not_an_outage(db: Setup) {
    let f = Fleet::new(1, db, "broker_limit").await;
    f.memory().unwrap().set_max_batch_bytes(Some(300 * 1024));
    let big = "y".repeat(200 * 1024);
    for i in 0..3 {
        create_doc(&f.master, json!({"i": i, "big": big})).await;
    }
    assert_eq!(f.master.publish_all().await.unwrap(), 3);
    assert!(f.master.is_online(), "a refused batch took the link down");
    f.sync().await;
    for i in 0..3 {
        create_doc(&f.ships[0], json!({"ship": i, "big": big})).await;
    }
    assert_eq!(f.ships[0].push_all().await.unwrap(), 3);
    assert!(
        f.ships[0].is_online(),
        "a refused batch took the ship's link down"
    );
    f.sync().await;
    f.assert_converged().await;
}

/// Finding 4: a change the master refuses (here: a content type it does not sync) leaves the
/// ship with the master's state of the document — a refused create is removed — and the
/// refusal is visible on the ship with its reason.
async fn a_refused_change_leaves_the_ship_with_the_masters_state(db: Setup) {
    let mut cfg = support::master_config();
    cfg.content_types = Some([ct()].into());
    let f = Fleet::with_config(1, db, "refused_create", cfg).await;
    let logs = ContentType::new("api::log.log").unwrap();
    let ship = &f.ships[0];
    let doc = ship.create(&logs, fields(json!({"line": 1}))).await.unwrap();
    f.sync().await;
    assert!(
        ship.get(&logs, doc.id).await.unwrap().is_none(),
        "a create the master refused stayed on the ship alone"
    );
    let (rows, _) = ship
        .queue(Some(OutboxState::Rejected), Page::all())
        .await
        .unwrap();
    assert!(
        rows[0]
            .outcome
            .as_deref()
            .is_some_and(|o| o.contains("not synced")),
        "{:?}",
        rows[0].outcome
    );
    let onshore = f.master.ships().await.unwrap();
    assert_eq!(
        onshore[0].record.changes_refused, 1,
        "the refusal is visible onshore too"
    );
    assert!(
        onshore[0]
            .record
            .last_refusal
            .as_deref()
            .is_some_and(|r| r.starts_with("seq 1: ") && r.contains("not synced")),
        "{:?}",
        onshore[0].record.last_refusal
    );
    f.assert_converged().await;
}

/// Finding 6: a ship that updated, then deleted, a document the master deleted meanwhile
/// leaves no conflict to resolve: no resolution can bring the document back.
async fn a_delete_inside_an_open_conflict_leaves_nothing_to_resurrect(db: Setup) {
    let f = Fleet::new(2, db, "delete_in_conflict").await;
    let doc = synced_doc(&f, json!({"x": 0})).await;
    f.with_ship_offline(0, async || {
        edit(&f.ships[0], doc.id, json!({"x": 1})).await;
        remove(&f.ships[0], doc.id).await;
        remove(&f.master, doc.id).await;
    })
    .await;
    for c in open_conflicts(&f.master).await {
        f.master.resolve(c.id, &Strategy::KeepShip).await.unwrap();
    }
    f.assert_stays_deleted(doc.id, "a document both sides deleted came back")
        .await;
}

/// Finding 6: the master deleting a document with an open update-update conflict turns it
/// into an update-delete conflict, so an operator sees what keep-ship would undo.
async fn a_master_delete_updates_the_open_conflict(db: Setup) {
    let f = Fleet::new(1, db, "master_delete_in_conflict").await;
    let doc = synced_doc(&f, json!({"x": 0})).await;
    f.with_ship_offline(0, async || {
        edit(&f.ships[0], doc.id, json!({"x": "ship"})).await;
        edit(&f.master, doc.id, json!({"x": "master"})).await;
    })
    .await;
    remove(&f.master, doc.id).await;
    f.sync().await;
    let open = open_conflicts(&f.master).await;
    assert_eq!(open.len(), 1);
    assert!(open[0].draft.master_deleted, "{:?}", open[0].draft);
    assert_eq!(open[0].draft.kind, ConflictKind::UpdateDelete);
    f.master.resolve(open[0].id, &Strategy::KeepMaster).await.unwrap();
    f.assert_stays_deleted(doc.id, "keep-master brought the deleted document back")
        .await;
}

/// Finding 6: another ship's update folded into a delete-update conflict makes the ship side
/// that update, not the first ship's delete.
async fn a_change_folded_into_a_conflict_speaks_for_its_own_ship(db: Setup) {
    let f = Fleet::new(2, db, "fold_conflict").await;
    let doc = synced_doc(&f, json!({"x": 0})).await;
    f.links[0].set_offline(true);
    f.links[1].set_offline(true);
    remove(&f.ships[0], doc.id).await;
    edit(&f.ships[1], doc.id, json!({"x": "ship-1"})).await;
    edit(&f.master, doc.id, json!({"x": "master"})).await;
    f.sync().await;
    f.links[0].set_offline(false);
    f.sync().await;
    f.links[1].set_offline(false);
    f.sync().await;
    let open = open_conflicts(&f.master).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].draft.ship.as_str(), "ship-1");
    assert!(!open[0].draft.ship_deleted, "{:?}", open[0].draft);
    f.master.resolve(open[0].id, &Strategy::KeepShip).await.unwrap();
    f.sync().await;
    assert_eq!(
        read(&f.master, doc.id).await.map(|d| d.fields),
        Some(fields(json!({"x": "ship-1"})))
    );
    f.assert_converged().await;
}

/// Runs one SQL statement on a SQLite file with Python's sqlite3, as another program (or a
/// damaged disk) would change it behind the node.
fn sqlite_exec(path: &std::path::Path, sql: &str) {
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
        ])
        .arg(path)
        .arg(sql)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "{sql}");
}

/// Finding 3: a ship change the master cannot read (here: an outbox row another build wrote
/// with a reserved field name) is answered as refused by its ship and seq; the ship's later
/// changes go through, nothing is sent in a loop, and the ship converges.
async fn a_poison_ship_change_is_refused_and_its_ship_goes_on(db: Setup) {
    let f = Fleet::new(1, db, "poison_change").await;
    let ship = &f.ships[0];
    let poisoned = create_doc(ship, json!({"n": 1})).await;
    sqlite_exec(
        &f.ship_db_path(0),
        r#"UPDATE outbox SET fields = '{"documentId": 1}' WHERE seq = 1"#,
    );
    let next = create_doc(ship, json!({"n": 2})).await;
    f.sync().await;
    assert!(
        read(&f.master, next.id).await.is_some(),
        "the next change waits behind the poison"
    );
    let (rows, _) = ship
        .queue(Some(OutboxState::Rejected), Page::all())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].change.seq, 1);
    assert!(read(ship, poisoned.id).await.is_none());
    let letters = f.master.dead_letter_counts().await.unwrap();
    assert_eq!(letters.pending, 1, "the poison is kept once, not once per resend");
    f.assert_converged().await;
}

/// Finding 11: while the master is silent a ship does not send its backlog again however long
/// it waits; changes lost on the way are asked for again by the master, in answer to the
/// ship's heartbeat, from the first one missing.
async fn a_master_outage_does_not_make_ships_resend_their_backlog(db: Setup) {
    let f = Fleet::new(0, db, "outage_resend").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::replica_config(9);
    cfg.ack_timeout = Duration::ZERO;
    cfg.ship_partitions = f.master_cfg.ship_partitions;
    let broker = f.memory().unwrap().clone();
    let ship = own_replica(&f, &dir, cfg).await;
    let mut ids = vec![];
    for n in 0..3 {
        ids.push(create_doc(&ship, json!({"n": n})).await.id);
    }
    assert_eq!(ship.push_all().await.unwrap(), 3);
    assert_eq!(
        ship.resend_stale().await.unwrap(),
        0,
        "the master was never heard from: nothing to send again"
    );
    assert_eq!(ship.push_all().await.unwrap(), 0);

    // The records are lost before the master reads them (retention, a broker's disk).
    let partition = partition_for(Some(b"ship-9"), f.master_cfg.ship_partitions);
    let held = broker
        .fetch("ship-updates", partition, 0, FetchLimit::new(100, Duration::ZERO))
        .await
        .unwrap();
    broker
        .truncate("ship-updates", partition, held.high_watermark)
        .unwrap();
    f.master.pull_all().await.unwrap();
    ship.heartbeat().await.unwrap();
    f.master.pull_all().await.unwrap();
    ship.pull_all().await.unwrap();
    assert_eq!(
        ship.push_all().await.unwrap(),
        3,
        "sent again from the first one missing"
    );
    f.master.pull_all().await.unwrap();
    ship.pull_all().await.unwrap();
    for id in ids {
        assert!(read(&f.master, id).await.is_some());
    }
    let status = ship.status().await.unwrap();
    assert_eq!((status.pending, status.in_flight), (0, 0));
}

/// Finding 1: a commit of a content type a ship does not sync still takes its CSN there: the
/// ship passes it in order instead of stopping at the gap it would leave.
async fn a_commit_of_a_type_the_ship_does_not_sync_takes_its_csn(db: Setup) {
    let f = Fleet::new(0, db, "unsynced_commit").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::replica_config(7);
    cfg.content_types = Some([ct()].into());
    let ship = own_replica(&f, &dir, cfg).await;
    let logs = ContentType::new("api::log.log").unwrap();
    f.master.create(&logs, fields(json!({"line": 1}))).await.unwrap();
    let article = create_doc(&f.master, json!({"n": 1})).await;
    f.master.publish_all().await.unwrap();
    ship.pull_all().await.unwrap();
    assert!(read(&ship, article.id).await.is_some());
    let status = ship.status().await.unwrap();
    assert_eq!((status.applied_csn, status.resync_required), (2, None));
    assert_eq!(ship.dead_letter_counts().await.unwrap().pending, 0);
}

/// Finding 10: dead letters are retried by themselves with capped exponential backoff: a
/// commit an older build refused is applied by its automatic retry (and the ship reads on past
/// the gap it left), a record that still fails is retried `SYNC_RETRY_ATTEMPTS` times, then
/// waits for an operator as exhausted.
async fn dead_letters_are_retried_by_themselves_until_resolved_or_exhausted(db: Setup) {
    let f = Fleet::new(0, db, "auto_retry").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::replica_config(5);
    cfg.retry.initial = Duration::from_millis(1);
    cfg.retry.max = Duration::from_millis(4);
    cfg.dead_letter_attempts = 2;
    let ship = own_replica(&f, &dir, cfg).await;
    let a = create_doc(&f.master, json!({"n": 1})).await;
    let b = create_doc(&f.master, json!({"n": 2})).await;
    f.master.publish_all().await.unwrap();
    refuse_first_record(&f, &ship, |r| {
        vec![(None, r.value.clone()), (None, b"\x00garbage".to_vec())]
    })
    .await;
    assert!(ship.pull_all().await.is_err(), "stopped at the gap");

    let mut settled = false;
    for _ in 0..200 {
        ship.retry_due_dead_letters().await.unwrap();
        let counts = ship.dead_letter_counts().await.unwrap();
        if counts.resolved == 1 && counts.exhausted == 1 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (letters, _) = ship.dead_letters(None, Page::all()).await.unwrap();
    assert!(settled, "{letters:?}");
    let garbage = letters
        .iter()
        .find(|l| l.letter.payload.starts_with(b"\x00"))
        .unwrap();
    assert_eq!(
        (garbage.status, garbage.attempts),
        (DeadLetterStatus::Exhausted, 2)
    );
    ship.pull_all().await.unwrap();
    for doc in [a, b] {
        assert!(read(&ship, doc.id).await.is_some());
    }
    assert_eq!(ship.status().await.unwrap().resync_required, None);
}

on_both_masters!(
    a_dead_lettered_commit_is_applied_by_its_retry_and_never_skipped,
    a_commit_out_of_sequence_stops_applying,
    a_commit_of_a_type_the_ship_does_not_sync_takes_its_csn,
    master_wins_holds_against_a_field_the_ship_never_incorporated,
    master_wins_holds_against_a_delete_the_ship_never_incorporated,
    a_busy_ship_does_not_starve_the_other_partitions,
    a_document_never_outgrows_one_commit,
    a_broker_refusing_a_batch_as_too_large_is_not_an_outage,
    a_refused_change_leaves_the_ship_with_the_masters_state,
    a_delete_inside_an_open_conflict_leaves_nothing_to_resurrect,
    a_master_delete_updates_the_open_conflict,
    a_change_folded_into_a_conflict_speaks_for_its_own_ship,
    a_poison_ship_change_is_refused_and_its_ship_goes_on,
    a_master_outage_does_not_make_ships_resend_their_backlog,
    dead_letters_are_retried_by_themselves_until_resolved_or_exhausted,
);
