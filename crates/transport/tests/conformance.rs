//! The transport conformance suite, run against [`MemoryTransport`] and against a
//! [`FaultyTransport`] without faults wrapping one.

use std::sync::Arc;

use offline_sync_transport::{FaultyTransport, MemoryTransport, Transport, conformance};

/// The suite, and the checks that cut a memory transport's topics behind the transport under
/// test, over the transport `$over` makes of a memory transport.
macro_rules! suite_over_memory {
    ($over:expr, $label:literal) => {
        offline_sync_transport::transport_conformance_suite!(async || {
            let transport: Arc<dyn Transport> = Arc::new($over(&MemoryTransport::new()));
            transport
        });

        #[tokio::test]
        async fn check_fetch_below_earliest_after_truncation() {
            let memory = MemoryTransport::new();
            let prefix = conformance::unique_prefix(concat!($label, "-truncation"));
            conformance::check_fetch_below_earliest_after_truncation(
                &$over(&memory),
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
            let prefix = conformance::unique_prefix(concat!($label, "-recreate"));
            let recreate = async |topic: &str| memory.recreate(topic).expect("recreate");
            conformance::check_fetch_above_latest_after_recreate(&$over(&memory), &prefix, recreate).await;
        }
    };
}

mod memory {
    use super::*;

    suite_over_memory!(MemoryTransport::clone, "memory");
}

mod faulty_without_faults {
    use super::*;

    /// A faulty transport whose control is dropped: it can never inject anything.
    fn wrap(memory: &MemoryTransport) -> FaultyTransport {
        FaultyTransport::new(Arc::new(memory.clone())).0
    }

    suite_over_memory!(wrap, "faulty");
}
