//! Deterministic randomized simulation of the convergence invariant (DESIGN.md §4).
//!
//! One master and four replicas over the in-memory broker, each behind its own faulty link.
//! A seeded generator picks a conflict policy per content type (every policy, mixed), the
//! number of `ship-updates` partitions (1 to 3), and interleaves local writes on every node
//! (creates, updates of random field subsets, deletes — also of a content type the master
//! does not sync, which it refuses), pushes, pulls, disconnects, lost acknowledgements,
//! duplicated publishes, ship records the broker loses after acknowledging them, replays,
//! malformed and oversize records on both topics, restarts
//! from the database, storage that fails at a random write or whose process dies before or
//! after it (the node is then opened again from its database) and conflict resolutions with
//! every strategy; stepped seeds also get retention (the head of `master-updates` removed up
//! to a random offset, its commits kept aside for the history check), a ship that joins late
//! (half the seeds), and a ship's database put back from a file copy made earlier (its
//! changes delivered first, as losing undelivered writes is the operator's choice). Every
//! ship resyncs from the master's state when it needs to. At quiescence every
//! replica must equal the master, no outbox row may be left unanswered, no replica document
//! may keep a mark, no conflict may stay open, every dead letter must be one the generator
//! injected, and every accepted write must be in the final state or provably overwritten by a
//! later commit, dropped by its content type's policy, refused, or decided by a recorded
//! conflict resolution, per the master's commit log; a deleted document may only come back
//! through a later commit that puts it whole (a create, a revival or a resolution).
//!
//! `OFFLINE_SYNC_SIM_SEEDS=N` runs seeds `0..N` (default 200), split over four shards;
//! `OFFLINE_SYNC_SIM_SEED=S` replays seed S alone. Every fourth seed (0–3, 16–19, …, spread
//! over the shards) runs on a PostgreSQL master, the others on a SQLite master.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use offline_sync::engine::{Clock, Running, SystemClock, TokioClock};
use offline_sync::model::{
    Commit, CommitOp, ConflictStatus, ContentType, Csn, DocumentId, Fields, Hlc, MAX_ENVELOPE_BYTES, Message,
    Origin, Policies, Policy, Strategy, decode, unseal,
};
use offline_sync::storage::testing::Fault;
use offline_sync::storage::{ANSWERED_BEFORE_RESYNC, OutboxState, Page};
use offline_sync::transport::FetchLimit;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use support::{Broker, Fleet, MasterDb, Setup, open_conflicts};

const SHIPS: usize = 4;
const STEPS: usize = 150;
const FIELDS: [&str; 4] = ["a", "b", "c", "d"];
/// Content types: the first two are synced by the master, the last one is not.
const TYPES: [&str; 3] = ["api::article.article", "api::note.note", "api::log.log"];
const REFUSED: usize = 2;
const POLICIES: [Policy; 4] = [
    Policy::Manual,
    Policy::MasterWins,
    Policy::ShipWins,
    Policy::LastWriterWins,
];

fn content_type(t: usize) -> ContentType {
    ContentType::new(TYPES[t]).unwrap()
}

/// What a write accepted by some node asked for.
#[derive(Debug, Clone)]
enum Wrote {
    Fields(Fields),
    Delete,
}

/// An accepted write and where to find its commit.
#[derive(Debug, Clone)]
struct Accepted {
    /// Index in [`TYPES`].
    ty: usize,
    doc: DocumentId,
    what: Wrote,
    at: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// A ship write: the ship's index and the hybrid logical time of its change (its seq
    /// changes when a restored ship renumbers it; its time does not).
    Ship(usize, Hlc),
    /// A master write committed at this CSN.
    Master(u64),
    /// A master delete: the master's first delete of the document above this CSN (one that
    /// also settles an open conflict whose ship side deleted it too included).
    MasterDelete(u64),
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
    policies: Policies,
    /// Documents by content type index.
    docs: Vec<(usize, DocumentId)>,
    history: Vec<Accepted>,
    /// Records the generator published that no node can read, per topic.
    garbage: BTreeMap<&'static str, u64>,
    /// The nodes' own background loops, when the simulation runs them.
    loops: Option<Loops>,
    /// Commits retention removed from `master-updates`, for the history check.
    truncated: Vec<Commit>,
    /// The ship that joins the fleet late, and the step it joins at (steps drive only).
    late: Option<(usize, usize)>,
    /// Steps taken.
    steps: usize,
    /// A file copy of a ship's database, to put back later (steps drive only).
    backup: Option<(usize, std::path::PathBuf)>,
    /// Changes of the refused content type the master received from a ship before its
    /// database was put back: their outbox rows (and the refusals on them) went with it.
    refused_before_restore: std::collections::BTreeSet<(usize, Hlc)>,
    backups: tempfile::TempDir,
}

