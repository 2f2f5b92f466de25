//! Local writes on either side, and how a replica takes in the master's commits.

use crate::change::{Change, Commit, CommitOp, LocalWrite, Op, Unseen};
use crate::document::{
    Csn, Fields, Mark, MasterDoc, ReplicaDoc, Seq, Stamp, check_document_size, validate_fields,
};
use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::ids::{Origin, ShipId};
use crate::sensitive::Sensitive;

/// Fields of `new` whose value differs from `current`.
fn changed_fields(current: &Fields, new: &Fields) -> Fields {
    new.iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Refuses a create over a live document, or with fields no document may hold.
fn check_create(exists: bool, fields: &Fields) -> Result<()> {
    if exists {
        return Err(Error::AlreadyExists);
    }
    validate_fields(fields)?;
    check_document_size(fields)
}

/// Applies a local write on a replica. Returns the new document and the change to append to
/// the outbox as row `seq`, or no change when the write changes nothing.
pub fn local_write(
    doc: Option<ReplicaDoc>,
    write: &LocalWrite,
    ship: &ShipId,
    seq: Seq,
    hlc: Hlc,
) -> Result<(ReplicaDoc, Option<Change>)> {
    let (ct, id) = write.target();
    let live = doc.filter(|d| !d.deleted || matches!(write, LocalWrite::Create { .. }));
    let change = |op, fields: Fields, base, unseen| Change {
        resent: false,
        ship: ship.clone(),
        seq,
        ct: ct.clone(),
        id,
        op,
        fields,
        base,
        unseen,
        hlc,
    };
    // What the change claims to have seen: less than the document's base where the replica
    // kept its own values over the master's.
    let claims = |doc: &ReplicaDoc, touched: Option<&Fields>| Unseen {
        fields: doc
            .unseen
            .fields
            .iter()
            .filter(|(k, _)| touched.is_none_or(|t| t.contains_key(*k)))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        deletion: doc.unseen.deletion,
    };
    match write {
        LocalWrite::Create { fields, .. } => {
            check_create(live.is_some(), fields)?;
            let mut doc = ReplicaDoc::empty(ct.clone(), id);
            doc.fields = fields.clone();
            doc.marks = fields
                .keys()
                .map(|k| (k.clone(), Mark::Pending { seq }))
                .collect();
            let change = change(Op::Create, fields.clone(), 0, Unseen::default());
            Ok((doc, Some(change)))
        }
        LocalWrite::Update { fields, .. } => {
            let mut doc = live.ok_or(Error::NotFound)?;
            validate_fields(fields)?;
            let diff = changed_fields(&doc.fields, fields);
            if diff.is_empty() {
                return Ok((doc, None));
            }
            for (k, v) in &diff {
                doc.fields.insert(k.clone(), v.clone());
                doc.marks.insert(k.clone(), Mark::Pending { seq });
            }
            check_document_size(&doc.fields)?;
            let unseen = claims(&doc, Some(&diff));
            let change = change(Op::Update, diff, doc.base_version, unseen);
            Ok((doc, Some(change)))
        }
        LocalWrite::Delete { .. } => {
            let mut doc = live.ok_or(Error::NotFound)?;
            doc.deleted = true;
            doc.delete_mark = Some(Mark::Pending { seq });
            let change = change(Op::Delete, Fields::new(), doc.base_version, claims(&doc, None));
            Ok((doc, Some(change)))
        }
    }
}

/// Applies a local write on the master at `csn`. Returns the new document and the commit to
/// broadcast, or no commit when the write changes nothing.
pub fn master_write(
    doc: Option<MasterDoc>,
    write: &LocalWrite,
    csn: Csn,
    hlc: Hlc,
) -> Result<(MasterDoc, Option<Commit>)> {
    let (ct, id) = write.target();
    let stamp = Stamp {
        csn,
        origin: Origin::Master,
        hlc,
    };
    let commit = |op, fields| Commit {
        csn,
        origin: Origin::Master,
        seq: None,
        ct: ct.clone(),
        id,
        op,
        fields,
        hlc,
        resolves: None,
        conflict: None,
    };
    match write {
        LocalWrite::Create { fields, .. } => {
            check_create(doc.is_some(), fields)?;
            let mut doc = MasterDoc::empty(ct.clone(), id);
            doc.set_fields(fields, &stamp);
            doc.version = csn;
            let commit = commit(CommitOp::Put, fields.clone());
            Ok((doc, Some(commit)))
        }
        LocalWrite::Update { fields, .. } => {
            let mut doc = doc.filter(|d| !d.deleted).ok_or(Error::NotFound)?;
            validate_fields(fields)?;
            let diff = changed_fields(&doc.fields, fields);
            if diff.is_empty() {
                return Ok((doc, None));
            }
            doc.set_fields(&diff, &stamp);
            check_document_size(&doc.fields)?;
            doc.version = csn;
            Ok((doc, Some(commit(CommitOp::Patch, diff))))
        }
        LocalWrite::Delete { .. } => {
            let mut doc = doc.filter(|d| !d.deleted).ok_or(Error::NotFound)?;
            doc.deleted = true;
            doc.delete_stamp = Some(stamp);
            doc.version = csn;
            Ok((doc, Some(commit(CommitOp::Delete, Fields::new()))))
        }
    }
}

/// Takes one master commit into a replica's copy of the document.
///
/// Fields this replica changed and the master has not ruled on keep their local value. The
/// replica's own echoed change rules on every mark it set up to its seq: the master's value
/// replaces the local one, except for fields the master holds in an open conflict, which
/// stay until a commit resolving that conflict arrives. Sensitive fields are never taken
/// from a commit: the replica keeps its own values of them.
pub fn apply_commit(
    doc: Option<ReplicaDoc>,
    commit: &Commit,
    me: &ShipId,
    sensitive: &Sensitive,
) -> ReplicaDoc {
    take_commit(doc, commit, me, sensitive).doc
}

/// A master commit taken into a replica's copy of a document, by [`take_commit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Taken {
    /// The document as the commit leaves it.
    pub doc: ReplicaDoc,
    /// Whether its fields or its deletion changed; always for a document the replica did not
    /// have. When not (the ship's own echo, most often), only its version and marks moved.
    pub content_changed: bool,
}

