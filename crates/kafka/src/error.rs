//! The Kafka crate's own errors: a setting refused, and TLS files that cannot be used. Both
//! name what is wrong in one line, and never carry a secret. Errors of calls to the broker are
//! the transport's ([`offline_sync_transport::Error`]), sorted from rskafka's by variant.

use std::path::PathBuf;

/// A setting with a value this crate refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    /// The variable, as the plugin named it (`KAFKA_SASL_MECHANISM`).
    pub setting: &'static str,
    /// What is wrong and which values are accepted.
    pub message: String,
}

impl SettingError {
    pub(crate) fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

/// Why the TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("cannot use {what} {}: {reason}", path.display())]
    File {
        /// What the file should hold (`CA file`, `client certificate`, `client key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong with it.
        reason: String,
    },
    /// The CA file holds no certificate.
    #[error("no certificate in CA file {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the configuration (protocol versions, a client key not matching its
    /// certificate).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}
