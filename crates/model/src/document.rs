//! Documents as each side keeps them: the master's with per-field versions, a replica's with
//! the marks of its local, not yet ruled-on changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::change::Unseen;
use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::ids::{ContentType, DocumentId, Origin};

/// Commit sequence number: the master numbers every change it commits with one increasing
/// integer. A document's version is the CSN of its last change.
pub type Csn = u64;

/// A replica's own gapless change counter.
pub type Seq = u64;

/// A document's fields: a JSON object.
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// Field names the HTTP document API uses for its own members.
const RESERVED_FIELDS: [&str; 3] = ["id", "documentId", "version"];

/// Checks one field name: 1–128 characters, no control characters, not reserved.
pub fn validate_field_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::invalid("field name", "must be 1 to 128 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "field name",
            format!("{name:?} holds a control character"),
        ));
    }
    if RESERVED_FIELDS.contains(&name) {
        return Err(Error::invalid("field name", format!("{name:?} is reserved")));
    }
    Ok(())
}

/// Most bytes a document's fields may take, serialized. A commit that carries the whole
/// document (a create, a revival, a resolution, a refused delete) must fit in one envelope
/// with room for the rest of it.
pub const MAX_DOCUMENT_BYTES: usize = crate::envelope::MAX_ENVELOPE_BYTES - 4 * 1024;

/// Refuses fields that would make a document larger than [`MAX_DOCUMENT_BYTES`].
pub fn check_document_size(fields: &Fields) -> Result<()> {
    let size = serde_json::to_vec(fields).map_or(usize::MAX, |v| v.len());
    if size > MAX_DOCUMENT_BYTES {
        return Err(Error::TooLarge {
            size,
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    Ok(())
}

/// Checks every field name of a document body.
pub fn validate_fields(fields: &Fields) -> Result<()> {
    fields.keys().try_for_each(|k| validate_field_name(k))
}

/// When and by whom a field (or a deletion) was last changed on the master.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// CSN of the change.
    pub csn: Csn,
    /// Who made it.
    pub origin: Origin,
    /// Its hybrid logical time, for `last-writer-wins`.
    pub hlc: Hlc,
}

/// A document as the master holds it. A deleted document is kept as a tombstone, with its
/// last fields, so a late update from a ship is recognised as a conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterDoc {
    /// Content type.
    pub content_type: ContentType,
    /// Document id.
    pub id: DocumentId,
    /// Current fields (the last ones, for a tombstone).
    pub fields: Fields,
    /// Whether the document is deleted.
    pub deleted: bool,
    /// CSN of the last change.
    pub version: Csn,
    /// Last change of every field.
    pub stamps: BTreeMap<String, Stamp>,
    /// The deletion, for a tombstone.
    pub delete_stamp: Option<Stamp>,
}

impl MasterDoc {
    /// An empty, live document about to receive its first fields.
    pub fn empty(content_type: ContentType, id: DocumentId) -> Self {
        Self {
            content_type,
            id,
            fields: Fields::new(),
            deleted: false,
            version: 0,
            stamps: BTreeMap::new(),
            delete_stamp: None,
        }
    }

    /// The tombstone of a document collected at `csn` (it is gone from the master's tables):
    /// deleted by the master then, as far as anyone can tell. A change a ship made to the
    /// document before it learnt of the deletion is decided against it, so it is an
    /// update-after-delete (a conflict under `manual`), not a new document.
    pub fn collected(content_type: ContentType, id: DocumentId, csn: Csn) -> Self {
        Self {
            deleted: true,
            version: csn,
            delete_stamp: Some(Stamp {
                csn,
                origin: Origin::Master,
                hlc: Hlc::default(),
            }),
            ..Self::empty(content_type, id)
        }
    }

    /// Sets fields and stamps them with one change.
    pub(crate) fn set_fields(&mut self, fields: &Fields, stamp: &Stamp) {
        for (k, v) in fields {
            self.fields.insert(k.clone(), v.clone());
            self.stamps.insert(k.clone(), stamp.clone());
        }
    }
}

/// Why a replica keeps a local value instead of the master's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mark")]
pub enum Mark {
    /// Changed locally by outbox row `seq`; the master has not ruled on it yet.
    Pending {
        /// The outbox row.
        seq: Seq,
    },
    /// The master holds change `seq` in open conflict `conflict`; stays until resolved.
    Held {
        /// The open conflict.
        conflict: u64,
        /// The outbox row it came from.
        seq: Seq,
    },
}

impl Mark {
    /// The outbox row that set this mark.
    pub fn seq(&self) -> Seq {
        match self {
            Mark::Pending { seq } | Mark::Held { seq, .. } => *seq,
        }
    }
}

/// A document as a replica holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaDoc {
    /// Content type.
    pub content_type: ContentType,
    /// Document id.
    pub id: DocumentId,
    /// Fields as this ship sees them.
    pub fields: Fields,
    /// Whether the document is deleted here.
    pub deleted: bool,
    /// The master CSN this replica last incorporated for the document.
    pub base_version: Csn,
    /// Fields changed locally and not yet ruled on by the master.
    pub marks: BTreeMap<String, Mark>,
    /// A local deletion not yet ruled on by the master.
    pub delete_mark: Option<Mark>,
    /// What of the master's commits up to `base_version` this replica did not take in,
    /// keeping its own pending values instead.
    pub unseen: Unseen,
}

impl ReplicaDoc {
    /// An empty, live document.
    pub fn empty(content_type: ContentType, id: DocumentId) -> Self {
        Self {
            content_type,
            id,
            fields: Fields::new(),
            deleted: false,
            base_version: 0,
            marks: BTreeMap::new(),
            delete_mark: None,
            unseen: Unseen::default(),
        }
    }

    /// Whether any local change is still waiting for the master.
    pub fn is_dirty(&self) -> bool {
        !self.marks.is_empty() || self.delete_mark.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_checked() {
        assert!(validate_field_name("title").is_ok());
        assert!(validate_field_name("").is_err());
        assert!(validate_field_name("documentId").is_err());
        assert!(validate_field_name("a\u{0}b").is_err());
        assert!(validate_field_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn marks_serialize_with_a_tag() {
        let m = Mark::Held { conflict: 3, seq: 9 };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"mark":"held","conflict":3,"seq":9}"#);
        assert_eq!(serde_json::from_str::<Mark>(&json).unwrap(), m);
        assert_eq!(m.seq(), 9);
    }
}
