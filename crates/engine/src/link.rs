//! A node's link to the broker as its own calls find it: up or down and since when, and the
//! last error its background steps met, in words an operator can act on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The last error a node's background steps met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError {
    /// When (this node's clock, ms).
    pub at_ms: u64,
    /// The step that failed (`push`, `pull`, `publish`, ...).
    pub step: &'static str,
    /// What went wrong, with its causes.
    pub message: String,
}

/// What a node reports about its link to the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Whether the last call to the broker succeeded.
    pub online: bool,
    /// Since when it is in that state (`None` before the first call).
    pub since_ms: Option<u64>,
    /// The last error of a background step, if any since the node started.
    pub last_error: Option<LinkError>,
}

impl LinkState {
    pub(crate) fn of(link: &Link) -> Self {
        Self {
            online: link.is_online(),
            since_ms: link.since_ms(),
            last_error: link.last_error(),
        }
    }
}

/// Shared by a node's loops and its API.
#[derive(Debug, Default)]
pub(crate) struct Link {
    online: AtomicBool,
    /// When the link last changed state (0: no call to the broker yet).
    since_ms: AtomicU64,
    last_error: Mutex<Option<LinkError>>,
}

impl Link {
    /// Records that a call to the broker at `now_ms` succeeded (`up`) or could not reach it;
    /// returns whether the link changed state.
    pub(crate) fn observe(&self, up: bool, now_ms: u64) -> bool {
        let was = self.online.swap(up, Ordering::SeqCst);
        let first = self
            .since_ms
            .compare_exchange(0, now_ms.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if was != up && !first {
            self.since_ms.store(now_ms.max(1), Ordering::SeqCst);
        }
        was != up
    }

    /// Whether the last call to the broker succeeded.
    pub(crate) fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }

    /// Since when the link is in its state (`None` before the first call to the broker).
    pub(crate) fn since_ms(&self) -> Option<u64> {
        Some(self.since_ms.load(Ordering::SeqCst)).filter(|&t| t > 0)
    }

    /// Keeps `error` of `step` at `now_ms` as the last error.
    pub(crate) fn failed(&self, step: &'static str, error: &(dyn std::error::Error + 'static), now_ms: u64) {
        let message = crate::error::error_chain(error);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(LinkError {
            at_ms: now_ms,
            step,
            message,
        });
    }

    /// The last error kept.
    pub(crate) fn last_error(&self) -> Option<LinkError> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_remembers_since_when_it_is_in_its_state() {
        let link = Link::default();
        assert_eq!(link.since_ms(), None);
        assert!(!link.observe(false, 10), "offline from the start is no change");
        assert_eq!(link.since_ms(), Some(10));
        assert!(!link.observe(false, 20));
        assert_eq!(link.since_ms(), Some(10));
        assert!(link.observe(true, 30));
        assert!(link.is_online());
        assert_eq!(link.since_ms(), Some(30));
        assert!(!link.observe(true, 40));
        assert_eq!(link.since_ms(), Some(30));
    }

    #[test]
    fn the_last_error_keeps_its_causes() {
        let link = Link::default();
        let inner = std::io::Error::other("connection refused");
        let outer = crate::Error::Snapshot {
            reason: "the master did not answer".into(),
            retryable: true,
        };
        link.failed("pull", &outer, 5);
        link.failed("push", &inner, 7);
        let last = link.last_error().unwrap();
        assert_eq!((last.at_ms, last.step), (7, "push"));
        assert_eq!(last.message, "connection refused");
        link.failed("pull", &outer, 9);
        assert!(link.last_error().unwrap().message.contains("did not answer"));
    }
}
