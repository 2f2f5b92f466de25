//! Dead letters: listing them, and an operator's retry or discard.
//!
//! A retry processes the stored record again with this build's decoder — what helps after an
//! upgrade that understands an envelope an older build did not. A record that still fails
//! stays pending (the call answers [`Error::Conflict`] with the reason). Processing is the
//! ordinary path, so a retry never applies anything twice: the master skips ship changes it
//! already applied, a replica skips commits at or below its applied CSN. A replica applies a
//! retried commit only when it is the next one due; applying it lets a replica stopped at the
//! gap it left read on.

use offline_sync_storage::{DeadLetter, DeadLetterCounts, DeadLetterStatus, MasterBatch, Page, Storage};
use offline_sync_transport::{Batch, Fetched, Record};

use crate::error::{Error, Result};
use crate::inbox::Decoded;
use crate::master::Master;
use crate::replica::Replica;

/// A pending dead letter and its record as a fetched batch of one.
async fn pending(storage: &dyn Storage, id: u64) -> Result<(DeadLetter, Batch)> {
    let letter = storage.dead_letter(id).await?.ok_or(Error::NotFound)?;
    if letter.status != DeadLetterStatus::Pending {
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
    /// Dead letters, newest first, optionally of one status, and how many match in all.
    pub async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        Ok(self.inner.storage.dead_letters(status, page).await?)
    }

    /// One dead letter.
    pub async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        Ok(self.inner.storage.dead_letter(id).await?)
    }

    /// How many dead letters are in each status.
    pub async fn dead_letter_counts(&self) -> Result<DeadLetterCounts> {
        Ok(self.inner.storage.dead_letter_counts().await?)
    }

    /// Drops a pending dead letter for good (it stays listed as discarded until retention).
    pub async fn discard_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let _w = self.inner.writer.lock().await;
        Ok(self
            .inner
            .storage
            .settle_dead_letter(id, DeadLetterStatus::Discarded, self.now())
            .await?)
    }

    /// Processes a pending dead letter again and marks it retried.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let (letter, record) = pending(self.inner.storage.as_ref(), id).await?;
        let l = &letter.letter;
        let decoded = self.decode(&l.topic, l.partition, &record, l.offset).await?;
        still_fails(id, &decoded)?;
        let mut batch = MasterBatch {
            sensitive: self.inner.cfg.sensitive.clone(),
            ..MasterBatch::default()
        };
        self.take(decoded, &mut batch);
        self.apply(&batch).await?;
        let _w = self.inner.writer.lock().await;
        let letter = self
            .inner
            .storage
            .settle_dead_letter(id, DeadLetterStatus::Retried, self.now())
            .await?;
        tracing::info!(dead_letter = id, "dead letter processed again");
        Ok(letter)
    }
}

impl Replica {
    /// Dead letters, newest first, optionally of one status, and how many match in all.
    pub async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        Ok(self.inner.storage.dead_letters(status, page).await?)
    }

    /// One dead letter.
    pub async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        Ok(self.inner.storage.dead_letter(id).await?)
    }

    /// How many dead letters are in each status.
    pub async fn dead_letter_counts(&self) -> Result<DeadLetterCounts> {
        Ok(self.inner.storage.dead_letter_counts().await?)
    }

    /// Drops a pending dead letter for good (it stays listed as discarded until retention).
    pub async fn discard_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let _w = self.inner.writer.lock().await;
        Ok(self
            .inner
            .storage
            .settle_dead_letter(id, DeadLetterStatus::Discarded, self.now())
            .await?)
    }

    /// Processes a pending dead letter again (with the stored offset unchanged) and marks it
    /// retried.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let storage = self.inner.storage.as_ref();
        let (letter, record) = pending(storage, id).await?;
        let l = &letter.letter;
        let decoded = self.decode(&l.topic, l.partition, &record, l.offset).await?;
        still_fails(id, &decoded)?;
        let topic = letter.letter.topic.clone();
        let partition = letter.letter.partition;
        let _w = self.inner.writer.lock().await;
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
            self.inner.wake.notify_one();
        }
        self.unstall(storage.replica_progress().await?.applied_csn);
        let letter = storage
            .settle_dead_letter(id, DeadLetterStatus::Retried, self.now())
            .await?;
        tracing::info!(dead_letter = id, "dead letter processed again");
        Ok(letter)
    }
}
