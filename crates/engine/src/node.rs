//! The node core: what the master and a replica share. Storage, transport, clocks, the writer
//! lock, the link to the broker, topics, statistics, keys, the document, audit and
//! dead-letter API and pruning live here once; [`crate::Master`] and [`crate::Replica`] add
//! only their role's logic on top and dereference to their core.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use offline_sync_model::{
    ContentType, Csn, DocumentId, Fields, Hlc, HlcClock, LocalWrite, MASTER_SIGNER, RetrySchedule, ShipId,
};
use offline_sync_storage::{
    AuditEntry, DeadLetter, DeadLetterCounts, DeadLetterStatus, DocumentQuery, FeedPage, NewAuditEntry, Page,
    Storage, StoredDoc,
};
use offline_sync_transport::{Batch, Transport};
use tokio::sync::{Mutex, Notify};

use crate::clock::Clock;
use crate::config::Topics;
use crate::error::{Error, Result};
use crate::inbox::{Decoded, Inbox, Reader};
use crate::keys::{KeyAdmin, Keyring, SigningConfig};
use crate::link::{Link, LinkState};
use crate::metrics::{MessageCounts, Stats};

/// Which side of the protocol a core serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Master,
    Replica(ShipId),
}

impl Role {
    /// The name this node signs its records with.
    fn signer(&self) -> &str {
        match self {
            Role::Master => MASTER_SIGNER,
            Role::Replica(ship) => ship.as_str(),
        }
    }
}

/// The settings both roles have, copied from the role's own settings (see [`shared!`]).
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) topics: Topics,
    pub(crate) ship_partitions: u32,
    pub(crate) content_types: Option<BTreeSet<ContentType>>,
    pub(crate) signing: SigningConfig,
    pub(crate) retry: RetrySchedule,
    pub(crate) dead_letter_attempts: u32,
    pub(crate) retention: Duration,
    pub(crate) audit_retention: Duration,
}

/// The [`Shared`] settings of a `MasterConfig` or a `ReplicaConfig`.
macro_rules! shared {
    ($cfg:expr) => {
        crate::node::Shared {
            topics: $cfg.topics.clone(),
            ship_partitions: $cfg.ship_partitions,
            content_types: $cfg.content_types.clone(),
            signing: $cfg.signing.clone(),
            retry: $cfg.retry,
            dead_letter_attempts: $cfg.dead_letter_attempts,
            retention: $cfg.retention,
            audit_retention: $cfg.audit_retention,
        }
    };
}
pub(crate) use shared;