/// [`apply_commit`], telling also whether the document's content changed, so that storage can
/// save only its version and marks when it did not.
pub fn take_commit(doc: Option<ReplicaDoc>, commit: &Commit, me: &ShipId, sensitive: &Sensitive) -> Taken {
    let mut content_changed = doc.is_none();
    let mut doc = doc.unwrap_or_else(|| ReplicaDoc::empty(commit.ct.clone(), commit.id));
    let mut incoming = commit.fields.clone();
    sensitive.strip(&mut incoming);
    // The fields the master ruled on in this commit (sensitive ones never travel).
    let arrived: Vec<String> = incoming.keys().cloned().collect();
    sensitive.keep_local(&mut incoming, &doc.fields, commit.op == CommitOp::Put);
    let before = doc.base_version;
    doc.base_version = doc.base_version.max(commit.csn);
    let own_seq = commit.seq.filter(|_| commit.origin.is_ship(me));

    let rule = |mark: Mark, field: Option<&str>| -> Option<Mark> {
        match (own_seq, mark) {
            (Some(s), Mark::Pending { seq }) if seq <= s => {
                let held = commit.conflict.as_ref().filter(|c| {
                    (c.whole && seq == s) || field.is_some_and(|f| c.fields.iter().any(|h| h == f))
                });
                held.map(|c| Mark::Held { conflict: c.id, seq })
            }
            (_, Mark::Held { conflict, .. }) if commit.resolves == Some(conflict) => None,
            _ => Some(mark),
        }
    };
    doc.marks = std::mem::take(&mut doc.marks)
        .into_iter()
        .filter_map(|(f, m)| rule(m, Some(&f)).map(|m| (f, m)))
        .collect();
    doc.delete_mark = doc.delete_mark.and_then(|m| rule(m, None));

    for k in arrived {
        if doc.marks.contains_key(&k) {
            doc.unseen.fields.entry(k).or_insert(before);
        } else {
            doc.unseen.fields.remove(&k);
        }
    }
    match commit.op {
        CommitOp::Patch => {
            for (k, v) in &incoming {
                if !doc.marks.contains_key(k) && doc.fields.get(k) != Some(v) {
                    doc.fields.insert(k.clone(), v.clone());
                    content_changed = true;
                }
            }
        }
        CommitOp::Put => {
            if doc.delete_mark.is_none() {
                doc.unseen.deletion = None;
            }
            let mut fields = incoming;
            fields.retain(|k, _| !doc.marks.contains_key(k));
            for k in doc.marks.keys() {
                if let Some(v) = doc.fields.get(k) {
                    fields.insert(k.clone(), v.clone());
                }
            }
            let deleted = doc.delete_mark.is_some();
            content_changed |= fields != doc.fields || deleted != doc.deleted;
            doc.fields = fields;
            doc.deleted = deleted;
        }
        CommitOp::Delete => {
            if doc.is_dirty() {
                doc.unseen.deletion.get_or_insert(before);
            } else {
                content_changed |= !doc.deleted;
                doc.deleted = true;
                doc.unseen = Unseen::default();
            }
        }
    }
    Taken { doc, content_changed }
}