/// The background loops of every node (ships by index, then the master), under paused tokio
/// time that moves only when the simulation ticks it (see [`Clockwork`], held meanwhile).
struct Loops {
    ships: Vec<Option<Running>>,
    master: Option<Running>,
}

/// Holds tokio's paused clock still: while a blocking task runs, a current-thread runtime
/// does not jump its paused clock to the next timer when it idles, so virtual time moves
/// only by [`tick`] — a loop's timeout never fires while the database is merely slow.
struct Clockwork(Option<std::sync::mpsc::Sender<()>>);

impl Clockwork {
    fn hold() -> Self {
        let (release, held) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = held.recv();
        });
        Clockwork(Some(release))
    }
}

impl Drop for Clockwork {
    fn drop(&mut self) {
        self.0.take();
    }
}

/// Virtual time per tick, and the real time each tick leaves the loops to work in.
const TICK: Duration = Duration::from_millis(100);
const TICK_REAL: Duration = Duration::from_millis(1);

/// Moves virtual time one [`TICK`], then lets the loops run for [`TICK_REAL`] of real time.
async fn tick() {
    tokio::time::advance(TICK).await;
    let _ = tokio::task::spawn_blocking(|| std::thread::sleep(TICK_REAL)).await;
}

/// Runs `fut` while virtual time keeps moving, so what it waits for (a loop that stops after
/// its sleep on a delayed link) gets there; fails after an hour of virtual time.
async fn ticking<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(fut);
    for _ in 0..36_000 {
        tokio::select! {
            biased;
            v = &mut fut => return v,
            () = tick() => {}
        }
    }
    panic!("still waiting after an hour of virtual time");
}

/// Stops a node's loops, ticking until they have.
async fn stop(running: Option<Running>) {
    if let Some(r) = running {
        ticking(r.shutdown()).await;
    }
}

impl Sim {
    async fn ship_write(&mut self, i: usize) {
        let ship = &self.fleet.ships[i];
        let before = ship.status().await.unwrap().last_seq;
        let roll = self.rng.random_range(0..20);
        // Mostly a document this ship holds: a write to one it has not received yet fails.
        let mut pick = None;
        for _ in 0..3 {
            if self.docs.is_empty() {
                break;
            }
            let (ty, id) = self.docs[self.rng.random_range(0..self.docs.len())];
            pick = Some((ty, id));
            if ship.get(&content_type(ty), id).await.unwrap().is_some() {
                break;
            }
        }
        let (ty, doc, what, result) = match (roll, pick) {
            (0..=3, _) | (_, None) => {
                // Now and then a document of the type the master does not sync.
                let ty = match roll {
                    0 => REFUSED,
                    1 => 1,
                    _ => 0,
                };
                let f = random_fields(&mut self.rng);
                let r = ship.create(&content_type(ty), f.clone()).await.map(|d| d.id);
                if let Ok(id) = r {
                    self.docs.push((ty, id));
                }
                (ty, r.as_ref().ok().copied(), Wrote::Fields(f), r.map(|_| ()))
            }
            (4..=5, Some((ty, id))) => (
                ty,
                Some(id),
                Wrote::Delete,
                ship.delete(&content_type(ty), id).await,
            ),
            (_, Some((ty, id))) => {
                // Written only over the state read, so what it changes is known exactly even
                // while the loops apply master commits.
                let f = random_fields(&mut self.rng);
                let current = ship.get(&content_type(ty), id).await.unwrap();
                let changed = diff(current.as_ref().map(|d| &d.fields), &f);
                let expected = current.map_or(0, |d| d.version);
                (
                    ty,
                    Some(id),
                    Wrote::Fields(changed),
                    ship.update_if(&content_type(ty), id, f, Some(expected))
                        .await
                        .map(|_| ()),
                )
            }
        };
        let after = ship.status().await.unwrap().last_seq;
        if let (Ok(()), Some(doc), true) = (result, doc, after > before) {
            let (rows, _) = ship.queue(None, Page { offset: 0, limit: 1 }).await.unwrap();
            self.history.push(Accepted {
                ty,
                doc,
                what,
                at: Source::Ship(i, rows[0].change.hlc),
            });
        }
    }

