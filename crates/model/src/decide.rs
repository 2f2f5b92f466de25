//! The master's decision for one ship change (DESIGN.md §4, apply step 2): fast-forward,
//! automatic field-level merge of non-overlapping edits, or a conflict handled by the content
//! type's policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::change::{Change, Commit, CommitOp, ConflictRef, Op};
use crate::conflict::{Conflict, ConflictDraft, ConflictKind};
use crate::document::{Csn, Fields, MasterDoc, Stamp};
use crate::error::{Error, Result};
use crate::ids::{ContentType, Origin};

/// How a content type settles a contested change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Record a conflict for an operator (the default).
    #[default]
    Manual,
    /// The master's state stands; the ship's contested values are dropped.
    MasterWins,
    /// The ship's change is applied.
    ShipWins,
    /// The later change by hybrid logical clock wins (ties broken by origin).
    LastWriterWins,
}

impl Policy {
    /// Parses `manual`, `master-wins`, `ship-wins` or `last-writer-wins`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "manual" => Ok(Self::Manual),
            "master-wins" => Ok(Self::MasterWins),
            "ship-wins" => Ok(Self::ShipWins),
            "last-writer-wins" => Ok(Self::LastWriterWins),
            other => Err(Error::invalid(
                "conflict policy",
                format!("{other:?}; expected manual, master-wins, ship-wins or last-writer-wins"),
            )),
        }
    }
}

/// The policy of every content type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies {
    /// For content types not listed.
    pub default: Policy,
    /// Per content type.
    pub per_type: BTreeMap<ContentType, Policy>,
}

impl Policies {
    /// The policy of one content type.
    pub fn for_type(&self, ct: &ContentType) -> Policy {
        self.per_type.get(ct).copied().unwrap_or(self.default)
    }
}

/// What the master does with one ship change.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The document's new state, or `None` when it does not change.
    pub doc: Option<MasterDoc>,
    /// The commit to broadcast. When a conflict is recorded, `commit.conflict.id` is the open
    /// conflict's id, or 0 for a new one (storage fills it in).
    pub commit: Commit,
    /// The conflict to record: a new one, or the open one of the document updated.
    pub conflict: Option<ConflictDraft>,
}

/// Settling of one contested value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    Apply,
    Drop,
    Hold,
}

/// How a ship change settles one value: held when the open conflict holds it already, applied
/// when no write contests it, otherwise as `policy` says against `against`, the contesting write.
fn settle(policy: Policy, change: &Change, held: bool, against: Option<&Stamp>) -> Settle {
    if held {
        return Settle::Hold;
    }
    let Some(against) = against else {
        return Settle::Apply;
    };
    match policy {
        Policy::Manual => Settle::Hold,
        Policy::MasterWins => Settle::Drop,
        Policy::ShipWins => Settle::Apply,
        Policy::LastWriterWins => {
            let ours = (change.hlc, Origin::Ship(change.ship.clone()));
            if ours > (against.hlc, against.origin.clone()) {
                Settle::Apply
            } else {
                Settle::Drop
            }
        }
    }
}

