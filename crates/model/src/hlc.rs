//! Hybrid logical clock: orders `last-writer-wins` decisions without trusting any wall clock
//! to be right, only to move roughly forward.

use serde::{Deserialize, Serialize};

/// A hybrid logical timestamp: wall milliseconds plus a counter for events in the same
/// millisecond (or while the wall clock lags a timestamp already seen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (the largest seen, not necessarily this node's).
    pub ms: u64,
    /// Logical counter within `ms`.
    pub c: u32,
}

/// How far ahead of the local wall clock a remote timestamp may be and still be observed.
pub const MAX_DRIFT_MS: u64 = 24 * 3600 * 1000;

/// The clock of one node. Pure: the caller passes the wall time in.
#[derive(Clone, Copy, Debug, Default)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next timestamp for a local event at wall time `wall_ms`; strictly greater than
    /// every timestamp this clock issued or observed.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        self.last = if wall_ms > self.last.ms {
            Hlc { ms: wall_ms, c: 0 }
        } else {
            Hlc {
                ms: self.last.ms,
                c: self.last.c.saturating_add(1),
            }
        };
        self.last
    }

    /// Takes a remote timestamp into account so later local events order after it. A
    /// timestamp more than [`MAX_DRIFT_MS`] ahead of the local wall time `wall_ms` is ignored:
    /// one ship's runaway clock must not drag every node's clock into the future.
    pub fn observe(&mut self, remote: Hlc, wall_ms: u64) {
        if remote > self.last && remote.ms <= wall_ms.saturating_add(MAX_DRIFT_MS) {
            self.last = remote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ticks_follow_the_wall_clock_when_it_moves_forward() {
        let mut c = HlcClock::new();
        assert_eq!(c.tick(10), Hlc { ms: 10, c: 0 });
        assert_eq!(c.tick(20), Hlc { ms: 20, c: 0 });
    }

    #[test]
    fn a_clock_going_backwards_still_yields_increasing_stamps() {
        let mut c = HlcClock::new();
        let a = c.tick(100);
        let b = c.tick(50);
        assert!(b > a);
        assert_eq!(b, Hlc { ms: 100, c: 1 });
    }

    #[test]
    fn observing_a_remote_stamp_orders_later_events_after_it() {
        let mut c = HlcClock::new();
        c.observe(Hlc { ms: 1_000, c: 5 }, 10);
        assert!(c.tick(10) > Hlc { ms: 1_000, c: 5 });
    }

    #[test]
    fn a_runaway_remote_clock_is_ignored() {
        let mut c = HlcClock::new();
        c.observe(Hlc { ms: u64::MAX, c: 0 }, 10);
        assert_eq!(c.tick(10), Hlc { ms: 10, c: 0 });
    }

    proptest! {
        #[test]
        fn ticks_are_strictly_increasing(walls in proptest::collection::vec(0u64..1_000, 1..50)) {
            let mut c = HlcClock::new();
            let mut prev = None;
            for w in walls {
                let t = c.tick(w);
                if let Some(p) = prev { prop_assert!(t > p); }
                prev = Some(t);
            }
        }
    }
}
