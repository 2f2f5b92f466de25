//! What every handler shares: the node (once its database is connected), the settings shown
//! in health and metrics, the tokens, and the runtime the engine runs on.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::HttpResponse;
use offline_sync_engine::{Core, DeadLetter, Master, Mode, NewAuditEntry, Page, PeerKey, Replica};
use offline_sync_model::{ContentType, PublicKey};

use crate::auth::{Role, Tokens};
use crate::dto::{self, PageQuery};
use crate::error::{ApiError, Result};

/// Renders the Prometheus text of the installed recorder.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The engine behind the API.
#[derive(Clone, Debug)]
pub enum Node {
    /// The master onshore.
    Master(Master),
    /// A replica (ship).
    Replica(Replica),
}

impl std::ops::Deref for Node {
    type Target = Core;

    /// The core both engines share: documents, audit log, dead letters, keys, the link.
    fn deref(&self) -> &Core {
        match self {
            Node::Master(m) => m,
            Node::Replica(r) => r,
        }
    }
}

impl Node {
    /// Which side this node plays.
    pub fn mode(&self) -> Mode {
        match self {
            Node::Master(_) => Mode::Master,
            Node::Replica(_) => Mode::Replica,
        }
    }

    /// Processes a waiting dead letter again, as the node's role reads its topic.
    pub(crate) async fn retry_dead_letter(&self, id: u64) -> offline_sync_engine::Result<DeadLetter> {
        match self {
            Node::Master(m) => m.retry_dead_letter(id).await,
            Node::Replica(r) => r.retry_dead_letter(id).await,
        }
    }

    /// This node's public key and the keys it pinned for its peers.
    pub(crate) async fn keys(&self) -> offline_sync_engine::Result<(PublicKey, Vec<PeerKey>)> {
        let admin = self.key_admin().await?;
        Ok((admin.public_key(), admin.peers()))
    }

    /// Approves (with `approve`) or revokes a peer's key.
    pub(crate) async fn set_key(
        &self,
        signer: &str,
        key: Option<PublicKey>,
        approve: bool,
    ) -> offline_sync_engine::Result<PeerKey> {
        let admin = self.key_admin().await?;
        if approve {
            admin.approve(signer, key).await
        } else {
            admin.revoke(signer).await
        }
    }
}

/// Where the node appears once its database is connected: the server answers probes (and
/// 503 elsewhere) before that. Cheap to clone; clones share the slot.
#[derive(Clone, Debug, Default)]
pub struct NodeSlot(Arc<OnceLock<Node>>);

impl NodeSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the node in; returns false if one was already there.
    pub fn set(&self, node: Node) -> bool {
        self.0.set(node).is_ok()
    }

    /// The node, once set.
    pub fn get(&self) -> Option<&Node> {
        self.0.get()
    }
}

/// What the server says about itself in health and metrics.
#[derive(Clone, Debug)]
pub(crate) struct Info {
    pub(crate) mode: Mode,
    pub(crate) ship_id: Option<String>,
    pub(crate) database_type: String,
    pub(crate) ship_updates_topic: String,
    pub(crate) master_updates_topic: String,
    pub(crate) version: String,
    pub(crate) started: Instant,
    /// The Strapi plural routes: each plural to its content type.
    pub(crate) plurals: BTreeMap<String, ContentType>,
}

/// The state behind every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) info: Arc<Info>,
    pub(crate) slot: NodeSlot,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) render: Option<RenderMetrics>,
    pub(crate) webhooks: Arc<crate::webhooks::Webhooks>,
    /// Becomes true when the server stops: whatever waits on the node for a client (a change
    /// feed stream, a long poll) ends then.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
    /// One permit for each client following the change feed.
    pub(crate) listeners: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The node, or 503 while its database is not connected yet.
    pub(crate) fn node(&self) -> Result<Node> {
        self.slot
            .get()
            .cloned()
            .ok_or_else(|| ApiError::not_ready("the database is not connected yet"))
    }

    pub(crate) fn master(&self) -> Result<Master> {
        match self.node()? {
            Node::Master(m) => Ok(m),
            Node::Replica(_) => Err(ApiError::not_found("not available on a replica")),
        }
    }

    pub(crate) fn replica(&self) -> Result<Replica> {
        match self.node()? {
            Node::Replica(r) => Ok(r),
            Node::Master(_) => Err(ApiError::not_found("not available on the master")),
        }
    }

    /// Answers a listing: the page `query` asks for, read on the engine's runtime by `rows`
    /// from what `engine` gives (the node, or the side the route needs), each row shown by
    /// `show`.
    pub(crate) async fn list<E, R, F>(
        &self,
        query: &PageQuery,
        engine: fn(&Self) -> Result<E>,
        rows: impl FnOnce(E, Page) -> F,
        show: impl Fn(R) -> serde_json::Value,
    ) -> Result<HttpResponse>
    where
        R: Send + 'static,
        F: Future<Output = offline_sync_engine::Result<(Vec<R>, u64)>> + Send + 'static,
    {
        let page = query.page()?;
        let engine = engine(self)?;
        let (rows, total) = self.run(rows(engine, page.storage())).await?;
        let items = rows.into_iter().map(show).collect();
        Ok(HttpResponse::Ok().json(dto::list(items, page, total)))
    }

    /// Records an admin action in the audit log, after it succeeded. The action cannot be
    /// taken back, so a failure to record it is logged loudly rather than answered.
    pub(crate) async fn audit(&self, role: Role, action: &str, target: String, detail: serde_json::Value) {
        let Ok(node) = self.node() else { return };
        let entry = NewAuditEntry {
            at_ms: crate::dto::now_ms(),
            role: role.as_str().to_owned(),
            action: action.to_owned(),
            target,
            detail,
        };
        tracing::info!(role = %entry.role, action = %entry.action, target = %entry.target, "admin action");
        let recorded = self.run(async move { node.audit(&entry).await }).await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
    }

    /// Runs engine work on the engine's runtime (where its connections live) and maps its
    /// error. A panic in the work answers 500 instead of killing the worker.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = offline_sync_engine::Result<T>> + Send + 'static,
    {
        match self.runtime.spawn(work).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "request task failed");
                Err(ApiError::internal())
            }
        }
    }
}
