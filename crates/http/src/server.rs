//! Starting and stopping the HTTP server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use offline_sync_engine::Mode;
use offline_sync_model::ContentType;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::routes;
pub use crate::state::RenderMetrics;
use crate::state::{AppState, Info, Node, NodeSlot};
use crate::webhooks::{Webhook, Webhooks};

/// Largest request body accepted (a document travels in one envelope of at most 1 MiB).
pub const MAX_BODY_BYTES: usize = offline_sync_model::MAX_ENVELOPE_BYTES;

/// Settings of the HTTP server. `Debug` never shows the tokens.
#[derive(Clone)]
pub struct HttpConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Which node this is.
    pub mode: Mode,
    /// The ship id of a replica.
    pub ship_id: Option<String>,
    /// Token with full access (`SYNC_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Read-only token (`SYNC_READ_TOKEN`).
    pub read_token: Option<String>,
    /// `postgres` or `sqlite`, shown in the health report.
    pub database_type: String,
    /// Topic names, shown in the health report.
    pub topics: offline_sync_engine::Topics,
    /// The version shown in health, metrics and the OpenAPI document.
    pub version: String,
    /// Worker threads (default 2).
    pub workers: usize,
    /// How long a stop waits for requests in flight (default 5 s).
    pub shutdown_timeout: Duration,
    /// Renders the metrics of the installed recorder; without it the metrics are empty.
    pub render_metrics: Option<RenderMetrics>,
    /// The Strapi routes: `/api/{plural}` serves the content type as
    /// `/api/documents/{content_type}` does (`SYNC_CONTENT_TYPES`' `uid=plural`).
    pub plural_routes: BTreeMap<String, ContentType>,
    /// Where the node POSTs its events (`SYNC_WEBHOOKS`), once [`Server::start_webhooks`]
    /// is called.
    pub webhooks: Vec<Webhook>,
    /// The key each webhook body is signed with (`SYNC_WEBHOOK_SECRET`): required when
    /// `webhooks` is not empty.
    pub webhook_secret: Option<String>,
    /// Fields never sent to a webhook (`SYNC_SENSITIVE_FIELDS`).
    pub sensitive: offline_sync_model::Sensitive,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("addr", &self.addr)
            .field("mode", &self.mode)
            .field("ship_id", &self.ship_id)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("read_token", &self.read_token.as_ref().map(|_| "<redacted>"))
            .field("database_type", &self.database_type)
            .field("topics", &self.topics)
            .field("version", &self.version)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("plural_routes", &self.plural_routes)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

impl HttpConfig {
    /// Defaults for a node of `mode` listening on `addr`.
    pub fn new(addr: SocketAddr, mode: Mode) -> Self {
        Self {
            addr,
            mode,
            ship_id: None,
            admin_token: None,
            read_token: None,
            database_type: "sqlite".into(),
            topics: offline_sync_engine::Topics::default(),
            version: env!("CARGO_PKG_VERSION").into(),
            workers: 2,
            shutdown_timeout: Duration::from_secs(5),
            render_metrics: None,
            plural_routes: BTreeMap::new(),
            webhooks: Vec::new(),
            webhook_secret: None,
            sensitive: offline_sync_model::Sensitive::default(),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    webhooks: Arc<Webhooks>,
    /// Set when the server stops: change feed streams and long polls end at once.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Where it listens (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts delivering `node`'s events to the webhooks of its configuration. Call it before
    /// the node applies anything: a webhook seen for the first time gets what happens from
    /// then on. Errors: the database does not answer.
    pub async fn start_webhooks(&self, node: &Node) -> Result<(), String> {
        self.webhooks
            .start(node)
            .await
            .map_err(|e| format!("cannot start the webhooks: {e}"))
    }

    /// Stops taking connections, lets requests in flight finish (up to the shutdown
    /// timeout) and waits for the server to end.
    pub async fn stop(self) {
        self.closing.send_replace(true);
        self.handle.stop(true).await;
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
            Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
        }
    }
}

/// Builds the application of a node: routes of its mode, token checks, JSON errors for bad
/// bodies, paths and queries, 404 for unknown paths.
pub(crate) fn app_config(state: AppState) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        let json = web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(|e, _| json_error(&e).into());
        let path = web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request(format!("bad path: {e}")).into());
        let query = web::QueryConfig::default()
            .error_handler(|e, _| ApiError::bad_request(format!("bad query: {e}")).into());
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(json)
            .app_data(path)
            .app_data(query)
            .configure(routes::configure(
                state.info.mode,
                Arc::clone(&state.tokens),
                &state.info.plurals,
            ));
    }
}

