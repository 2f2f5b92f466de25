//! The database settings: a SQLite file or a PostgreSQL server, as one connection URL plus a
//! copy of it that is safe to log.

use std::fmt;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::values::Values;

/// The database backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseClient {
    /// PostgreSQL (`DATABASE_CLIENT=postgres`, or `postgresql`).
    Postgres,
    /// SQLite (`DATABASE_CLIENT=sqlite`, the default).
    Sqlite,
}

impl DatabaseClient {
    /// `postgres` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for DatabaseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the node keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The backend.
    pub client: DatabaseClient,
    /// The full connection URL (`postgres://…` or `sqlite://…?mode=rwc`); may hold a password.
    /// For SQLite the binary creates the file's parent directory.
    pub url: Secret,
    /// The same URL with any password replaced by `***`: safe to log.
    pub display: String,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("client", &self.client)
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

/// Builds the database settings. `node` is `master` or the ship id: it names the default
/// SQLite file so that nodes started in one directory do not share a file.
pub(crate) fn database(node: &str, v: &Values) -> Result<DatabaseSettings> {
    let client = match v.get("DATABASE_CLIENT") {
        None => None,
        Some(raw) => Some(match raw.trim().to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => DatabaseClient::Postgres,
            "sqlite" => DatabaseClient::Sqlite,
            _ => {
                return Err(Error::invalid(
                    "DATABASE_CLIENT",
                    format!("{raw:?} is not one of postgres, sqlite"),
                ));
            }
        }),
    };
    if let Some(url) = v.get("DATABASE_URL") {
        return from_url(url.trim(), client);
    }
    match client.unwrap_or(DatabaseClient::Sqlite) {
        DatabaseClient::Sqlite => {
            let filename = v
                .get("DATABASE_FILENAME")
                .unwrap_or_else(|| format!("offline-sync-{node}.db"));
            let url = format!("sqlite://{}?mode=rwc", encode_path(&filename));
            Ok(DatabaseSettings {
                client: DatabaseClient::Sqlite,
                display: url.clone(),
                url: Secret::new(url),
            })
        }
        DatabaseClient::Postgres => {
            let host = v.host("DATABASE_HOST", "localhost")?;
            let host = if host.parse::<Ipv6Addr>().is_ok() {
                format!("[{host}]")
            } else {
                host
            };
            let port = v.number("DATABASE_PORT")?;
            let name = v.get("DATABASE_NAME").unwrap_or_else(|| "offline_sync".into());
            let user = v.get("DATABASE_USERNAME").unwrap_or_else(|| "postgres".into());
            let password = v.get("DATABASE_PASSWORD").unwrap_or_default();
            let user = percent_encode(&user);
            let (shown, real) = if password.is_empty() {
                (String::new(), String::new())
            } else {
                (":***".to_owned(), format!(":{}", percent_encode(&password)))
            };
            let rest = format!("@{host}:{port}/{}", percent_encode(&name));
            Ok(DatabaseSettings {
                client: DatabaseClient::Postgres,
                url: Secret::new(format!("postgres://{user}{real}{rest}")),
                display: format!("postgres://{user}{shown}{rest}"),
            })
        }
    }
}

/// The settings of a `DATABASE_URL`, checked against `DATABASE_CLIENT` when that is set too.
/// Error messages never repeat the URL, which may hold a password.
fn from_url(url: &str, client: Option<DatabaseClient>) -> Result<DatabaseSettings> {
    let lower = url.to_ascii_lowercase();
    let (scheme_client, rest) = if let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
    {
        (DatabaseClient::Postgres, rest)
    } else if let Some(rest) = lower.strip_prefix("sqlite:") {
        (DatabaseClient::Sqlite, rest.trim_start_matches("//"))
    } else {
        let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| {
            !s.is_empty()
                && s.len() <= 20
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        });
        let message = match scheme {
            Some(s) => format!("scheme {s:?} is not one of postgres://, postgresql://, sqlite:"),
            None => "expected a postgres://, postgresql:// or sqlite: URL".to_owned(),
        };
        return Err(Error::invalid("DATABASE_URL", message));
    };
    if rest.is_empty() || rest.starts_with('?') {
        return Err(Error::invalid(
            "DATABASE_URL",
            format!("names no {scheme_client} database"),
        ));
    }
    if let Some(client) = client.filter(|c| *c != scheme_client) {
        return Err(Error::invalid(
            "DATABASE_CLIENT",
            format!(
                "{client} disagrees with DATABASE_URL, which is a {scheme_client} URL; unset one of them or make them agree"
            ),
        ));
    }
    Ok(DatabaseSettings {
        client: scheme_client,
        display: redact(url),
        url: Secret::new(url),
    })
}

