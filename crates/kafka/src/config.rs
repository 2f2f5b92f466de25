//! Settings of the Kafka transport. Debug output never shows the SASL password.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::SettingError;

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
    /// How long a topic's partition count is trusted before it is read from the broker
    /// again, so partitions added to a topic are read and written too (as librdkafka's
    /// `topic.metadata.refresh.interval.ms`).
    pub metadata_max_age: Duration,
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
            metadata_max_age: Duration::from_secs(60),
        }
    }
}

impl KafkaConfig {
    /// Builds the settings from the plugin's variables, looked up with `get` (the binaries
    /// pass the environment; this library never reads it): `KAFKA_BROKERS` (comma-separated,
    /// default `localhost:9092`), `KAFKA_SSL_ENABLED` (`true`/`false`), `KAFKA_SSL_CA_FILE`,
    /// `KAFKA_SASL_MECHANISM` (`plain`, `scram-sha-256`, `scram-sha-512`),
    /// `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, and `KAFKA_COMPRESSION` (`zstd` default,
    /// `none`, `gzip`, `lz4`, `snappy`). An invalid value is refused with one line naming the
    /// setting and the accepted values.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let brokers: Vec<String> = get("KAFKA_BROKERS")
            .unwrap_or_else(|| "localhost:9092".to_owned())
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_owned)
            .collect();
        if brokers.is_empty() || brokers.iter().any(|b| !b.contains(':') || b.contains("://")) {
            return Err(SettingError::new(
                "KAFKA_BROKERS",
                "expected comma-separated host:port pairs",
            ));
        }
        let mut cfg = KafkaConfig::new(brokers);
        if let Some(c) = get("KAFKA_COMPRESSION") {
            cfg.compression = Compression::parse(&c).ok_or_else(|| {
                SettingError::new(
                    "KAFKA_COMPRESSION",
                    format!("{c:?} is not one of none, gzip, lz4, snappy, zstd"),
                )
            })?;
        }
        let ssl = match get("KAFKA_SSL_ENABLED")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("" | "false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => {
                return Err(SettingError::new(
                    "KAFKA_SSL_ENABLED",
                    format!("{other:?} is not true or false"),
                ));
            }
        };
        let ca_file = get("KAFKA_SSL_CA_FILE")
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        if ca_file.is_some() && !ssl {
            return Err(SettingError::new(
                "KAFKA_SSL_CA_FILE",
                "set, but KAFKA_SSL_ENABLED is not true",
            ));
        }
        if ssl {
            cfg.tls = Some(TlsSettings {
                ca_file,
                client_cert: None,
            });
        }
        if let Some(m) = get("KAFKA_SASL_MECHANISM").filter(|m| !m.is_empty()) {
            let mechanism = SaslMechanism::parse(&m).ok_or_else(|| {
                SettingError::new(
                    "KAFKA_SASL_MECHANISM",
                    format!("{m:?} is not one of plain, scram-sha-256, scram-sha-512"),
                )
            })?;
            let username = get("KAFKA_SASL_USERNAME")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    SettingError::new("KAFKA_SASL_USERNAME", "required with KAFKA_SASL_MECHANISM")
                })?;
            let password = get("KAFKA_SASL_PASSWORD")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    SettingError::new("KAFKA_SASL_PASSWORD", "required with KAFKA_SASL_MECHANISM")
                })?;
            cfg.sasl = Some(SaslSettings {
                mechanism,
                username,
                password,
            });
        }
        Ok(cfg)
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

    fn settings(pairs: &[(&str, &str)]) -> Result<KafkaConfig, String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        KafkaConfig::from_settings(|k| map.get(k).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_seed_variables_configure_tls_and_sasl() {
        let cfg = settings(&[
            ("KAFKA_BROKERS", "b1:9092, b2:9093"),
            ("KAFKA_SSL_ENABLED", "true"),
            ("KAFKA_SSL_CA_FILE", "/etc/ca.pem"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
            ("KAFKA_SASL_USERNAME", "ship"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
        ])
        .unwrap();
        assert_eq!(cfg.brokers, vec!["b1:9092".to_owned(), "b2:9093".to_owned()]);
        assert_eq!(cfg.tls.unwrap().ca_file, Some(PathBuf::from("/etc/ca.pem")));
        let sasl = cfg.sasl.unwrap();
        assert_eq!(
            (sasl.mechanism, sasl.username.as_str()),
            (SaslMechanism::ScramSha512, "ship")
        );
        assert_eq!(cfg.compression, Compression::Zstd);
        let plain = settings(&[]).unwrap();
        assert_eq!(plain.brokers, vec!["localhost:9092".to_owned()]);
        assert!(plain.tls.is_none() && plain.sasl.is_none());
    }

    #[test]
    fn bad_settings_name_the_setting_and_the_accepted_values() {
        let err = settings(&[("KAFKA_SASL_MECHANISM", "gssapi")]).unwrap_err();
        assert!(
            err.starts_with("KAFKA_SASL_MECHANISM:") && err.contains("scram-sha-256"),
            "{err}"
        );
        let err = settings(&[("KAFKA_SASL_MECHANISM", "plain"), ("KAFKA_SASL_USERNAME", "u")]).unwrap_err();
        assert!(err.starts_with("KAFKA_SASL_PASSWORD:"), "{err}");
        for (name, bad) in [
            ("KAFKA_SSL_ENABLED", "maybe"),
            ("KAFKA_BROKERS", "tcp://x:1"),
            ("KAFKA_COMPRESSION", "brotli"),
            ("KAFKA_SSL_CA_FILE", "/ca.pem"),
        ] {
            let err = settings(&[(name, bad)]).unwrap_err();
            assert!(err.starts_with(&format!("{name}:")), "{err}");
        }
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
