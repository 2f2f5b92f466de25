//! Resolving a conflict: the chosen values become an ordinary master commit, so every replica
//! converges on it.

use crate::change::{Commit, CommitOp};
use crate::conflict::{Conflict, ConflictStatus, Strategy};
use crate::document::{Csn, MasterDoc, Stamp, check_document_size, validate_fields};
use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::ids::Origin;

/// Resolves an open conflict on `doc` at `csn`. Returns the document's new state and the
/// commit to broadcast; the commit carries the whole document (or its deletion) so every
/// replica replaces the values it held.
pub fn resolve(
    doc: &MasterDoc,
    conflict: &Conflict,
    strategy: &Strategy,
    csn: Csn,
    hlc: Hlc,
) -> Result<(MasterDoc, Commit)> {
    if conflict.status == ConflictStatus::Resolved {
        return Err(Error::AlreadyResolved);
    }
    let stamp = Stamp {
        csn,
        origin: Origin::Master,
        hlc,
    };
    let mut new = doc.clone();
    new.version = csn;
    let revive = |new: &mut MasterDoc| {
        new.deleted = false;
        new.delete_stamp = None;
    };
    match strategy {
        Strategy::KeepShip if conflict.draft.ship_deleted => {
            new.deleted = true;
            new.delete_stamp = Some(stamp.clone());
        }
        Strategy::KeepShip => {
            revive(&mut new);
            new.set_fields(&conflict.draft.ship_values, &stamp);
        }
        Strategy::KeepMaster => {}
        Strategy::Merge { merge_data } => {
            validate_fields(merge_data)?;
            if let Some(unknown) = merge_data.keys().find(|k| {
                !doc.fields.contains_key(*k)
                    && !conflict.draft.ship_values.contains_key(*k)
                    && !conflict.draft.master_values.contains_key(*k)
            }) {
                return Err(Error::invalid(
                    "merge data",
                    format!("{unknown:?} is not a field of the document or the conflict"),
                ));
            }
            revive(&mut new);
            new.set_fields(merge_data, &stamp);
        }
    }
    // Every field the conflict held, and a deletion, now date from the resolution: a ship
    // change made without seeing it is contested again instead of silently undoing it.
    for f in &conflict.draft.fields {
        if new.fields.contains_key(f) {
            new.stamps.insert(f.clone(), stamp.clone());
        }
    }
    if new.deleted {
        new.delete_stamp = Some(stamp.clone());
    }
    let (op, fields) = if new.deleted {
        (CommitOp::Delete, Default::default())
    } else {
        check_document_size(&new.fields)?;
        (CommitOp::Put, new.fields.clone())
    };
    let commit = Commit {
        csn,
        origin: Origin::Master,
        seq: None,
        ct: doc.content_type.clone(),
        id: doc.id,
        op,
        fields,
        hlc,
        resolves: Some(conflict.id),
        conflict: None,
    };
    Ok((new, commit))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::conflict::{ConflictDraft, ConflictKind};
    use crate::document::Fields;
    use crate::ids::{ContentType, DocumentId, ShipId};

    fn fields(v: serde_json::Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    fn setup(kind: ConflictKind, master_deleted: bool) -> (MasterDoc, Conflict) {
        let ct = ContentType::new("t").unwrap();
        let id = DocumentId::new_v7();
        let mut doc = MasterDoc::empty(ct.clone(), id);
        doc.fields = fields(json!({"a": "m", "b": 1}));
        doc.deleted = master_deleted;
        doc.version = 4;
        let ship_deleted = kind == ConflictKind::DeleteUpdate;
        let draft = ConflictDraft {
            kind,
            ship: ShipId::new("s").unwrap(),
            ship_seq: 3,
            base_version: 1,
            master_version: 4,
            fields: vec!["a".into()],
            ship_values: if ship_deleted {
                Fields::new()
            } else {
                fields(json!({"a": "s"}))
            },
            ship_deleted,
            master_values: fields(json!({"a": "m"})),
            master_deleted,
            field_bases: Default::default(),
        };
        let conflict = Conflict::open(5, ct, id, draft, 0);
        (doc, conflict)
    }

    #[test]
    fn keep_ship_writes_the_ships_values_as_a_full_document() {
        let (doc, c) = setup(ConflictKind::UpdateUpdate, false);
        let (new, commit) = resolve(&doc, &c, &Strategy::KeepShip, 9, Hlc::default()).unwrap();
        assert_eq!(new.fields, fields(json!({"a": "s", "b": 1})));
        assert_eq!(new.version, 9);
        assert_eq!(commit.op, CommitOp::Put);
        assert_eq!(commit.fields, new.fields);
        assert_eq!(commit.resolves, Some(5));
    }

    #[test]
    fn keep_master_rebroadcasts_the_current_document() {
        let (doc, c) = setup(ConflictKind::UpdateUpdate, false);
        let (new, commit) = resolve(&doc, &c, &Strategy::KeepMaster, 9, Hlc::default()).unwrap();
        assert_eq!(new.fields, doc.fields);
        assert_eq!(commit.fields, doc.fields);
    }

    #[test]
    fn merge_writes_the_merge_data_and_rejects_unknown_fields() {
        let (doc, c) = setup(ConflictKind::UpdateUpdate, false);
        let merge = Strategy::Merge {
            merge_data: fields(json!({"a": "both"})),
        };
        let (new, _) = resolve(&doc, &c, &merge, 9, Hlc::default()).unwrap();
        assert_eq!(new.fields["a"], json!("both"));
        let bad = Strategy::Merge {
            merge_data: fields(json!({"zzz": 1})),
        };
        assert!(matches!(
            resolve(&doc, &c, &bad, 9, Hlc::default()),
            Err(Error::Invalid { .. })
        ));
        let reserved = Strategy::Merge {
            merge_data: fields(json!({"documentId": 1})),
        };
        assert!(resolve(&doc, &c, &reserved, 9, Hlc::default()).is_err());
    }

    #[test]
    fn deletion_conflicts_resolve_to_a_delete_or_a_revival() {
        let (doc, c) = setup(ConflictKind::DeleteUpdate, false);
        let (new, commit) = resolve(&doc, &c, &Strategy::KeepShip, 9, Hlc::default()).unwrap();
        assert!(new.deleted);
        assert_eq!(commit.op, CommitOp::Delete);

        let (doc, c) = setup(ConflictKind::UpdateDelete, true);
        let (new, commit) = resolve(&doc, &c, &Strategy::KeepShip, 9, Hlc::default()).unwrap();
        assert!(!new.deleted);
        assert_eq!(commit.op, CommitOp::Put);
        let (new, commit) = resolve(&doc, &c, &Strategy::KeepMaster, 9, Hlc::default()).unwrap();
        assert!(new.deleted);
        assert_eq!(commit.op, CommitOp::Delete);
    }

    #[test]
    fn a_resolved_conflict_cannot_be_resolved_again() {
        let (doc, mut c) = setup(ConflictKind::UpdateUpdate, false);
        c.status = ConflictStatus::Resolved;
        assert_eq!(
            resolve(&doc, &c, &Strategy::KeepShip, 9, Hlc::default()).unwrap_err(),
            Error::AlreadyResolved
        );
    }
}
