//! Background loops of the engines and their graceful stop.
//!
//! Each loop runs one step at a time (a push, a pull, a publish: each one transaction) and
//! checks for the stop signal between steps, so stopping lets the step in flight finish.
//! Anything not yet acknowledged stays in the database and is redone after a restart.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::master::Master;
use crate::node::Core;
use crate::replica::Replica;

/// Background loops of a started node.
#[derive(Debug)]
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Spawns each `$loop` of a node on the current tokio runtime, given its own handle on `$node`
/// and on the stop signal, and returns them as one [`Running`].
macro_rules! start {
    ($node:ident: $($loop:ident),+) => {{
        let (stop, rx) = watch::channel(false);
        let tasks = vec![$(tokio::spawn($loop($node.clone(), rx.clone()))),+];
        Running { stop, tasks }
    }};
}

impl Running {
    /// Asks every loop to stop after its current step and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "engine task ended abnormally");
            }
        }
    }
}

impl Running {
    /// Asks every loop to stop after its current step and waits up to `limit` for them; a
    /// step still running then (a network call waiting on an unreachable broker) is dropped.
    /// Dropping a step is safe: each is one database transaction, and what it had not
    /// committed is redone after a restart. Returns whether every loop stopped by itself.
    pub async fn shutdown_within(self, limit: Duration) -> bool {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + limit;
        let mut clean = true;
        for mut t in self.tasks {
            match tokio::time::timeout_at(deadline, &mut t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "engine task ended abnormally");
                    clean = false;
                }
                Err(_) => {
                    t.abort();
                    let _ = t.await;
                    clean = false;
                }
            }
        }
        clean
    }
}

/// Sleeps for `d` unless asked to stop first; returns whether to stop.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// A jitter in `0..1` for the retry schedule; it need not be random, only differ between
/// ships reconnecting at the same moment.
pub(crate) fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos) / 1e9
}

/// Rest between empty polls when the transport returns at once (a zero poll wait). A poll wait
/// of its own, however short, is the rest: a 10 ms wait is 10 ms of latency, not 50.
const IDLE: Duration = Duration::from_millis(50);

/// Failures in a row of a step, on a database that is busy or unreachable, logged only at
/// debug level; from then on they are warnings. A broker out of reach is the normal state of a
/// ship at sea and stays at debug (the link's state change is logged on its own), but a
/// database that stays locked by another process, or away, is something an operator must hear
/// about.
const QUIET_RETRIES: u32 = 3;

/// How a failed step of a node's loop is logged, after `attempt` failures in a row before it.
fn failure_level(e: &Error, attempt: u32) -> tracing::Level {
    match e {
        Error::Storage(_) if e.is_retryable() && attempt < QUIET_RETRIES => tracing::Level::DEBUG,
        Error::Storage(_) => tracing::Level::WARN,
        _ if e.is_retryable() => tracing::Level::DEBUG,
        _ => tracing::Level::WARN,
    }
}

/// Logs a failed step of a node's loop, the `attempt`-th failure in a row, and keeps it as the
/// node's last error.
fn step_failed(core: &Core, what: &'static str, e: &Error, attempt: u32) {
    core.link.failed(what, e, core.now());
    if failure_level(e, attempt) == tracing::Level::DEBUG {
        tracing::debug!(step = what, error = %e, attempt, "will retry");
    } else {
        tracing::warn!(step = what, error = %e, attempt, "step failed, will retry");
    }
}

/// Logs the outcome of a step that runs again on its own schedule, counting its failures in a
/// row in `streak`.
fn tally<T>(core: &Core, what: &'static str, outcome: Result<T>, streak: &mut u32) {
    match outcome {
        Ok(_) => *streak = 0,
        Err(e) => {
            step_failed(core, what, &e, *streak);
            *streak = streak.saturating_add(1);
        }
    }
}

