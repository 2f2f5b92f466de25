//! Deterministic randomized simulation of the convergence invariant (DESIGN.md §4).
//!
//! One master and four replicas over the in-memory broker, each behind its own faulty link.
//! A seeded generator interleaves local writes on every node (creates, updates of random
//! field subsets, deletes), pushes, pulls, disconnects, lost acknowledgements, duplicated
//! publishes, replays, restarts from the database and conflict resolutions with every
//! strategy. At quiescence every replica must equal the master, no outbox row may be left
//! unanswered, and every accepted write must be in the final state or provably overwritten by
//! a later commit or a recorded conflict resolution, per the master's commit log.
//!
//! `OFFLINE_SYNC_SIM_SEEDS=N` runs seeds `0..N` (default 200), split over four shards;
//! `OFFLINE_SYNC_SIM_SEED=S` replays seed S alone. Every fourth seed runs on a PostgreSQL
//! master, the others on a SQLite master.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use offline_sync::model::{
    Commit, CommitOp, ConflictStatus, DocumentId, Fields, Message, Origin, Strategy, decode, unseal,
};
use offline_sync::storage::Page;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use support::{Broker, Fleet, MasterDb, Setup, ct};

const SHIPS: usize = 4;
const STEPS: usize = 150;
const FIELDS: [&str; 4] = ["a", "b", "c", "d"];

/// What a write accepted by some node asked for.
#[derive(Debug, Clone)]
enum Wrote {
    Fields(Fields),
    Delete,
}

/// An accepted write and where to find its commit.
#[derive(Debug, Clone)]
struct Accepted {
    doc: DocumentId,
    what: Wrote,
    /// `(ship index, seq)` for a ship write; the master's CSN for a master write.
    at: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Ship(usize, u64),
    Master(u64),
}

fn random_fields(rng: &mut StdRng) -> Fields {
    let mut f = Fields::new();
    let n = rng.random_range(1..=3);
    for _ in 0..n {
        let k = FIELDS[rng.random_range(0..FIELDS.len())];
        f.insert(k.to_owned(), json!(rng.random_range(0..5)));
    }
    f
}

