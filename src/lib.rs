#![doc = include_str!("../README.md")]
//!
//! This facade re-exports the layers: [`model`] (pure domain), [`transport`] (the transport
//! trait and its in-memory implementation), [`storage`] (the storage trait and its sea-orm
//! implementation), [`kafka`] (the transport over Kafka) and [`engine`] (the master and
//! replica engines).

pub use offline_sync_engine as engine;
pub use offline_sync_kafka as kafka;
pub use offline_sync_model as model;
pub use offline_sync_storage as storage;
pub use offline_sync_transport as transport;