/// Drops the marks set by outbox row `seq`, which the master refused: the master will not
/// rule on them, so the replica takes the master's values again from now on.
pub fn release_marks(mut doc: ReplicaDoc, seq: Seq) -> ReplicaDoc {
    doc.marks.retain(|_, m| m.seq() != seq);
    if doc.delete_mark.is_some_and(|m| m.seq() == seq) {
        doc.delete_mark = None;
        doc.deleted = false;
    }
    doc
}

/// Drops the marks held by conflict `conflict`, which the master resolved: the master's values
/// of the document are taken again from now on (a resync learns of a resolution from the
/// resolved conflicts, not from the commit that resolved it).
pub fn release_conflict(mut doc: ReplicaDoc, conflict: u64) -> ReplicaDoc {
    let held = |m: &Mark| matches!(m, Mark::Held { conflict: c, .. } if *c == conflict);
    doc.marks.retain(|_, m| !held(m));
    if doc.delete_mark.as_ref().is_some_and(held) {
        doc.delete_mark = None;
        doc.deleted = false;
    }
    doc
}

/// Gives the marks of outbox rows that were renumbered (`renumbered`: old seq → new seq) their
/// rows' new seqs. A replica restored from a backup renumbers the rows the master never saw
/// above the seqs the master applied from it before the restore.
pub fn renumber_marks(mut doc: ReplicaDoc, renumbered: &std::collections::BTreeMap<Seq, Seq>) -> ReplicaDoc {
    let renumber = |m: &mut Mark| {
        if let Mark::Pending { seq } = m
            && let Some(new) = renumbered.get(seq)
        {
            *seq = *new;
        }
    };
    doc.marks.values_mut().for_each(renumber);
    if let Some(m) = doc.delete_mark.as_mut() {
        renumber(m);
    }
    doc
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::change::ConflictRef;
    use crate::ids::{ContentType, DocumentId};

    fn fields(v: serde_json::Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    fn me() -> ShipId {
        ShipId::new("me").unwrap()
    }

    fn ct() -> ContentType {
        ContentType::new("t").unwrap()
    }

    fn commit(origin: Origin, seq: Option<Seq>, op: CommitOp, f: serde_json::Value, csn: Csn) -> Commit {
        Commit {
            csn,
            origin,
            seq,
            ct: ct(),
            id: DocumentId::from_uuid(uuid::Uuid::nil()),
            op,
            fields: fields(f),
            hlc: Hlc::default(),
            resolves: None,
            conflict: None,
        }
    }

    fn created(f: serde_json::Value) -> ReplicaDoc {
        let w = LocalWrite::Create {
            content_type: ct(),
            id: DocumentId::from_uuid(uuid::Uuid::nil()),
            fields: fields(f),
        };
        local_write(None, &w, &me(), 1, Hlc::default()).unwrap().0
    }

    #[test]
    fn local_writes_mark_fields_and_produce_changes() {
        let doc = created(json!({"a": 1, "b": 2}));
        assert_eq!(doc.marks.len(), 2);
        let id = doc.id;
        let same = LocalWrite::Update {
            content_type: ct(),
            id,
            fields: fields(json!({"a": 1})),
        };
        let (doc, change) = local_write(Some(doc), &same, &me(), 2, Hlc::default()).unwrap();
        assert!(
            change.is_none(),
            "an update that changes nothing produces no change"
        );
        let upd = LocalWrite::Update {
            content_type: ct(),
            id,
            fields: fields(json!({"a": 5, "b": 2})),
        };
        let (doc, change) = local_write(Some(doc), &upd, &me(), 2, Hlc::default()).unwrap();
        let change = change.unwrap();
        assert_eq!(
            change.fields,
            fields(json!({"a": 5})),
            "only changed fields travel"
        );
        assert_eq!(doc.marks["a"], Mark::Pending { seq: 2 });
        let del = LocalWrite::Delete {
            content_type: ct(),
            id,
        };
        let (doc, change) = local_write(Some(doc), &del, &me(), 3, Hlc::default()).unwrap();
        assert_eq!(change.unwrap().op, Op::Delete);
        assert!(doc.deleted);
        assert_eq!(
            local_write(Some(doc.clone()), &upd, &me(), 4, Hlc::default()).unwrap_err(),
            Error::NotFound
        );
        let again = LocalWrite::Create {
            content_type: ct(),
            id,
            fields: Fields::new(),
        };
        assert_eq!(
            local_write(Some(doc), &again, &me(), 4, Hlc::default()).unwrap_err(),
            Error::AlreadyExists
        );
    }

    #[test]
    fn a_commit_tells_whether_it_changed_the_content() {
        let doc = created(json!({"a": 1, "b": 2}));
        let echo = |op, f| commit(Origin::Ship(me()), Some(1), op, f, 5);
        let other = |op, f| commit(Origin::Master, None, op, f, 6);
        use CommitOp::{Delete, Patch, Put};
        let clean = apply_commit(
            Some(doc.clone()),
            &echo(Put, json!({"a": 1, "b": 2})),
            &me(),
            &Sensitive::default(),
        );
        let cases = [
            (Some(&doc), echo(Put, json!({"a": 1, "b": 2})), false), // own echo, same values
            (Some(&doc), echo(Patch, json!({"a": 1})), false),       // own echo of one field
            (Some(&doc), echo(Patch, json!({"a": 3})), true),        // a value the master chose
            (Some(&doc), echo(Put, json!({"a": 1})), true),          // a whole document without b
            (Some(&doc), other(Patch, json!({"a": 9})), false),      // a pending field is kept
            (Some(&clean), other(Patch, json!({"c": 3})), true),     // a new field
            (Some(&clean), other(Delete, json!({})), true),          // a deletion
            (None, other(Patch, json!({})), true),                   // a document new to the replica
        ];
        for (case, (before, c, changed)) in cases.into_iter().enumerate() {
            let why = format!("case {case}");
            let taken = take_commit(before.cloned(), &c, &me(), &Sensitive::default());
            assert_eq!(taken.content_changed, changed, "{why}");
            if let Some(before) = before {
                let same = taken.doc.fields == before.fields && taken.doc.deleted == before.deleted;
                assert_eq!(same, !changed, "{why}: the flag does not match the content");
            }
            assert_eq!(
                taken.doc,
                apply_commit(before.cloned(), &c, &me(), &Sensitive::default())
            );
        }
    }

    #[test]
    fn others_commits_do_not_overwrite_pending_fields() {
        let doc = created(json!({"a": 1, "b": 2}));
        let c = commit(Origin::Master, None, CommitOp::Patch, json!({"a": 9, "c": 3}), 4);
        let doc = apply_commit(Some(doc), &c, &me(), &Sensitive::default());
        assert_eq!(doc.fields, fields(json!({"a": 1, "b": 2, "c": 3})));
        assert_eq!(doc.base_version, 4);
    }

    #[test]
    fn the_own_echo_rules_on_marks_up_to_its_seq() {
        let doc = created(json!({"a": 1}));
        let upd = LocalWrite::Update {
            content_type: ct(),
            id: doc.id,
            fields: fields(json!({"b": 7})),
        };
        let (doc, _) = local_write(Some(doc), &upd, &me(), 2, Hlc::default()).unwrap();
        let echo = commit(Origin::Ship(me()), Some(1), CommitOp::Put, json!({"a": 1}), 5);
        let doc = apply_commit(Some(doc), &echo, &me(), &Sensitive::default());
        assert!(!doc.marks.contains_key("a"));
        assert_eq!(doc.marks["b"], Mark::Pending { seq: 2 });
        assert_eq!(
            doc.fields,
            fields(json!({"a": 1, "b": 7})),
            "a put keeps fields still pending"
        );
    }

    #[test]
    fn held_fields_stay_until_the_resolution() {
        let doc = created(json!({"a": 1}));
        let mut echo = commit(Origin::Ship(me()), Some(1), CommitOp::Patch, json!({}), 5);
        echo.conflict = Some(ConflictRef {
            id: 3,
            fields: vec!["a".into()],
            whole: false,
        });
        let doc = apply_commit(Some(doc), &echo, &me(), &Sensitive::default());
        assert_eq!(doc.marks["a"], Mark::Held { conflict: 3, seq: 1 });
        let other = commit(Origin::Master, None, CommitOp::Patch, json!({"a": 2}), 6);
        let doc = apply_commit(Some(doc), &other, &me(), &Sensitive::default());
        assert_eq!(doc.fields["a"], json!(1));
        let mut resolution = commit(Origin::Master, None, CommitOp::Put, json!({"a": 8}), 7);
        resolution.resolves = Some(3);
        let doc = apply_commit(Some(doc), &resolution, &me(), &Sensitive::default());
        assert_eq!(doc.fields["a"], json!(8));
        assert!(!doc.is_dirty());
    }

    #[test]
    fn a_delete_waits_for_pending_changes() {
        let doc = created(json!({"a": 1}));
        let del = commit(Origin::Master, None, CommitOp::Delete, json!({}), 5);
        let kept = apply_commit(Some(doc.clone()), &del, &me(), &Sensitive::default());
        assert!(
            !kept.deleted,
            "the pending create keeps the document until the master rules"
        );
        let mut clean = doc;
        clean.marks.clear();
        assert!(apply_commit(Some(clean), &del, &me(), &Sensitive::default()).deleted);
    }

    #[test]
    fn a_replica_keeps_its_own_sensitive_values_and_takes_none_from_a_commit() {
        let doc = created(json!({"title": "a", "password": "mine", "auth": {"password": "p", "user": "u"}}));
        let mut clean = doc;
        clean.marks.clear();
        let put = commit(
            Origin::Master,
            None,
            CommitOp::Put,
            json!({"title": "b", "token": "forged", "auth": {"user": "v"}}),
            5,
        );
        let doc = apply_commit(Some(clean), &put, &me(), &Sensitive::default());
        assert_eq!(
            doc.fields,
            fields(json!({"title": "b", "password": "mine", "auth": {"password": "p", "user": "v"}}))
        );
        let patch = commit(
            Origin::Master,
            None,
            CommitOp::Patch,
            json!({"password": "forged"}),
            6,
        );
        let doc = apply_commit(Some(doc), &patch, &me(), &Sensitive::default());
        assert_eq!(doc.fields["password"], json!("mine"));
    }

    #[test]
    fn released_marks_let_the_master_values_in_again() {
        let doc = created(json!({"a": 1}));
        let doc = release_marks(doc, 1);
        assert!(!doc.is_dirty());
        let c = commit(Origin::Master, None, CommitOp::Patch, json!({"a": 2}), 5);
        assert_eq!(
            apply_commit(Some(doc), &c, &me(), &Sensitive::default()).fields["a"],
            json!(2)
        );
    }

    #[test]
    fn renumbered_rows_keep_their_marks() {
        let mut doc = created(json!({"a": 1, "b": 2}));
        doc.marks.insert("b".into(), Mark::Held { conflict: 7, seq: 1 });
        doc.delete_mark = Some(Mark::Pending { seq: 1 });
        let doc = renumber_marks(doc, &[(1, 9)].into());
        assert_eq!(doc.marks["a"], Mark::Pending { seq: 9 });
        assert_eq!(
            doc.marks["b"],
            Mark::Held { conflict: 7, seq: 1 },
            "a held mark names an applied seq"
        );
        assert_eq!(doc.delete_mark, Some(Mark::Pending { seq: 9 }));
    }
}