    async fn master_write(&mut self) {
        let m = &self.fleet.master;
        let roll = self.rng.random_range(0..10);
        let synced: Vec<(usize, DocumentId)> =
            self.docs.iter().copied().filter(|(t, _)| *t != REFUSED).collect();
        let pick = (!synced.is_empty()).then(|| synced[self.rng.random_range(0..synced.len())]);
        // The loops may commit ship changes meanwhile: a write's commit is the version it
        // returns when that moved past the version it was written over; a delete's is the
        // master's next delete of that document.
        let csn_before = m.storage().last_csn().await.unwrap();
        let committed = |r: &offline_sync::engine::Result<offline_sync::storage::StoredDoc>, over: Csn| {
            r.as_ref()
                .ok()
                .filter(|d| d.version > over)
                .map(|d| Source::Master(d.version))
        };
        let (ty, doc, what, at) = match (roll, pick) {
            (0, _) | (_, None) => {
                let ty = self.rng.random_range(0..REFUSED);
                let f = random_fields(&mut self.rng);
                let r = m.create(&content_type(ty), f.clone()).await;
                if let Ok(d) = &r {
                    self.docs.push((ty, d.id));
                }
                (
                    ty,
                    r.as_ref().ok().map(|d| d.id),
                    Wrote::Fields(f),
                    committed(&r, csn_before),
                )
            }
            (1, Some((ty, id))) => (
                ty,
                Some(id),
                Wrote::Delete,
                m.delete(&content_type(ty), id)
                    .await
                    .ok()
                    .map(|()| Source::MasterDelete(csn_before)),
            ),
            (_, Some((ty, id))) => {
                let f = random_fields(&mut self.rng);
                let current = m.get(&content_type(ty), id).await.unwrap();
                let changed = diff(current.as_ref().map(|d| &d.fields), &f);
                // Over the version read, or none (a document that arrives meanwhile is stale).
                let expected = current.map_or(0, |d| d.version);
                let r = m.update_if(&content_type(ty), id, f, Some(expected)).await;
                (ty, Some(id), Wrote::Fields(changed), committed(&r, expected))
            }
        };
        if let (Some(doc), Some(at)) = (doc, at) {
            self.history.push(Accepted { ty, doc, what, at });
        }
    }

    /// Publishes a record no node can read: bytes that are not an envelope, or an oversize
    /// one.
    async fn garbage(&mut self) {
        let topic = if self.rng.random_bool(0.5) {
            "ship-updates"
        } else {
            "master-updates"
        };
        let value = if self.rng.random_bool(0.5) {
            vec![b'{'; MAX_ENVELOPE_BYTES + 1]
        } else {
            b"\x00 not an envelope".to_vec()
        };
        let key = format!("ship-{}", self.rng.random_range(0..SHIPS));
        if self
            .fleet
            .broker
            .publish(topic, Some(key.as_bytes()), vec![value])
            .await
            .is_ok()
        {
            *self.garbage.entry(topic).or_default() += 1;
        }
    }

    async fn resolve_one(&mut self) {
        let open = open_conflicts(&self.fleet.master).await;
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
        // An injected storage fault may fail it; the conflict then stays open for a later try.
        if let Err(e) = self.fleet.master.resolve(c.id, &strategy).await {
            assert!(
                e.is_retryable(),
                "seed {}: resolving {} failed: {e}: {e:?}",
                self.seed,
                c.id
            );
        }
    }

    /// Arms a storage fault on a random node, at one of its next few writes.
    fn arm_storage_fault(&mut self) {
        let fault = [Fault::Fail, Fault::CrashBefore, Fault::CrashAfter][self.rng.random_range(0..3)];
        let after = self.rng.random_range(0..6);
        let node = self.rng.random_range(0..=SHIPS);
        match self.fleet.ship_faults.get(node) {
            Some(f) => f.arm(after, fault),
            None => self.fleet.master_faults.arm(after, fault),
        }
    }

