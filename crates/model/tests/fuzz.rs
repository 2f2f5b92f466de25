//! Fuzzing, for a bounded time, of what reads untrusted input and what decides on it: signed
//! record and envelope decoding (random bytes, and valid envelopes with members replaced,
//! dropped or retyped), and the decision functions on random documents, conflicts, changes
//! and commits. Nothing may panic, and what is decoded or decided keeps its invariants.
//!
//! Each target runs for `OFFLINE_SYNC_FUZZ_SECS` seconds (default 5) from the seed in
//! `OFFLINE_SYNC_FUZZ_SEED` (default: the clock), which it prints so a failure can be replayed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use offline_sync_model::{
    Change, Commit, CommitOp, Conflict, ConflictDraft, ConflictKind, ConflictRef, ContentType, DocumentId,
    Fields, Hlc, LocalWrite, Mark, MasterDoc, Message, Op, Origin, Policy, ReplicaDoc, Sensitive, ShipId,
    SigningKey, Stamp, Strategy, Unseen, apply_commit, decide, decode, encode, local_write, resolve, unseal,
};
use proptest::prelude::{Just, any, prop_oneof};
use proptest::strategy::{Strategy as _, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

/// The number in environment variable `name`, if it is set to one.
fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Runs `check` on values of `strategy` until the time budget is spent; returns how many.
fn fuzz<S: proptest::strategy::Strategy>(name: &str, strategy: S, mut check: impl FnMut(S::Value)) -> u64 {
    let secs = env_number("OFFLINE_SYNC_FUZZ_SECS").unwrap_or(5);
    let seed = env_number("OFFLINE_SYNC_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!("{name}: OFFLINE_SYNC_FUZZ_SEED={seed}, {secs} s");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cases = 0;
    while Instant::now() < deadline {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        check(value);
        cases += 1;
    }
    println!("{name}: {cases} cases");
    assert!(cases > 0);
    cases
}

fn ct() -> ContentType {
    ContentType::new("api::doc.doc").unwrap()
}

fn ship(i: u8) -> ShipId {
    ShipId::new(format!("ship-{i}")).unwrap()
}

const NAMES: [&str; 4] = ["a", "b", "c", "password"];

fn value() -> impl proptest::strategy::Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z%_]{0,6}".prop_map(Value::from),
        Just(json!({"nested": {"x": 1}})),
        Just(json!([1, "two", null])),
    ]
}

fn fields() -> impl proptest::strategy::Strategy<Value = Fields> {
    proptest::collection::btree_map(0..NAMES.len(), value(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (NAMES[k].to_owned(), v)).collect())
}

fn origin() -> impl proptest::strategy::Strategy<Value = Origin> {
    prop_oneof![Just(Origin::Master), (0u8..3).prop_map(|i| Origin::Ship(ship(i)))]
}

fn stamp() -> impl proptest::strategy::Strategy<Value = Stamp> {
    (0u64..20, origin(), 0u64..50).prop_map(|(csn, origin, ms)| Stamp {
        csn,
        origin,
        hlc: Hlc { ms, c: 0 },
    })
}

fn master_doc() -> impl proptest::strategy::Strategy<Value = MasterDoc> {
    (fields(), any::<bool>(), proptest::option::of(stamp()), 0u64..20).prop_flat_map(
        |(fields, deleted, delete_stamp, version)| {
            let names: Vec<String> = fields.keys().cloned().collect();
            proptest::collection::vec(stamp(), names.len()).prop_map(move |stamps| {
                let mut d = MasterDoc::empty(ct(), DocumentId::from_uuid(uuid::Uuid::nil()));
                d.fields = fields.clone();
                d.stamps = names.iter().cloned().zip(stamps).collect();
                d.deleted = deleted;
                d.delete_stamp = if deleted { delete_stamp.clone() } else { None };
                d.version = version;
                d
            })
        },
    )
}

fn unseen() -> impl proptest::strategy::Strategy<Value = Unseen> {
    (
        proptest::collection::btree_map(0..NAMES.len(), 0u64..20, 0..3),
        proptest::option::of(0u64..20),
    )
        .prop_map(|(f, deletion)| Unseen {
            fields: f.into_iter().map(|(k, v)| (NAMES[k].to_owned(), v)).collect(),
            deletion,
        })
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    (
        0u8..3,
        1u64..10,
        prop_oneof![Just(Op::Create), Just(Op::Update), Just(Op::Delete)],
        fields(),
        0u64..20,
        unseen(),
        0u64..50,
    )
        .prop_map(|(s, seq, op, fields, base, unseen, ms)| Change {
            resent: false,
            ship: ship(s),
            seq,
            ct: ct(),
            id: DocumentId::from_uuid(uuid::Uuid::nil()),
            op,
            fields,
            base,
            unseen,
            hlc: Hlc { ms, c: 0 },
        })
}