/// `url` with the password of its user info, and any `password`-like query parameter,
/// replaced by `***`. Errs on the side of hiding too much.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let rest = &url[start..];
        if let Some(at) = rest.rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            out = format!("{}***{}", &url[..start + colon + 1], &rest[at..]);
        }
    }
    let Some((base, query)) = out.split_once('?') else {
        return out;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Percent-encodes everything but the URL-unreserved characters `A-Z a-z 0-9 - . _ ~`, for
/// the user, password and database name of a PostgreSQL URL.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-encodes the characters that would end or garble the path of a `sqlite://` URL
/// (`%`, `?`, `#`); sqlx decodes them again.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(node: &str, pairs: &[(&str, &str)]) -> Result<DatabaseSettings> {
        let v = Values::load(
            None,
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )?;
        database(node, &v)
    }

    #[test]
    fn sqlite_is_the_default_with_one_file_per_node() {
        let m = db("master", &[]).unwrap();
        assert_eq!(m.client, DatabaseClient::Sqlite);
        assert_eq!(m.url.expose(), "sqlite://offline-sync-master.db?mode=rwc");
        assert_eq!(m.display, m.url.expose());
        let r = db("ship-1", &[("DATABASE_FILENAME", "/data/a?b#c%.db")]).unwrap();
        assert_eq!(r.url.expose(), "sqlite:///data/a%3Fb%23c%25.db?mode=rwc");
        assert_eq!(
            db("ship-1", &[]).unwrap().url.expose(),
            "sqlite://offline-sync-ship-1.db?mode=rwc"
        );
    }

    #[test]
    fn postgres_url_encodes_user_and_password() {
        let d = db(
            "master",
            &[
                ("DATABASE_CLIENT", "PostgreSQL"),
                ("DATABASE_HOST", "db.example"),
                ("DATABASE_PORT", "6543"),
                ("DATABASE_NAME", "sync"),
                ("DATABASE_USERNAME", "me@corp"),
                ("DATABASE_PASSWORD", "p@ss:w/rd"),
            ],
        )
        .unwrap();
        assert_eq!(d.client, DatabaseClient::Postgres);
        assert_eq!(
            d.url.expose(),
            "postgres://me%40corp:p%40ss%3Aw%2Frd@db.example:6543/sync"
        );
        assert_eq!(d.display, "postgres://me%40corp:***@db.example:6543/sync");
        let d = db(
            "master",
            &[("DATABASE_CLIENT", "postgres"), ("DATABASE_HOST", "::1")],
        )
        .unwrap();
        assert_eq!(d.url.expose(), "postgres://postgres@[::1]:5432/offline_sync");
        assert_eq!(d.display, d.url.expose());
    }

    #[test]
    fn database_url_wins_and_is_redacted() {
        let d = db(
            "master",
            &[
                (
                    "DATABASE_URL",
                    "postgresql://u:top-secret@h:1/db?sslmode=require&password=x2",
                ),
                ("DATABASE_HOST", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(d.client, DatabaseClient::Postgres);
        assert_eq!(
            d.display,
            "postgresql://u:***@h:1/db?sslmode=require&password=***"
        );
        assert!(!format!("{d:?}").contains("top-secret"));
        let d = db(
            "master",
            &[("DATABASE_URL", "sqlite::memory:"), ("DATABASE_CLIENT", "sqlite")],
        )
        .unwrap();
        assert_eq!(
            (d.client, d.display.as_str()),
            (DatabaseClient::Sqlite, "sqlite::memory:")
        );
        // An unencoded '/' in the password is still hidden.
        assert_eq!(redact("postgres://u:a/b@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn database_url_and_client_must_agree() {
        let err = db(
            "master",
            &[
                ("DATABASE_URL", "postgres://u:pw@h/db"),
                ("DATABASE_CLIENT", "sqlite"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "DATABASE_CLIENT: sqlite disagrees with DATABASE_URL, which is a postgres URL; unset one of them or make them agree"
        );
        let err = db("master", &[("DATABASE_URL", "mysql://u:pw@h/db")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "DATABASE_URL: scheme \"mysql\" is not one of postgres://, postgresql://, sqlite:"
        );
        assert!(!err.contains("pw"));
        let err = db("master", &[("DATABASE_URL", "postgres://")])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "DATABASE_URL: names no postgres database");
    }

    #[test]
    fn bad_client_and_port_name_the_accepted_values() {
        assert_eq!(
            db("master", &[("DATABASE_CLIENT", "mysql")])
                .unwrap_err()
                .to_string(),
            "DATABASE_CLIENT: \"mysql\" is not one of postgres, sqlite"
        );
        assert_eq!(
            db(
                "master",
                &[("DATABASE_CLIENT", "postgres"), ("DATABASE_PORT", "0")]
            )
            .unwrap_err()
            .to_string(),
            "DATABASE_PORT: \"0\" is not a whole number from 1 to 65535"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a-Z.0_~ @:/%é"), "a-Z.0_~%20%40%3A%2F%25%C3%A9");
    }
}