    /// Opens every node whose process died (a storage crash) again from its database.
    async fn recover(&mut self) {
        for i in 0..SHIPS {
            if self.fleet.ship_faults[i].crashed() {
                self.restart_ship(i).await;
            }
        }
        if self.fleet.master_faults.crashed() {
            self.restart_master().await;
        }
    }

    /// Drops replica `i` (its loops stopped first) and opens it again from its database.
    async fn restart_ship(&mut self, i: usize) {
        if let Some(l) = &mut self.loops {
            stop(l.ships[i].take()).await;
        }
        self.fleet.restart_ship(i).await;
        if let Some(l) = &mut self.loops {
            l.ships[i] = Some(self.fleet.ships[i].start());
        }
    }

    /// Drops the master (its loops stopped first) and opens it again from its database.
    async fn restart_master(&mut self) {
        if let Some(l) = &mut self.loops {
            stop(l.master.take()).await;
        }
        self.fleet.restart_master().await;
        if let Some(l) = &mut self.loops {
            l.master = Some(self.fleet.master.start());
        }
    }

    /// Lets `d` of virtual time pass for the loops.
    async fn pass(&self, d: Duration) {
        for _ in 0..d.as_millis() / TICK.as_millis() {
            tick().await;
        }
    }

    async fn step(&mut self) {
        self.steps += 1;
        // The generator's own calls never wait on virtual time (no node holds its writer lock
        // across a transport call), so time stands still while they run.
        self.step_action().await;
        if self.loops.is_some() {
            let ms = self.rng.random_range(0..600);
            self.pass(Duration::from_millis(ms)).await;
        }
        self.recover().await;
    }

    /// A step the loops take themselves when they run (a push, a pull, a publish, a resend, a
    /// heartbeat); in its place, now and then a delay on a ship's link or its link going down
    /// or up.
    async fn loop_step(&mut self, i: usize, manual: impl std::future::Future<Output = ()>) {
        if self.loops.is_none() {
            manual.await;
            return;
        }
        match self.rng.random_range(0..10) {
            0..=1 => {
                let ms = self.rng.random_range(0..400);
                self.fleet.links[i].set_delay(Duration::from_millis(ms));
            }
            2 => {
                let link = &self.fleet.links[i];
                link.set_offline(!link.is_offline());
            }
            _ => {}
        }
    }

    /// [`Self::loop_step`] with `step` on `node` (a clone of a node of the fleet) as the step
    /// taken by hand; what it returns is dropped.
    async fn step_on<N, T>(&mut self, i: usize, node: N, step: impl AsyncFnOnce(&N) -> T) {
        self.loop_step(i, async move {
            let _ = step(&node).await;
        })
        .await;
    }

    async fn step_action(&mut self) {
        let mut i = self.rng.random_range(0..SHIPS);
        if let Some((late, join_at)) = self.late
            && i == late
            && self.steps < join_at
        {
            // Not in the fleet yet: its database stays empty until it joins.
            i = self.rng.random_range(0..late);
        }
        let steps_only = self.loops.is_none();
        match self.rng.random_range(0..110) {
            0..=29 => self.ship_write(i).await,
            30..=39 => self.master_write().await,
            40..=51 => {
                self.step_on(i, self.fleet.ships[i].clone(), async |n| n.push_once().await)
                    .await
            }
            52..=63 => {
                self.step_on(i, self.fleet.master.clone(), async |n| n.pull_once().await)
                    .await
            }
            64..=65 => {
                self.step_on(i, self.fleet.master.clone(), async |n| n.publish_once().await)
                    .await
            }
            66..=77 => {
                self.step_on(i, self.fleet.ships[i].clone(), async |n| n.pull_once().await)
                    .await
            }
            78..=81 => {
                let off = self.rng.random_bool(0.5);
                self.fleet.links[i].set_offline(off);
            }
            82 => self.fleet.links[i].lose_publish_acks(1),
            83 => self.fleet.links[i].drop_publishes(1),
            84..=85 => self.fleet.links[i].duplicate_publishes(1),
            86 => self.fleet.master_link.lose_publish_acks(1),
            87 => self.fleet.master_link.duplicate_publishes(1),
            88 => self.fleet.master_link.fail_next(1),
            89..=90 => {
                self.step_on(i, self.fleet.ships[i].clone(), async |n| {
                    n.resend_unacked(1).await
                })
                .await
            }
            91..=92 => self.restart_ship(i).await,
            93 => self.restart_master().await,
            94 => {
                self.step_on(i, self.fleet.ships[i].clone(), async |n| n.heartbeat().await)
                    .await
            }
            95 => self.garbage().await,
            96..=99 => self.resolve_one().await,
            100..=103 => self.arm_storage_fault(),
            104..=106 if steps_only && self.fleet.memory().is_some() => self.retention().await,
            107 if steps_only => self.backup(i).await,
            108 if steps_only => self.restore().await,
            _ => {}
        }
    }

