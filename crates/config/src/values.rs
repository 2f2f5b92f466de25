//! Where the values come from: the settings file and the environment, layered with the
//! `config` crate (the environment wins), and the typed readers of one value.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use config::{Config, ConfigError, Environment, FileFormat, Source, ValueKind};

use crate::docs::{SETTINGS, SettingDoc};
use crate::error::{Error, Result, one_line};

/// Settings listed in [`SETTINGS`] that the binaries read themselves, from the environment
/// only; the loader never reads them.
pub(crate) const BINARY_ONLY: &[&str] = &["RUST_LOG"];

/// Every name the loader reads: [`SETTINGS`] minus [`BINARY_ONLY`]. This is the one list of
/// names; [`Values::get`] refuses (in debug builds) any name not on it.
pub(crate) fn loaded_names() -> impl Iterator<Item = &'static str> {
    SETTINGS
        .iter()
        .map(|s| s.name)
        .filter(|n| !BINARY_ONLY.contains(n))
}

/// The loader's name for `name` (exact, uppercase), if it reads it.
fn known(name: &str) -> Option<&'static str> {
    loaded_names().find(|n| *n == name)
}

/// The merged, non-empty raw values of the loaded settings.
#[derive(Debug, Default)]
pub(crate) struct Values {
    map: BTreeMap<&'static str, String>,
    /// Names looked up so far, so tests can check that every read name is documented.
    read: RefCell<BTreeSet<&'static str>>,
}

impl Values {
    /// Reads `file` (if any), then layers the known names of `env` over it.
    pub(crate) fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut builder = Config::builder();
        if let Some(path) = file {
            for (name, value) in read_file(path)? {
                builder = builder
                    .set_default(name.to_ascii_lowercase(), value)
                    .map_err(|e| internal(name, &e))?;
            }
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(name, value)| !value.is_empty() && known(name).is_some())
            .collect();
        let merged = builder
            .add_source(Environment::default().source(Some(env)))
            .build()
            .map_err(|e| internal("settings", &e))?;
        let mut map = BTreeMap::new();
        for name in loaded_names() {
            match merged.get_string(&name.to_ascii_lowercase()) {
                Ok(value) if !value.is_empty() => {
                    map.insert(name, value);
                }
                Ok(_) | Err(ConfigError::NotFound(_)) => {}
                Err(e) => return Err(internal(name, &e)),
            }
        }
        Ok(Self {
            map,
            read: RefCell::default(),
        })
    }

    /// The raw value of `name`, `None` when unset or empty.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        let known = known(name);
        debug_assert!(known.is_some(), "{name} is read but not listed in SETTINGS");
        let name = known?;
        self.read.borrow_mut().insert(name);
        self.map.get(name).cloned()
    }

    /// The names looked up so far.
    #[cfg(test)]
    pub(crate) fn read_names(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// A whole number in the range [`SETTINGS`] gives `name`, its default when unset.
    pub(crate) fn number(&self, name: &str) -> Result<u64> {
        self.number_from(name, None, None)
    }

    /// [`Values::number`] for a setting that follows another one: `default` replaces the
    /// table's default, and `at_least` (a value and the setting it comes from) its minimum.
    pub(crate) fn number_from(
        &self,
        name: &str,
        default: Option<u64>,
        at_least: Option<(u64, &str)>,
    ) -> Result<u64> {
        let Some(mut range) = SETTINGS
            .iter()
            .find(|s| s.name == name)
            .and_then(SettingDoc::range)
        else {
            return Err(Error::invalid(name, "is not a numeric setting"));
        };
        let mut words = range.words();
        if let Some((min, other)) = at_least {
            range.min = min;
            words = format!("from {min} to {} ({}, at least {other})", range.max, range.unit);
        }
        let Some(raw) = self.get(name) else {
            return Ok(default.unwrap_or(range.default));
        };
        raw.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (range.min..=range.max).contains(n))
            .ok_or_else(|| Error::invalid(name, format!("{raw:?} is not a whole number {words}")))
    }

    /// A duration in milliseconds in the range [`SETTINGS`] gives `name`, its default when
    /// unset.
    pub(crate) fn millis(&self, name: &str) -> Result<Duration> {
        self.number(name).map(Duration::from_millis)
    }

    /// A host name or IP address, `default` when unset.
    pub(crate) fn host(&self, name: &str, default: &str) -> Result<String> {
        let Some(raw) = self.get(name) else {
            return Ok(default.to_owned());
        };
        let host = raw.trim();
        let is_name = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)));
        if is_name || host.parse::<std::net::IpAddr>().is_ok() {
            Ok(host.to_owned())
        } else {
            Err(Error::invalid(
                name,
                format!("{raw:?} is not a host name or IP address"),
            ))
        }
    }
}

