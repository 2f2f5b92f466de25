//! [`FaultyTransport`]: a wrapper that injects the faults of a satellite link, steered at run
//! time through a [`FaultControl`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{Batch, Error, FetchLimit, OffsetRange, Result, Transport};

/// A [`Transport`] that passes every call to an inner transport, except when its
/// [`FaultControl`] says to fail it, delay it, lose its acknowledgement or repeat it.
///
/// Faults are decided per call, in this order: the delay ([`FaultControl::set_delay`]) is
/// slept first; then an offline link ([`FaultControl::set_offline`]) fails the call; then a
/// pending [`FaultControl::fail_next`] does; then the random mode may. A call that got past
/// those reaches the inner transport; a publish may then in addition be appended twice and/or
/// have its acknowledgement lost. Failed calls fail with [`Error::Unavailable`], as a real
/// link would, so callers cannot tell injected faults from real ones.
#[derive(Clone, Debug)]
pub struct FaultyTransport {
    inner: Arc<dyn Transport>,
    control: FaultControl,
}

/// The handle that steers the faults of a [`FaultyTransport`] and counts those injected.
///
/// Cheap to clone; all clones steer the same transport. Setting a fault takes effect on the
/// next call, including on calls already sleeping in a delay.
#[derive(Clone, Debug, Default)]
pub struct FaultControl {
    state: Arc<Mutex<FaultState>>,
}

/// How many faults a [`FaultyTransport`] has injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls refused because the link was offline.
    pub offline: u64,
    /// Calls failed as a dropped connection ([`FaultControl::fail_next`] or the random mode)
    /// before they reached the inner transport.
    pub failed: u64,
    /// Publishes the inner transport appended but reported as failed.
    pub lost_acks: u64,
    /// Publishes the inner transport appended a second time.
    pub duplicates: u64,
    /// Publishes acknowledged but never appended.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct FaultState {
    offline: bool,
    fail_next: u64,
    lost_acks: u64,
    duplicates: u64,
    dropped: u64,
    delay: Duration,
    random: Option<RandomFaults>,
    injected: FaultCounts,
}

/// The seeded random mode.
#[derive(Debug)]
struct RandomFaults {
    rng: StdRng,
    p_fail: f64,
    p_lost_ack: f64,
    p_duplicate: f64,
}

/// What happens to one publish that reached the inner transport.
#[derive(Clone, Copy, Debug, Default)]
struct PublishFaults {
    lose_ack: bool,
    duplicate: bool,
}

impl FaultyTransport {
    /// Wraps `inner`, with no faults yet; the returned [`FaultControl`] steers them.
    pub fn new(inner: Arc<dyn Transport>) -> (Self, FaultControl) {
        let control = FaultControl::default();
        (
            Self {
                inner,
                control: control.clone(),
            },
            control,
        )
    }

    /// Another handle on the faults of this transport.
    pub fn control(&self) -> FaultControl {
        self.control.clone()
    }

    /// The wrapped transport (reaching it directly bypasses every fault).
    pub fn inner(&self) -> &Arc<dyn Transport> {
        &self.inner
    }

    /// Sleeps the delay, then decides whether the call fails before reaching the inner
    /// transport.
    async fn enter(&self, op: &'static str, topic: &str) -> Result<()> {
        let delay = self.control.lock().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.control.admit(op, topic)
    }
}

impl FaultControl {
    /// Takes the link down (`true`: every call fails with [`Error::Unavailable`] without
    /// reaching the inner transport) or brings it back up (`false`).
    pub fn set_offline(&self, offline: bool) {
        self.lock().offline = offline;
    }

    /// Whether the link is down.
    pub fn is_offline(&self) -> bool {
        self.lock().offline
    }

    /// Makes the next `n` calls (of any method) fail with [`Error::Unavailable`] without
    /// reaching the inner transport. Replaces what is left of an earlier `fail_next`.
    pub fn fail_next(&self, n: u64) {
        self.lock().fail_next = n;
    }

    /// Makes the next `n` publishes that reach the inner transport lose their acknowledgement:
    /// the inner transport appends the batch, then the call fails with
    /// [`Error::Unavailable`] — the client believes it failed while the broker has it. A
    /// publish the inner transport itself refuses uses one up all the same.
    pub fn lose_publish_acks(&self, n: u64) {
        self.lock().lost_acks = n;
    }