    /// Retention removes the head of `master-updates` up to a random offset; its commits are
    /// kept aside for the history check.
    async fn retention(&mut self) {
        let range = self.fleet.broker.offsets("master-updates", 0).await.unwrap();
        if range.latest <= range.earliest {
            return;
        }
        let before = self.rng.random_range(range.earliest + 1..=range.latest);
        let gone = self
            .fleet
            .broker
            .fetch(
                "master-updates",
                0,
                range.earliest,
                FetchLimit::new(usize::try_from(before - range.earliest).unwrap(), Duration::ZERO),
            )
            .await
            .unwrap();
        for r in gone.records.iter().filter(|r| r.offset < before) {
            if let Ok(Ok(Message::Commit(c))) = unseal(&r.record.value).map(|sealed| decode(sealed.msg)) {
                self.truncated.push(c);
            }
        }
        self.fleet
            .memory()
            .unwrap()
            .truncate("master-updates", 0, before)
            .unwrap();
    }

    /// Copies ship `i`'s database files, as a backup made by copying files does. The ship's
    /// signing key is made first: a backup from before the ship had one would come back with a
    /// new key, which the master rightly refuses until an operator approves it.
    async fn backup(&mut self, i: usize) {
        if self.fleet.ships[i].key_admin().await.is_err() {
            return;
        }
        let path = self
            .backups
            .path()
            .join(format!("ship-{i}-at-step-{}.db", self.steps));
        self.fleet.backup_ship(i, &path);
        self.backup = Some((i, path));
    }

    /// Puts the last backup back under its ship. What the ship wrote since and had not
    /// delivered is lost with the rolled-back database (the operator's choice, not the
    /// engine's), so its changes are delivered to the master first, when the link allows.
    async fn restore(&mut self) {
        let Some((i, path)) = self.backup.take() else {
            return;
        };
        self.fleet.links[i].clear();
        self.fleet.ship_faults[i].disarm();
        self.recover().await;
        let ship = self.fleet.ships[i].clone();
        for _ in 0..5 {
            let _ = ship.resend_unacked(1).await;
            let _ = ship.push_all().await;
            let _ = self.fleet.master.pull_all().await;
        }
        let last_seq = ship.status().await.unwrap().last_seq;
        let master_last = self
            .fleet
            .master
            .storage()
            .ships()
            .await
            .unwrap()
            .iter()
            .find(|s| &s.ship == ship.ship())
            .map_or(0, |s| s.last_seq);
        let delivered = master_last >= last_seq;
        if delivered || last_seq == 0 {
            let (rows, _) = ship.queue(None, Page::all()).await.unwrap();
            for r in rows {
                if r.change.ct == content_type(REFUSED) && r.change.seq <= master_last {
                    self.refused_before_restore.insert((i, r.change.hlc));
                }
            }
            self.fleet.restore_ship(i, &path).await;
        }
    }

    async fn quiesce(&mut self) {
        for l in &self.fleet.links {
            l.clear();
        }
        self.fleet.master_link.clear();
        for f in self.fleet.ship_faults.iter().chain([&self.fleet.master_faults]) {
            f.disarm();
        }
        self.recover().await;
        if self.loops.is_some() {
            return self.quiesce_loops().await;
        }
        for round in 0.. {
            assert!(round < 50, "seed {}: no quiescence", self.seed);
            for s in &self.fleet.ships {
                s.resend_unacked(1).await.unwrap();
            }
            self.fleet.sync().await;
            let open = open_conflicts(&self.fleet.master).await;
            if open.is_empty() {
                break;
            }
            for _ in 0..open.len() {
                self.resolve_one().await;
            }
        }
    }

