//! The protocol's convergence invariant on the pure functions alone: a master and three
//! replicas exchange changes through ordered, duplicating channels; at quiescence, with every
//! conflict resolved, every replica equals the master and no change is left unacknowledged.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};

use offline_sync_model::{
    Ack, AckOutcome, Change, Commit, Conflict, ConflictStatus, ContentType, DocumentId, Fields, Hlc,
    LocalWrite, MasterDoc, Message, Policy, ReplicaDoc, ShipId, Strategy, apply_commit, decide, local_write,
    master_write, resolve,
};
use proptest::prelude::{
    Just, ProptestConfig, TestCaseError, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
};
use proptest::strategy::Strategy as _;
use serde_json::json;

struct Master {
    docs: BTreeMap<DocumentId, MasterDoc>,
    conflicts: BTreeMap<u64, Conflict>,
    csn: u64,
    last_seq: BTreeMap<ShipId, u64>,
    log: Vec<Message>,
}

struct Replica {
    ship: ShipId,
    docs: BTreeMap<DocumentId, ReplicaDoc>,
    outbox: VecDeque<Change>,
    sent: usize,
    seq: u64,
    read: usize,
}

fn ct() -> ContentType {
    ContentType::new("api::doc.doc").unwrap()
}

impl Master {
    fn receive(&mut self, change: &Change, policy: Policy) {
        let last = self.last_seq.get(&change.ship).copied().unwrap_or(0);
        let ack = |outcome| {
            Message::Ack(Ack {
                ship: change.ship.clone(),
                seq: change.seq,
                outcome,
            })
        };
        if change.seq <= last {
            self.log.push(ack(AckOutcome::Duplicate { last_seq: last }));
            return;
        }
        if change.seq > last + 1 {
            self.log.push(ack(AckOutcome::Gap { expected: last + 1 }));
            return;
        }
        self.csn += 1;
        let open = self
            .conflicts
            .values()
            .find(|c| c.document_id == change.id && c.status == ConflictStatus::Open);
        let mut d = decide(self.docs.get(&change.id), open, change, policy, self.csn);
        if let Some(draft) = d.conflict {
            let id = open.map(|c| c.id).unwrap_or(self.conflicts.len() as u64 + 1);
            self.conflicts
                .insert(id, Conflict::open(id, ct(), change.id, draft, 0));
            if let Some(c) = d.commit.conflict.as_mut() {
                c.id = id;
            }
        }
        if let Some(doc) = d.doc {
            self.docs.insert(change.id, doc);
        }
        self.last_seq.insert(change.ship.clone(), change.seq);
        self.log.push(Message::Commit(d.commit));
    }

    fn write(&mut self, w: &LocalWrite) {
        let (_, id) = w.target();
        if let Ok((doc, Some(commit))) =
            master_write(self.docs.get(&id).cloned(), w, self.csn + 1, Hlc::default())
        {
            self.csn += 1;
            self.docs.insert(id, doc);
            self.log.push(Message::Commit(commit));
        }
    }

    /// The ids of the open conflicts, oldest first.
    fn open_conflicts(&self) -> Vec<u64> {
        self.conflicts
            .values()
            .filter(|c| c.status == ConflictStatus::Open)
            .map(|c| c.id)
            .collect()
    }

    fn resolve(&mut self, id: u64, strategy: &Strategy) {
        let conflict = self.conflicts[&id].clone();
        let doc = self.docs[&conflict.document_id].clone();
        let (new, commit) = resolve(&doc, &conflict, strategy, self.csn + 1, Hlc::default()).unwrap();
        self.csn += 1;
        self.docs.insert(doc.id, new);
        let c = self.conflicts.get_mut(&id).unwrap();
        c.status = ConflictStatus::Resolved;
        self.log.push(Message::Commit(commit));
    }
}

impl Replica {
    fn write(&mut self, w: &LocalWrite) {
        let (_, id) = w.target();
        if let Ok((doc, Some(change))) = local_write(
            self.docs.get(&id).cloned(),
            w,
            &self.ship,
            self.seq + 1,
            Hlc::default(),
        ) {
            self.seq += 1;
            self.docs.insert(id, doc);
            self.outbox.push_back(change);
        }
    }

    fn pull(&mut self, log: &[Message], upto: usize) {
        while self.read < upto.min(log.len()) {
            match &log[self.read] {
                Message::Commit(c) => self.take(c),
                Message::Ack(a) if a.ship == self.ship => match a.outcome {
                    AckOutcome::Duplicate { .. } => self.acked(a.seq),
                    AckOutcome::Gap { expected } => {
                        self.sent = self.outbox.iter().take_while(|c| c.seq < expected).count();
                    }
                    AckOutcome::Rejected { .. } => panic!("nothing is rejected here"),
                },
                _ => {}
            }
            self.read += 1;
        }
    }

    fn take(&mut self, c: &Commit) {
        let doc = apply_commit(
            self.docs.get(&c.id).cloned(),
            c,
            &self.ship,
            &offline_sync_model::Sensitive::default(),
        );
        self.docs.insert(c.id, doc);
        if c.origin.is_ship(&self.ship) {
            self.acked(c.seq.unwrap());
        }
    }

    fn acked(&mut self, seq: u64) {
        while self.outbox.front().is_some_and(|c| c.seq <= seq) {
            self.outbox.pop_front();
            self.sent = self.sent.saturating_sub(1);
        }
    }
}

