//! Sensitive fields (`SYNC_SENSITIVE_FIELDS`): values such as passwords and tokens never leave
//! the node that wrote them. They are removed — never replaced with a placeholder — from every
//! change and commit a node sends, refused in every one it receives, and the receiving side
//! keeps its own value of them.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::document::Fields;
use crate::envelope::Message;

/// The names removed when `SYNC_SENSITIVE_FIELDS` is not set.
pub const DEFAULT_SENSITIVE_FIELDS: &[&str] = &[
    "password",
    "token",
    "secret",
    "apiKey",
    "resetPasswordToken",
    "confirmationToken",
    "registrationToken",
];

/// Field names that never travel, matched case-insensitively at any depth of a document
/// (inside objects and arrays of objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sensitive {
    /// Lowercased names.
    names: BTreeSet<String>,
}

impl Default for Sensitive {
    fn default() -> Self {
        Self::new(DEFAULT_SENSITIVE_FIELDS)
    }
}

impl Sensitive {
    /// These names (blank ones ignored).
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|n| n.as_ref().trim().to_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// No sensitive fields: everything travels.
    pub fn none() -> Self {
        Self {
            names: BTreeSet::new(),
        }
    }

    /// Whether a field of this name never travels.
    pub fn is_sensitive(&self, name: &str) -> bool {
        !self.names.is_empty() && self.names.contains(&name.to_lowercase())
    }

    /// The names, lowercased.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Removes sensitive fields at any depth; returns whether anything was removed.
    pub fn strip(&self, fields: &mut Fields) -> bool {
        if self.names.is_empty() {
            return false;
        }
        let before = fields.len();
        fields.retain(|k, _| !self.is_sensitive(k));
        let mut removed = fields.len() != before;
        for v in fields.values_mut() {
            removed |= self.strip_value(v);
        }
        removed
    }

    fn strip_value(&self, v: &mut Value) -> bool {
        match v {
            Value::Object(map) => self.strip(map),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |acc, item| self.strip_value(item) | acc),
            _ => false,
        }
    }

    /// Removes sensitive fields from the fields a change or commit carries; returns whether
    /// anything was removed.
    pub fn strip_message(&self, msg: &mut Message) -> bool {
        match msg {
            Message::Change(c) => self.strip(&mut c.fields),
            Message::Commit(c) => self.strip(&mut c.fields),
            Message::Heartbeat(_)
            | Message::Ack(_)
            | Message::ResyncRequest(_)
            | Message::SnapshotPart(_) => false,
        }
    }

    /// Puts this node's own sensitive values back into `incoming` fields (already stripped)
    /// from `local`, the document as this node holds it. Inside objects both sides hold (also
    /// as elements of arrays, position by position), the local sensitive members are kept;
    /// with `whole` (the incoming fields replace the whole document) top-level sensitive
    /// fields are kept too.
    pub fn keep_local(&self, incoming: &mut Fields, local: &Fields, whole: bool) {
        if self.names.is_empty() {
            return;
        }
        for (k, local_value) in local {
            if self.is_sensitive(k) {
                if whole && !incoming.contains_key(k) {
                    incoming.insert(k.clone(), local_value.clone());
                }
            } else if let Some(inc) = incoming.get_mut(k) {
                self.keep_value(inc, local_value);
            }
        }
    }

    fn keep_value(&self, incoming: &mut Value, local: &Value) {
        match (incoming, local) {
            (Value::Object(inc), Value::Object(loc)) => self.keep_local(inc, loc, true),
            (Value::Array(inc), Value::Array(loc)) => {
                for (i, l) in inc.iter_mut().zip(loc) {
                    self.keep_value(i, l);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(v: Value) -> Fields {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn sensitive_fields_are_removed_at_any_depth_whatever_their_case() {
        let s = Sensitive::default();
        let mut f = fields(json!({
            "title": "t", "Password": "p", "apiKey": "k", "APIKEY": "k2",
            "auth": {"password": "p", "user": "u", "deep": {"resetPasswordToken": "r"}},
            "list": [{"token": "x", "keep": 1}, 3]
        }));
        assert!(s.strip(&mut f));
        assert_eq!(
            f,
            fields(json!({"title": "t", "auth": {"user": "u", "deep": {}}, "list": [{"keep": 1}, 3]}))
        );
        let mut clean = fields(json!({"title": "t"}));
        assert!(!s.strip(&mut clean), "nothing to remove");
        let mut f = fields(json!({"password": "p"}));
        assert!(!Sensitive::none().strip(&mut f));
        assert_eq!(f, fields(json!({"password": "p"})));
    }

    #[test]
    fn names_are_configurable_and_never_replaced_by_a_placeholder() {
        let s = Sensitive::new(["pin", " ", "Secret"]);
        let mut f = fields(json!({"PIN": 1, "secret": 2, "password": 3}));
        s.strip(&mut f);
        assert_eq!(f, fields(json!({"password": 3})));
        assert!(!serde_json::to_string(&f).unwrap().contains("REDACTED"));
    }

    #[test]
    fn the_receiver_keeps_its_own_values() {
        let s = Sensitive::default();
        let local =
            fields(json!({"title": "old", "password": "mine", "auth": {"password": "p", "user": "a"}}));
        let mut patch = fields(json!({"auth": {"user": "b"}}));
        s.keep_local(&mut patch, &local, false);
        assert_eq!(
            patch,
            fields(json!({"auth": {"user": "b", "password": "p"}})),
            "a patch keeps nested values and leaves top-level fields to the patch rule"
        );
        let local_list =
            fields(json!({"crew": [{"name": "a", "token": "t1"}, {"name": "b", "token": "t2"}]}));
        let mut echo = fields(json!({"crew": [{"name": "a"}, {"name": "b2"}]}));
        s.keep_local(&mut echo, &local_list, false);
        assert_eq!(
            echo,
            fields(json!({"crew": [{"name": "a", "token": "t1"}, {"name": "b2", "token": "t2"}]})),
            "objects in arrays keep their values position by position"
        );
        let mut put = fields(json!({"title": "new", "auth": {"user": "b"}}));
        s.keep_local(&mut put, &local, true);
        assert_eq!(
            put,
            fields(json!({"title": "new", "password": "mine", "auth": {"user": "b", "password": "p"}}))
        );
    }
}
