//! The transport conformance suite, run against [`MemoryTransport`] and against a
//! [`FaultyTransport`] without faults wrapping one.

use std::sync::Arc;

use offline_sync_transport::{FaultyTransport, MemoryTransport, Transport, conformance};

mod memory {
    use super::*;

    async fn transport() -> Arc<dyn Transport> {
        Arc::new(MemoryTransport::new())
    }

    offline_sync_transport::transport_conformance_suite!(transport);

    #[tokio::test]
    async fn check_fetch_below_earliest_after_truncation() {
        let memory = MemoryTransport::new();
        let prefix = conformance::unique_prefix("truncation");
        conformance::check_fetch_below_earliest_after_truncation(
            &memory,
            &prefix,
            async |topic: &str, partition, before| {
                memory.truncate(topic, partition, before).expect("truncate");
            },
        )
        .await;
    }

    #[tokio::test]
    async fn check_fetch_above_latest_after_recreate() {
        let memory = MemoryTransport::new();
        let prefix = conformance::unique_prefix("recreate");
        conformance::check_fetch_above_latest_after_recreate(&memory, &prefix, async |topic: &str| {
            memory.recreate(topic).expect("recreate")
        })
        .await;
    }
}

mod faulty_without_faults {
    use super::*;

    /// A faulty transport whose control is dropped: it can never inject anything.
    fn wrap(memory: &MemoryTransport) -> FaultyTransport {
        FaultyTransport::new(Arc::new(memory.clone())).0
    }

    offline_sync_transport::transport_conformance_suite!(async || {
        Arc::new(wrap(&MemoryTransport::new()))
    });

    #[tokio::test]
    async fn check_fetch_below_earliest_after_truncation() {
        let memory = MemoryTransport::new();
        let prefix = conformance::unique_prefix("faulty-truncation");
        conformance::check_fetch_below_earliest_after_truncation(
            &wrap(&memory),
            &prefix,
            async |topic: &str, partition, before| {
                memory.truncate(topic, partition, before).expect("truncate");
            },
        )
        .await;
    }

    #[tokio::test]
    async fn check_fetch_above_latest_after_recreate() {
        let memory = MemoryTransport::new();
        let prefix = conformance::unique_prefix("faulty-recreate");
        conformance::check_fetch_above_latest_after_recreate(&wrap(&memory), &prefix, async |topic: &str| {
            memory.recreate(topic).expect("recreate")
        })
        .await;
    }
}
