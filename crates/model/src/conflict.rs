//! Conflict records: what the master could not decide alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::document::{Csn, Fields, Seq};
use crate::error::{Error, Result};
use crate::ids::{ContentType, DocumentId, ShipId};

/// Conflict identifier, assigned by storage.
pub type ConflictId = u64;

/// What collided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// Ship and master changed the same fields.
    UpdateUpdate,
    /// The ship updated a document the master deleted.
    UpdateDelete,
    /// The ship deleted a document the master updated.
    DeleteUpdate,
}

impl ConflictKind {
    /// The name used in the API and the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConflictKind::UpdateUpdate => "update-update",
            ConflictKind::UpdateDelete => "update-delete",
            ConflictKind::DeleteUpdate => "delete-update",
        }
    }

    /// Parses [`ConflictKind::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "update-update" => Ok(Self::UpdateUpdate),
            "update-delete" => Ok(Self::UpdateDelete),
            "delete-update" => Ok(Self::DeleteUpdate),
            other => Err(Error::invalid("conflict kind", other)),
        }
    }
}

/// Whether a conflict still waits for an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStatus {
    /// Waiting.
    Open,
    /// Resolved.
    Resolved,
}

/// How an operator resolves a conflict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "strategy")]
pub enum Strategy {
    /// The ship's values (or its deletion) win.
    KeepShip,
    /// The master's current state wins.
    KeepMaster,
    /// These values are written over the master's document.
    Merge {
        /// Fields to write.
        #[serde(rename = "mergeData")]
        merge_data: Fields,
    },
}

impl Strategy {
    /// The name used in the API and the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::KeepShip => "keep-ship",
            Strategy::KeepMaster => "keep-master",
            Strategy::Merge { .. } => "merge",
        }
    }
}

/// A conflict as decided by [`crate::decide`], before storage gives it an id.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictDraft {
    /// Kind.
    pub kind: ConflictKind,
    /// The ship whose change is held.
    pub ship: ShipId,
    /// Its seq.
    pub ship_seq: Seq,
    /// The CSN the ship had seen.
    pub base_version: Csn,
    /// The master document version when the conflict was (last) recorded.
    pub master_version: Csn,
    /// Held fields.
    pub fields: Vec<String>,
    /// The ship's values of the held fields.
    pub ship_values: Fields,
    /// Whether the ship wants the document deleted.
    pub ship_deleted: bool,
    /// The master's values of the held fields when recorded (all fields for a delete).
    pub master_values: Fields,
    /// Whether the master had the document deleted when recorded.
    pub master_deleted: bool,
    /// The CSN the ship had taken in for a held field when it differs from `base_version`:
    /// a field it kept through a master write it did not take in, or one held by an earlier
    /// change folded into this conflict.
    pub field_bases: BTreeMap<String, Csn>,
}

impl ConflictDraft {
    /// The CSN the ship had taken in for `field`: what its base value is read at.
    pub fn base_of(&self, field: &str) -> Csn {
        self.field_bases.get(field).copied().unwrap_or(self.base_version)
    }
}

/// A recorded conflict.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// Id.
    pub id: ConflictId,
    /// Content type.
    pub content_type: ContentType,
    /// Document.
    pub document_id: DocumentId,
    /// What it holds.
    pub draft: ConflictDraft,
    /// Open or resolved.
    pub status: ConflictStatus,
    /// How it was resolved.
    pub resolution: Option<Strategy>,
    /// The CSN of the resolving commit.
    pub resolved_csn: Option<Csn>,
    /// Recorded at (milliseconds, master clock; shown only).
    pub created_at_ms: u64,
    /// Last updated at (milliseconds, master clock; shown only).
    pub updated_at_ms: u64,
}

impl Conflict {
    /// A conflict of `content_type`/`document_id` holding `draft`, open since `now_ms`.
    pub fn open(
        id: ConflictId,
        content_type: ContentType,
        document_id: DocumentId,
        draft: ConflictDraft,
        now_ms: u64,
    ) -> Self {
        Conflict {
            id,
            content_type,
            document_id,
            draft,
            status: ConflictStatus::Open,
            resolution: None,
            resolved_csn: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// Whether the conflict holds the whole document (not only some fields).
    pub fn is_whole(&self) -> bool {
        self.draft.kind != ConflictKind::UpdateUpdate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in [
            ConflictKind::UpdateUpdate,
            ConflictKind::UpdateDelete,
            ConflictKind::DeleteUpdate,
        ] {
            assert_eq!(ConflictKind::parse(k.as_str()).unwrap(), k);
        }
        assert!(ConflictKind::parse("other").is_err());
    }

    #[test]
    fn strategies_parse_from_the_seed_shape() {
        let s: Strategy = serde_json::from_str(r#"{"strategy":"keep-ship"}"#).unwrap();
        assert_eq!(s, Strategy::KeepShip);
        let s: Strategy = serde_json::from_str(r#"{"strategy":"merge","mergeData":{"title":"T"}}"#).unwrap();
        assert_eq!(s.as_str(), "merge");
        assert!(serde_json::from_str::<Strategy>(r#"{"strategy":"merge"}"#).is_err());
    }
}