fn conflict() -> impl proptest::strategy::Strategy<Value = Conflict> {
    (
        prop_oneof![
            Just(ConflictKind::UpdateUpdate),
            Just(ConflictKind::UpdateDelete),
            Just(ConflictKind::DeleteUpdate)
        ],
        0u8..3,
        fields(),
        fields(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(kind, s, ship_values, master_values, ship_deleted, master_deleted)| {
                let draft = ConflictDraft {
                    kind,
                    ship: ship(s),
                    ship_seq: 1,
                    base_version: 1,
                    master_version: 2,
                    fields: ship_values.keys().cloned().collect(),
                    ship_values,
                    ship_deleted,
                    master_values,
                    master_deleted,
                    field_bases: Default::default(),
                };
                Conflict::open(7, ct(), DocumentId::from_uuid(uuid::Uuid::nil()), draft, 0)
            },
        )
}

fn policy() -> impl proptest::strategy::Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Manual),
        Just(Policy::MasterWins),
        Just(Policy::ShipWins),
        Just(Policy::LastWriterWins)
    ]
}

fn mark() -> impl proptest::strategy::Strategy<Value = Mark> {
    prop_oneof![
        (1u64..10).prop_map(|seq| Mark::Pending { seq }),
        (1u64..10).prop_map(|seq| Mark::Held { conflict: 7, seq }),
    ]
}

fn replica_doc() -> impl proptest::strategy::Strategy<Value = ReplicaDoc> {
    (
        fields(),
        any::<bool>(),
        0u64..20,
        proptest::collection::btree_map(0..NAMES.len(), mark(), 0..3),
        proptest::option::of(mark()),
        unseen(),
    )
        .prop_map(|(fields, deleted, base_version, marks, delete_mark, unseen)| {
            let mut d = ReplicaDoc::empty(ct(), DocumentId::from_uuid(uuid::Uuid::nil()));
            d.fields = fields;
            d.deleted = deleted;
            d.base_version = base_version;
            d.marks = marks.into_iter().map(|(k, m)| (NAMES[k].to_owned(), m)).collect();
            d.delete_mark = delete_mark;
            d.unseen = unseen;
            d
        })
}

fn commit() -> impl proptest::strategy::Strategy<Value = Commit> {
    (
        1u64..20,
        origin(),
        proptest::option::of(1u64..10),
        prop_oneof![Just(CommitOp::Put), Just(CommitOp::Patch), Just(CommitOp::Delete)],
        fields(),
        proptest::option::of(Just(7u64)),
        proptest::option::of((any::<bool>(), fields())),
    )
        .prop_map(|(csn, origin, seq, op, fields, resolves, conflict)| {
            // As the master makes them: a resolution is its own commit, answering no change.
            let resolution = resolves.is_some();
            Commit {
                csn,
                origin: if resolution { Origin::Master } else { origin },
                seq: seq.filter(|_| !resolution),
                ct: ct(),
                id: DocumentId::from_uuid(uuid::Uuid::nil()),
                op,
                fields,
                hlc: Hlc::default(),
                resolves,
                conflict: conflict.filter(|_| !resolution).map(|(whole, f)| ConflictRef {
                    id: 7,
                    fields: f.keys().cloned().collect(),
                    whole,
                }),
            }
        })
}

/// Valid envelopes of every kind, as JSON.
fn envelopes() -> Vec<Value> {
    let change = Message::Change(Change {
        resent: false,
        ship: ship(1),
        seq: 4,
        ct: ct(),
        id: DocumentId::new_v7(),
        op: Op::Update,
        fields: json!({"a": 1}).as_object().unwrap().clone(),
        base: 3,
        unseen: Unseen {
            fields: BTreeMap::from([("a".to_owned(), 2)]),
            deletion: Some(1),
        },
        hlc: Hlc { ms: 5, c: 1 },
    });
    let commit = Message::Commit(Commit {
        csn: 9,
        origin: Origin::Ship(ship(1)),
        seq: Some(4),
        ct: ct(),
        id: DocumentId::new_v7(),
        op: CommitOp::Patch,
        fields: json!({"a": 1}).as_object().unwrap().clone(),
        hlc: Hlc { ms: 5, c: 1 },
        resolves: Some(2),
        conflict: Some(ConflictRef {
            id: 2,
            fields: vec!["a".into()],
            whole: true,
        }),
    });
    [change, commit]
        .iter()
        .map(|m| serde_json::from_slice(&encode(m)).unwrap())
        .chain([
            json!({"v":1,"kind":"ack","ship":"ship-1","seq":4,"outcome":"duplicate","last_seq":4}),
            json!({"v":1,"kind":"ack","ship":"ship-1","seq":4,"outcome":"rejected","reason":"r"}),
            json!({"v":1,"kind":"heartbeat","ship":"ship-1","pending":0,"applied_csn":9,"last_seq":4,"sent_seq":4}),
        ])
        .collect()
}

