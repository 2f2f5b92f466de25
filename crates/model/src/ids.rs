//! Identifiers: ships, content types, documents and change origins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The reserved origin name of the master; no ship may use it.
const MASTER: &str = "master";

/// Defines a text identifier: a `String` newtype that only `$check` lets in, read and written
/// (in serde, `FromStr` and `Display`) as its bare text.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Validates and wraps a ", $what, ".")]
            pub fn new(text: impl Into<String>) -> Result<Self> {
                let text = text.into();
                $check(&text)?;
                Ok(Self(text))
            }

            #[doc = concat!("The ", $what, " as text.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Checks what every text id asks: 1 to `max` characters of `A-Z a-z 0-9 . _ -` and the
/// `extra` ones, which `allowed` lists for the error message.
fn check_text(what: &'static str, text: &str, max: usize, extra: &[u8], allowed: &str) -> Result<()> {
    if text.is_empty() || text.len() > max {
        return Err(Error::invalid(what, format!("must be 1 to {max} characters")));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') || extra.contains(&b))
    {
        return Err(Error::invalid(
            what,
            format!("{text:?} may only hold letters, digits, {allowed}"),
        ));
    }
    Ok(())
}

fn check_ship_id(id: &str) -> Result<()> {
    check_text("ship id", id, 64, b"", "'.', '_' and '-'")?;
    if id == MASTER {
        return Err(Error::invalid("ship id", "\"master\" is reserved"));
    }
    Ok(())
}

text_id!(
    /// A ship (replica) identifier: 1–64 characters of `A-Z a-z 0-9 . _ -`, never `master`.
    ShipId,
    "ship id",
    check_ship_id
);

/// The namespace of the sync engine's own tables (the seed plugin's document mappings,
/// processed messages, dead letters, ship registry): never a content type.
const RESERVED_TYPES: &str = "plugin::offline-sync.";

fn check_content_type(name: &str) -> Result<()> {
    check_text("content type", name, 128, b":", "'.', '_', '-' and ':'")?;
    if name.to_ascii_lowercase().starts_with(RESERVED_TYPES) {
        return Err(Error::invalid(
            "content type",
            format!("{name:?} is reserved: {RESERVED_TYPES}* names the sync engine's own tables"),
        ));
    }
    Ok(())
}

text_id!(
    /// A content type such as `api::article.article`: 1–128 characters of
    /// `A-Z a-z 0-9 . _ - :`, never in the engine's own namespace `plugin::offline-sync.`.
    ContentType,
    "content type",
    check_content_type
);

impl ContentType {
    /// The plural route Strapi gives this type by default (`/api/{plural}`): the model name
    /// (after the last `.` of the uid, `article` in `api::article.article`) in lower case,
    /// made plural by the rules of English Strapi's generator applies — a few irregular and
    /// uncountable words, `-s`/`-x`/`-z`/`-ch`/`-sh` take `-es`, a consonant then `-y` takes
    /// `-ies`, anything else `-s`. Of a kebab-case name (`work-order`) only the last word
    /// changes. A type whose Strapi schema names another plural says so in
    /// `SYNC_CONTENT_TYPES` (`uid=plural`).
    pub fn default_plural(&self) -> String {
        let model = self
            .0
            .rsplit(['.', ':'])
            .next()
            .unwrap_or(&self.0)
            .to_ascii_lowercase();
        let (head, word) = match model.rfind(['-', '_']) {
            Some(i) => model.split_at(i + 1),
            None => ("", model.as_str()),
        };
        format!("{head}{}", plural_of(word))
    }
}

/// Words whose plural is not made by a rule, and words that have none: the common ones of
/// the `pluralize` library Strapi's generator uses.
const IRREGULAR: &[(&str, &str)] = &[
    ("person", "people"),
    ("child", "children"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("mouse", "mice"),
    ("goose", "geese"),
    ("ox", "oxen"),
    ("human", "humans"),
    ("quiz", "quizzes"),
    ("index", "indices"),
    ("matrix", "matrices"),
    ("vertex", "vertices"),
    ("appendix", "appendices"),
    ("criterion", "criteria"),
    ("hero", "heroes"),
    ("potato", "potatoes"),
    ("tomato", "tomatoes"),
    ("echo", "echoes"),
    ("radius", "radii"),
    ("focus", "foci"),
    ("fungus", "fungi"),
    ("cactus", "cacti"),
    ("virus", "viri"),
];

/// Words with no plural of their own.
const UNCOUNTABLE: &[&str] = &[
    "equipment",
    "information",
    "news",
    "series",
    "species",
    "sheep",
    "fish",
    "deer",
    "media",
    "staff",
    "personnel",
    "aircraft",
    "software",
    "hardware",
    "audio",
    "feedback",
    "furniture",
    "data",
];

/// `word` (lower case) made plural.
fn plural_of(word: &str) -> String {
    if UNCOUNTABLE.contains(&word) {
        return word.to_owned();
    }
    if let Some((_, plural)) = IRREGULAR.iter().find(|(one, _)| *one == word) {
        return (*plural).to_owned();
    }
    let stem = |n: usize| &word[..word.len() - n];
    let vowel = |c: char| "aeiou".contains(c);
    let before = |n: usize| word[..word.len() - n].chars().last();
    if word.ends_with("person") {
        format!("{}ople", stem(4))
    } else if word.ends_with("man") {
        format!("{}men", stem(3))
    } else if word.ends_with("sis") {
        format!("{}ses", stem(3))
    } else if word.ends_with("fe") && !word.ends_with("ffe") {
        format!("{}ves", stem(2))
    } else if word.ends_with("lf") || word.ends_with("rf") {
        format!("{}ves", stem(1))
    } else if word.ends_with('y') && before(1).is_some_and(|c| !vowel(c)) {
        format!("{}ies", stem(1))
    } else if ["s", "x", "z", "ch", "sh"].iter().any(|end| word.ends_with(end))
        && !(word.ends_with("us") && before(2).is_some_and(|c| "aou".contains(c)))
    {
        format!("{word}es")
    } else {
        format!("{word}s")
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
    #[test]
    fn a_content_type_has_strapis_default_plural() {
        for (uid, plural) in [
            ("api::article.article", "articles"),
            ("api::crew.crew", "crews"),
            ("api::category.category", "categories"),
            ("api::survey.survey", "surveys"),
            ("api::box.box", "boxes"),
            ("api::status.status", "statuses"),
            ("api::watch.watch", "watches"),
            ("api::person.person", "people"),
            ("api::salesperson.salesperson", "salespeople"),
            ("api::crewman.crewman", "crewmen"),
            ("api::man.man", "men"),
            ("api::woman.woman", "women"),
            ("api::human.human", "humans"),
            ("api::analysis.analysis", "analyses"),
            ("api::shelf.shelf", "shelves"),
            ("api::knife.knife", "knives"),
            ("api::roof.roof", "roofs"),
            ("api::hero.hero", "heroes"),
            ("api::photo.photo", "photos"),
            ("api::index.index", "indices"),
            ("api::quiz.quiz", "quizzes"),
            ("api::bus.bus", "buses"),
            ("api::day.day", "days"),
            ("api::media.media", "media"),
            ("api::staff.staff", "staff"),
            ("api::equipment.equipment", "equipment"),
            ("api::work-order.work-order", "work-orders"),
            ("api::spare_part.spare_part", "spare_parts"),
            ("api::Vessel.Vessel", "vessels"),
            ("plugin::users-permissions.user", "users"),
            ("log", "logs"),
        ] {
            let ct = super::ContentType::new(uid).unwrap();
            assert_eq!(ct.default_plural(), plural, "{uid}");
        }
    }

    use super::*;

    #[test]
    fn ship_ids_are_validated() {
        assert!(ShipId::new("ship-atlantic-001").is_ok());
        for bad in ["", "a b", "master", &"x".repeat(65)] {
            assert!(ShipId::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ShipId::new("a b").unwrap_err().to_string(),
            "invalid ship id: \"a b\" may only hold letters, digits, '.', '_' and '-'"
        );
        assert_eq!(
            ShipId::new("").unwrap_err().to_string(),
            "invalid ship id: must be 1 to 64 characters"
        );
    }

    #[test]
    fn content_types_are_validated() {
        for good in ["api::article.article", "plugin::users-permissions.user"] {
            assert!(ContentType::new(good).is_ok(), "{good:?}");
        }
        let reserved = [
            "plugin::offline-sync.dead-letter",
            "PLUGIN::Offline-Sync.ship-registry",
        ];
        for bad in ["api article", ""].into_iter().chain(reserved) {
            assert!(ContentType::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ContentType::new("api article").unwrap_err().to_string(),
            "invalid content type: \"api article\" may only hold letters, digits, '.', '_', '-' and ':'"
        );
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