    /// Makes the next `n` publishes that reach the inner transport be appended twice, as a
    /// producer's retry would; the caller sees the offsets of the first copy.
    pub fn duplicate_publishes(&self, n: u64) {
        self.lock().duplicates = n;
    }

    /// Makes the next `n` publishes succeed without reaching the inner transport, as a broker
    /// that loses records it acknowledged (an unclean leader election): the caller sees
    /// partition 0 and offset -1, and nobody ever reads the records.
    pub fn drop_publishes(&self, n: u64) {
        self.lock().dropped = n;
    }

    /// Makes every call sleep `delay` before anything else (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Turns on the random mode, on top of the other faults: every call fails with
    /// probability `p_fail`, and a publish that reaches the inner transport loses its
    /// acknowledgement with probability `p_lost_ack` and is appended twice with probability
    /// `p_duplicate`. Probabilities are clamped to `0.0..=1.0`.
    ///
    /// The draws come from a [`StdRng`] seeded with `seed`, in call order, so the same
    /// sequence of calls under the same seed meets the same faults: a failing simulation is
    /// replayed from its seed (as long as its calls are issued in a deterministic order).
    pub fn set_random(&self, seed: u64, p_fail: f64, p_lost_ack: f64, p_duplicate: f64) {
        self.lock().random = Some(RandomFaults {
            rng: StdRng::seed_from_u64(seed),
            p_fail: probability(p_fail),
            p_lost_ack: probability(p_lost_ack),
            p_duplicate: probability(p_duplicate),
        });
    }

    /// Removes every fault: online, no pending failures, lost acknowledgements or duplicates,
    /// no delay, no random mode. The counters are kept: they record what happened.
    pub fn clear(&self) {
        let mut state = self.lock();
        let injected = state.injected;
        *state = FaultState {
            injected,
            ..FaultState::default()
        };
    }

    /// The faults injected so far.
    pub fn injected(&self) -> FaultCounts {
        self.lock().injected
    }

    /// Nothing panics while holding the lock, so a poisoned one is taken over.
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides whether a call fails before reaching the inner transport, and counts it.
    fn admit(&self, op: &'static str, topic: &str) -> Result<()> {
        let mut state = self.lock();
        if state.offline {
            state.injected.offline += 1;
            tracing::debug!(op, topic, fault = "offline", "injected transport fault");
            return Err(Error::unavailable("link offline"));
        }
        let fail = if state.fail_next > 0 {
            state.fail_next -= 1;
            true
        } else {
            state.random.as_mut().is_some_and(|r| draw(&mut r.rng, r.p_fail))
        };
        if fail {
            state.injected.failed += 1;
            tracing::debug!(
                op,
                topic,
                fault = "connection dropped",
                "injected transport fault"
            );
            return Err(Error::unavailable("connection dropped"));
        }
        Ok(())
    }

    /// Decides what happens to a publish that reaches the inner transport.
    fn publish_faults(&self) -> PublishFaults {
        let mut state = self.lock();
        let state = &mut *state;
        let mut faults = PublishFaults::default();
        if let Some(r) = &mut state.random {
            // Both drawn every time, so the sequence of draws depends only on the calls.
            faults.lose_ack = draw(&mut r.rng, r.p_lost_ack);
            faults.duplicate = draw(&mut r.rng, r.p_duplicate);
        }
        if state.lost_acks > 0 {
            state.lost_acks -= 1;
            faults.lose_ack = true;
        }
        if state.duplicates > 0 {
            state.duplicates -= 1;
            faults.duplicate = true;
        }
        faults
    }

    /// Whether this publish is dropped, and counts it.
    fn take_drop(&self) -> bool {
        let mut state = self.lock();
        if state.dropped == 0 {
            return false;
        }
        state.dropped -= 1;
        state.injected.dropped += 1;
        true
    }

    fn count(&self, bump: impl FnOnce(&mut FaultCounts)) {
        bump(&mut self.lock().injected);
    }
}