/// Decides one ship change against the master's current document and the document's open
/// conflict, if any, committing it at `csn`.
///
/// A value is contested when its field was last changed after the ship's `base` by someone
/// else, or is held in the document's open conflict (under `manual`, a later change to held
/// fields joins that conflict instead of opening another).
pub fn decide(
    doc: Option<&MasterDoc>,
    open: Option<&Conflict>,
    change: &Change,
    policy: Policy,
    csn: Csn,
) -> Decision {
    let open = open.filter(|_| policy == Policy::Manual);
    let stamp = Stamp {
        csn,
        origin: Origin::Ship(change.ship.clone()),
        hlc: change.hlc,
    };
    let mut commit = Commit {
        csn,
        origin: stamp.origin.clone(),
        seq: Some(change.seq),
        ct: change.ct.clone(),
        id: change.id,
        op: CommitOp::Patch,
        fields: Fields::new(),
        hlc: change.hlc,
        resolves: None,
        conflict: None,
    };
    // Changed after what the ship had taken in, by someone else — or, for a change sent again
    // after the ship's database was put back from a backup, by the ship itself in a later
    // change: an older change never silently overwrites what the ship wrote after it. (In
    // order, a ship's own later changes are not compared by clock: its clock may step back
    // across a restart.)
    let contested_by = |s: &Stamp, base: Csn| {
        s.csn > base && (!s.origin.is_ship(&change.ship) || (change.resent && s.hlc > change.hlc))
    };

    let Some(doc) = doc else {
        return apply_whole(
            MasterDoc::empty(change.ct.clone(), change.id),
            change,
            stamp,
            commit,
        );
    };

    match (change.op, doc.deleted) {
        (Op::Delete, true) => match open {
            // A delete of a document the master deleted while a conflict holds a ship's
            // update of it: the ship side of the conflict is now this delete, so keeping
            // the ship's side (or the master's) cannot bring the document back.
            Some(open) => {
                commit.op = CommitOp::Delete;
                hold(commit, Some(open), draft(open.draft.kind, change, doc), true)
            }
            None => keep_whole(doc, commit),
        },
        (Op::Create | Op::Update, true) => {
            let against = doc
                .delete_stamp
                .as_ref()
                .filter(|s| contested_by(s, change.base_of_deletion()));
            match settle(policy, change, open.is_some(), against) {
                Settle::Apply => apply_whole(doc.clone(), change, stamp, commit),
                Settle::Drop => keep_whole(doc, commit),
                Settle::Hold => {
                    let draft = ConflictDraft {
                        fields: change.fields.keys().cloned().collect(),
                        ship_values: change.fields.clone(),
                        field_bases: field_bases(change, change.fields.keys()),
                        ..draft(ConflictKind::UpdateDelete, change, doc)
                    };
                    hold(commit, open, draft, true)
                }
            }
        }
        (Op::Delete, false) => {
            let contested: Vec<(&String, &Stamp)> = doc
                .stamps
                .iter()
                .filter(|(f, s)| contested_by(s, change.base_of(f)))
                .collect();
            let latest = contested
                .iter()
                .map(|(_, s)| *s)
                .max_by(|a, b| (a.hlc, a.origin.clone()).cmp(&(b.hlc, b.origin.clone())));
            match settle(policy, change, open.is_some(), latest) {
                Settle::Apply => apply_whole(doc.clone(), change, stamp, commit),
                Settle::Drop => keep_whole(doc, commit),
                Settle::Hold => {
                    let draft = ConflictDraft {
                        fields: contested.iter().map(|(k, _)| (*k).clone()).collect(),
                        master_values: doc.fields.clone(),
                        field_bases: field_bases(change, contested.iter().map(|(k, _)| *k)),
                        ..draft(ConflictKind::DeleteUpdate, change, doc)
                    };
                    hold(commit, open, draft, true)
                }
            }
        }
        (Op::Create | Op::Update, false) => {
            let held_by_open =
                |f: &str| open.is_some_and(|c| c.is_whole() || c.draft.fields.iter().any(|h| h == f));
            let mut apply = Fields::new();
            let mut held = Fields::new();
            for (f, v) in &change.fields {
                let against = doc.stamps.get(f).filter(|s| contested_by(s, change.base_of(f)));
                match settle(policy, change, held_by_open(f), against) {
                    Settle::Apply => {
                        apply.insert(f.clone(), v.clone());
                    }
                    Settle::Hold => {
                        held.insert(f.clone(), v.clone());
                    }
                    Settle::Drop => {}
                }
            }
            let new = (!apply.is_empty()).then(|| {
                let mut new = doc.clone();
                new.set_fields(&apply, &stamp);
                new.version = csn;
                new
            });
            let current = new.as_ref().unwrap_or(doc);
            commit.fields = change
                .fields
                .keys()
                .filter(|f| !held.contains_key(*f))
                .filter_map(|f| current.fields.get(f).map(|v| (f.clone(), v.clone())))
                .collect();
            if held.is_empty() {
                return Decision {
                    doc: new,
                    commit,
                    conflict: None,
                };
            }
            let draft = ConflictDraft {
                fields: held.keys().cloned().collect(),
                master_values: held
                    .keys()
                    .filter_map(|f| doc.fields.get(f).map(|v| (f.clone(), v.clone())))
                    .collect(),
                field_bases: field_bases(change, held.keys()),
                ship_values: held,
                ..draft(ConflictKind::UpdateUpdate, change, doc)
            };
            let mut decision = hold(commit, open, draft, false);
            decision.doc = new;
            decision
        }
    }
}

