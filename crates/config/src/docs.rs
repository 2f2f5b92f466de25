//! [`SETTINGS`]: every setting, typed: its name, binaries, meaning and the values it takes,
//! with its default and, for a number, its range, written once. The loader reads the names
//! and the ranges from here; `--help` ([`help_text`]) and the README ([`markdown_table`])
//! print them. A leaf: this module reads nothing else of the crate.

use std::borrow::Cow;
use std::fmt::Write as _;

use offline_sync_engine::Mode;

/// One setting: its name (in the environment, or in the settings file in lowercase or
/// uppercase), binaries, meaning and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingDoc {
    /// The name, e.g. `SYNC_BATCH_SIZE`.
    pub name: &'static str,
    /// The binaries that use it: `both`, `master` or `replica`.
    pub modes: &'static str,
    /// One line on what it does and which values are accepted (a number's range is added
    /// by [`SettingDoc::described`]).
    pub description: &'static str,
    /// The values it takes, with the default.
    pub kind: Kind,
}

/// The values a setting takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text in the form the description says. `default` is shown as it is: `(unset)` and the
    /// like in parentheses when there is no value.
    Text {
        /// The default, as text.
        default: &'static str,
    },
    /// A whole number.
    Number(Range),
}

/// The whole numbers a numeric setting accepts, and its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The value when unset (for a setting whose default follows another one, the default
    /// when that one is unset too).
    pub default: u64,
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
    /// What the number counts: `milliseconds`, `hours`, `days`, or empty.
    pub unit: &'static str,
}

impl Range {
    /// `from 1 to 10000` or `from 0 to 60000 (milliseconds)`: the words of an error message.
    pub(crate) fn words(&self) -> String {
        let Range { min, max, unit, .. } = self;
        if unit.is_empty() {
            format!("from {min} to {max}")
        } else {
            format!("from {min} to {max} ({unit})")
        }
    }
}

impl SettingDoc {
    /// The default as shown in the docs.
    pub fn default_text(&self) -> Cow<'static, str> {
        match self.kind {
            Kind::Text { default } => Cow::Borrowed(default),
            Kind::Number(r) => Cow::Owned(r.default.to_string()),
        }
    }

    /// The range of a numeric setting.
    pub fn range(&self) -> Option<Range> {
        match self.kind {
            Kind::Text { .. } => None,
            Kind::Number(r) => Some(r),
        }
    }

    /// The description, with a number's range at the end: `... (1 to 10000)`.
    pub fn described(&self) -> Cow<'static, str> {
        match self.range() {
            None => Cow::Borrowed(self.description),
            Some(Range {
                min, max, unit: "", ..
            }) => Cow::Owned(format!("{} ({min} to {max})", self.description)),
            Some(Range { min, max, unit, .. }) => {
                Cow::Owned(format!("{} ({min} to {max} {unit})", self.description))
            }
        }
    }
}

/// A setting of text.
const fn doc(
    name: &'static str,
    default: &'static str,
    modes: &'static str,
    description: &'static str,
) -> SettingDoc {
    SettingDoc {
        name,
        modes,
        description,
        kind: Kind::Text { default },
    }
}

/// A numeric setting: `range` is (default, min, max).
const fn number(
    name: &'static str,
    range: (u64, u64, u64),
    unit: &'static str,
    modes: &'static str,
    description: &'static str,
) -> SettingDoc {
    let (default, min, max) = range;
    SettingDoc {
        name,
        modes,
        description,
        kind: Kind::Number(Range {
            default,
            min,
            max,
            unit,
        }),
    }
}

/// The longest interval a setting in milliseconds takes: one day.
const MAX_INTERVAL_MS: u64 = 86_400_000;

const MS: &str = "milliseconds";

/// The default of `DATABASE_FILENAME` in [`SETTINGS`]; [`help_text`] shows the binary's own.
const DEFAULT_FILENAME: &str = "offline-sync-<node>.db";

