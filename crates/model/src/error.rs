//! Errors of the domain model.

/// Result with the model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a domain operation refused, sorted into kinds callers branch on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identifier, field name or value is not acceptable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was rejected (`ship id`, `field name`, ...).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The document does not exist (or is deleted).
    #[error("document not found")]
    NotFound,
    /// The document already exists.
    #[error("document already exists")]
    AlreadyExists,
    /// The document would outgrow what one commit can carry.
    #[error("the document would be {size} bytes, above the {limit} byte limit of one commit")]
    TooLarge {
        /// Its size, serialized.
        size: usize,
        /// [`crate::MAX_DOCUMENT_BYTES`].
        limit: usize,
    },
    /// The conflict is not open any more.
    #[error("conflict already resolved")]
    AlreadyResolved,
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }
}
