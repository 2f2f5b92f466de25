//! Local writes on either side, and how a replica takes in the master's commits.

use crate::change::{Change, Commit, CommitOp, LocalWrite, Op};
use crate::document::{Csn, Fields, Mark, MasterDoc, ReplicaDoc, Seq, Stamp, validate_fields};
use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::ids::{Origin, ShipId};

/// Fields of `new` whose value differs from `current`.
fn changed_fields(current: &Fields, new: &Fields) -> Fields {
    new.iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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
    let change = |op, fields: Fields, base| Change {
        ship: ship.clone(),
        seq,
        ct: ct.clone(),
        id,
        op,
        fields,
        base,
        hlc,
    };
    match write {
        LocalWrite::Create { fields, .. } => {
            if live.is_some() {
                return Err(Error::AlreadyExists);
            }
            validate_fields(fields)?;
            let mut doc = ReplicaDoc::empty(ct.clone(), id);
            doc.fields = fields.clone();
            doc.marks = fields
                .keys()
                .map(|k| (k.clone(), Mark::Pending { seq }))
                .collect();
            let change = change(Op::Create, fields.clone(), 0);
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
            let change = change(Op::Update, diff, doc.base_version);
            Ok((doc, Some(change)))
        }
        LocalWrite::Delete { .. } => {
            let mut doc = live.ok_or(Error::NotFound)?;
            doc.deleted = true;
            doc.delete_mark = Some(Mark::Pending { seq });
            let change = change(Op::Delete, Fields::new(), doc.base_version);
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
            if doc.is_some() {
                return Err(Error::AlreadyExists);
            }
            validate_fields(fields)?;
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
/// stay until a commit resolving that conflict arrives.
pub fn apply_commit(doc: Option<ReplicaDoc>, commit: &Commit, me: &ShipId) -> ReplicaDoc {
    let mut doc = doc.unwrap_or_else(|| ReplicaDoc::empty(commit.ct.clone(), commit.id));
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
            (None, Mark::Held { conflict, .. }) if commit.resolves == Some(conflict) => None,
            _ => Some(mark),
        }
    };
    doc.marks = std::mem::take(&mut doc.marks)
        .into_iter()
        .filter_map(|(f, m)| rule(m, Some(&f)).map(|m| (f, m)))
        .collect();
    doc.delete_mark = doc.delete_mark.and_then(|m| rule(m, None));

    match commit.op {
        CommitOp::Patch => {
            for (k, v) in &commit.fields {
                if !doc.marks.contains_key(k) {
                    doc.fields.insert(k.clone(), v.clone());
                }
            }
        }
        CommitOp::Put => {
            let mut fields = commit.fields.clone();
            fields.retain(|k, _| !doc.marks.contains_key(k));
            for k in doc.marks.keys() {
                if let Some(v) = doc.fields.get(k) {
                    fields.insert(k.clone(), v.clone());
                }
            }
            doc.fields = fields;
            doc.deleted = doc.delete_mark.is_some();
        }
        CommitOp::Delete => {
            if !doc.is_dirty() {
                doc.deleted = true;
            }
        }
    }
    doc
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
