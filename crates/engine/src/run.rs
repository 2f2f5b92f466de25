//! Background loops of the engines and their graceful stop.
//!
//! Each loop runs one step at a time (a push, a pull, a publish: each one transaction) and
//! checks for the stop signal between steps, so stopping lets the step in flight finish.
//! Anything not yet acknowledged stays in the database and is redone after a restart.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::master::Master;
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

/// Rest between empty polls when the transport returns at once (a zero poll wait).
const IDLE: Duration = Duration::from_millis(50);

/// Logs a failed step of a node's loop and keeps it as the node's last error.
fn step_failed(link: &crate::link::Link, now_ms: u64, what: &'static str, e: &Error) {
    link.failed(what, e, now_ms);
    if e.is_retryable() {
        tracing::debug!(step = what, error = %e, "will retry");
    } else {
        tracing::warn!(step = what, error = %e, "step failed, will retry");
    }
}

impl Replica {
    /// Starts the pusher, puller and heartbeat loops on the current tokio runtime.
    pub fn start(&self) -> Running {
        let (stop, rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(push_loop(self.clone(), rx.clone())),
            tokio::spawn(pull_loop(self.clone(), rx.clone())),
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
            _ = r.inner.wake.notified() => {}
            _ = tokio::time::sleep(cfg.heartbeat_interval) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() || pause(&mut stop, cfg.debounce).await {
            return;
        }
        if let Err(e) = r.resend_stale().await {
            step_failed(&r.inner.link, r.now(), "resend", &e);
        }
        loop {
            match r.push_once().await {
                Ok(0) => {
                    attempt = 0;
                    break;
                }
                Ok(_) => attempt = 0,
                Err(e) => {
                    step_failed(&r.inner.link, r.now(), "push", &e);
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

async fn pull_loop(r: Replica, mut stop: watch::Receiver<bool>) {
    let cfg = r.config().clone();
    let mut attempt = 0u32;
    while !*stop.borrow() {
        match r.pull_once().await {
            Ok(0) if cfg.poll_wait < IDLE => {
                attempt = 0;
                if pause(&mut stop, IDLE).await {
                    return;
                }
            }
            Ok(_) => attempt = 0,
            Err(e) => {
                step_failed(&r.inner.link, r.now(), "pull", &e);
                let delay = match e {
                    Error::ResyncRequired { .. } | Error::CsnGap { .. } => cfg.retry.max,
                    Error::Snapshot { retryable: false, .. } => cfg.retry.max,
                    _ => cfg.retry.delay(attempt, jitter()),
                };
                if pause(&mut stop, delay).await {
                    return;
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// How often the retention rules run.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

async fn heartbeat_loop(r: Replica, mut stop: watch::Receiver<bool>) {
    let interval = r.config().heartbeat_interval;
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        if let Err(e) = r.heartbeat().await {
            step_failed(&r.inner.link, r.now(), "heartbeat", &e);
        }
        if let Err(e) = r.retry_due_dead_letters().await {
            step_failed(&r.inner.link, r.now(), "dead letters", &e);
        }
        if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            if let Err(e) = r.prune().await {
                step_failed(&r.inner.link, r.now(), "prune", &e);
            }
            pruned = Some(std::time::Instant::now());
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
        let tasks = vec![
            tokio::spawn(master_pull_loop(self.clone(), rx.clone())),
            tokio::spawn(publish_loop(self.clone(), rx)),
        ];
        Running { stop, tasks }
    }
}

async fn master_pull_loop(m: Master, mut stop: watch::Receiver<bool>) {
    let retry = m.config().retry;
    let poll_wait = m.config().poll_wait;
    let mut attempt = 0u32;
    while !*stop.borrow() {
        match m.pull_once().await {
            Ok(0) if poll_wait < IDLE => {
                attempt = 0;
                if pause(&mut stop, IDLE).await {
                    return;
                }
            }
            Ok(_) => attempt = 0,
            Err(e) => {
                step_failed(&m.inner.link, m.now(), "apply", &e);
                if pause(&mut stop, retry.delay(attempt, jitter())).await {
                    return;
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn publish_loop(m: Master, mut stop: watch::Receiver<bool>) {
    let retry = m.config().retry;
    let mut attempt = 0u32;
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            if let Err(e) = m.prune().await {
                step_failed(&m.inner.link, m.now(), "prune", &e);
            }
            pruned = Some(std::time::Instant::now());
        }
        if let Err(e) = m.retry_due_dead_letters().await {
            step_failed(&m.inner.link, m.now(), "dead letters", &e);
        }
        match m.publish_all().await {
            Ok(_) => attempt = 0,
            Err(e) => {
                step_failed(&m.inner.link, m.now(), "publish", &e);
                if pause(&mut stop, retry.delay(attempt, jitter())).await {
                    return;
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        }
        tokio::select! {
            _ = m.inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