/// The settings of a TOML file as (name, value) pairs, each name checked against the loaded
/// names (case-insensitively) and each value a string, whole number or boolean.
fn read_file(path: &Path) -> Result<Vec<(&'static str, String)>> {
    let file_error = |source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(file_error)?;
    let table = config::File::from_str(&text, FileFormat::Toml)
        .collect()
        .map_err(|e| {
            file_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                one_line(&e.to_string()),
            ))
        })?;
    let mut keys: Vec<_> = table.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(&'static str, String)> = Vec::with_capacity(keys.len());
    for (key, value) in keys {
        let upper = key.to_ascii_uppercase();
        let Some(name) = known(&upper) else {
            let message = if BINARY_ONLY.contains(&upper.as_str()) {
                "is read from the environment only, not from the settings file".to_owned()
            } else {
                match closest(&upper) {
                    Some(near) => format!("unknown setting (did you mean {near}?)"),
                    None => "unknown setting (the accepted names are listed by --help)".to_owned(),
                }
            };
            return Err(Error::invalid(key, message));
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(Error::invalid(
                key,
                "set twice in the settings file (names are case-insensitive)",
            ));
        }
        let text = match value.kind {
            ValueKind::String(s) => s,
            ValueKind::Boolean(b) => b.to_string(),
            ValueKind::I64(n) => n.to_string(),
            ValueKind::I128(n) => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::U128(n) => n.to_string(),
            _ => {
                return Err(Error::invalid(
                    name,
                    "expected a string, a whole number or a boolean in the settings file",
                ));
            }
        };
        out.push((name, text));
    }
    Ok(out)
}

/// An error of the `config` crate while merging, as one line for `setting`.
fn internal(setting: &str, e: &ConfigError) -> Error {
    Error::invalid(setting, one_line(&e.to_string()))
}

/// The loaded name nearest to a mistyped `key`, if any is within 3 edits.
fn closest(key: &str) -> Option<&'static str> {
    loaded_names()
        .map(|name| (edit_distance(key, name), name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance between two ASCII-ish strings, by bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::load(
            None,
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap()
    }

    #[test]
    fn empty_and_unknown_environment_names_are_unset() {
        let v = values(&[
            ("SYNC_BATCH_SIZE", ""),
            ("HOME", "/root"),
            ("sync_poll_wait", "5"),
        ]);
        assert_eq!(v.get("SYNC_BATCH_SIZE"), None);
        assert_eq!(v.get("SYNC_POLL_WAIT"), None);
        assert!(v.map.is_empty());
    }

    #[test]
    fn numbers_name_the_range_and_unit() {
        let v = values(&[("SYNC_POLL_WAIT", "-1"), ("SYNC_BATCH_SIZE", " 42 ")]);
        assert_eq!(v.number("SYNC_BATCH_SIZE").unwrap(), 42);
        assert_eq!(
            v.millis("SYNC_POLL_WAIT").unwrap_err().to_string(),
            "SYNC_POLL_WAIT: \"-1\" is not a whole number from 0 to 60000 (milliseconds)"
        );
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(closest("SYNC_SHIPID"), Some("SYNC_SHIP_ID"));
        assert_eq!(closest("COMPLETELY_DIFFERENT"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