    /// Lets the loops run until every ship has the master's documents and nothing is left
    /// unanswered or unpublished (resolving the conflicts that come up), within 20 minutes of
    /// virtual time; then stops them.
    async fn quiesce_loops(&mut self) {
        let mut settled = false;
        for _ in 0..1_200 {
            self.pass(Duration::from_secs(1)).await;
            if self.converged().await {
                settled = true;
                break;
            }
            let open = open_conflicts(&self.fleet.master).await;
            for _ in 0..open.len() {
                self.resolve_one().await;
            }
        }
        assert!(settled, "seed {}: the loops did not quiesce", self.seed);
        if let Some(l) = self.loops.take() {
            for r in l.ships {
                stop(r).await;
            }
            stop(l.master).await;
        }
    }

    /// Whether every ship holds the master's documents with nothing unanswered, nothing is
    /// unpublished, and no conflict is open.
    async fn converged(&self) -> bool {
        let m = &self.fleet.master;
        if !m.storage().unpublished(1).await.unwrap().is_empty()
            || m.count_conflicts(Some(ConflictStatus::Open)).await.unwrap() > 0
        {
            return false;
        }
        let want = self.fleet.master_docs().await;
        for (i, s) in self.fleet.ships.iter().enumerate() {
            let st = s.status().await.unwrap();
            if st.pending + st.in_flight > 0 || self.fleet.ship_docs(i).await != want {
                return false;
            }
        }
        true
    }

    /// No replica document keeps a mark, no conflict is open, and every dead letter is a
    /// record the generator made unreadable on purpose (each read once by each reader).
    async fn check_leftovers(&self) {
        let seed = self.seed;
        for (i, s) in self.fleet.ships.iter().enumerate() {
            for (ty, id) in &self.docs {
                if let Some(d) = s.storage().replica_doc(&content_type(*ty), *id).await.unwrap() {
                    assert!(
                        d.marks.is_empty() && d.delete_mark.is_none(),
                        "seed {seed}: ship-{i} keeps marks on {id}: {:?} {:?}",
                        d.marks,
                        d.delete_mark
                    );
                }
            }
            let letters = s.dead_letter_counts().await.unwrap();
            let made = self.garbage.get("master-updates").copied().unwrap_or(0);
            // A resync takes the ship past what it covers, unreadable records included.
            let skipped = s
                .status()
                .await
                .unwrap()
                .resync
                .is_some_and(|p| p.state.at.is_some_and(|at| at.next_offset > 0));
            if self.truncated.is_empty() && !skipped {
                assert_eq!(
                    letters.open(),
                    made,
                    "seed {seed}: ship-{i}'s dead letters are not the records made unreadable"
                );
            } else {
                // Retention may remove one before a ship reads it, and a resync skips what
                // it covers.
                assert!(
                    letters.open() <= made,
                    "seed {seed}: ship-{i} has more dead letters than records made unreadable"
                );
            }
        }
        let open = open_conflicts(&self.fleet.master).await;
        assert!(open.is_empty(), "seed {seed}: open conflicts left: {open:?}");
        let letters = self.fleet.master.dead_letter_counts().await.unwrap();
        assert_eq!(
            letters.open(),
            self.garbage.get("ship-updates").copied().unwrap_or(0),
            "seed {seed}: the master's dead letters are not the records made unreadable"
        );
    }

    /// The master's commit log, from the broker and what retention removed from it.
    async fn commits(&self) -> Vec<Commit> {
        let earliest = self
            .fleet
            .broker
            .offsets("master-updates", 0)
            .await
            .unwrap()
            .earliest;
        let all = self
            .fleet
            .broker
            .fetch(
                "master-updates",
                0,
                earliest,
                FetchLimit::new(1_000_000, Duration::ZERO),
            )
            .await
            .unwrap();
        let mut by_csn: BTreeMap<Csn, Commit> = self.truncated.iter().map(|c| (c.csn, c.clone())).collect();
        for r in all.records {
            let msg = unseal(&r.record.value).map(|sealed| decode(sealed.msg));
            if let Ok(Ok(Message::Commit(c))) = msg
                && let Some(other) = by_csn.insert(c.csn, c.clone())
            {
                assert_eq!(
                    other, c,
                    "seed {}: two different commits at csn {}",
                    self.seed, c.csn
                );
            }
        }
        by_csn.into_values().collect()
    }

