//! The retry schedule: capped exponential backoff with jitter, as a pure function.

use std::time::Duration;

/// Capped exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl RetrySchedule {
    /// The delay before retry number `attempt` (0-based): `initial · 2^attempt`, capped at
    /// `max`, then scaled by a jitter in `[0.5, 1.0]` taken from `jitter` (any value, clamped
    /// to `0..=1`) so that a fleet reconnecting at once does not retry in lockstep.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.max);
        let jitter = if jitter.is_nan() {
            1.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        base.mul_f64(0.5 + jitter / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks `(attempt, jitter, delay)` rows against a schedule from 100 ms up to 1 s.
    #[track_caller]
    fn assert_delays(rows: &[(u32, f64, Duration)]) {
        let s = RetrySchedule {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for &(attempt, jitter, delay) in rows {
            assert_eq!(
                s.delay(attempt, jitter),
                delay,
                "attempt {attempt}, jitter {jitter}"
            );
        }
    }

    #[test]
    fn delays_double_until_the_cap() {
        assert_delays(&[
            (0, 1.0, Duration::from_millis(100)),
            (1, 1.0, Duration::from_millis(200)),
            (3, 1.0, Duration::from_millis(800)),
            (4, 1.0, Duration::from_secs(1)),
            (1_000, 1.0, Duration::from_secs(1)),
        ]);
    }

    #[test]
    fn jitter_scales_between_half_and_full() {
        assert_delays(&[
            (0, 0.0, Duration::from_millis(50)),
            (0, 7.0, Duration::from_millis(100)),
            (0, f64::NAN, Duration::from_millis(100)),
        ]);
    }

    proptest! {
        #[test]
        fn never_above_the_cap(attempt in 0u32..100, jitter in -1.0f64..2.0) {
            let s = RetrySchedule::default();
            prop_assert!(s.delay(attempt, jitter) <= s.max);
        }
    }
}
