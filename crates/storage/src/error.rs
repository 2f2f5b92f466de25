//! Storage errors, sorted into kinds at the sea-orm boundary.

use sea_orm::DbErr;

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
    Unavailable(#[source] DbErr),
    /// The database answered with an error or held data this build cannot read.
    #[error("database error: {context}")]
    Internal {
        /// What was attempted.
        context: String,
        /// The cause, when there is one.
        #[source]
        source: Option<DbErr>,
    },
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    pub(crate) fn corrupt(context: impl Into<String>) -> Self {
        Error::Internal {
            context: context.into(),
            source: None,
        }
    }
}

impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        match e {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => Error::Unavailable(e),
            other => Error::Internal {
                context: "query failed".into(),
                source: Some(other),
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