/// Runs a pull `step` until asked to stop: an empty answer from a transport that returns at
/// once rests [`IDLE`]; a failure is recorded on `core` and waited out for `backoff` of it
/// and the attempt.
async fn pull_loop<F, Fut>(
    core: &Core,
    mut stop: watch::Receiver<bool>,
    poll_wait: Duration,
    mut step: F,
    backoff: impl Fn(&Error, u32) -> Duration,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let mut attempt = 0u32;
    while !*stop.borrow() {
        match step().await {
            Ok(0) if poll_wait.is_zero() => {
                attempt = 0;
                if pause(&mut stop, IDLE).await {
                    return;
                }
            }
            Ok(_) => attempt = 0,
            Err(e) => {
                step_failed(core, "pull", &e, attempt);
                if pause(&mut stop, backoff(&e, attempt)).await {
                    return;
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

impl Replica {
    /// Starts the pusher, puller and heartbeat loops on the current tokio runtime.
    pub fn start(&self) -> Running {
        start!(self: push_loop, replica_pull_loop, heartbeat_loop)
    }
}

/// Pulls `master-updates`. A resync that must be asked for, a missing commit and a snapshot
/// that cannot come wait the longest pause: retrying sooner changes nothing.
async fn replica_pull_loop(r: Replica, stop: watch::Receiver<bool>) {
    let retry = r.config().retry;
    let backoff = |e: &Error, attempt| match e {
        Error::ResyncRequired { .. } | Error::CsnGap { .. } => retry.max,
        Error::Snapshot { retryable: false, .. } => retry.max,
        _ => retry.delay(attempt, jitter()),
    };
    pull_loop(&r, stop, r.config().poll_wait, || r.pull_once(), backoff).await;
}

async fn push_loop(r: Replica, mut stop: watch::Receiver<bool>) {
    let cfg = r.config().clone();
    let mut attempt = 0u32;
    let mut resends = 0u32;
    loop {
        // Wait for a local write (or a periodic check for stale, unanswered changes), then
        // let the burst settle: a change written just before the periodic check waits its
        // debounce too.
        tokio::select! {
            _ = r.wake.notified() => {}
            _ = tokio::time::sleep(cfg.heartbeat_interval) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() || pause(&mut stop, cfg.debounce).await {
            return;
        }
        tally(&r, "resend", r.resend_stale().await, &mut resends);
        loop {
            match r.push_once().await {
                Ok(0) => {
                    attempt = 0;
                    break;
                }
                Ok(_) => attempt = 0,
                Err(e) => {
                    step_failed(&r, "push", &e, attempt);
                    if pause(&mut stop, cfg.retry.delay(attempt, jitter())).await {
                        return;
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// How often the retention rules run.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Whether the retention rules are due (at the first call, then every [`PRUNE_EVERY`] on
/// tokio's clock); marks them run when they are.
fn prune_due(last: &mut Option<Instant>) -> bool {
    let due = last.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
    if due {
        *last = Some(Instant::now());
    }
    due
}

async fn heartbeat_loop(r: Replica, mut stop: watch::Receiver<bool>) {
    let interval = r.config().heartbeat_interval;
    let mut pruned = None;
    let [mut beats, mut retries, mut prunes] = [0u32; 3];
    loop {
        tally(&r, "heartbeat", r.heartbeat().await, &mut beats);
        tally(&r, "dead letters", r.retry_due_dead_letters().await, &mut retries);
        if prune_due(&mut pruned) {
            tally(&r, "prune", r.prune().await, &mut prunes);
        }
        if pause(&mut stop, interval).await {
            return;
        }
    }
}

impl Master {
    /// Starts the puller and publisher loops on the current tokio runtime.
    pub fn start(&self) -> Running {
        start!(self: master_pull_loop, publish_loop)
    }
}

/// Pulls `ship-updates`; the publisher loop publishes what each batch committed.
async fn master_pull_loop(m: Master, stop: watch::Receiver<bool>) {
    let retry = m.config().retry;
    let backoff = |_: &Error, attempt| retry.delay(attempt, jitter());
    pull_loop(&m, stop, m.config().poll_wait, || m.apply_once(), backoff).await;
}

async fn publish_loop(m: Master, mut stop: watch::Receiver<bool>) {
    let retry = m.config().retry;
    let mut attempt = 0u32;
    let mut pruned = None;
    let [mut prunes, mut retries] = [0u32; 2];
    loop {
        if prune_due(&mut pruned) {
            tally(&m, "prune", m.prune().await, &mut prunes);
        }
        tally(&m, "dead letters", m.retry_due_dead_letters().await, &mut retries);
        match m.publish_all().await {
            Ok(_) => attempt = 0,
            Err(e) => {
                step_failed(&m, "publish", &e, attempt);
                if pause(&mut stop, retry.delay(attempt, jitter())).await {
                    return;
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        }
        tokio::select! {
            _ = m.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn a_database_that_stays_busy_is_a_warning_a_broker_out_of_reach_is_not() {
        let busy = Error::Storage(offline_sync_storage::Error::Contended(Box::new(
            std::io::Error::other("database is locked"),
        )));
        let away = Error::Transport(offline_sync_transport::Error::Unavailable {
            reason: "connection refused".into(),
        });
        let broken = Error::Storage(offline_sync_storage::Error::Internal {
            context: "query failed".into(),
            source: None,
        });
        assert_eq!(
            failure_level(&busy, 0),
            Level::DEBUG,
            "a moment's contention is normal"
        );
        assert_eq!(failure_level(&busy, QUIET_RETRIES - 1), Level::DEBUG);
        assert_eq!(failure_level(&busy, QUIET_RETRIES), Level::WARN);
        assert_eq!(failure_level(&away, 1_000), Level::DEBUG);
        assert_eq!(failure_level(&broken, 0), Level::WARN);
    }
}
