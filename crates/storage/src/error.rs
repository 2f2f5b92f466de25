//! Storage errors, sorted into kinds at the sea-orm boundary.

use sea_orm::{DbErr, RuntimeErr};

/// The cause of a database error, whatever the driver.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Result with the storage's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a storage call failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document or conflict does not exist.
    #[error("not found")]
    NotFound,
    /// The document already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The request contradicts the current state (a conflict already resolved).
    #[error("conflict: {reason}")]
    Conflict {
        /// What contradicts.
        reason: String,
    },
    /// A conditional write was made against another version than the document's current one.
    #[error("the document is at version {current}, not {expected}")]
    Stale {
        /// The version the writer had read.
        expected: u64,
        /// The document's version now.
        current: u64,
    },
    /// The document would outgrow what one commit can carry.
    #[error("the document would be {size} bytes, above the {limit} byte limit of one commit")]
    TooLarge {
        /// Its size, serialized.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not acceptable.
    #[error("invalid input: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// The database cannot be reached right now; retryable.
    #[error("database unavailable")]
    Unavailable(#[source] Cause),
    /// Another writer held the database, or the database cancelled this transaction to
    /// resolve a conflict between transactions (SQLite `BUSY`/`LOCKED`, PostgreSQL 40001
    /// serialization failure, 40P01 deadlock). Nothing was written; retryable.
    #[error("database busy with another writer")]
    Contended(#[source] Cause),
    /// The connection to the database broke while it was committing: the write may or may not
    /// have been kept, and only a read can tell. Not retryable as such: a call whose
    /// documentation says repeating it is safe may be repeated (the engine's own steps are), but
    /// repeating a create with a new id would make a second document.
    #[error("the database connection broke while committing; the write may or may not have been kept")]
    Indeterminate(#[source] Cause),
    /// The database answered with an error or held data this build cannot read.
    #[error("database error: {context}")]
    Internal {
        /// What was attempted.
        context: String,
        /// The cause, when there is one.
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Contended(_))
    }

    pub(crate) fn corrupt(context: impl Into<String>) -> Self {
        Error::Internal {
            context: context.into(),
            source: None,
        }
    }
}

/// SQLite's `BUSY` and `LOCKED` with their extended codes, PostgreSQL's serialization failure
/// and deadlock.
const CONTENDED: &[&str] = &["5", "6", "261", "262", "517", "40001", "40P01"];

/// How a database error is sorted: by what the driver says, never by its text.
enum Kind {
    Unavailable,
    Contended,
    Other,
}

fn kind(e: &DbErr) -> Kind {
    use sea_orm::sqlx::Error as Sqlx;
    let runtime = match e {
        DbErr::ConnectionAcquire(_) => return Kind::Unavailable,
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return Kind::Other,
    };
    let RuntimeErr::SqlxError(x) = runtime else {
        return match e {
            DbErr::Conn(_) => Kind::Unavailable,
            _ => Kind::Other,
        };
    };
    match x.as_ref() {
        Sqlx::Database(d) if d.code().is_some_and(|c| CONTENDED.contains(&c.as_ref())) => Kind::Contended,
        Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => {
            Kind::Unavailable
        }
        _ if matches!(e, DbErr::Conn(_)) => Kind::Unavailable,
        _ => Kind::Other,
    }
}

impl Error {
    /// `e`, met while committing: a connection that broke then leaves the outcome unknown.
    pub(crate) fn at_commit(e: DbErr) -> Self {
        match kind(&e) {
            Kind::Unavailable => Error::Indeterminate(Box::new(e)),
            _ => Error::from(e),
        }
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        match kind(&e) {
            Kind::Unavailable => Error::Unavailable(Box::new(e)),
            Kind::Contended => Error::Contended(Box::new(e)),
            Kind::Other => Error::Internal {
                context: "query failed".into(),
                source: Some(Box::new(e)),
            },
        }
    }
}

impl From<offline_sync_model::Error> for Error {
    fn from(e: offline_sync_model::Error) -> Self {
        use offline_sync_model::Error as M;
        match e {
            M::NotFound => Error::NotFound,
            M::AlreadyExists => Error::AlreadyExists,
            M::TooLarge { size, limit } => Error::TooLarge { size, limit },
            M::AlreadyResolved => Error::Conflict {
                reason: e.to_string(),
            },
            other => Error::Invalid {
                reason: other.to_string(),
            },
        }
    }
}
