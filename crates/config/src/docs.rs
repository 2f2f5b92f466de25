//! [`SETTINGS`]: the documentation of every setting, for `--help` ([`help_text`]) and the
//! README ([`markdown_table`]). It is also the list of names the loader reads.

use std::fmt::Write as _;

use crate::settings::Mode;

/// One setting: its name (in the environment, or in the settings file in lowercase or
/// uppercase), default, binaries and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingDoc {
    /// The name, e.g. `SYNC_BATCH_SIZE`.
    pub name: &'static str,
    /// The default, as text; `(unset)` and the like in parentheses when there is no value.
    pub default: &'static str,
    /// The binaries that use it: `both`, `master` or `replica`.
    pub modes: &'static str,
    /// One line on what it does and which values are accepted.
    pub description: &'static str,
}

/// Shorthand for the table below.
const fn doc(
    name: &'static str,
    default: &'static str,
    modes: &'static str,
    description: &'static str,
) -> SettingDoc {
    SettingDoc {
        name,
        default,
        modes,
        description,
    }
}

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
    doc(
        "KAFKA_REPLICATION_FACTOR",
        "1",
        "both",
        "replication factor of the topics this node creates (1 to 32767)",
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
    doc(
        "KAFKA_SHIP_UPDATES_PARTITIONS",
        "1",
        "both",
        "partitions of the ship updates topic when this node creates it (1 to 1000)",
    ),
    doc(
        "SYNC_BATCH_SIZE",
        "100",
        "both",
        "changes per batch on the wire and per database transaction (1 to 10000)",
    ),
    doc(
        "SYNC_RETRY_DELAY",
        "5000",
        "both",
        "first retry delay in ms (1 to 3600000); retries never stop",
    ),
    doc(
        "SYNC_RETRY_ATTEMPTS",
        "3",
        "both",
        "automatic retries of a dead letter before it is exhausted; the retry delay doubles for this many retries, then stays (capped at 1 h; 0 to 20)",
    ),
    doc(
        "SYNC_CONNECTIVITY_CHECK_INTERVAL",
        "30000",
        "both",
        "how often a replica checks its link, in ms (100 to 86400000)",
    ),
    doc(
        "SYNC_HEARTBEAT_INTERVAL",
        "30000",
        "both",
        "heartbeat interval in ms; defaults to SYNC_CONNECTIVITY_CHECK_INTERVAL",
    ),
    doc(
        "SYNC_OFFLINE_THRESHOLD",
        "90000",
        "master",
        "a ship silent this long (ms) is offline; default 3 x SYNC_HEARTBEAT_INTERVAL, at least it",
    ),
    doc(
        "SYNC_DEBOUNCE_MS",
        "1000",
        "replica",
        "wait after a local write before pushing, in ms (0 to 600000)",
    ),
    doc(
        "SYNC_CONTENT_TYPES",
        "(all)",
        "both",
        "comma-separated content types to sync; empty syncs every type",
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
    doc(
        "SYNC_POLL_WAIT",
        "1000",
        "both",
        "longest wait of one fetch for new records, in ms (0 to 60000)",
    ),
    doc(
        "SYNC_ACK_TIMEOUT",
        "300000",
        "replica",
        "changes unanswered this long (ms) are sent again (1000 to 86400000)",
    ),
    doc(
        "SYNC_LOG_RETENTION_HOURS",
        "168",
        "both",
        "hours handled log rows and dead letters are kept (1 to 87600)",
    ),
    doc(
        "SYNC_AUDIT_RETENTION_DAYS",
        "365",
        "both",
        "days entries of the audit log of admin actions are kept (1 to 36500)",
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
    doc("DATABASE_PORT", "5432", "both", "PostgreSQL port (1 to 65535)"),
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
        "HOST",
        "0.0.0.0",
        "both",
        "HTTP API address; forced to 127.0.0.1 when no token is set",
    ),
    doc("PORT", "1337", "both", "HTTP API port (1 to 65535)"),
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
fn for_mode(mode: Mode) -> impl Iterator<Item = (&'static SettingDoc, &'static str)> {
    SETTINGS
        .iter()
        .filter(move |s| s.modes == "both" || s.modes == mode.as_str())
        .map(move |s| {
            let default = match (s.name, mode) {
                ("DATABASE_FILENAME", Mode::Master) => "offline-sync-master.db",
                ("DATABASE_FILENAME", Mode::Replica) => "offline-sync-<ship id>.db",
                _ => s.default,
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
            s.name, s.description
        );
    }
    out
}

/// Every setting as a Markdown table (`| Variable | Default | Binary | Description |`), for
/// the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| Variable | Default | Binary | Description |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = if s.default.starts_with('(') {
            s.default.to_owned()
        } else {
            format!("`{}`", s.default)
        };
        let _ = writeln!(
            out,
            "| `{}` | {default} | {} | {} |",
            s.name,
            s.modes,
            s.description.replace('|', "\\|").replace('<', "&lt;")
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
            assert!(!s.description.is_empty() && !s.default.is_empty(), "{}", s.name);
            for text in [s.name, s.default, s.description] {
                assert!(!text.contains(['\n', '|', '\x1b']), "{}", s.name);
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