/// Applies the whole of `change` to `doc`: deletes it, or writes the change's fields into it
/// live (creating or reviving it), and commits the result whole.
fn apply_whole(mut doc: MasterDoc, change: &Change, stamp: Stamp, mut commit: Commit) -> Decision {
    doc.version = stamp.csn;
    if change.op == Op::Delete {
        doc.deleted = true;
        doc.delete_stamp = Some(stamp);
        commit.op = CommitOp::Delete;
    } else {
        doc.deleted = false;
        doc.delete_stamp = None;
        doc.set_fields(&change.fields, &stamp);
        commit.op = CommitOp::Put;
        commit.fields = doc.fields.clone();
    }
    Decision {
        doc: Some(doc),
        commit,
        conflict: None,
    }
}

/// Leaves the master's `doc` as it is and commits it whole (its deletion, or all its fields),
/// so that the ship takes the master's state back.
fn keep_whole(doc: &MasterDoc, mut commit: Commit) -> Decision {
    if doc.deleted {
        commit.op = CommitOp::Delete;
    } else {
        commit.op = CommitOp::Put;
        commit.fields = doc.fields.clone();
    }
    Decision {
        doc: None,
        commit,
        conflict: None,
    }
}

/// A conflict of `kind` between `change` and the master's `doc`, holding no field yet: the
/// caller fills in the held fields and values.
fn draft(kind: ConflictKind, change: &Change, doc: &MasterDoc) -> ConflictDraft {
    ConflictDraft {
        kind,
        ship: change.ship.clone(),
        ship_seq: change.seq,
        base_version: change.base,
        master_version: doc.version,
        fields: Vec::new(),
        ship_values: Fields::new(),
        ship_deleted: change.op == Op::Delete,
        master_values: Fields::new(),
        master_deleted: doc.deleted,
        field_bases: BTreeMap::new(),
    }
}

/// The bases of `fields` of `change` that differ from its document base.
fn field_bases<'a>(change: &Change, fields: impl Iterator<Item = &'a String>) -> BTreeMap<String, Csn> {
    fields
        .map(|f| (f.clone(), change.base_of(f)))
        .filter(|(_, base)| *base != change.base)
        .collect()
}

