//! Engine errors, sorted into the kinds the HTTP layer and binaries branch on.

use offline_sync_model::{ContentType, Csn};

/// An error and its causes on one line, each cause after a `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an engine call failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The document or conflict does not exist.
    #[error("not found")]
    NotFound,
    /// The document already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The request is not acceptable.
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong.
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
    /// The content type is not synced by this node (`SYNC_CONTENT_TYPES`).
    #[error("content type {0} is not synced")]
    NotSynced(ContentType),
    /// The request contradicts the current state (a conflict already resolved).
    #[error("conflict: {reason}")]
    Conflict {
        /// What contradicts.
        reason: String,
    },
    /// The caller's version of the document is not the current one (an optimistic check
    /// failed: someone else changed it first).
    #[error("version {expected} is stale: the document is at version {current}")]
    Stale {
        /// The version the caller had.
        expected: Csn,
        /// The document's current version.
        current: Csn,
    },
    /// The stored offset is outside what the broker holds (retention removed records this
    /// replica never read, or the topic was recreated): it must resync from the master's
    /// state instead of skipping data.
    #[error("resync required: offset {offset} outside {earliest}..{latest} of {topic}")]
    ResyncRequired {
        /// Topic.
        topic: String,
        /// The stored offset.
        offset: i64,
        /// Earliest offset the broker holds.
        earliest: i64,
        /// Latest offset.
        latest: i64,
    },
    /// `master-updates` skipped a CSN (a lost, refused or forged record): the replica stopped
    /// applying before the gap and never skips it. Retrying the missing commit's dead letter,
    /// or a resync from the master's state, lets it go on.
    #[error(
        "commit {expected} is missing: master-updates continues with commit {found} at offset {offset}; applying stopped before the gap"
    )]
    CsnGap {
        /// The CSN the replica needs next.
        expected: Csn,
        /// The CSN found instead.
        found: Csn,
        /// The offset of the record holding `found`, where reading resumes.
        offset: i64,
    },
    /// A page of the master's state could not be fetched for a resync.
    #[error("cannot fetch the master's state: {reason}")]
    Snapshot {
        /// Why.
        reason: String,
        /// Whether trying again later may succeed (the link or the master is down).
        retryable: bool,
    },
    /// The database failed.
    #[error("storage failed")]
    Storage(#[source] offline_sync_storage::Error),
    /// The transport failed.
    #[error("transport failed")]
    Transport(#[source] offline_sync_transport::Error),
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage(e) => e.is_retryable(),
            Error::Transport(e) => e.is_retryable(),
            Error::Snapshot { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether a write may have been kept although it failed: the database connection broke
    /// while it was committing. Only a read tells.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::Storage(offline_sync_storage::Error::Indeterminate(_))
        )
    }
}

impl From<offline_sync_storage::Error> for Error {
    fn from(e: offline_sync_storage::Error) -> Self {
        use offline_sync_storage::Error as S;
        match e {
            S::NotFound => Error::NotFound,
            S::AlreadyExists => Error::AlreadyExists,
            S::Invalid { reason } => Error::Invalid { reason },
            S::TooLarge { size, limit } => Error::TooLarge { size, limit },
            S::Conflict { reason } => Error::Conflict { reason },
            S::Stale { expected, current } => Error::Stale { expected, current },
            other => Error::Storage(other),
        }
    }
}

impl From<offline_sync_transport::Error> for Error {
    fn from(e: offline_sync_transport::Error) -> Self {
        match e {
            offline_sync_transport::Error::OffsetOutOfRange {
                topic,
                offset,
                earliest,
                latest,
                ..
            } => Error::ResyncRequired {
                topic,
                offset,
                earliest,
                latest,
            },
            other => Error::Transport(other),
        }
    }
}
