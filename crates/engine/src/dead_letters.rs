//! Dead letters: listing them, automatic retries with capped exponential backoff, and an
//! operator's retry or discard.
//!
//! A letter is `pending` when stored; an automatic retry that fails makes it `retrying` until
//! the next is due (`SYNC_RETRY_DELAY`, doubling), and `exhausted` after
//! `SYNC_RETRY_ATTEMPTS` of them, when it waits for an operator. Processing it successfully
//! makes it `resolved`; an operator may also discard it.
//!
//! A retry processes the stored record again with this build's decoder — what helps after an
//! upgrade that understands an envelope an older build did not. A record that still fails
//! stays pending (the call answers [`Error::Conflict`] with the reason). Processing is the
//! ordinary path, so a retry never applies anything twice: the master skips ship changes it
//! already applied, a replica skips commits at or below its applied CSN. A replica applies a
//! retried commit only when it is the next one due; applying it lets a replica stopped at the
//! gap it left read on.

use offline_sync_storage::{DeadLetter, DeadLetterStatus, MasterBatch, Storage};
use offline_sync_transport::{Batch, Fetched, Record};

use crate::error::{Error, Result};
use crate::inbox::Decoded;
use crate::master::Master;
use crate::node::Core;
use crate::replica::Replica;

/// Dead letters retried per round of [`Core::retry_due`].
const DUE_PER_ROUND: usize = 100;

impl Core {
    /// Retries, with `retry` (the role's own retry), every dead letter whose automatic retry
    /// is due now: a success resolves it; a failure counts an attempt and schedules the next
    /// one with the node's retry schedule, or exhausts the letter once `SYNC_RETRY_ATTEMPTS`
    /// have failed. Returns how many letters were resolved. Stops at the first error that is
    /// not the letter's own (a database or broker out of reach): the next round tries again.
    pub(crate) async fn retry_due<F, Fut>(&self, mut retry: F) -> Result<usize>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = Result<DeadLetter>>,
    {
        let (storage, now_ms) = (self.storage.as_ref(), self.now());
        let (schedule, attempts) = (self.shared.retry, self.shared.dead_letter_attempts);
        let mut resolved = 0;
        for letter in storage.due_dead_letters(now_ms, DUE_PER_ROUND).await? {
            match retry(letter.id).await {
                Ok(_) => resolved += 1,
                Err(Error::Conflict { reason }) => {
                    let delay = schedule.delay(letter.attempts, crate::run::jitter());
                    let next = (letter.attempts + 1 < attempts)
                        .then(|| now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)));
                    let failed = storage.dead_letter_failed(letter.id, next).await?;
                    if failed.status == DeadLetterStatus::Exhausted {
                        tracing::warn!(
                            dead_letter = letter.id,
                            attempts = failed.attempts,
                            %reason,
                            "dead letter exhausted its automatic retries: waiting for an operator"
                        );
                    } else {
                        tracing::debug!(dead_letter = letter.id, %reason, "dead letter retry failed");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(resolved)
    }

    /// Marks a dead letter processed again. The caller holds the writer lock.
    async fn resolved(&self, id: u64) -> Result<DeadLetter> {
        let letter = self
            .storage
            .settle_dead_letter(id, DeadLetterStatus::Resolved, self.now())
            .await?;
        tracing::info!(dead_letter = id, "dead letter processed again");
        Ok(letter)
    }
}

/// A dead letter still waiting and its record as a fetched batch of one.
async fn pending(storage: &dyn Storage, id: u64) -> Result<(DeadLetter, Batch)> {
    let letter = storage.dead_letter(id).await?.ok_or(Error::NotFound)?;
    if !letter.status.is_open() {
        return Err(Error::Conflict {
            reason: format!("dead letter {id} is already {}", letter.status.as_str()),
        });
    }
    let l = &letter.letter;
    let batch = Batch {
        records: vec![Fetched {
            offset: l.offset,
            record: Record {
                key: l.key.clone(),
                value: l.payload.clone(),
            },
        }],
        high_watermark: l.offset + 1,
    };
    Ok((letter, batch))
}

/// Refuses a retry whose record, verified and decoded again exactly as a fetched one, still
/// fails.
fn still_fails(id: u64, decoded: &Decoded) -> Result<()> {
    match decoded.dead_letters.first() {
        Some(still) => Err(Error::Conflict {
            reason: format!("dead letter {id} still fails: {}", still.reason),
        }),
        None => Ok(()),
    }
}

impl Master {
    /// Retries the dead letters whose automatic retry is due; returns how many were resolved.
    pub async fn retry_due_dead_letters(&self) -> Result<usize> {
        self.retry_due(|id| self.retry_dead_letter(id)).await
    }

    /// Processes a waiting dead letter again and marks it resolved.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let (letter, record) = pending(self.storage.as_ref(), id).await?;
        let l = &letter.letter;
        let decoded = self.decode(&l.topic, l.partition, &record, l.offset).await?;
        still_fails(id, &decoded)?;
        let mut batch = MasterBatch {
            sensitive: self.config().sensitive.clone(),
            ..MasterBatch::default()
        };
        // A resync request retried from the dead letters is stale: its ship, hearing nothing,
        // has asked again since.
        let _stale = self.take(decoded, &mut batch);
        self.apply(&batch).await?;
        let _w = self.writer.lock().await;
        self.resolved(id).await
    }
}

impl Replica {
    /// Retries the dead letters whose automatic retry is due; returns how many were resolved.
    pub async fn retry_due_dead_letters(&self) -> Result<usize> {
        self.retry_due(|id| self.retry_dead_letter(id)).await
    }

    /// Processes a waiting dead letter again (with the stored offset unchanged) and marks it
    /// resolved.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let storage = self.storage.as_ref();
        let (letter, record) = pending(storage, id).await?;
        let l = &letter.letter;
        let decoded = self.decode(&l.topic, l.partition, &record, l.offset).await?;
        still_fails(id, &decoded)?;
        let topic = letter.letter.topic.clone();
        let partition = letter.letter.partition;
        let _w = self.writer.lock().await;
        // The offset stays where consumption is: a retry never moves it.
        let next = storage
            .offset(&topic, partition)
            .await?
            .ok_or_else(|| Error::Conflict {
                reason: format!("no stored offset for {topic}/{partition}"),
            })?;
        let mut batch = self.batch(decoded.messages, Vec::new(), &topic, next);
        batch.offset.partition = partition;
        // A commit above the next one due is refused (409): commits are applied gapless.
        let applied = storage.replica_apply(self.ship(), &batch, self.now()).await?;
        if applied.resend > 0 {
            self.wake.notify_one();
        }
        self.unstall(storage.replica_progress().await?.applied_csn);
        self.resolved(id).await
    }
}
