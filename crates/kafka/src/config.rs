//! Settings of the Kafka transport. Debug output never shows the SASL password.

use std::path::PathBuf;
use std::time::Duration;

/// Record batch compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
    /// LZ4.
    Lz4,
    /// Snappy (avoid with tansu's `sqlite://` storage, which cannot read it back).
    Snappy,
    /// Zstandard (the default).
    #[default]
    Zstd,
}

impl Compression {
    /// Parses `none`, `gzip`, `lz4`, `snappy` or `zstd`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => Self::None,
            "gzip" => Self::Gzip,
            "lz4" => Self::Lz4,
            "snappy" => Self::Snappy,
            "zstd" => Self::Zstd,
            _ => return None,
        })
    }
}

/// SASL mechanisms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN (send only over TLS).
    Plain,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
}

impl SaslMechanism {
    /// Parses `plain`, `scram-sha-256` or `scram-sha-512` (the seed's `KAFKA_SASL_MECHANISM`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "plain" => Self::Plain,
            "scram-sha-256" => Self::ScramSha256,
            "scram-sha-512" => Self::ScramSha512,
            _ => return None,
        })
    }
}

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// Mechanism.
    pub mechanism: SaslMechanism,
    /// User.
    pub username: String,
    /// Password; never printed.
    pub password: String,
}

impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the CA(s) to trust; without it, the public web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key for client authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Settings of a [`crate::KafkaTransport`].
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` (`KAFKA_BROKERS`).
    pub brokers: Vec<String>,
    /// Client id shown to the broker.
    pub client_id: String,
    /// Batch compression (zstd by default).
    pub compression: Compression,
    /// Replication factor of topics this transport creates.
    pub replication_factor: i16,
    /// Longest a single network call (connect, metadata, produce, fetch, list offsets) may
    /// take, beyond the fetch's own wait.
    pub request_timeout: Duration,
    /// TLS, when enabled (`KAFKA_SSL_ENABLED`).
    pub tls: Option<TlsSettings>,
    /// SASL, when configured (`KAFKA_SASL_*`).
    pub sasl: Option<SaslSettings>,
    /// Largest fetch response, in bytes.
    pub max_fetch_bytes: i32,
}

impl KafkaConfig {
    /// Defaults for the given brokers.
    pub fn new(brokers: Vec<String>) -> Self {
        Self {
            brokers,
            client_id: "offline-sync".into(),
            compression: Compression::default(),
            replication_factor: 1,
            request_timeout: Duration::from_secs(15),
            tls: None,
            sasl: None,
            max_fetch_bytes: 8 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_the_password() {
        let mut cfg = KafkaConfig::new(vec!["b:9092".into()]);
        cfg.sasl = Some(SaslSettings {
            mechanism: SaslMechanism::ScramSha512,
            username: "ship".into(),
            password: "hunter2-secret".into(),
        });
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2-secret"));
        assert!(debug.contains("<redacted>") && debug.contains("ship"));
    }

    #[test]
    fn settings_parse_the_seed_values() {
        assert_eq!(
            SaslMechanism::parse("SCRAM-SHA-256"),
            Some(SaslMechanism::ScramSha256)
        );
        assert_eq!(SaslMechanism::parse("plain"), Some(SaslMechanism::Plain));
        assert_eq!(SaslMechanism::parse("gssapi"), None);
        assert_eq!(Compression::parse("LZ4"), Some(Compression::Lz4));
        assert_eq!(Compression::parse("brotli"), None);
    }
}