/// Records `draft` as a new conflict, or folds it into the document's open one.
fn hold(mut commit: Commit, open: Option<&Conflict>, draft: ConflictDraft, whole: bool) -> Decision {
    let held_fields = draft.fields.clone();
    let (id, draft) = match open {
        None => (0, draft),
        Some(open) => {
            let mut merged = open.draft.clone();
            // The latest change held speaks for the ship side: whether it deletes or updates,
            // and whose it is.
            // A field held already keeps the base the ship had when it first diverged.
            for f in &merged.fields {
                let base = merged.base_of(f);
                merged.field_bases.insert(f.clone(), base);
            }
            for f in &draft.fields {
                if !merged.field_bases.contains_key(f) {
                    merged.field_bases.insert(f.clone(), draft.base_of(f));
                }
            }
            merged.field_bases.retain(|_, base| *base != draft.base_version);
            merged.ship = draft.ship;
            merged.ship_seq = draft.ship_seq;
            merged.base_version = draft.base_version;
            merged.master_version = draft.master_version;
            merged.kind = draft.kind;
            merged.ship_deleted = draft.ship_deleted;
            merged.master_deleted = draft.master_deleted;
            for f in draft.fields {
                if !merged.fields.contains(&f) {
                    merged.fields.push(f);
                }
            }
            merged.ship_values.extend(draft.ship_values);
            merged.master_values.extend(draft.master_values);
            (open.id, merged)
        }
    };
    commit.conflict = Some(ConflictRef {
        id,
        fields: held_fields,
        whole,
    });
    Decision {
        doc: None,
        commit,
        conflict: Some(draft),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hlc::Hlc;
    use crate::ids::{DocumentId, ShipId};
    use CommitOp::{Patch, Put};
    use Policy::{LastWriterWins, Manual, MasterWins, ShipWins};
    use Then::{Deletes, Keeps, Writes};

    fn ship(s: &str) -> ShipId {
        ShipId::new(s).unwrap()
    }

    fn fields(v: serde_json::Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    fn ct() -> ContentType {
        ContentType::new("api::article.article").unwrap()
    }

    fn change(op: Op, f: serde_json::Value, base: Csn, seq: u64, ms: u64) -> Change {
        Change {
            resent: false,
            ship: ship("a"),
            seq,
            ct: ct(),
            id: DocumentId::from_uuid(uuid::Uuid::nil()),
            op,
            fields: fields(f),
            base,
            unseen: Default::default(),
            hlc: Hlc { ms, c: 0 },
        }
    }

    /// A live document whose fields were each set at the given CSN by the given origin.
    fn doc(spec: &[(&str, serde_json::Value, Csn, Origin, u64)]) -> MasterDoc {
        let mut d = MasterDoc::empty(ct(), DocumentId::from_uuid(uuid::Uuid::nil()));
        for (k, v, csn, origin, ms) in spec {
            d.fields.insert((*k).into(), v.clone());
            d.stamps.insert(
                (*k).into(),
                Stamp {
                    csn: *csn,
                    origin: origin.clone(),
                    hlc: Hlc { ms: *ms, c: 0 },
                },
            );
            d.version = d.version.max(*csn);
        }
        d
    }

    fn deleted(mut d: MasterDoc, csn: Csn, ms: u64) -> MasterDoc {
        d.deleted = true;
        d.delete_stamp = Some(Stamp {
            csn,
            origin: Origin::Master,
            hlc: Hlc { ms, c: 0 },
        });
        d.version = csn;
        d
    }

    fn open(draft: ConflictDraft, id: u64) -> Conflict {
        Conflict::open(id, ct(), DocumentId::from_uuid(uuid::Uuid::nil()), draft, 0)
    }

    /// What a decision that records no conflict does with the document.
    enum Then {
        /// Writes the change: the new document, live at the decision's CSN, holds these fields
        /// (the change's stamped as the ship's), and the commit carries the change's fields.
        Writes(CommitOp, serde_json::Value),
        /// Deletes the document at the decision's CSN.
        Deletes,
        /// Leaves the document as it is; the commit carries these fields, the master's.
        Keeps(CommitOp, serde_json::Value),
    }

    /// Decides `c` against `m` under `policy`, with no open conflict, at CSN 6: it records no
    /// conflict, commits as the change's seq and does what `then` says.
    #[track_caller]
    fn check(m: Option<&MasterDoc>, c: &Change, policy: Policy, then: Then) {
        let d = decide(m, None, c, policy, 6);
        assert!(d.conflict.is_none());
        assert_eq!(d.commit.seq, Some(c.seq));
        match then {
            Writes(op, f) => {
                let new = d.doc.unwrap();
                assert!(!new.deleted);
                assert_eq!((new.version, &new.fields), (6, &fields(f)));
                for k in c.fields.keys() {
                    assert_eq!(new.stamps[k].origin, Origin::Ship(c.ship.clone()));
                }
                assert_eq!((d.commit.op, &d.commit.fields), (op, &c.fields));
            }
            Deletes => {
                let new = d.doc.unwrap();
                assert!(new.deleted);
                assert_eq!((new.version, d.commit.op), (6, CommitOp::Delete));
            }
            Keeps(op, f) => {
                assert!(d.doc.is_none());
                assert_eq!((d.commit.op, d.commit.fields), (op, fields(f)));
            }
        }
    }

    #[test]
    fn uncontested_changes_are_applied() {
        // A change to an unknown document creates it.
        let create = change(Op::Create, json!({"t": 1}), 0, 1, 1);
        check(None, &create, Manual, Writes(Put, json!({"t": 1})));
        // A fast-forward applies every field.
        let m = doc(&[("t", json!("old"), 2, Origin::Master, 1)]);
        let c = change(Op::Update, json!({"t": "new"}), 2, 1, 5);
        check(Some(&m), &c, Manual, Writes(Patch, json!({"t": "new"})));
        // The ship's own later changes are not contested...
        let m = doc(&[("t", json!("x"), 5, Origin::Ship(ship("a")), 1)]);
        let c = change(Op::Update, json!({"t": "y"}), 2, 2, 5);
        check(Some(&m), &c, Manual, Writes(Patch, json!({"t": "y"})));
        // ...not even when its clock stepped back (across a restart), under master-wins.
        let m = doc(&[("t", json!("before the restart"), 5, Origin::Ship(ship("a")), 9)]);
        let c = change(Op::Update, json!({"t": "after"}), 2, 7, 4);
        check(Some(&m), &c, MasterWins, Writes(Patch, json!({"t": "after"})));
        // Edits of different fields merge.
        let m = doc(&[
            ("a", json!(1), 2, Origin::Master, 1),
            ("b", json!(1), 5, Origin::Master, 1),
        ]);
        let c = change(Op::Update, json!({"a": 2}), 2, 1, 5);
        check(Some(&m), &c, Manual, Writes(Patch, json!({"a": 2, "b": 1})));
    }

    #[test]
    fn uncontested_deletes_delete() {
        let delete = |base| change(Op::Delete, json!({}), base, 1, 20);
        // A delete of an unknown document leaves a tombstone.
        check(None, &delete(0), Manual, Deletes);
        let m = doc(&[("t", json!("m"), 2, Origin::Master, 10)]);
        check(Some(&m), &delete(2), Manual, Deletes);
        // Deleting a deleted document changes nothing.
        check(
            Some(&deleted(m, 3, 11)),
            &delete(0),
            Manual,
            Keeps(CommitOp::Delete, json!({})),
        );
    }

    #[test]
    fn an_older_change_of_the_ship_sent_again_does_not_overwrite_its_newer_one() {
        let m = doc(&[("t", json!("newer"), 5, Origin::Ship(ship("a")), 9)]);
        let d = decide(
            Some(&m),
            None,
            &Change {
                resent: true,
                ..change(Op::Update, json!({"t": "older"}), 2, 7, 4)
            },
            Policy::Manual,
            6,
        );
        assert!(
            d.conflict.is_some(),
            "the ship's older value silently overwrote its newer one"
        );
        assert!(d.doc.is_none_or(|doc| doc.fields["t"] == json!("newer")));
        assert!(!d.commit.fields.contains_key("t"));
    }

    #[test]
    fn overlapping_edits_under_manual_hold_only_the_overlap() {
        let m = doc(&[
            ("a", json!(1), 2, Origin::Master, 1),
            ("b", json!("m"), 5, Origin::Master, 1),
        ]);
        let c = change(Op::Update, json!({"a": 2, "b": "s"}), 2, 1, 5);
        let d = decide(Some(&m), None, &c, Policy::Manual, 6);
        let new = d.doc.unwrap();
        assert_eq!(new.fields, fields(json!({"a": 2, "b": "m"})));
        let draft = d.conflict.unwrap();
        assert_eq!(draft.kind, ConflictKind::UpdateUpdate);
        assert_eq!(draft.fields, vec!["b".to_owned()]);
        assert_eq!(draft.ship_values, fields(json!({"b": "s"})));
        assert_eq!(draft.master_values, fields(json!({"b": "m"})));
        let cref = d.commit.conflict.unwrap();
        assert_eq!(
            (cref.id, cref.fields, cref.whole),
            (0, vec!["b".to_owned()], false)
        );
        assert_eq!(d.commit.fields, fields(json!({"a": 2})));
    }

    #[test]
    fn a_later_change_to_held_fields_joins_the_open_conflict() {
        let m = doc(&[("b", json!("m"), 5, Origin::Master, 1)]);
        let c = change(Op::Update, json!({"b": "s1"}), 2, 1, 5);
        let first = decide(Some(&m), None, &c, Policy::Manual, 6);
        let conflict = open(first.conflict.unwrap(), 9);
        // Even with a base past the master's change, the field stays in the conflict.
        let second = change(Op::Update, json!({"b": "s2"}), 6, 2, 6);
        let d = decide(Some(&m), Some(&conflict), &second, Policy::Manual, 7);
        assert!(d.doc.is_none());
        assert_eq!(d.commit.conflict.as_ref().unwrap().id, 9);
        let draft = d.conflict.unwrap();
        assert_eq!(draft.ship_values, fields(json!({"b": "s2"})));
        assert_eq!(draft.ship_seq, 2);
        // The field's base stays what the ship had when it first diverged.
        assert_eq!((draft.base_version, draft.base_of("b")), (6, 2));
    }

    #[test]
    fn a_held_field_the_ship_kept_through_a_master_write_keeps_its_own_base() {
        let m = doc(&[
            ("b", json!("m"), 5, Origin::Master, 1),
            ("c", json!("m"), 7, Origin::Master, 1),
        ]);
        let mut kept = change(Op::Update, json!({"b": "s", "c": "s"}), 6, 1, 5);
        kept.unseen.fields.insert("b".into(), 3);
        let d = decide(Some(&m), None, &kept, Policy::Manual, 8);
        let draft = d.conflict.unwrap();
        assert_eq!(draft.fields, vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!((draft.base_of("b"), draft.base_of("c")), (3, 6));
        assert_eq!(draft.field_bases.len(), 1, "only a base that differs is kept");
    }

    #[test]
    fn a_contested_update_follows_the_policy() {
        let m = doc(&[("b", json!("m"), 5, Origin::Master, 100)]);
        let at = |ms| change(Op::Update, json!({"b": "s"}), 2, 1, ms);
        let (ships, masters) = (json!({"b": "s"}), json!({"b": "m"}));
        // Master-wins drops the overlap and echoes the master's value; ship-wins applies it.
        check(Some(&m), &at(500), MasterWins, Keeps(Patch, masters.clone()));
        check(Some(&m), &at(1), ShipWins, Writes(Patch, ships.clone()));
        // Last-writer-wins compares hybrid clocks; on equal clocks the ship origin orders after
        // the master.
        check(Some(&m), &at(200), LastWriterWins, Writes(Patch, ships.clone()));
        check(Some(&m), &at(50), LastWriterWins, Keeps(Patch, masters));
        check(Some(&m), &at(100), LastWriterWins, Writes(Patch, ships));
    }

    #[test]
    fn update_after_delete_is_a_whole_document_conflict_unless_the_ship_saw_the_delete() {
        let m = deleted(doc(&[("t", json!("x"), 2, Origin::Master, 1)]), 5, 10);
        let c = change(Op::Update, json!({"t": "s"}), 2, 1, 20);
        let d = decide(Some(&m), None, &c, Policy::Manual, 6);
        assert!(d.doc.is_none());
        let draft = d.conflict.unwrap();
        assert_eq!(draft.kind, ConflictKind::UpdateDelete);
        assert!(draft.master_deleted);
        assert!(d.commit.conflict.unwrap().whole);

        check(Some(&m), &c, MasterWins, Keeps(CommitOp::Delete, json!({})));
        check(Some(&m), &c, ShipWins, Writes(Put, json!({"t": "s"})));
        // An update past a delete the ship saw revives the document.
        check(
            Some(&m),
            &Change { base: 5, ..c },
            Manual,
            Writes(Put, json!({"t": "s"})),
        );
    }

    #[test]
    fn delete_after_update_is_a_whole_document_conflict() {
        let m = doc(&[("t", json!("m"), 5, Origin::Master, 10)]);
        let c = change(Op::Delete, json!({}), 2, 1, 20);
        let d = decide(Some(&m), None, &c, Policy::Manual, 6);
        let draft = d.conflict.unwrap();
        assert_eq!(draft.kind, ConflictKind::DeleteUpdate);
        assert!(draft.ship_deleted);
        assert_eq!(draft.master_values, fields(json!({"t": "m"})));

        check(Some(&m), &c, MasterWins, Keeps(Put, json!({"t": "m"})));
        check(Some(&m), &c, ShipWins, Deletes);
        check(Some(&m), &c, LastWriterWins, Deletes);
        let early = change(Op::Delete, json!({}), 2, 1, 5);
        check(Some(&m), &early, LastWriterWins, Keeps(Put, json!({"t": "m"})));
    }

    #[test]
    fn policies_parse_and_default_to_manual() {
        assert_eq!(Policy::parse("last-writer-wins").unwrap(), Policy::LastWriterWins);
        assert!(Policy::parse("whatever").is_err());
        let mut p = Policies::default();
        p.per_type.insert(ct(), Policy::ShipWins);
        assert_eq!(p.for_type(&ct()), Policy::ShipWins);
        assert_eq!(p.for_type(&ContentType::new("other").unwrap()), Policy::Manual);
    }
}