fn live<'a, I: Iterator<Item = (&'a DocumentId, &'a Fields, bool)>>(it: I) -> BTreeMap<DocumentId, Fields> {
    it.filter(|(_, _, deleted)| !deleted)
        .map(|(id, f, _)| (*id, f.clone()))
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        node: usize,
        doc: usize,
        kind: u8,
        field: u8,
        value: u8,
    },
    Send {
        ship: usize,
        n: usize,
        resend: bool,
    },
    Pull {
        ship: usize,
        n: usize,
    },
    Resolve {
        pick: usize,
        strategy: u8,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4usize, 0..4usize, 0..6u8, 0..3u8, 0..4u8).prop_map(|(node, doc, kind, field, value)| Step::Write { node, doc, kind, field, value }),
        2 => (0..3usize, 1..4usize, any::<bool>()).prop_map(|(ship, n, resend)| Step::Send { ship, n, resend }),
        2 => (0..3usize, 1..6usize).prop_map(|(ship, n)| Step::Pull { ship, n }),
        1 => (0..8usize, 0..3u8).prop_map(|(pick, strategy)| Step::Resolve { pick, strategy }),
    ]
}

fn run(steps: Vec<Step>, policy: Policy) -> Result<(), TestCaseError> {
    let ids: Vec<DocumentId> = (0..4).map(|_| DocumentId::new_v7()).collect();
    let mut master = Master {
        docs: BTreeMap::new(),
        conflicts: BTreeMap::new(),
        csn: 0,
        last_seq: BTreeMap::new(),
        log: vec![],
    };
    let mut ships: Vec<Replica> = (0..3)
        .map(|i| Replica {
            ship: ShipId::new(format!("ship-{i}")).unwrap(),
            docs: BTreeMap::new(),
            outbox: VecDeque::new(),
            sent: 0,
            seq: 0,
            read: 0,
        })
        .collect();
    let fields = |field: u8, value: u8| -> Fields {
        json!({ format!("f{field}"): value }).as_object().unwrap().clone()
    };
    let strategy = |s: u8, field: u8| match s {
        0 => Strategy::KeepShip,
        1 => Strategy::KeepMaster,
        _ => Strategy::Merge {
            merge_data: json!({ format!("f{field}"): 99 }).as_object().unwrap().clone(),
        },
    };
    for s in steps {
        match s {
            Step::Write {
                node,
                doc,
                kind,
                field,
                value,
            } => {
                let id = ids[doc];
                let w = match kind {
                    0 => LocalWrite::Create {
                        content_type: ct(),
                        id,
                        fields: fields(field, value),
                    },
                    1 => LocalWrite::Delete {
                        content_type: ct(),
                        id,
                    },
                    _ => LocalWrite::Update {
                        content_type: ct(),
                        id,
                        fields: fields(field, value),
                    },
                };
                if node == 3 {
                    master.write(&w)
                } else {
                    ships[node].write(&w)
                }
            }
            Step::Send { ship, n, resend } => {
                let r = &mut ships[ship];
                if resend {
                    r.sent = 0;
                }
                let batch: Vec<Change> = r.outbox.iter().skip(r.sent).take(n).cloned().collect();
                r.sent += batch.len();
                for c in &batch {
                    master.receive(c, policy);
                }
            }
            Step::Pull { ship, n } => {
                let upto = ships[ship].read + n;
                ships[ship].pull(&master.log, upto);
            }
            Step::Resolve { pick, strategy: st } => {
                let open = master.open_conflicts();
                if let Some(id) = open.get(pick % open.len().max(1)) {
                    let field = master.conflicts[id]
                        .draft
                        .fields
                        .first()
                        .and_then(|f| f[1..].parse().ok())
                        .unwrap_or(0);
                    master.resolve(*id, &strategy(st, field));
                }
            }
        }
    }
    // Quiescence: deliver everything, resolve everything, until nothing moves.
    for round in 0.. {
        prop_assert!(round < 50, "no quiescence");
        for r in ships.iter_mut() {
            r.sent = 0;
            let batch: Vec<Change> = r.outbox.iter().cloned().collect();
            r.sent = batch.len();
            for c in &batch {
                master.receive(c, policy);
            }
        }
        let open = master.open_conflicts();
        for (i, id) in open.iter().enumerate() {
            master.resolve(*id, &strategy((i % 2) as u8, 0));
        }
        for r in ships.iter_mut() {
            let n = master.log.len();
            r.pull(&master.log, n);
        }
        if ships.iter().all(|r| r.outbox.is_empty()) && open.is_empty() {
            break;
        }
    }
    let want = live(master.docs.iter().map(|(id, d)| (id, &d.fields, d.deleted)));
    for r in &ships {
        let got = live(r.docs.iter().map(|(id, d)| (id, &d.fields, d.deleted)));
        prop_assert_eq!(&got, &want, "{} differs from the master", r.ship);
        prop_assert!(r.docs.values().all(|d| !d.is_dirty()), "{} keeps marks", r.ship);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_under_manual_resolution(steps in proptest::collection::vec(step(), 0..80)) {
        run(steps, Policy::Manual)?;
    }

    #[test]
    fn replicas_converge_under_automatic_policies(
        steps in proptest::collection::vec(step(), 0..80),
        p in prop_oneof![Just(Policy::MasterWins), Just(Policy::ShipWins), Just(Policy::LastWriterWins)],
    ) {
        run(steps, p)?;
    }
}