#[async_trait]
impl Transport for FaultyTransport {
    async fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        self.enter("ensure_topic", topic).await?;
        self.inner.ensure_topic(topic, partitions).await
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        self.enter("partitions", topic).await?;
        self.inner.partitions(topic).await
    }

    async fn publish(&self, topic: &str, key: Option<&[u8]>, values: Vec<Vec<u8>>) -> Result<(u32, i64)> {
        self.enter("publish", topic).await?;
        if self.control.take_drop() {
            tracing::debug!(topic, fault = "dropped", "injected transport fault");
            return Ok((0, -1));
        }
        let faults = self.control.publish_faults();
        let copy = faults.duplicate.then(|| values.clone());
        let accepted = self.inner.publish(topic, key, values).await?;
        if let Some(copy) = copy {
            match self.inner.publish(topic, key, copy).await {
                Ok(_) => {
                    self.control.count(|c| c.duplicates += 1);
                    tracing::debug!(topic, fault = "duplicate", "injected transport fault");
                }
                Err(error) => {
                    tracing::debug!(topic, %error, "duplicate publish refused by inner transport");
                }
            }
        }
        if faults.lose_ack {
            self.control.count(|c| c.lost_acks += 1);
            tracing::debug!(topic, fault = "lost ack", "injected transport fault");
            return Err(Error::unavailable(
                "connection dropped before the acknowledgement",
            ));
        }
        Ok(accepted)
    }

    async fn fetch(&self, topic: &str, partition: u32, offset: i64, limit: FetchLimit) -> Result<Batch> {
        self.enter("fetch", topic).await?;
        self.inner.fetch(topic, partition, offset, limit).await
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<OffsetRange> {
        self.enter("offsets", topic).await?;
        self.inner.offsets(topic, partition).await
    }
}