/// Every setting of the binaries.
pub const SETTINGS: &[SettingDoc] = &[
    doc(
        "SYNC_MODE",
        "(the binary's)",
        "both",
        "master or replica; if set, must match the binary",
    ),
    doc(
        "SYNC_SHIP_ID",
        "(required)",
        "replica",
        "this ship's id: 1 to 64 of A-Z a-z 0-9 . _ - (not master)",
    ),
    doc(
        "KAFKA_BROKERS",
        "localhost:9092",
        "both",
        "comma-separated host:port bootstrap brokers",
    ),
    doc(
        "KAFKA_SSL_ENABLED",
        "false",
        "both",
        "connect to the brokers over TLS (true or false)",
    ),
    doc(
        "KAFKA_SSL_CA_FILE",
        "(public roots)",
        "both",
        "PEM file of the CA(s) to trust; needs KAFKA_SSL_ENABLED=true",
    ),
    doc(
        "KAFKA_SASL_MECHANISM",
        "(none)",
        "both",
        "SASL authentication: plain, scram-sha-256 or scram-sha-512",
    ),
    doc(
        "KAFKA_SASL_USERNAME",
        "(none)",
        "both",
        "SASL user; required with KAFKA_SASL_MECHANISM",
    ),
    doc(
        "KAFKA_SASL_PASSWORD",
        "(none)",
        "both",
        "SASL password; required with KAFKA_SASL_MECHANISM",
    ),
    doc(
        "KAFKA_COMPRESSION",
        "zstd",
        "both",
        "record batch compression: none, gzip, lz4, snappy or zstd",
    ),
    number(
        "KAFKA_REPLICATION_FACTOR",
        (1, 1, 32_767),
        "",
        "both",
        "replication factor of the topics this node creates",
    ),
    doc(
        "KAFKA_TOPIC_SHIP_UPDATES",
        "ship-updates",
        "both",
        "topic of ship-to-master changes (A-Z a-z 0-9 . _ -, up to 249)",
    ),
    doc(
        "KAFKA_TOPIC_MASTER_UPDATES",
        "master-updates",
        "both",
        "topic of master-to-ship commits; must differ from the other topic",
    ),
    doc(
        "KAFKA_TOPIC_SNAPSHOTS",
        "master-snapshots",
        "both",
        "topic of pages of the master's state for ships that resync over the broker, keyed by ship; must differ from the other topics",
    ),
    number(
        "KAFKA_SHIP_UPDATES_PARTITIONS",
        (1, 1, 1000),
        "",
        "both",
        "partitions of the ship updates topic when this node creates it",
    ),
    number(
        "SYNC_BATCH_SIZE",
        (100, 1, 10_000),
        "",
        "both",
        "changes per batch on the wire and per database transaction",
    ),
    number(
        "SYNC_RETRY_DELAY",
        (5_000, 1, 3_600_000),
        MS,
        "both",
        "first retry delay; retries never stop",
    ),
    number(
        "SYNC_RETRY_ATTEMPTS",
        (3, 0, 20),
        "",
        "both",
        "automatic retries of a dead letter before it is exhausted; the retry delay doubles for this many retries (up to 1 h), then stays",
    ),
    number(
        "SYNC_CONNECTIVITY_CHECK_INTERVAL",
        (30_000, 100, MAX_INTERVAL_MS),
        MS,
        "both",
        "how often a replica checks its link",
    ),
    number(
        "SYNC_HEARTBEAT_INTERVAL",
        (30_000, 100, MAX_INTERVAL_MS),
        MS,
        "both",
        "heartbeat interval; defaults to SYNC_CONNECTIVITY_CHECK_INTERVAL",
    ),
    number(
        "SYNC_OFFLINE_THRESHOLD",
        (90_000, 100, 3 * MAX_INTERVAL_MS),
        MS,
        "master",
        "a ship silent this long is offline; default 3 x SYNC_HEARTBEAT_INTERVAL, at least it",
    ),
    number(
        "SYNC_DEBOUNCE_MS",
        (1_000, 0, 600_000),
        MS,
        "replica",
        "wait after a local write before pushing",
    ),
    doc(
        "SYNC_CONTENT_TYPES",
        "(all)",
        "both",
        "comma-separated content types to sync, each `uid` or `uid=plural` (its Strapi route /api/{plural}; by default the model name made plural, as Strapi does); empty syncs every type",
    ),
    doc(
        "SYNC_CONFLICT_POLICY",
        "manual",
        "master",
        "default conflict policy: manual, master-wins, ship-wins or last-writer-wins",
    ),
    doc(
        "SYNC_CONFLICT_POLICIES",
        "(none)",
        "master",
        "per-type policies, e.g. api::article.article=ship-wins,api::note.note=manual",
    ),
    number(
        "SYNC_POLL_WAIT",
        (1_000, 0, 60_000),
        MS,
        "both",
        "longest wait of one fetch for new records",
    ),
    number(
        "SYNC_ACK_TIMEOUT",
        (300_000, 1_000, MAX_INTERVAL_MS),
        MS,
        "replica",
        "changes unanswered this long are sent again",
    ),
    number(
        "SYNC_LOG_RETENTION_HOURS",
        (168, 1, 87_600),
        "hours",
        "both",
        "how long handled log rows and dead letters are kept",
    ),
    number(
        "SYNC_AUDIT_RETENTION_DAYS",
        (365, 1, 36_500),
        "days",
        "both",
        "how long entries of the audit log of admin actions are kept",
    ),
    doc(
        "DATABASE_CLIENT",
        "sqlite",
        "both",
        "database backend: postgres (or postgresql) or sqlite",
    ),
    doc(
        "DATABASE_URL",
        "(unset)",
        "both",
        "full postgres://, postgresql:// or sqlite: URL; wins over the other DATABASE_*",
    ),
    doc("DATABASE_HOST", "localhost", "both", "PostgreSQL host"),
    number("DATABASE_PORT", (5432, 1, 65_535), "", "both", "PostgreSQL port"),
    doc("DATABASE_NAME", "offline_sync", "both", "PostgreSQL database"),
    doc("DATABASE_USERNAME", "postgres", "both", "PostgreSQL user"),
    doc("DATABASE_PASSWORD", "(empty)", "both", "PostgreSQL password"),
    doc(
        "DATABASE_FILENAME",
        DEFAULT_FILENAME,
        "both",
        "SQLite file; <node> is master or the ship id, so nodes in one directory never share it",
    ),
    doc(
        "SYNC_INDEXES",
        "(none)",
        "both",
        "comma-separated document fields (A-Z a-z 0-9 _) to index: an $eq or $in filter on one reads only the matching documents; each index costs every write a little",
    ),
    doc(
        "HOST",
        "0.0.0.0",
        "both",
        "HTTP API address; forced to 127.0.0.1 when no token is set",
    ),
    number("PORT", (1337, 1, 65_535), "", "both", "HTTP API port"),
    doc(
        "SYNC_ADMIN_TOKEN",
        "(unset)",
        "both",
        "bearer token with full API access; no whitespace",
    ),
    doc(
        "SYNC_READ_TOKEN",
        "(unset)",
        "both",
        "bearer token with read-only API access; must differ from the admin token",
    ),
    doc(
        "SYNC_ADMIN_TOKEN_FILE",
        "(unset)",
        "both",
        "file holding the admin token (a mounted secret); instead of SYNC_ADMIN_TOKEN",
    ),
    doc(
        "SYNC_READ_TOKEN_FILE",
        "(unset)",
        "both",
        "file holding the read token (a mounted secret); instead of SYNC_READ_TOKEN",
    ),
    doc(
        "SYNC_MASTER_URL",
        "(unset)",
        "replica",
        "the master's HTTP API (http:// or https://): a resync fetches the master's state from it when master-updates no longer holds what the ship must read; without it, over the broker",
    ),
    doc(
        "SYNC_MASTER_TOKEN",
        "(unset)",
        "replica",
        "the master's read token, sent with the resync requests to SYNC_MASTER_URL",
    ),
    doc(
        "SYNC_MASTER_TOKEN_FILE",
        "(unset)",
        "replica",
        "file holding the master's read token; instead of SYNC_MASTER_TOKEN",
    ),
    doc(
        "SYNC_WEBHOOKS",
        "(none)",
        "both",
        "where to POST Strapi's entry.create/entry.update/entry.delete events: comma-separated http(s) URLs, or a JSON list of {\"url\", \"events\" (default all), \"headers\"}; needs SYNC_WEBHOOK_SECRET",
    ),
    doc(
        "SYNC_WEBHOOK_SECRET",
        "(unset)",
        "both",
        "key of the HMAC-SHA256 of each webhook body, sent as X-Offline-Sync-Signature: sha256=<hex>; at least 16 characters",
    ),
    doc(
        "SYNC_WEBHOOK_SECRET_FILE",
        "(unset)",
        "both",
        "file holding the webhook secret; instead of SYNC_WEBHOOK_SECRET",
    ),
    doc(
        "SYNC_SENSITIVE_FIELDS",
        "password,token,secret,apiKey,resetPasswordToken,confirmationToken,registrationToken",
        "both",
        "comma-separated field names (any case, at any depth) that never leave the node and are never taken from another",
    ),
    doc(
        "SYNC_SIGNING_KEY",
        "(made on first start)",
        "both",
        "this node's Ed25519 signing key, base64 (master keygen / replica keygen print one); else one is made and kept in the database",
    ),
    doc(
        "SYNC_SIGNING_KEY_FILE",
        "(unset)",
        "both",
        "file holding this node's signing key; instead of SYNC_SIGNING_KEY",
    ),
    doc(
        "SYNC_SHIP_KEYS",
        "(pinned at first contact)",
        "master",
        "ships' public keys pinned ahead: ship-id=base64,ship-id=base64",
    ),
    doc(
        "SYNC_REQUIRE_KNOWN_SHIPS",
        "false",
        "master",
        "refuse ships whose key is neither in SYNC_SHIP_KEYS nor approved through the API (recommended in production)",
    ),
    doc(
        "SYNC_MASTER_PUBLIC_KEY",
        "(pinned at first contact)",
        "replica",
        "the master's public key, base64, pinned ahead (recommended in production)",
    ),
    doc(
        "RUST_LOG",
        "info",
        "both",
        "log filter (tracing EnvFilter syntax); environment only",
    ),
];