/// Declares a role's type (`Master`, `Replica`) as a node: the type, cheap to clone, over an
/// `Inner` of the core, the role's configuration and the role's own `fields` (each starting
/// from its `Default`); it dereferences to its core, and its public constructors build the
/// core with the role's private `role(&cfg)`.
macro_rules! role {
    (
        $(#[$doc:meta])*
        $ty:ident, $what:literal, $cfg:ty,
        { $($(#[$field_doc:meta])* $vis:vis $field:ident: $field_ty:ty),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty {
            pub(crate) inner: std::sync::Arc<Inner>,
        }

        /// The node: its core, its configuration and its role's own state.
        #[derive(Debug)]
        pub(crate) struct Inner {
            core: crate::node::Core,
            pub(crate) cfg: $cfg,
            $($(#[$field_doc])* $vis $field: $field_ty,)*
        }

        impl std::ops::Deref for $ty {
            type Target = crate::node::Core;

            /// The node core: storage, link, documents, audit log and dead letters.
            fn deref(&self) -> &crate::node::Core {
                &self.inner.core
            }
        }

        impl $ty {
            #[doc = concat!($what, " on the system clock.")]
            pub fn new(cfg: $cfg, storage: Arc<dyn Storage>, transport: Arc<dyn Transport>) -> Self {
                Self::with_clock(cfg, storage, transport, Arc::new(crate::clock::SystemClock))
            }

            #[doc = concat!($what, " on the given clock.")]
            pub fn with_clock(
                cfg: $cfg,
                storage: Arc<dyn Storage>,
                transport: Arc<dyn Transport>,
                clock: Arc<dyn crate::clock::Clock>,
            ) -> Self {
                let core = crate::node::Core::new(
                    Self::role(&cfg),
                    crate::node::shared!(cfg),
                    storage,
                    transport,
                    clock,
                );
                Self {
                    inner: std::sync::Arc::new(Inner {
                        core,
                        cfg,
                        $($field: Default::default(),)*
                    }),
                }
            }
        }
    };
}
pub(crate) use role;

/// What every node has, whatever its role.
#[derive(Debug)]
pub struct Core {
    pub(crate) role: Role,
    pub(crate) shared: Shared,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    hlc: std::sync::Mutex<HlcClock>,
    /// Serialises the node's mutating storage calls: on the master, CSN order is commit order
    /// is broadcast order.
    pub(crate) writer: Mutex<()>,
    /// One pull at a time.
    pub(crate) puller: Mutex<()>,
    /// Rung after a local write, a commit, or when the link comes back: there is something to
    /// send.
    pub(crate) wake: Notify,
    pub(crate) link: Link,
    topics_ready: AtomicBool,
    /// This node's signing key and its peers' pinned keys, loaded on first use.
    keys: tokio::sync::OnceCell<Keyring>,
    pub(crate) stats: Stats,
}

impl Core {
    pub(crate) fn new(
        role: Role,
        shared: Shared,
        storage: Arc<dyn Storage>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            role,
            shared,
            storage,
            transport,
            clock,
            hlc: std::sync::Mutex::new(HlcClock::new()),
            writer: Mutex::new(()),
            puller: Mutex::new(()),
            wake: Notify::new(),
            link: Link::default(),
            topics_ready: AtomicBool::new(false),
            keys: tokio::sync::OnceCell::new(),
            stats: Stats::default(),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Now, on this node's clock (ms).
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A hybrid logical time for a change made now.
    pub(crate) fn tick(&self) -> Hlc {
        let now = self.now();
        self.hlc.lock().unwrap_or_else(|e| e.into_inner()).tick(now)
    }

    /// Moves the hybrid logical clock past the times of changes received.
    pub(crate) fn observe_clocks(&self, seen: impl IntoIterator<Item = Hlc>) {
        let now = self.now();
        let mut hlc = self.hlc.lock().unwrap_or_else(|e| e.into_inner());
        for t in seen {
            hlc.observe(t, now);
        }
    }

    /// The keyring, loaded (and this node's key made) on first use.
    pub(crate) async fn keys(&self) -> Result<&Keyring> {
        crate::keys::loaded(
            &self.keys,
            self.storage.as_ref(),
            self.role.signer(),
            &self.shared.signing,
            self.now(),
        )
        .await
    }

    /// This node's signing key and the keys it pinned for its peers, to list, approve and
    /// revoke.
    pub async fn key_admin(&self) -> Result<KeyAdmin<'_>> {
        Ok(KeyAdmin {
            keys: self.keys().await?,
            storage: self.storage.as_ref(),
            writer: &self.writer,
            now_ms: self.now(),
        })
    }

    /// How fetched records are read: verified against the peers' pinned keys and, on the
    /// master, refused when they claim a base above `last_csn`.
    pub(crate) async fn inbox(&self, last_csn: Option<Csn>) -> Result<Inbox<'_>> {
        let reader = match self.role {
            Role::Master => Reader::Master,
            Role::Replica(_) => Reader::Replica,
        };
        Ok(Inbox {
            reader,
            keys: self.keys().await?,
            last_csn,
            now_ms: self.now(),
        })
    }

    /// Verifies and decodes fetched records and keeps the keys first seen in them, under the
    /// writer lock: no commit and no admin decision on a key comes between reading the last
    /// CSN, admitting the senders and keeping their pins. On the master the last CSN is read
    /// after the fetch, so every commit a fetched change can have seen is counted; a replica
    /// refuses commits of types it does not sync.
    pub(crate) async fn decode(
        &self,
        topic: &str,
        partition: u32,
        fetched: &Batch,
        from: i64,
    ) -> Result<Decoded> {
        let _w = self.writer.lock().await;
        let last_csn = match self.role {
            Role::Master => Some(self.storage.last_csn().await?),
            Role::Replica(_) => None,
        };
        self.inbox(last_csn)
            .await?
            .decode_and_pin(self.storage.as_ref(), topic, partition, fetched, from)
            .await
    }

    fn check(&self, ct: &ContentType, fields: Option<&Fields>) -> Result<()> {
        if !crate::config::synced(self.shared.content_types.as_ref(), ct) {
            return Err(Error::NotSynced(ct.clone()));
        }
        crate::config::check_size(fields)
    }

    /// Writes locally under the writer lock, once the content type is synced and the fields fit
    /// one commit: on the master a commit, on a replica a change queued in the outbox with it.
    /// The storage checks `expected` (when given) in the write's own transaction, so a second
    /// process on the same database cannot come between.
    async fn write(&self, write: LocalWrite, expected: Option<Csn>) -> Result<StoredDoc> {
        let fields = match &write {
            LocalWrite::Create { fields, .. } | LocalWrite::Update { fields, .. } => Some(fields),
            LocalWrite::Delete { .. } => None,
        };
        self.check(write.target().0, fields)?;
        let hlc = self.tick();
        let now = self.now();
        // A document's first write is this one; any other keeps the time of its first.
        let created_at_ms = match &write {
            LocalWrite::Create { .. } => now,
            _ => {
                let (ct, id) = write.target();
                let stored = self.storage.document(ct, id).await?;
                stored.map_or(now, |d| d.created_at_ms)
            }
        };
        let _w = self.writer.lock().await;
        let (doc, queued) = match &self.role {
            Role::Master => {
                let (doc, commit) = self.storage.master_write_if(&write, expected, hlc, now).await?;
                if let Some(c) = &commit {
                    tracing::debug!(csn = c.csn, document = %c.id, "master change committed");
                }
                let view = StoredDoc {
                    content_type: doc.content_type,
                    id: doc.id,
                    fields: doc.fields,
                    deleted: doc.deleted,
                    version: doc.version,
                    updated_at_ms: now,
                    created_at_ms,
                };
                (view, commit.is_some())
            }
            Role::Replica(ship) => {
                let written = self
                    .storage
                    .local_write_if(ship, &write, expected, hlc, now)
                    .await?;
                if let Some(seq) = written.seq {
                    tracing::debug!(ship = %ship, seq, "local change queued");
                }
                let doc = written.doc;
                let view = StoredDoc {
                    content_type: doc.content_type,
                    id: doc.id,
                    fields: doc.fields,
                    deleted: doc.deleted,
                    version: doc.base_version,
                    updated_at_ms: now,
                    created_at_ms,
                };
                (view, written.seq.is_some())
            }
        };
        if queued {
            self.wake.notify_one();
        }
        Ok(doc)
    }

    /// Creates a document with a fresh UUIDv7.
    pub async fn create(&self, ct: &ContentType, fields: Fields) -> Result<StoredDoc> {
        self.create_with_id(ct, DocumentId::new_v7(), fields).await
    }

    /// Creates a document with the given id.
    pub async fn create_with_id(
        &self,
        ct: &ContentType,
        id: DocumentId,
        fields: Fields,
    ) -> Result<StoredDoc> {
        let create = LocalWrite::Create {
            content_type: ct.clone(),
            id,
            fields,
        };
        self.write(create, None).await
    }

    /// Sets some fields of a live document.
    pub async fn update(&self, ct: &ContentType, id: DocumentId, fields: Fields) -> Result<StoredDoc> {
        self.update_if(ct, id, fields, None).await
    }

    /// Sets some fields of a live document if its version (on a replica: the master CSN it
    /// last incorporated) is still `expected` (when given); otherwise [`Error::Stale`]. The
    /// check and the write happen under the node's writer lock, so no other write of this
    /// node comes between them.
    pub async fn update_if(
        &self,
        ct: &ContentType,
        id: DocumentId,
        fields: Fields,
        expected: Option<Csn>,
    ) -> Result<StoredDoc> {
        let update = LocalWrite::Update {
            content_type: ct.clone(),
            id,
            fields,
        };
        self.write(update, expected).await
    }

    /// Deletes a live document.
    pub async fn delete(&self, ct: &ContentType, id: DocumentId) -> Result<()> {
        self.delete_if(ct, id, None).await
    }

    /// Deletes a live document if its version is still `expected` (when given).
    pub async fn delete_if(&self, ct: &ContentType, id: DocumentId, expected: Option<Csn>) -> Result<()> {
        let content_type = ct.clone();
        self.write(LocalWrite::Delete { content_type, id }, expected)
            .await
            .map(|_| ())
    }

    /// A live document. Errors: `NotSynced` for a type outside `SYNC_CONTENT_TYPES`.
    pub async fn get(&self, ct: &ContentType, id: DocumentId) -> Result<Option<StoredDoc>> {
        self.check(ct, None)?;
        Ok(self.storage.document(ct, id).await?.filter(|d| !d.deleted))
    }

    /// Live documents of a type, and their total count. Errors: `NotSynced` for a type
    /// outside `SYNC_CONTENT_TYPES`.
    pub async fn list(&self, ct: &ContentType, page: Page) -> Result<(Vec<StoredDoc>, u64)> {
        self.find(ct, &DocumentQuery::default(), page).await
    }

    /// Live documents of a type that `query` shows, in its order (evaluated by the
    /// database), and how many there are in all. Errors: `NotSynced` for a type outside
    /// `SYNC_CONTENT_TYPES`.
    pub async fn find(
        &self,
        ct: &ContentType,
        query: &DocumentQuery,
        page: Page,
    ) -> Result<(Vec<StoredDoc>, u64)> {
        self.check(ct, None)?;
        Ok(self.storage.find_documents(ct, query, page).await?)
    }

    /// Up to `limit` events of the node's change feed after position `after`, oldest first
    /// (see [`offline_sync_storage::CommonStorage::feed`]).
    pub async fn feed(&self, after: u64, limit: usize) -> Result<FeedPage> {
        Ok(self.storage.feed(after, limit).await?)
    }

    /// How far webhook `hook` has delivered the feed (`None` before it was first saved).
    pub async fn webhook_position(&self, hook: &str) -> Result<Option<u64>> {
        Ok(self.storage.webhook_position(hook).await?)
    }

    /// Saves how far webhook `hook` has delivered the feed, under the writer lock.
    pub async fn save_webhook_position(&self, hook: &str, position: u64) -> Result<()> {
        let _w = self.writer.lock().await;
        Ok(self.storage.save_webhook_position(hook, position).await?)
    }

    /// Appends an admin action to the audit log.
    pub async fn audit(&self, entry: &NewAuditEntry) -> Result<()> {
        Ok(self.storage.audit(entry).await?)
    }

    /// The audit log, newest first, and how many entries it holds.
    pub async fn audit_log(&self, page: Page) -> Result<(Vec<AuditEntry>, u64)> {
        Ok(self.storage.audit_log(page).await?)
    }

    /// Checks the database answers; returns how long it took.
    pub async fn ping(&self) -> Result<Duration> {
        Ok(self.storage.ping().await?)
    }

    /// Records read from the topic this node consumes since it started.
    pub fn message_counts(&self) -> MessageCounts {
        self.stats.counts()
    }

    /// Whether the last call to the broker succeeded.
    pub fn is_online(&self) -> bool {
        self.link.is_online()
    }

    /// The link to the broker: up or down since when, and the last error of a background step.
    pub fn link_state(&self) -> LinkState {
        LinkState::of(&self.link)
    }

    /// Records whether a call to the broker reached it; a link back up wakes the sender.
    pub(crate) fn observe_link(&self, up: bool) {
        if !self.link.observe(up, self.now()) {
            return;
        }
        let node = self.role.signer();
        if up {
            tracing::info!(node, "link up: broker reachable");
            self.wake.notify_one();
        } else {
            tracing::warn!(node, "link down: broker unreachable, changes stay queued");
        }
    }

    /// Passes on the result of a call to the broker, recording what it says of the link: an
    /// answer means up, a retryable error down.
    pub(crate) fn broker<T>(&self, r: offline_sync_transport::Result<T>) -> Result<T> {
        match r {
            Ok(v) => {
                self.observe_link(true);
                Ok(v)
            }
            Err(e) => {
                if e.is_retryable() {
                    self.observe_link(false);
                }
                Err(e.into())
            }
        }
    }

    /// Creates the topics this node uses if they are missing, once per process.
    pub(crate) async fn ensure_topics(&self) -> Result<()> {
        if self.topics_ready.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = crate::config::ensure_topics(
            self.transport.as_ref(),
            &self.shared.topics,
            self.shared.ship_partitions,
        )
        .await;
        self.broker(r)?;
        self.topics_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Applies the retention rules of the log tables and the audit log (see `Storage::prune`
    /// and `Storage::prune_audit`) under the writer lock; returns how many rows were deleted.
    pub(crate) async fn prune_logs(&self) -> Result<u64> {
        let _w = self.writer.lock().await;
        crate::config::prune(
            self.storage.as_ref(),
            self.now(),
            self.shared.retention,
            self.shared.audit_retention,
        )
        .await
    }

    /// Dead letters, newest first, optionally of one status, and how many match in all.
    pub async fn dead_letters(
        &self,
        status: Option<DeadLetterStatus>,
        page: Page,
    ) -> Result<(Vec<DeadLetter>, u64)> {
        Ok(self.storage.dead_letters(status, page).await?)
    }

    /// One dead letter.
    pub async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        Ok(self.storage.dead_letter(id).await?)
    }

    /// How many dead letters are in each status.
    pub async fn dead_letter_counts(&self) -> Result<DeadLetterCounts> {
        Ok(self.storage.dead_letter_counts().await?)
    }

    /// Drops a waiting dead letter for good (it stays listed as discarded until retention).
    pub async fn discard_dead_letter(&self, id: u64) -> Result<DeadLetter> {
        let _w = self.writer.lock().await;
        Ok(self
            .storage
            .settle_dead_letter(id, DeadLetterStatus::Discarded, self.now())
            .await?)
    }

    /// Changes per minute from `since_ms` on (see `Storage::changes_per_minute`).
    pub async fn changes_per_minute(&self, since_ms: u64) -> Result<Vec<(u64, u64)>> {
        Ok(self.storage.changes_per_minute(since_ms).await?)
    }
}

/// Runs `step` until it reports nothing done; returns the sum of what it did.
pub(crate) async fn drain<F, Fut>(mut step: F) -> Result<usize>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let mut total = 0;
    loop {
        match step().await? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}
