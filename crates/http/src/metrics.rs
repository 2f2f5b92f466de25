//! Gauges that describe stored state, set from the database each time the metrics are
//! scraped (so they are right after a restart, and cost nothing between scrapes), beside the
//! engine's counters. Names follow the seed where it had them.

use std::time::Duration;

use offline_sync_engine::Mode;

use crate::state::{AppState, Node};

/// Longest a scrape waits for the database before rendering what it has.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// Registers the descriptions of the gauges set here.
pub fn describe() {
    use metrics::describe_gauge as d;
    d!("offline_sync_info", "Which node this is (mode, ship_id, version)");
    d!(
        "offline_sync_uptime_seconds",
        metrics::Unit::Seconds,
        "Process uptime"
    );
    d!(
        "offline_sync_link_online",
        "1 when the last call to the broker succeeded"
    );
    d!(
        "offline_sync_replica_stalled",
        "1 while a replica has stopped applying master-updates (a CSN gap, or an offset the broker no longer holds)"
    );
    d!("offline_sync_ships_total", "Ships in the master's registry");
    d!(
        "offline_sync_ships_online",
        "Ships heard from within the offline threshold"
    );
    d!(
        "offline_sync_ship_online",
        "1 when this ship was heard from within the offline threshold"
    );
    d!(
        "offline_sync_ship_lag_csn",
        "Commits the ship has not applied yet (master CSN minus its applied CSN)"
    );
    d!(
        "offline_sync_ship_pending",
        "Changes the ship has not had answered, per its last heartbeat"
    );
    d!(
        "offline_sync_ship_oldest_unacked_seconds",
        metrics::Unit::Seconds,
        "Age of the ship's oldest unanswered change, per its last heartbeat"
    );
    d!("offline_sync_conflicts_open", "Conflicts waiting for an operator");
    d!(
        "offline_sync_last_csn",
        "The last commit sequence number of the master"
    );
    d!(
        "offline_sync_applied_csn",
        "The highest master CSN this replica applied"
    );
    d!(
        "offline_sync_queue_pending",
        "Replica: local changes not yet answered by the master; master: commits not yet published (up to 10000)"
    );
    d!(
        "offline_sync_queue_oldest_unacked_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest local change not yet answered by the master"
    );
    d!("offline_sync_dead_letter_total", "Dead letters by status");
    d!(
        "offline_sync_webhook_pending",
        "Change feed events a webhook has not had yet"
    );
    metrics::describe_counter!(
        "offline_sync_webhook_deliveries_total",
        "Webhook delivery attempts, by outcome (delivered, failed)"
    );
    metrics::describe_counter!(
        "offline_sync_webhook_dropped_total",
        "Change feed events pruned before a webhook had them"
    );
}

/// Sets every gauge from the node and its database. Errors are logged, not answered: the
/// scrape still returns the counters.
pub(crate) async fn refresh(state: &AppState) {
    let info = &state.info;
    let ship_label = match info.mode {
        Mode::Master => "master".to_owned(),
        Mode::Replica => info.ship_id.clone().unwrap_or_default(),
    };
    metrics::gauge!(
        "offline_sync_info",
        "mode" => info.mode.as_str(),
        "ship_id" => ship_label,
        "version" => info.version.clone()
    )
    .set(1.0);
    metrics::gauge!("offline_sync_uptime_seconds").set(info.started.elapsed().as_secs_f64());
    let Ok(node) = state.node() else { return };
    metrics::gauge!("offline_sync_link_online").set(if node.is_online() { 1.0 } else { 0.0 });
    let work = async move { tokio::time::timeout(REFRESH_TIMEOUT, stored(node)).await };
    match state.runtime.spawn(work).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "metrics: stored state not read"),
        Ok(Err(_)) => tracing::warn!("metrics: the database did not answer in time"),
        Err(e) => tracing::warn!(error = %e, "metrics: refresh failed"),
    }
}

fn secs(ms: Option<u64>) -> f64 {
    ms.map_or(0.0, |ms| ms as f64 / 1000.0)
}

async fn stored(node: Node) -> offline_sync_engine::Result<()> {
    let dl = node.dead_letter_counts().await?;
    for (status, n) in [
        ("pending", dl.pending),
        ("retrying", dl.retrying),
        ("exhausted", dl.exhausted),
        ("resolved", dl.resolved),
        ("discarded", dl.discarded),
    ] {
        metrics::gauge!("offline_sync_dead_letter_total", "status" => status).set(n as f64);
    }
    match node {
        Node::Master(m) => {
            let ships = m.ships().await?;
            let last = m.last_csn().await?;
            let open = m
                .count_conflicts(Some(offline_sync_model::ConflictStatus::Open))
                .await?;
            metrics::gauge!("offline_sync_last_csn").set(last as f64);
            metrics::gauge!("offline_sync_conflicts_open").set(open as f64);
            metrics::gauge!("offline_sync_ships_total").set(ships.len() as f64);
            let online = ships.iter().filter(|s| s.online).count();
            metrics::gauge!("offline_sync_ships_online").set(online as f64);
            metrics::gauge!("offline_sync_queue_pending").set(m.unpublished_count().await? as f64);
            for s in ships {
                let id = s.record.ship.as_str().to_owned();
                let lag = last.saturating_sub(s.record.applied_csn);
                metrics::gauge!("offline_sync_ship_online", "ship_id" => id.clone()).set(if s.online {
                    1.0
                } else {
                    0.0
                });
                metrics::gauge!("offline_sync_ship_lag_csn", "ship_id" => id.clone()).set(lag as f64);
                metrics::gauge!("offline_sync_ship_pending", "ship_id" => id.clone())
                    .set(s.record.pending as f64);
                metrics::gauge!("offline_sync_ship_oldest_unacked_seconds", "ship_id" => id)
                    .set(secs(s.record.oldest_unacked_ms));
            }
        }
        Node::Replica(r) => {
            let s = r.status().await?;
            metrics::gauge!("offline_sync_queue_pending").set((s.pending + s.in_flight) as f64);
            metrics::gauge!("offline_sync_queue_oldest_unacked_seconds").set(secs(s.oldest_unacked_age_ms));
            metrics::gauge!("offline_sync_applied_csn").set(s.applied_csn as f64);
            metrics::gauge!("offline_sync_replica_stalled").set(if s.resync_required.is_some() {
                1.0
            } else {
                0.0
            });
        }
    }
    Ok(())
}