#[test]
fn decoding_random_bytes_never_panics() {
    let key = SigningKey::from_seed([9; 32]);
    fuzz(
        "random bytes",
        (proptest::collection::vec(any::<u8>(), 0..512), any::<bool>()),
        |(bytes, sealed)| {
            let bytes = if sealed { key.seal("ship-1", &bytes) } else { bytes };
            if let Ok(msg) = decode(&bytes) {
                assert_eq!(decode(&encode(&msg)).unwrap(), msg);
            }
            if let Ok(record) = unseal(&bytes) {
                let _ = decode(record.msg);
            }
        },
    );
}

#[test]
fn decoding_mangled_envelopes_never_panics_and_round_trips() {
    let valid = envelopes();
    let n = valid.len();
    fuzz(
        "mangled envelopes",
        (
            0..n,
            proptest::collection::vec((any::<u8>(), 0usize..64, value()), 1..4),
        ),
        |(which, edits)| {
            let mut env = valid[which].clone();
            for (how, at, replacement) in edits {
                let obj = env.as_object_mut().unwrap();
                let keys: Vec<String> = obj.keys().cloned().collect();
                let key = keys[at % keys.len()].clone();
                match how % 3 {
                    0 => {
                        obj.remove(&key);
                    }
                    1 => {
                        obj.insert(key, replacement);
                    }
                    _ => {
                        obj.insert(format!("{key}_extra"), replacement);
                    }
                }
            }
            let bytes = serde_json::to_vec(&env).unwrap();
            if let Ok(msg) = decode(&bytes) {
                assert_eq!(decode(&encode(&msg)).unwrap(), msg, "{env}");
            }
        },
    );
}

#[test]
fn deciding_on_random_states_never_panics_and_keeps_its_invariants() {
    fuzz(
        "decide",
        (
            proptest::option::of(master_doc()),
            proptest::option::of(conflict()),
            change(),
            policy(),
            1u64..100,
        ),
        |(doc, open, change, policy, csn)| {
            let d = decide(doc.as_ref(), open.as_ref(), &change, policy, csn);
            assert_eq!(d.commit.csn, csn);
            assert_eq!(d.commit.seq, Some(change.seq));
            assert_eq!(d.commit.origin, Origin::Ship(change.ship.clone()));
            if let Some(new) = &d.doc {
                assert_eq!(new.version, csn);
            }
            if d.conflict.is_some() {
                assert_eq!(policy, Policy::Manual, "only manual records conflicts");
                assert!(d.commit.conflict.is_some());
            }
            if let (Some(doc), Some(open)) = (&doc, &open) {
                for strategy in [Strategy::KeepShip, Strategy::KeepMaster] {
                    if let Ok((new, commit)) = resolve(doc, open, &strategy, csn + 1, Hlc::default()) {
                        assert_eq!(commit.resolves, Some(open.id));
                        assert_eq!(new.deleted, commit.op == CommitOp::Delete);
                    }
                }
            }
        },
    );
}

#[test]
fn applying_random_commits_and_writes_on_a_replica_never_panics() {
    let me = ship(1);
    fuzz(
        "apply_commit",
        (
            proptest::option::of(replica_doc()),
            commit(),
            fields(),
            any::<u8>(),
        ),
        |(doc, commit, written, how)| {
            let before = doc.as_ref().map_or(0, |d| d.base_version);
            let after = apply_commit(doc, &commit, &me, &Sensitive::default());
            assert_eq!(after.base_version, before.max(commit.csn));
            if commit.resolves == Some(7) {
                assert!(
                    !after
                        .marks
                        .values()
                        .any(|m| matches!(m, Mark::Held { conflict: 7, .. })),
                    "a resolution releases the marks it held"
                );
            }
            let id = after.id;
            let write = match how % 3 {
                0 => LocalWrite::Create {
                    content_type: ct(),
                    id,
                    fields: written,
                },
                1 => LocalWrite::Update {
                    content_type: ct(),
                    id,
                    fields: written,
                },
                _ => LocalWrite::Delete {
                    content_type: ct(),
                    id,
                },
            };
            if let Ok((doc, Some(change))) = local_write(Some(after), &write, &me, 100, Hlc::default()) {
                assert!(
                    change
                        .unseen
                        .fields
                        .keys()
                        .all(|k| doc.unseen.fields.contains_key(k))
                );
                assert!(change.base_of_deletion() <= change.base);
            }
        },
    );
}