    async fn check_history(&self) -> Result<(), String> {
        let commits = self.commits().await;
        let mut refused = BTreeMap::new();
        for (i, s) in self.fleet.ships.iter().enumerate() {
            let (rows, _) = s.queue(Some(OutboxState::Rejected), Page::all()).await.unwrap();
            for r in rows {
                refused.insert((i, r.change.hlc), r.outcome.unwrap_or_default());
            }
            // Answered while the answers were lost to retention: a resync took the master's
            // state instead, which has no document of a type the master refuses.
            let (rows, _) = s.queue(Some(OutboxState::Acked), Page::all()).await.unwrap();
            for r in rows {
                if r.outcome.as_deref() == Some(ANSWERED_BEFORE_RESYNC)
                    && r.change.ct == content_type(REFUSED)
                {
                    refused.insert((i, r.change.hlc), r.outcome.unwrap_or_default());
                }
            }
        }
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
                Source::Ship(i, hlc) => {
                    let ship = self.fleet.ships[i].ship().clone();
                    commits
                        .iter()
                        .find(|c| c.origin == Origin::Ship(ship.clone()) && c.hlc == hlc)
                }
                Source::Master(csn) => commits
                    .iter()
                    .find(|c| c.csn == csn && c.id == w.doc && c.origin == Origin::Master),
                Source::MasterDelete(after) => commits.iter().find(|c| {
                    c.csn > after && c.id == w.doc && c.origin == Origin::Master && c.op == CommitOp::Delete
                }),
            };
            let Some(commit) = commit else {
                if let Source::Ship(i, hlc) = w.at
                    && w.ty == REFUSED
                    && (refused.contains_key(&(i, hlc)) || self.refused_before_restore.contains(&(i, hlc)))
                {
                    // Refused by the master, as its content type is not synced; the reason
                    // stays on the ship's outbox row.
                    continue;
                }
                return Err(format!("accepted write never committed: {w:?}"));
            };
            let later = |field: Option<&str>| {
                commits
                    .iter()
                    .any(|c| c.csn > commit.csn && touches(c, w.doc, field))
            };
            let revived = commits
                .iter()
                .any(|c| c.csn > commit.csn && c.id == w.doc && c.op == CommitOp::Put);
            // A ship's contested value may be dropped by its content type's policy.
            let droppable = matches!(w.at, Source::Ship(..))
                && matches!(
                    self.policies.for_type(&content_type(w.ty)),
                    Policy::MasterWins | Policy::LastWriterWins
                );
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
                    if applied && final_docs.contains_key(&w.doc) && !revived {
                        return Err(format!(
                            "deleted document came back with no later create, revival or resolution: {w:?}"
                        ));
                    }
                    if !applied && commit.conflict.is_none() && !droppable {
                        return Err(format!("delete neither applied nor held: {w:?} -> {commit:?}"));
                    }
                }
                Wrote::Fields(fields) => {
                    for (f, v) in fields {
                        if held(f) {
                            continue;
                        }
                        if commit.fields.get(f) != Some(v) {
                            if droppable {
                                continue;
                            }
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

/// How the nodes' steps are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drive {
    /// One step at a time, by the generator.
    Steps,
    /// By each node's own background loops, under paused tokio time.
    Loops,
}

async fn run_seed(seed: u64, broker: Broker, steps: usize, drive: Drive) {
    eprintln!("simulation seed {seed} over {broker:?}, {drive:?} (replay with OFFLINE_SYNC_SIM_SEED={seed})");
    let started = std::time::Instant::now();
    // Every fourth seed on a PostgreSQL master, spread over the four shards.
    let db = if (drive == Drive::Steps && (seed / 4).is_multiple_of(4))
        || (drive == Drive::Loops && seed.is_multiple_of(2))
        || broker == Broker::Kafka
    {
        MasterDb::Postgres
    } else {
        MasterDb::Sqlite
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cfg = support::master_config();
    cfg.policies = Policies {
        default: POLICIES[rng.random_range(0..POLICIES.len())],
        per_type: [(content_type(1), POLICIES[rng.random_range(0..POLICIES.len())])].into(),
    };
    cfg.content_types = Some([content_type(0), content_type(1)].into());
    cfg.ship_partitions = rng.random_range(1..=3);
    eprintln!(
        "seed {seed}: policies {:?}, {} ship-updates partitions",
        cfg.policies, cfg.ship_partitions
    );
    let policies = cfg.policies.clone();
    // Held from before the nodes open their databases to the last check: under paused time,
    // a connection's timeout must not fire merely because the runtime idled while the
    // database answered.
    let _clockwork = (drive == Drive::Loops).then(Clockwork::hold);
    let mut fleet = Fleet::with_config(SHIPS, Setup { db, broker }, &format!("sim{seed}"), cfg).await;
    fleet.resync_from_master();
    let loops = match drive {
        Drive::Steps => None,
        Drive::Loops => {
            fleet
                .set_clock(Arc::new(TokioClock::new(SystemClock.now_ms())), |c| {
                    c.debounce = Duration::from_millis(300);
                    c.heartbeat_interval = Duration::from_secs(3);
                    c.ack_timeout = Duration::from_secs(15);
                })
                .await;
            Some(Loops {
                ships: fleet.ships.iter().map(|s| Some(s.start())).collect(),
                master: Some(fleet.master.start()),
            })
        }
    };
    let mut sim = Sim {
        seed,
        rng,
        fleet,
        policies,
        docs: vec![],
        history: vec![],
        garbage: BTreeMap::new(),
        loops,
        truncated: vec![],
        late: None,
        steps: 0,
        backup: None,
        refused_before_restore: Default::default(),
        backups: tempfile::tempdir().unwrap(),
    };
    if drive == Drive::Steps && sim.rng.random_bool(0.5) {
        let join_at = sim.rng.random_range(steps / 3..2 * steps / 3);
        sim.late = Some((SHIPS - 1, join_at));
    }
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
    sim.check_leftovers().await;
    let conflicts = sim.fleet.master.conflicts(None, Page::all()).await.unwrap().len();
    let csn = sim.fleet.master.storage().last_csn().await.unwrap();
    eprintln!(
        "seed {seed} on {db:?}: {} accepted writes, {csn} commits, {conflicts} conflicts resolved in {:.1?}",
        sim.history.len(),
        started.elapsed()
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

/// `OFFLINE_SYNC_SIM_SEED` alone, or as many seeds as the variable `count` says (`default`
/// without it) from `first` on.
fn counted_seeds(count: &str, default: u64, first: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("OFFLINE_SYNC_SIM_SEED") {
        return vec![s.parse().expect("OFFLINE_SYNC_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var(count)
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{count} is a number")))
        .unwrap_or(default);
    (first..first + n).collect()
}

async fn shard(shard: u64) {
    for seed in seeds(shard) {
        run_seed(seed, Broker::Memory, STEPS, Drive::Steps).await;
    }
}

/// The nodes' own background loops (debounce, ack timeout and resend, heartbeats, automatic
/// dead-letter retries, retry backoff) under paused tokio time, with delays on the ships'
/// links: `OFFLINE_SYNC_SIM_LOOP_SEEDS` seeds (default 16) from 5,000, or
/// `OFFLINE_SYNC_SIM_SEED` alone. The loops interleave with real database calls, so a seed
/// replays the generator's choices but not every interleaving.
#[tokio::test(start_paused = true)]
async fn simulation_background_loops() {
    for seed in counted_seeds("OFFLINE_SYNC_SIM_LOOP_SEEDS", 16, 5_000) {
        run_seed(seed, Broker::Memory, STEPS, Drive::Loops).await;
    }
}

/// A shortened run over a real broker: `OFFLINE_SYNC_SIM_KAFKA_SEEDS` seeds (default 3) of
/// 80 steps, each with its own tansu broker and a PostgreSQL master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_over_kafka() {
    for seed in counted_seeds("OFFLINE_SYNC_SIM_KAFKA_SEEDS", 3, 1_000) {
        run_seed(seed, Broker::Kafka, 80, Drive::Steps).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_shard_0() {
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
