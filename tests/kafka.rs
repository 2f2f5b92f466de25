//! The end-to-end scenarios and a shortened simulation over a real Kafka-protocol broker
//! (tansu, one per test), with a PostgreSQL master and SQLite replicas.

#![allow(clippy::unwrap_used)]

mod support;

mod postgres_master_over_kafka {
    crate::offline_sync_scenarios!(crate::support::Setup {
        db: crate::support::MasterDb::Postgres,
        broker: crate::support::Broker::Kafka,
    });
}
