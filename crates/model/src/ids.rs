//! Identifiers: ships, content types, documents and change origins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The reserved origin name of the master; no ship may use it.
const MASTER: &str = "master";

/// A ship (replica) identifier: 1–64 characters of `A-Z a-z 0-9 . _ -`, never `master`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShipId(String);

impl ShipId {
    /// Validates and wraps a ship id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 64 {
            return Err(Error::invalid("ship id", "must be 1 to 64 characters"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::invalid(
                "ship id",
                format!("{id:?} may only hold letters, digits, '.', '_' and '-'"),
            ));
        }
        if id == MASTER {
            return Err(Error::invalid("ship id", "\"master\" is reserved"));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShipId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<ShipId> for String {
    fn from(value: ShipId) -> Self {
        value.0
    }
}

impl FromStr for ShipId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for ShipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The namespace of the sync engine's own tables (the seed plugin's document mappings,
/// processed messages, dead letters, ship registry): never a content type.
const RESERVED_TYPES: &str = "plugin::offline-sync.";

/// A content type such as `api::article.article`: 1–128 characters of
/// `A-Z a-z 0-9 . _ - :`, never in the engine's own namespace `plugin::offline-sync.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentType(String);

impl ContentType {
    /// Validates and wraps a content type.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.len() > 128 {
            return Err(Error::invalid("content type", "must be 1 to 128 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        {
            return Err(Error::invalid(
                "content type",
                format!("{name:?} may only hold letters, digits, '.', '_', '-' and ':'"),
            ));
        }
        if name.to_ascii_lowercase().starts_with(RESERVED_TYPES) {
            return Err(Error::invalid(
                "content type",
                format!("{name:?} is reserved: {RESERVED_TYPES}* names the sync engine's own tables"),
            ));
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentType {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<ContentType> for String {
    fn from(value: ContentType) -> Self {
        value.0
    }
}

impl FromStr for ContentType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A document id: a UUIDv7 minted by whichever node creates the document, so ids never
/// collide and need no translation between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocumentId(Uuid);

impl DocumentId {
    /// Mints a fresh UUIDv7.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an existing UUID.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for DocumentId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| Error::invalid("document id", e.to_string()))
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who made a change: the master or a ship. On the wire: `"master"` or the ship id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Origin {
    /// The master (admin edits, its API, conflict resolutions).
    Master,
    /// A ship.
    Ship(ShipId),
}

impl Origin {
    /// Whether this origin is the given ship.
    pub fn is_ship(&self, ship: &ShipId) -> bool {
        matches!(self, Origin::Ship(s) if s == ship)
    }
}

impl TryFrom<String> for Origin {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        if value == MASTER {
            Ok(Origin::Master)
        } else {
            ShipId::new(value).map(Origin::Ship)
        }
    }
}

impl From<Origin> for String {
    fn from(value: Origin) -> Self {
        match value {
            Origin::Master => MASTER.to_owned(),
            Origin::Ship(s) => s.0,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Master => f.write_str(MASTER),
            Origin::Ship(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ship_ids_are_validated() {
        assert!(ShipId::new("ship-atlantic-001").is_ok());
        assert!(ShipId::new("").is_err());
        assert!(ShipId::new("a b").is_err());
        assert!(ShipId::new("master").is_err());
        assert!(ShipId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn content_types_are_validated() {
        assert!(ContentType::new("api::article.article").is_ok());
        assert!(ContentType::new("api article").is_err());
        assert!(ContentType::new("").is_err());
        assert!(ContentType::new("plugin::offline-sync.dead-letter").is_err());
        assert!(ContentType::new("PLUGIN::Offline-Sync.ship-registry").is_err());
        assert!(ContentType::new("plugin::users-permissions.user").is_ok());
    }

    #[test]
    fn origin_round_trips_through_text() {
        let ship = Origin::Ship(ShipId::new("s1").unwrap());
        let json = serde_json::to_string(&ship).unwrap();
        assert_eq!(json, "\"s1\"");
        assert_eq!(serde_json::from_str::<Origin>(&json).unwrap(), ship);
        assert_eq!(
            serde_json::from_str::<Origin>("\"master\"").unwrap(),
            Origin::Master
        );
        assert!(serde_json::from_str::<Origin>("\"bad id\"").is_err());
    }

    #[test]
    fn document_ids_are_v7_and_parse() {
        let id = DocumentId::new_v7();
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(id.to_string().parse::<DocumentId>().unwrap(), id);
        assert!("nope".parse::<DocumentId>().is_err());
    }
}