/// One draw: true with probability `p`. Always consumes exactly one value of `rng`.
fn draw(rng: &mut StdRng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// `p` clamped to `0.0..=1.0` (NaN: 0).
fn probability(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md: allowed in tests; no workspace clippy.toml says so yet
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::MemoryTransport;

    const NO_WAIT: Duration = Duration::ZERO;

    /// A faulty transport over a memory transport holding topic `t` (one partition); the
    /// memory transport is returned to look behind the faults.
    async fn setup() -> (FaultyTransport, FaultControl, MemoryTransport) {
        let memory = MemoryTransport::new();
        memory.ensure_topic("t", 1).await.unwrap();
        let (faulty, control) = FaultyTransport::new(Arc::new(memory.clone()));
        (faulty, control, memory)
    }

    fn one(value: &str) -> Vec<Vec<u8>> {
        vec![value.as_bytes().to_vec()]
    }

    async fn values_in(memory: &MemoryTransport) -> Vec<String> {
        let batch = memory
            .fetch("t", 0, 0, FetchLimit::new(10_000, NO_WAIT))
            .await
            .unwrap();
        batch
            .records
            .into_iter()
            .map(|f| String::from_utf8(f.record.value).unwrap())
            .collect()
    }

    /// The faults are used up: a publish of `b` is appended as it is, alone on the partition,
    /// and `injected` counts what was injected before.
    async fn used_up(
        t: &FaultyTransport,
        control: &FaultControl,
        memory: &MemoryTransport,
        injected: FaultCounts,
    ) {
        assert_eq!(t.publish("t", None, one("b")).await.unwrap(), (0, 0));
        assert_eq!(values_in(memory).await, ["b"]);
        assert_eq!(control.injected(), injected);
    }

    /// The counters with the faults `set` sets, every other one at 0.
    fn counts(set: impl FnOnce(&mut FaultCounts)) -> FaultCounts {
        let mut counts = FaultCounts::default();
        set(&mut counts);
        counts
    }

    fn is_unavailable(result: &Result<impl std::fmt::Debug>, reason: &str) -> bool {
        match result {
            Err(e @ Error::Unavailable { reason: r }) => r == reason && e.is_retryable(),
            _ => false,
        }
    }

    #[tokio::test]
    async fn without_faults_every_call_passes_through() {
        let (t, control, memory) = setup().await;
        t.ensure_topic("u", 2).await.unwrap();
        assert_eq!(t.partitions("u").await.unwrap(), 2);
        assert_eq!(t.publish("t", None, one("a")).await.unwrap(), (0, 0));
        assert_eq!(
            t.fetch("t", 0, 0, FetchLimit::new(10, NO_WAIT))
                .await
                .unwrap()
                .records
                .len(),
            1
        );
        assert_eq!(t.offsets("t", 0).await.unwrap(), OffsetRange::new(0, 1));
        assert!(matches!(
            t.partitions("nope").await,
            Err(Error::UnknownTopic { .. })
        ));
        assert_eq!(values_in(&memory).await, ["a"]);
        assert_eq!(control.injected(), FaultCounts::default());
    }

    #[tokio::test]
    async fn offline_fails_every_call_without_touching_the_inner_transport() {
        let (t, control, memory) = setup().await;
        control.set_offline(true);
        assert!(control.is_offline());
        assert!(is_unavailable(&t.ensure_topic("u", 1).await, "link offline"));
        assert!(is_unavailable(&t.partitions("t").await, "link offline"));
        assert!(is_unavailable(
            &t.publish("t", None, one("a")).await,
            "link offline"
        ));
        assert!(is_unavailable(
            &t.fetch("t", 0, 0, FetchLimit::new(10, NO_WAIT)).await,
            "link offline"
        ));
        assert!(is_unavailable(&t.offsets("t", 0).await, "link offline"));
        assert!(matches!(
            memory.partitions("u").await,
            Err(Error::UnknownTopic { .. })
        ));
        assert!(values_in(&memory).await.is_empty());

        control.set_offline(false);
        used_up(&t, &control, &memory, counts(|c| c.offline = 5)).await;
    }

    #[tokio::test]
    async fn fail_next_fails_exactly_n_calls() {
        let (t, control, memory) = setup().await;
        control.fail_next(2);
        assert!(is_unavailable(
            &t.publish("t", None, one("a")).await,
            "connection dropped"
        ));
        assert!(is_unavailable(&t.offsets("t", 0).await, "connection dropped"));
        used_up(&t, &control, &memory, counts(|c| c.failed = 2)).await;
    }

    #[tokio::test]
    async fn dropped_publishes_succeed_but_are_never_appended() {
        let (t, control, memory) = setup().await;
        control.drop_publishes(1);
        assert_eq!(t.publish("t", None, one("a")).await.unwrap(), (0, -1));
        used_up(&t, &control, &memory, counts(|c| c.dropped = 1)).await;
    }

    #[tokio::test]
    async fn lost_acks_are_appended_but_reported_as_failed() {
        let (t, control, memory) = setup().await;
        control.lose_publish_acks(1);
        let lost = t.publish("t", None, vec![b"a".to_vec(), b"b".to_vec()]).await;
        assert!(is_unavailable(
            &lost,
            "connection dropped before the acknowledgement"
        ));
        assert_eq!(values_in(&memory).await, ["a", "b"]);
        // The retry a client would make: now the batch is there twice.
        assert_eq!(
            t.publish("t", None, vec![b"a".to_vec(), b"b".to_vec()])
                .await
                .unwrap(),
            (0, 2)
        );
        assert_eq!(values_in(&memory).await, ["a", "b", "a", "b"]);
        assert_eq!(control.injected(), counts(|c| c.lost_acks = 1));
    }

    #[tokio::test]
    async fn a_refused_publish_loses_no_ack() {
        let (t, control, _memory) = setup().await;
        control.lose_publish_acks(1);
        assert!(matches!(
            t.publish("nope", None, one("a")).await,
            Err(Error::UnknownTopic { .. })
        ));
        assert_eq!(control.injected(), FaultCounts::default());
    }

    #[tokio::test]
    async fn duplicates_are_appended_twice() {
        let (t, control, memory) = setup().await;
        control.duplicate_publishes(1);
        assert_eq!(
            t.publish("t", Some(b"k"), vec![b"a".to_vec(), b"b".to_vec()])
                .await
                .unwrap(),
            (0, 0)
        );
        assert_eq!(t.publish("t", Some(b"k"), one("c")).await.unwrap(), (0, 4));
        assert_eq!(values_in(&memory).await, ["a", "b", "a", "b", "c"]);
        let batch = memory
            .fetch("t", 0, 2, FetchLimit::new(2, NO_WAIT))
            .await
            .unwrap();
        assert!(
            batch
                .records
                .iter()
                .all(|f| f.record.key.as_deref() == Some(&b"k"[..]))
        );
        assert_eq!(control.injected(), counts(|c| c.duplicates = 1));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_applies_to_every_call() {
        let (t, control, _memory) = setup().await;
        control.set_delay(Duration::from_secs(3));
        let start = Instant::now();
        t.publish("t", None, one("a")).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        t.offsets("t", 0).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        // An offline link is discovered after the delay too, like a timeout.
        control.set_offline(true);
        assert!(t.fetch("t", 0, 0, FetchLimit::new(1, NO_WAIT)).await.is_err());
        assert_eq!(start.elapsed(), Duration::from_secs(9));

        control.set_delay(Duration::ZERO);
        control.set_offline(false);
        t.offsets("t", 0).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(9));
    }

    /// Runs 300 publishes under the random mode; returns what each call returned, what the
    /// broker holds and the counters.
    async fn random_run(seed: u64) -> (Vec<Option<i64>>, Vec<String>, FaultCounts) {
        let (t, control, memory) = setup().await;
        control.set_random(seed, 0.2, 0.1, 0.1);
        let mut outcomes = Vec::new();
        for i in 0..300 {
            let result = t.publish("t", None, one(&format!("v{i}"))).await;
            outcomes.push(result.ok().map(|(_, offset)| offset));
        }
        (outcomes, values_in(&memory).await, control.injected())
    }

    #[tokio::test]
    async fn random_mode_is_reproducible_from_the_seed() {
        let first = random_run(42).await;
        assert_eq!(first, random_run(42).await);
        assert_ne!(first, random_run(43).await);

        let (outcomes, held, counts) = first;
        assert!(
            counts.failed > 0 && counts.lost_acks > 0 && counts.duplicates > 0,
            "{counts:?}"
        );
        assert_eq!(counts.offline, 0);
        let failed = outcomes.iter().filter(|o| o.is_none()).count();
        assert_eq!(failed as u64, counts.failed + counts.lost_acks);
        // Everything that reached the broker is held once, plus once more per duplicate.
        assert_eq!(held.len() as u64, 300 - counts.failed + counts.duplicates);
    }

    #[tokio::test]
    async fn random_mode_extremes() {
        let (t, control, memory) = setup().await;
        control.set_random(7, 0.0, 0.0, 0.0);
        for _ in 0..50 {
            t.publish("t", None, one("x")).await.unwrap();
        }
        assert_eq!(control.injected(), FaultCounts::default());
        control.set_random(7, 1.0, 0.0, 0.0);
        for _ in 0..50 {
            assert!(is_unavailable(&t.offsets("t", 0).await, "connection dropped"));
        }
        // Out of range probabilities are clamped.
        control.set_random(7, f64::NAN, 5.0, -1.0);
        assert!(t.publish("t", None, one("y")).await.is_err());
        assert_eq!(values_in(&memory).await.len(), 51);
        assert_eq!(
            control.injected(),
            FaultCounts {
                failed: 50,
                lost_acks: 1,
                ..FaultCounts::default()
            }
        );
    }

    #[tokio::test]
    async fn clear_removes_every_fault_and_keeps_the_counters() {
        let (t, control, memory) = setup().await;
        control.fail_next(1);
        assert!(t.offsets("t", 0).await.is_err());
        control.set_offline(true);
        control.fail_next(3);
        control.lose_publish_acks(3);
        control.duplicate_publishes(3);
        control.drop_publishes(3);
        control.set_delay(Duration::from_secs(3600));
        control.set_random(1, 1.0, 1.0, 1.0);
        control.clear();
        assert!(!control.is_offline());
        assert_eq!(t.publish("t", None, one("a")).await.unwrap(), (0, 0));
        assert_eq!(values_in(&memory).await, ["a"]);
        assert_eq!(control.injected(), counts(|c| c.failed = 1));
    }

    #[tokio::test]
    async fn every_handle_steers_the_same_faults() {
        let (t, control, _memory) = setup().await;
        let other = t.control();
        let copy = t.clone();
        other.set_offline(true);
        assert!(control.is_offline());
        assert!(copy.offsets("t", 0).await.is_err());
        assert_eq!(control.injected().offline, 1);
        assert_eq!(t.inner().partitions("t").await.unwrap(), 1);
    }
}
