//! Errors of a transport, sorted into the kinds the engine branches on.

/// Result with the transport's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a transport call failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The link or the broker is down, or the call timed out; try again later.
    #[error("transport unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The requested offset is not held by the partition: below `earliest` (retention removed
    /// it) or above `latest` (the topic was deleted and recreated). The reader must resync.
    #[error("offset {offset} of {topic}/{partition} is outside {earliest}..{latest}")]
    OffsetOutOfRange {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The offset asked for.
        offset: i64,
        /// Earliest held offset.
        earliest: i64,
        /// Latest offset.
        latest: i64,
    },
    /// The broker refused this client: authentication, authorisation or TLS failed. Not
    /// retryable until the settings change.
    #[error("refused by the broker: {reason}")]
    Refused {
        /// What the broker or the TLS layer said.
        reason: String,
    },
    /// The broker refused a batch as larger than it takes (Kafka's `message.max.bytes`):
    /// not an outage; a smaller batch may pass.
    #[error("too large for the broker: {reason}")]
    TooLarge {
        /// What the broker said.
        reason: String,
    },
    /// The request itself is wrong (unknown partition, empty batch).
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// A shorthand for [`Error::Unavailable`].
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable {
            reason: reason.into(),
        }
    }
}
