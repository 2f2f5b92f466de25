//! What the engines count, through the `metrics` facade (the binary installs the exporter),
//! and the message counts the health report shows.
//!
//! Counters and the apply histogram are recorded here as things happen; gauges that describe
//! stored state (queues, ships, conflicts, dead letters) are set from the database by whoever
//! renders the metrics, so they are right after a restart too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `offline_sync_messages_total{status}`: records read from the broker, by outcome
/// (`processed` or `failed`, a dead letter).
pub const MESSAGES_TOTAL: &str = "offline_sync_messages_total";
/// `offline_sync_rejected_total{reason}`: records refused before anything in them was
/// believed (unsigned, a wrong or unknown key, a sender the topic does not allow, an
/// impossible claim, a content type not synced, ...), each kept as a dead letter.
pub const REJECTED_TOTAL: &str = "offline_sync_rejected_total";
/// `offline_sync_transport_sent_bytes_total`: envelope bytes handed to the broker, before
/// batch compression.
pub const SENT_BYTES_TOTAL: &str = "offline_sync_transport_sent_bytes_total";
/// `offline_sync_transport_received_bytes_total`: envelope bytes read from the broker, after
/// decompression.
pub const RECEIVED_BYTES_TOTAL: &str = "offline_sync_transport_received_bytes_total";
/// `offline_sync_apply_duration_seconds`: time to apply one fetched batch in its database
/// transaction.
pub const APPLY_DURATION_SECONDS: &str = "offline_sync_apply_duration_seconds";
/// Histogram buckets of [`APPLY_DURATION_SECONDS`], in seconds.
pub const APPLY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `offline_sync_csn_gaps_total`: times a replica found a CSN missing on `master-updates` and
/// stopped applying before it.
pub const CSN_GAPS_TOTAL: &str = "offline_sync_csn_gaps_total";

/// `offline_sync_resync_active`: 1 while a replica resyncs from the master's state (or needs
/// to), else 0.
pub const RESYNC_ACTIVE: &str = "offline_sync_resync_active";
/// `offline_sync_resync_documents{kind}`: documents of the running or last resync, `received`
/// and `total` (as the master counted them at its start).
pub const RESYNC_DOCUMENTS: &str = "offline_sync_resync_documents";
/// `offline_sync_resync_bytes`: bytes of the running or last resync's pages on the link.
pub const RESYNC_BYTES: &str = "offline_sync_resync_bytes";

/// Describes metrics to the installed recorder, one per line: `kind NAME [in Unit]: "text";`.
macro_rules! describe_metrics {
    (@counter $($args:tt)+) => { metrics::describe_counter!($($args)+) };
    (@gauge $($args:tt)+) => { metrics::describe_gauge!($($args)+) };
    (@histogram $($args:tt)+) => { metrics::describe_histogram!($($args)+) };
    ($($kind:ident $name:ident $(in $unit:ident)?: $text:literal;)+) => {
        $(describe_metrics!(@$kind $name, $(metrics::Unit::$unit,)? $text);)+
    };
}

/// Registers the descriptions of the engine's metrics with the installed recorder.
pub fn describe() {
    describe_metrics! {
        counter MESSAGES_TOTAL: "Records read from the broker, by outcome";
        counter REJECTED_TOTAL:
            "Records refused before anything in them was believed, by reason (each one a dead letter)";
        counter SENT_BYTES_TOTAL in Bytes: "Envelope bytes handed to the broker, before batch compression";
        counter RECEIVED_BYTES_TOTAL in Bytes: "Envelope bytes read from the broker";
        counter CSN_GAPS_TOTAL:
            "Times a replica found a CSN missing on master-updates and stopped applying before it";
        gauge RESYNC_ACTIVE: "1 while a replica resyncs from the master's state or needs to";
        gauge RESYNC_DOCUMENTS: "Documents of the running or last resync: received and total";
        gauge RESYNC_BYTES in Bytes: "Bytes of the running or last resync's pages on the link";
        histogram APPLY_DURATION_SECONDS in Seconds:
            "Time to apply one fetched batch in its database transaction";
    }
}

/// Counts one CSN gap found.
pub(crate) fn csn_gap() {
    metrics::counter!(CSN_GAPS_TOTAL).increment(1);
}

/// Shows where a resync stands.
pub(crate) fn resync(state: &offline_sync_storage::ResyncState) {
    metrics::gauge!(RESYNC_ACTIVE).set(if state.active() { 1.0 } else { 0.0 });
    metrics::gauge!(RESYNC_DOCUMENTS, "kind" => "received").set(state.received as f64);
    metrics::gauge!(RESYNC_DOCUMENTS, "kind" => "total").set(state.total.unwrap_or(0) as f64);
    metrics::gauge!(RESYNC_BYTES).set(state.bytes as f64);
}

/// Counts one refused record.
pub(crate) fn rejected(reason: &'static str) {
    metrics::counter!(REJECTED_TOTAL, "reason" => reason).increment(1);
}

/// Records read since the node started, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Valid envelopes applied (or skipped as already applied).
    pub processed: u64,
    /// Records kept as dead letters.
    pub failed: u64,
}

/// The counts behind [`MessageCounts`], shared by a node's loops.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    processed: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    /// Counts one applied batch: its records, their bytes and how long the apply took.
    pub(crate) fn applied(&self, processed: usize, failed: usize, bytes: usize, took: Duration) {
        let (processed, failed) = (processed as u64, failed as u64);
        self.processed.fetch_add(processed, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        metrics::counter!(MESSAGES_TOTAL, "status" => "processed").increment(processed);
        metrics::counter!(MESSAGES_TOTAL, "status" => "failed").increment(failed);
        metrics::counter!(RECEIVED_BYTES_TOTAL).increment(bytes as u64);
        metrics::histogram!(APPLY_DURATION_SECONDS).record(took.as_secs_f64());
    }

    /// Counts envelope bytes the broker accepted.
    pub(crate) fn sent(&self, bytes: usize) {
        metrics::counter!(SENT_BYTES_TOTAL).increment(bytes as u64);
    }

    pub(crate) fn counts(&self) -> MessageCounts {
        MessageCounts {
            processed: self.processed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_batches_add_up() {
        let s = Stats::default();
        s.applied(3, 1, 100, Duration::from_millis(2));
        s.applied(2, 0, 50, Duration::from_millis(1));
        assert_eq!(
            s.counts(),
            MessageCounts {
                processed: 5,
                failed: 1
            }
        );
    }
}
