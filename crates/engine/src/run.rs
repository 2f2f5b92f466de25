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

/// Logs a failed step of a node's loop and keeps it as the node's last error.
fn step_failed(core: &Core, what: &'static str, e: &Error) {
    core.link.failed(what, e, core.now());
    if e.is_retryable() {
        tracing::debug!(step = what, error = %e, "will retry");
    } else {
        tracing::warn!(step = what, error = %e, "step failed, will retry");
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
                step_failed(core, "pull", &e);
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
        let (stop, rx) = watch::channel(false);
        let r = self.clone();
        let pulls = rx.clone();
        let puller = async move {
            let retry = r.config().retry;
            let backoff = |e: &Error, attempt| match e {
                Error::ResyncRequired { .. } | Error::CsnGap { .. } => retry.max,
                Error::Snapshot { retryable: false, .. } => retry.max,
                _ => retry.delay(attempt, jitter()),
            };
            pull_loop(&r, pulls, r.config().poll_wait, || r.pull_once(), backoff).await;
        };
        let tasks = vec![
            tokio::spawn(push_loop(self.clone(), rx.clone())),
            tokio::spawn(puller),
            tokio::spawn(heartbeat_loop(self.clone(), rx)),
        ];
        Running { stop, tasks }
    }
}

async fn push_loop(r: Replica, mut stop: watch::Receiver<bool>) {
    let cfg = r.config().clone();
    let mut attempt = 0u32;
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
        if let Err(e) = r.resend_stale().await {
            step_failed(&r, "resend", &e);
        }
        loop {
            match r.push_once().await {
                Ok(0) => {
                    attempt = 0;
                    break;
                }
                Ok(_) => attempt = 0,
                Err(e) => {
                    step_failed(&r, "push", &e);
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
    loop {
        if let Err(e) = r.heartbeat().await {
            step_failed(&r, "heartbeat", &e);
        }
        if let Err(e) = r.retry_due_dead_letters().await {
            step_failed(&r, "dead letters", &e);
        }
        if prune_due(&mut pruned)
            && let Err(e) = r.prune().await
        {
            step_failed(&r, "prune", &e);
        }
        if pause(&mut stop, interval).await {
            return;
        }
    }
}

impl Master {
    /// Starts the puller and publisher loops on the current tokio runtime.
    pub fn start(&self) -> Running {
        let (stop, rx) = watch::channel(false);
        let m = self.clone();
        let pulls = rx.clone();
        let puller = async move {
            let retry = m.config().retry;
            let backoff = |_: &Error, attempt| retry.delay(attempt, jitter());
            pull_loop(&m, pulls, m.config().poll_wait, || m.pull_once(), backoff).await;
        };
        let tasks = vec![tokio::spawn(puller), tokio::spawn(publish_loop(self.clone(), rx))];
        Running { stop, tasks }
    }
}

async fn publish_loop(m: Master, mut stop: watch::Receiver<bool>) {
    let retry = m.config().retry;
    let mut attempt = 0u32;
    let mut pruned = None;
    loop {
        if prune_due(&mut pruned)
            && let Err(e) = m.prune().await
        {
            step_failed(&m, "prune", &e);
        }
        if let Err(e) = m.retry_due_dead_letters().await {
            step_failed(&m, "dead letters", &e);
        }
        match m.publish_all().await {
            Ok(_) => attempt = 0,
            Err(e) => {
                step_failed(&m, "publish", &e);
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