/// The settings `mode` uses, with the defaults it uses.
fn for_mode(mode: Mode) -> impl Iterator<Item = (&'static SettingDoc, Cow<'static, str>)> {
    SETTINGS
        .iter()
        .filter(move |s| s.modes == "both" || s.modes == mode.as_str())
        .map(move |s| {
            let default = match (s.name, mode) {
                ("DATABASE_FILENAME", Mode::Master) => Cow::Borrowed("offline-sync-master.db"),
                ("DATABASE_FILENAME", Mode::Replica) => Cow::Borrowed("offline-sync-<ship id>.db"),
                _ => s.default_text(),
            };
            (s, default)
        })
}

/// The settings of `mode` as an aligned plain-text table (name, default, description), one
/// line per setting, no heading and no ANSI codes: for clap's `after_help`.
pub fn help_text(mode: Mode) -> String {
    let rows: Vec<_> = for_mode(mode).collect();
    let name_width = rows.iter().map(|(s, _)| s.name.len()).max().unwrap_or(0);
    let default_width = rows.iter().map(|(_, d)| d.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (s, default) in rows {
        let _ = writeln!(
            out,
            "{:name_width$}  {default:default_width$}  {}",
            s.name,
            s.described()
        );
    }
    out
}

/// Every setting as a Markdown table (`| Variable | Default | Binary | Description |`), for
/// the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| Variable | Default | Binary | Description |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = s.default_text();
        let default = if default.starts_with('(') {
            default.into_owned()
        } else {
            format!("`{default}`")
        };
        let _ = writeln!(
            out,
            "| `{}` | {default} | {} | {} |",
            s.name,
            s.modes,
            s.described().replace('|', "\\|").replace('<', "&lt;")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_rows_are_one_line() {
        let names: BTreeSet<_> = SETTINGS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), SETTINGS.len());
        for s in SETTINGS {
            assert!(["both", "master", "replica"].contains(&s.modes), "{}", s.name);
            assert!(
                !s.description.is_empty() && !s.default_text().is_empty(),
                "{}",
                s.name
            );
            for text in [s.name, &s.default_text(), s.description] {
                assert!(!text.contains(['\n', '|', '\x1b']), "{}", s.name);
            }
            if let Some(r) = s.range() {
                assert!(r.min <= r.default && r.default <= r.max, "{}", s.name);
            }
        }
    }

    #[test]
    fn help_is_aligned_and_per_binary() {
        let master = help_text(Mode::Master);
        let replica = help_text(Mode::Replica);
        assert!(!master.contains("SYNC_SHIP_ID") && replica.contains("SYNC_SHIP_ID"));
        assert!(master.contains("SYNC_CONFLICT_POLICY ") && !replica.contains("SYNC_CONFLICT_POLICY"));
        assert!(master.contains("offline-sync-master.db") && replica.contains("offline-sync-<ship id>.db"));
        let column = |text: &str| {
            text.lines()
                .map(|l| l.find("  ").map(|i| i + l[i..].len() - l[i..].trim_start().len()))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(column(&master).len(), 1, "{master}");
        assert_eq!(
            master.lines().count(),
            SETTINGS.iter().filter(|s| s.modes != "replica").count()
        );
        assert!(!master.contains('\x1b'));
        let line = master
            .lines()
            .find(|l| l.starts_with("SYNC_BATCH_SIZE "))
            .unwrap();
        assert!(line.contains(" 100 ") && line.ends_with("(1 to 10000)"), "{line}");
    }

    #[test]
    fn markdown_lists_every_setting() {
        let md = markdown_table();
        assert!(md.starts_with("| Variable | Default | Binary | Description |\n|---|"));
        assert_eq!(md.lines().count(), SETTINGS.len() + 2);
        for s in SETTINGS {
            assert!(md.contains(&format!("| `{}` |", s.name)), "{}", s.name);
        }
        assert!(md.contains("| `RUST_LOG` | `info` | both | log filter (tracing EnvFilter syntax)"));
    }
}