fn diff(current: Option<&Fields>, new: &Fields) -> Fields {
    new.iter()
        .filter(|(k, v)| current.and_then(|c| c.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

struct Sim {
    seed: u64,
    rng: StdRng,
    fleet: Fleet,
    docs: Vec<DocumentId>,
    history: Vec<Accepted>,
}

impl Sim {
    async fn ship_write(&mut self, i: usize) {
        let ship = &self.fleet.ships[i];
        let before = ship.status().await.unwrap().last_seq;
        let roll = self.rng.random_range(0..10);
        let pick = (!self.docs.is_empty()).then(|| self.docs[self.rng.random_range(0..self.docs.len())]);
        let (doc, what, result) = match (roll, pick) {
            (0..=1, _) | (_, None) => {
                let f = random_fields(&mut self.rng);
                let r = ship.create(&ct(), f.clone()).await.map(|d| d.id);
                if let Ok(id) = r {
                    self.docs.push(id);
                }
                (r.as_ref().ok().copied(), Wrote::Fields(f), r.map(|_| ()))
            }
            (3, Some(id)) => (Some(id), Wrote::Delete, ship.delete(&ct(), id).await),
            (_, Some(id)) => {
                let f = random_fields(&mut self.rng);
                let current = ship.get(&ct(), id).await.unwrap().map(|d| d.fields);
                let changed = diff(current.as_ref(), &f);
                (
                    Some(id),
                    Wrote::Fields(changed),
                    ship.update(&ct(), id, f).await.map(|_| ()),
                )
            }
        };
        let after = ship.status().await.unwrap().last_seq;
        if let (Ok(()), Some(doc), true) = (result, doc, after > before) {
            self.history.push(Accepted {
                doc,
                what,
                at: Source::Ship(i, after),
            });
        }
    }

    async fn master_write(&mut self) {
        let m = &self.fleet.master;
        let roll = self.rng.random_range(0..10);
        let pick = (!self.docs.is_empty()).then(|| self.docs[self.rng.random_range(0..self.docs.len())]);
        let csn_before = m.storage().last_csn().await.unwrap();
        let (doc, what, ok) = match (roll, pick) {
            (0, _) | (_, None) => {
                let f = random_fields(&mut self.rng);
                let r = m.create(&ct(), f.clone()).await;
                if let Ok(d) = &r {
                    self.docs.push(d.id);
                }
                (r.as_ref().ok().map(|d| d.id), Wrote::Fields(f), r.is_ok())
            }
            (1, Some(id)) => (Some(id), Wrote::Delete, m.delete(&ct(), id).await.is_ok()),
            (_, Some(id)) => {
                let f = random_fields(&mut self.rng);
                let current = m.get(&ct(), id).await.unwrap().map(|d| d.fields);
                let changed = diff(current.as_ref(), &f);
                (
                    Some(id),
                    Wrote::Fields(changed),
                    m.update(&ct(), id, f).await.is_ok(),
                )
            }
        };
        let csn = m.storage().last_csn().await.unwrap();
        if let (true, Some(doc), true) = (ok, doc, csn > csn_before) {
            self.history.push(Accepted {
                doc,
                what,
                at: Source::Master(csn),
            });
        }
    }

    async fn resolve_one(&mut self) {
        let open = self
            .fleet
            .master
            .conflicts(Some(ConflictStatus::Open), Page::all())
            .await
            .unwrap();
        if open.is_empty() {
            return;
        }
        let c = &open[self.rng.random_range(0..open.len())];
        let strategy = match self.rng.random_range(0..3) {
            0 => Strategy::KeepShip,
            1 => Strategy::KeepMaster,
            _ => {
                let mut merge = Fields::new();
                let candidates: Vec<&String> = c
                    .draft
                    .ship_values
                    .keys()
                    .chain(c.draft.master_values.keys())
                    .collect();
                for k in candidates {
                    if self.rng.random_bool(0.7) {
                        merge.insert(k.clone(), json!(100 + self.rng.random_range(0..5)));
                    }
                }
                Strategy::Merge { merge_data: merge }
            }
        };
        self.fleet.master.resolve(c.id, &strategy).await.unwrap();
    }

    async fn step(&mut self) {
        let i = self.rng.random_range(0..SHIPS);
        match self.rng.random_range(0..100) {
            0..=29 => self.ship_write(i).await,
            30..=39 => self.master_write().await,
            40..=51 => {
                let _ = self.fleet.ships[i].push_once().await;
            }
            52..=63 => {
                let _ = self.fleet.master.pull_once().await;
            }
            64..=65 => {
                let _ = self.fleet.master.publish_once().await;
            }
            66..=77 => {
                let _ = self.fleet.ships[i].pull_once().await;
            }
            78..=81 => {
                let off = self.rng.random_bool(0.5);
                self.fleet.links[i].set_offline(off);
            }
            82..=83 => self.fleet.links[i].lose_publish_acks(1),
            84..=85 => self.fleet.links[i].duplicate_publishes(1),
            86 => self.fleet.master_link.lose_publish_acks(1),
            87 => self.fleet.master_link.duplicate_publishes(1),
            88 => self.fleet.master_link.fail_next(1),
            89..=90 => {
                let _ = self.fleet.ships[i].resend_unacked(1).await;
            }
            91..=92 => self.fleet.restart_ship(i).await,
            93 => self.fleet.restart_master().await,
            94 => {
                let _ = self.fleet.ships[i].heartbeat().await;
            }
            _ => self.resolve_one().await,
        }
    }

    async fn quiesce(&mut self) {
        for l in &self.fleet.links {
            l.clear();
        }
        self.fleet.master_link.clear();
        for round in 0.. {
            assert!(round < 50, "seed {}: no quiescence", self.seed);
            for s in &self.fleet.ships {
                s.resend_unacked(1).await.unwrap();
            }
            self.fleet.sync().await;
            let open = self
                .fleet
                .master
                .conflicts(Some(ConflictStatus::Open), Page::all())
                .await
                .unwrap();
            if open.is_empty() {
                break;
            }
            for _ in 0..open.len() {
                self.resolve_one().await;
            }
        }
    }

    /// The master's commit log, from the broker.
    async fn commits(&self) -> Vec<Commit> {
        let all = self
            .fleet
            .broker
            .fetch("master-updates", 0, 0, 1_000_000, Duration::ZERO)
            .await
            .unwrap();
        let mut by_csn = BTreeMap::new();
        for r in all.records {
            let msg = unseal(&r.record.value).map(|sealed| decode(sealed.msg));
            if let Ok(Ok(Message::Commit(c))) = msg {
                by_csn.insert(c.csn, c);
            }
        }
        by_csn.into_values().collect()
    }

    async fn check_history(&self) -> Result<(), String> {
        let commits = self.commits().await;
        let final_docs: BTreeMap<DocumentId, Fields> = self.fleet.master_docs().await.into_iter().collect();
        let touches = |c: &Commit, doc: DocumentId, field: Option<&str>| {
            c.id == doc
                && match (c.op, field) {
                    (CommitOp::Put | CommitOp::Delete, _) => true,
                    (CommitOp::Patch, Some(f)) => c.fields.contains_key(f),
                    (CommitOp::Patch, None) => !c.fields.is_empty(),
                }
        };
        let resolved = |id| commits.iter().any(|c| c.resolves == Some(id));
        let mut applied = BTreeMap::new();
        for c in &commits {
            if let (Origin::Ship(ship), Some(seq)) = (&c.origin, c.seq)
                && let Some(first) = applied.insert((ship.clone(), seq), c.csn)
            {
                return Err(format!(
                    "{ship} seq {seq} applied twice, at csn {first} and {}",
                    c.csn
                ));
            }
        }
        for w in &self.history {
            let commit = match w.at {
                Source::Ship(i, seq) => {
                    let ship = self.fleet.ships[i].ship().clone();
                    commits
                        .iter()
                        .find(|c| c.origin == Origin::Ship(ship.clone()) && c.seq == Some(seq))
                }
                Source::Master(csn) => commits.iter().find(|c| c.csn == csn),
            };
            let Some(commit) = commit else {
                return Err(format!("accepted write never committed: {w:?}"));
            };
            let later = |field: Option<&str>| {
                commits
                    .iter()
                    .any(|c| c.csn > commit.csn && touches(c, w.doc, field))
            };
            if let Some(cref) = &commit.conflict
                && !resolved(cref.id)
            {
                return Err(format!(
                    "write held in conflict {} never resolved: {w:?}",
                    cref.id
                ));
            }
            let held = |f: &str| {
                commit
                    .conflict
                    .as_ref()
                    .is_some_and(|c| c.whole || c.fields.iter().any(|h| h == f))
            };
            match &w.what {
                Wrote::Delete => {
                    let applied = commit.op == CommitOp::Delete;
                    if applied && final_docs.contains_key(&w.doc) && !later(None) {
                        return Err(format!("deleted document came back with no later commit: {w:?}"));
                    }
                    if !applied && commit.conflict.is_none() {
                        return Err(format!("delete neither applied nor held: {w:?} -> {commit:?}"));
                    }
                }
                Wrote::Fields(fields) => {
                    for (f, v) in fields {
                        if held(f) {
                            continue;
                        }
                        if commit.fields.get(f) != Some(v) {
                            return Err(format!("field {f} neither applied nor held: {w:?} -> {commit:?}"));
                        }
                        let now = final_docs.get(&w.doc).and_then(|d| d.get(f));
                        if now != Some(v) && !later(Some(f)) {
                            return Err(format!(
                                "field {f}={v} lost with no later commit: {w:?}, now {now:?}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

async fn run_seed(seed: u64, broker: Broker, steps: usize) {
    eprintln!("simulation seed {seed} over {broker:?} (replay with OFFLINE_SYNC_SIM_SEED={seed})");
    let db = if seed.is_multiple_of(4) || broker == Broker::Kafka {
        MasterDb::Postgres
    } else {
        MasterDb::Sqlite
    };
    let fleet = Fleet::new(SHIPS, Setup { db, broker }, &format!("sim{seed}")).await;
    let mut sim = Sim {
        seed,
        rng: StdRng::seed_from_u64(seed),
        fleet,
        docs: vec![],
        history: vec![],
    };
    for _ in 0..steps {
        sim.step().await;
    }
    sim.quiesce().await;
    let want = sim.fleet.master_docs().await;
    for i in 0..SHIPS {
        let got = sim.fleet.ship_docs(i).await;
        assert_eq!(got, want, "seed {seed}: ship-{i} differs from the master");
        let st = sim.fleet.ships[i].status().await.unwrap();
        assert_eq!(
            (st.pending, st.in_flight),
            (0, 0),
            "seed {seed}: ship-{i} has unanswered changes"
        );
    }
    if let Err(e) = sim.check_history().await {
        panic!("seed {seed}: {e}");
    }
    let conflicts = sim.fleet.master.conflicts(None, Page::all()).await.unwrap().len();
    let csn = sim.fleet.master.storage().last_csn().await.unwrap();
    eprintln!(
        "seed {seed}: {} accepted writes, {csn} commits, {conflicts} conflicts resolved",
        sim.history.len()
    );
}

fn seeds(shard: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("OFFLINE_SYNC_SIM_SEED") {
        let seed: u64 = s.parse().expect("OFFLINE_SYNC_SIM_SEED is a number");
        return if seed % 4 == shard { vec![seed] } else { vec![] };
    }
    let n: u64 = std::env::var("OFFLINE_SYNC_SIM_SEEDS")
        .map(|s| s.parse().expect("OFFLINE_SYNC_SIM_SEEDS is a number"))
        .unwrap_or(200);
    (0..n).filter(|s| s % 4 == shard).collect()
}

async fn shard(shard: u64) {
    for seed in seeds(shard) {
        run_seed(seed, Broker::Memory, STEPS).await;
    }
}

/// A shortened run over a real broker: `OFFLINE_SYNC_SIM_KAFKA_SEEDS` seeds (default 3) of
/// 80 steps, each with its own tansu broker and a PostgreSQL master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_over_kafka() {
    let n: u64 = std::env::var("OFFLINE_SYNC_SIM_KAFKA_SEEDS")
        .map(|s| s.parse().expect("OFFLINE_SYNC_SIM_KAFKA_SEEDS is a number"))
        .unwrap_or(3);
    let seeds: Vec<u64> = match std::env::var("OFFLINE_SYNC_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("OFFLINE_SYNC_SIM_SEED is a number")],
        Err(_) => (1_000..1_000 + n).collect(),
    };
    for seed in seeds {
        run_seed(seed, Broker::Kafka, 80).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_shard_0_postgres_master() {
    shard(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_shard_1() {
    shard(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_shard_2() {
    shard(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_shard_3() {
    shard(3).await;
}
