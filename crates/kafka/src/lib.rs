//! [`KafkaTransport`]: the production [`Transport`](offline_sync_transport::Transport) of
//! offline-sync, over Kafka with rskafka. The only crate of the workspace that names rskafka.
//!
//! Offsets are not committed to Kafka (rskafka has no consumer groups): the engine stores
//! them in its own database with the effects of the records. Every network call has a
//! timeout; a failed call drops the connection so the next one reconnects, and the engine's
//! loops retry with capped exponential backoff and jitter. A stored offset below the earliest
//! offset the broker holds, or above its latest, is reported as
//! [`Error::OffsetOutOfRange`](offline_sync_transport::Error::OffsetOutOfRange) by comparing
//! with the broker's earliest offset and high watermark, never by waiting for an
//! OFFSET_OUT_OF_RANGE error (some brokers never send one).

mod config;
mod error;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod transport;

pub use config::{Compression, KafkaConfig, SaslMechanism, SaslSettings, TlsSettings};
pub use error::{SettingError, TlsError};
pub use transport::KafkaTransport;