fn json_error(e: &actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::{JsonPayloadError as J, PayloadError};
    use actix_web::http::StatusCode;
    match e {
        J::OverflowKnownLength { .. } | J::Overflow { .. } | J::Payload(PayloadError::Overflow) => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be application/json",
        ),
        J::Deserialize(e) => ApiError::bad_request(format!("bad body: {e}")),
        other => ApiError::bad_request(format!("bad body: {other}")),
    }
}

/// The shared state of a server for `cfg` serving the node in `slot`, on the current tokio
/// runtime.
pub(crate) fn state(
    cfg: &HttpConfig,
    slot: NodeSlot,
    closing: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<AppState> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| std::io::Error::other(format!("the HTTP server needs a tokio runtime: {e}")))?;
    let secret = match &cfg.webhook_secret {
        Some(secret) if !secret.is_empty() => secret.as_str(),
        _ if cfg.webhooks.is_empty() => "",
        _ => {
            return Err(std::io::Error::other(
                "webhooks need a secret to sign their bodies with",
            ));
        }
    };
    Ok(AppState {
        info: Arc::new(Info {
            mode: cfg.mode,
            ship_id: cfg.ship_id.clone(),
            database_type: cfg.database_type.clone(),
            ship_updates_topic: cfg.topics.ship_updates.clone(),
            master_updates_topic: cfg.topics.master_updates.clone(),
            version: cfg.version.clone(),
            started: Instant::now(),
            plurals: cfg.plural_routes.clone(),
        }),
        slot,
        tokens: Arc::new(Tokens {
            admin: cfg.admin_token.clone(),
            read: cfg.read_token.clone(),
        }),
        runtime,
        render: cfg.render_metrics.clone(),
        webhooks: Arc::new(Webhooks::new(
            cfg.webhooks.clone(),
            secret,
            cfg.sensitive.clone(),
            closing.clone(),
        )),
        closing,
        listeners: Arc::new(tokio::sync::Semaphore::new(crate::routes::MAX_LISTENERS)),
    })
}

/// Binds `cfg.addr` and starts serving the node in `slot` (answering 503 until a node is put
/// in it). Must be called inside a tokio runtime: engine work runs on it, request handling on
/// the server's own worker threads. Errors: no tokio runtime, or the address cannot be bound.
pub fn serve(cfg: HttpConfig, slot: NodeSlot) -> std::io::Result<Server> {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let state = state(&cfg, slot, closed)?;
    let webhooks = Arc::clone(&state.webhooks);
    let configure = app_config(state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::admin::security_headers))
            // gzip for clients that ask (the admin page polls the API, maybe over a satellite
            // link); answers compressed already (resync pages, the page's files) pass as they are.
            .wrap(actix_web::middleware::Compress::default())
            .configure(configure.clone())
            .default_service(web::to(routes::not_found))
    })
    .workers(cfg.workers.max(1))
    .disable_signals()
    .shutdown_timeout(cfg.shutdown_timeout.as_secs().max(1))
    .bind(cfg.addr)?;
    let addr = server.addrs().first().copied().unwrap_or(cfg.addr);
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Server {
        addr,
        handle,
        task,
        webhooks,
        closing,
    })
}
