//! What the `master` and `replica` binaries run, in this order: settings (an invalid one
//! stops start-up with one line naming it), logging, the metrics exporter, the HTTP server
//! (probes answer at once; everything else answers 503 until the database is connected), the
//! database with its migrations, the Kafka transport (which connects lazily: a replica starts
//! and serves its documents with no broker in reach), the engine's loops, and on SIGTERM or
//! SIGINT a graceful stop.

mod signal;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use offline_sync_config::{DatabaseClient, Settings};
use offline_sync_engine::{Clock as _, Master, Replica, Running, error_chain};
use offline_sync_http::{HttpConfig, Node, NodeSlot, Server};
use offline_sync_kafka::KafkaTransport;
use offline_sync_storage::{MasterLock, ReplicaStorage, SeaStorage, Storage};

pub use offline_sync_engine::Mode;

/// How long requests in flight may take to finish once a stop is asked for.
const HTTP_GRACE: Duration = Duration::from_secs(3);
/// How long the engine's loops may take to finish their step once a stop is asked for.
const ENGINE_GRACE: Duration = Duration::from_secs(4);
/// How long one request for a page of the master's state may take over a slow link.
const RESYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a standby master tries the lock, and a master checks it still holds it.
const MASTER_LOCK_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Parser)]
struct Cli {
    /// A TOML file of settings (the environment wins over it). Names as in the environment,
    /// e.g. `sync_ship_id = "ship-atlantic-001"`.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a new Ed25519 signing key pair: the secret for this node's SYNC_SIGNING_KEY (or
    /// SYNC_SIGNING_KEY_FILE) and the public key its peers pin ahead.
    Keygen,
    /// Replica only: ask for a resync from the master's state (from the master's API when the
    /// replica knows its URL, over the broker otherwise).
    /// It is kept in the ship's database; the running replica (or the next one started)
    /// carries it out page by page, resuming after a lost link or a restart.
    Resync {
        /// Every document, and local documents the master no longer holds (and nobody changed
        /// here) removed; without it, only what changed above the applied CSN.
        #[arg(long)]
        full: bool,
    },
}

/// Prints a new key pair for a node of `mode`.
fn keygen(mode: Mode) -> ExitCode {
    let mut seed = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut seed) {
        eprintln!("error: no randomness to make a key: {e}");
        return ExitCode::from(1);
    }
    let key = offline_sync_model::SigningKey::from_seed(seed);
    let pin = match mode {
        Mode::Master => "SYNC_MASTER_PUBLIC_KEY on every ship".to_owned(),
        Mode::Replica => "SYNC_SHIP_KEYS=<ship id>=<public key> on the master".to_owned(),
    };
    println!("SYNC_SIGNING_KEY={}", key.to_base64());
    println!("# public key (give it to peers as {pin}):");
    println!("# {}", key.public());
    ExitCode::SUCCESS
}

/// Asks for a resync in the replica's database and says what will happen.
fn resync(s: &Settings, full: bool) -> ExitCode {
    if s.mode != Mode::Replica {
        eprintln!("error: resync is a replica command: the master's state is the one ships take");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let asked = runtime.block_on(async {
        let db = connect(s).await?;
        let now = offline_sync_engine::SystemClock.now_ms();
        let state = db
            .request_resync(full, "asked for with `replica resync`", now)
            .await
            .map_err(|e| error_chain(&e));
        if let Err(e) = db.close().await {
            eprintln!("warning: closing the database: {e}");
        }
        state
    });
    match asked {
        Ok(state) => {
            println!(
                "resync {} ({}): the replica takes the master's state {} page by page, then reads master-updates on; follow it in GET /api/offline-sync/status",
                state.phase.as_str(),
                state.reason,
                if state.full {
                    "of every document".to_owned()
                } else {
                    format!("changed above CSN {}", state.after)
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn cli(mode: Mode) -> Cli {
    let about = match mode {
        Mode::Master => {
            "The onshore node of offline-sync: applies ship changes, numbers and broadcasts commits, keeps conflicts for an operator."
        }
        Mode::Replica => {
            "The node on a ship: serves documents from its own database with or without a link, queues every change and syncs with the master over Kafka."
        }
    };
    let command = Cli::command()
        .name(mode.as_str())
        .bin_name(mode.as_str())
        .version(env!("CARGO_PKG_VERSION"))
        .about(about)
        .after_help(format!(
            "Settings (environment variables, or the same names in the --config file):\n\n{}",
            offline_sync_config::help_text(mode)
        ));
    match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// Runs a node of `mode` until SIGTERM or SIGINT. Exit status: 0 after a graceful stop, 2 for
/// an invalid setting, 1 for a failure at start-up.
pub fn main(mode: Mode) -> ExitCode {
    let cli = cli(mode);
    if let Some(Command::Keygen) = cli.command {
        return keygen(mode);
    }
    let settings = match Settings::load(mode, cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Resync { full }) = cli.command {
        return resync(&settings, full);
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // rskafka reports every failed connection attempt, and logs as an error what is an
    // expected answer (a topic another node created first). Every error of its calls comes
    // back to the transport, which sorts it; the engine logs the link going down and up once
    // each, and a step's failure with its context.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rskafka=off,sqlx=warn,sea_orm=warn,actix_server=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Installs the Prometheus recorder; its text is served by our own route.
fn metrics_exporter() -> Result<offline_sync_http::RenderMetrics, String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(offline_sync_engine::metrics::APPLY_DURATION_SECONDS.to_owned()),
            offline_sync_engine::metrics::APPLY_BUCKETS,
        )
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    offline_sync_engine::metrics::describe();
    offline_sync_http::describe_metrics();
    Ok(Arc::new(move || handle.render()))
}

fn http_config(s: &Settings, render: offline_sync_http::RenderMetrics) -> Result<HttpConfig, String> {
    let ip: IpAddr = s.http.host.parse().map_err(|_| {
        format!(
            "HOST: {:?} is not an IP address (such as 0.0.0.0 or 127.0.0.1)",
            s.http.host
        )
    })?;
    let mut cfg = HttpConfig::new(SocketAddr::new(ip, s.http.port), s.mode);
    cfg.ship_id = s.ship_id.as_ref().map(ToString::to_string);
    cfg.admin_token = s.http.admin_token.as_ref().map(|t| t.expose().to_owned());
    cfg.read_token = s.http.read_token.as_ref().map(|t| t.expose().to_owned());
    cfg.database_type = s.database.client.as_str().to_owned();
    cfg.topics = s.master.topics.clone();
    cfg.shutdown_timeout = HTTP_GRACE;
    cfg.render_metrics = Some(render);
    cfg.plural_routes = s.http.plural_routes.clone();
    cfg.webhooks = s
        .webhooks
        .iter()
        .map(|w| offline_sync_http::Webhook {
            url: w.url.expose().to_owned(),
            events: w.events.clone(),
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
        })
        .collect();
    cfg.webhook_secret = s.webhook_secret.as_ref().map(|t| t.expose().to_owned());
    cfg.sensitive = s.master.sensitive.clone();
    Ok(cfg)
}

async fn run(s: Settings) -> Result<(), String> {
    let render = metrics_exporter()?;
    let stop = signal::Stop::install().map_err(|e| format!("cannot listen for signals: {e}"))?;
    tracing::info!(
        mode = s.mode.as_str(),
        ship = s.ship_id.as_ref().map(|s| s.as_str()).unwrap_or("-"),
        database = %s.database.display,
        brokers = %s.kafka.brokers.join(","),
        ship_updates = %s.master.topics.ship_updates,
        master_updates = %s.master.topics.master_updates,
        "starting offline-sync {}",
        env!("CARGO_PKG_VERSION")
    );
    if s.http.loopback_only {
        tracing::warn!(
            "no SYNC_ADMIN_TOKEN or SYNC_READ_TOKEN set: the API needs no token and listens on 127.0.0.1 only"
        );
    }
    let transport = KafkaTransport::new(s.kafka.clone()).map_err(|e| format!("Kafka settings: {e}"))?;
    let slot = NodeSlot::new();
    let server = offline_sync_http::serve(http_config(&s, render)?, slot.clone())
        .map_err(|e| format!("cannot listen on {}:{}: {e}", s.http.host, s.http.port))?;
    tracing::info!(addr = %server.addr(), "HTTP API listening");
    let db = tokio::select! {
        db = connect(&s) => db,
        () = stop.wait() => {
            tracing::info!("stop asked before the database was connected");
            server.stop().await;
            return Ok(());
        }
    };
    let db = match db {
        Ok(db) => db,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    // One master per database: a second one stands by until the first stops or dies.
    let lock = match s.mode {
        Mode::Master => match master_lock(&db, &stop).await {
            Some(lock) => Some(lock),
            None => {
                server.stop().await;
                return Ok(());
            }
        },
        Mode::Replica => None,
    };
    if let Err(e) = index_fields(&s, &db).await {
        server.stop().await;
        return Err(e);
    }
    let storage: Arc<dyn Storage> = Arc::new(db.clone());
    let transport = Arc::new(transport);
    let node = match s.mode {
        Mode::Master => Node::Master(Master::new(s.master.clone(), storage, transport)),
        Mode::Replica => {
            let cfg = s.replica.clone().ok_or("a replica needs SYNC_SHIP_ID")?;
            let r = Replica::new(cfg, storage, transport);
            if let Some(api) = &s.master_api {
                let token = api.token.as_ref().map(|t| t.expose().to_owned());
                r.set_snapshot_source(Arc::new(offline_sync_http::MasterClient::new(
                    &api.url,
                    token,
                    RESYNC_REQUEST_TIMEOUT,
                )));
                tracing::info!(master = %api.url, "a resync takes the master's state from its API");
            } else {
                r.set_snapshot_source(Arc::new(offline_sync_engine::OverBroker::default()));
                tracing::info!(
                    "a resync takes the master's state over the broker (SYNC_MASTER_URL is not set)"
                );
            }
            Node::Replica(r)
        }
    };
    // Before the node applies anything: a webhook seen for the first time gets every change
    // from here on.
    if let Err(e) = server.start_webhooks(&node).await {
        server.stop().await;
        return Err(e);
    }
    let running = match &node {
        Node::Master(m) => m.start(),
        Node::Replica(r) => r.start(),
    };
    slot.set(node);
    tracing::info!("ready");
    let lost = tokio::select! {
        () = stop.wait() => None,
        e = lock_lost(lock.as_ref()) => Some(e),
    };
    shutdown(server, running, lock, db).await;
    match lost {
        Some(e) => Err(format!(
            "lost the master lock ({e}); stopped so that a standby can take over"
        )),
        None => Ok(()),
    }
}

/// Takes the master lock of the database, standing by (probes answer, readiness says not
/// ready) while another master holds it. `None` when a stop is asked for first.
async fn master_lock(db: &SeaStorage, stop: &signal::Stop) -> Option<MasterLock> {
    let mut standing_by = false;
    loop {
        match db.try_master_lock().await {
            Ok(Some(lock)) => {
                if standing_by {
                    tracing::info!("the other master is gone: taking over");
                }
                return Some(lock);
            }
            Ok(None) if !standing_by => {
                tracing::warn!("another master holds this database: standing by to take over");
                standing_by = true;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %error_chain(&e), "cannot take the master lock; trying again"),
        }
        tokio::select! {
            () = tokio::time::sleep(MASTER_LOCK_POLL) => {}
            () = stop.wait() => return None,
        }
    }
}

/// Resolves when the master lock is lost (its connection stopped answering); never for a
/// replica.
async fn lock_lost(lock: Option<&MasterLock>) -> String {
    let Some(lock) = lock else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(MASTER_LOCK_POLL).await;
        if let Err(e) = lock.check().await {
            return error_chain(&e);
        }
    }
}

/// Keeps the field indexes `SYNC_INDEXES` names, and no other: run once this node is the
/// one writer of its database, so a standby master never changes what the live one reads.
async fn index_fields(s: &Settings, db: &SeaStorage) -> Result<(), String> {
    let changed = db.index_fields(&s.indexed_fields).await.map_err(|e| {
        format!(
            "SYNC_INDEXES: database {}: {}",
            s.database.display,
            error_chain(&e)
        )
    })?;
    for index in &changed.created {
        tracing::info!(index, "field index created (SYNC_INDEXES)");
    }
    for index in &changed.dropped {
        tracing::info!(index, "field index dropped: its field left SYNC_INDEXES");
    }
    Ok(())
}

/// Connects to the database and applies the migrations. PostgreSQL that does not answer yet
/// is retried (readiness says 503 meanwhile); a SQLite file that cannot be opened is a
/// start-up failure.
async fn connect(s: &Settings) -> Result<SeaStorage, String> {
    let url = s.database.url.expose();
    if s.database.client == DatabaseClient::Sqlite {
        create_parent_dir(url)?;
        return SeaStorage::connect(url).await.map_err(|e| {
            format!(
                "cannot open the SQLite database {}: {}",
                s.database.display,
                error_chain(&e)
            )
        });
    }
    let mut delay = Duration::from_millis(500);
    loop {
        match SeaStorage::connect(url).await {
            Ok(db) => {
                tracing::info!(database = %s.database.display, "database connected, migrations applied");
                return Ok(db);
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(database = %s.database.display, error = %error_chain(&e), retry_in = ?delay, "database unreachable");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                return Err(format!("database {}: {}", s.database.display, error_chain(&e)));
            }
        }
    }
}

/// Creates the directory of a `sqlite://PATH?...` file when missing.
fn create_parent_dir(url: &str) -> Result<(), String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create the directory {} of the SQLite database: {e}",
                dir.display()
            )
        }),
        _ => Ok(()),
    }
}

/// Stops taking requests, lets those in flight finish, stops the engine's loops after their
/// step (each one transaction: what was not committed is redone after a restart), lets a
/// standby master take over, closes the database.
async fn shutdown(server: Server, running: Running, lock: Option<MasterLock>, db: SeaStorage) {
    tracing::info!("stopping: no new requests");
    server.stop().await;
    if !running.shutdown_within(ENGINE_GRACE).await {
        tracing::warn!(
            "a step was still waiting on the broker and was abandoned; it is redone after a restart"
        );
    }
    if let Some(lock) = lock
        && let Err(e) = lock.release().await
    {
        tracing::debug!(error = %e, "releasing the master lock");
    }
    if let Err(e) = db.close().await {
        tracing::warn!(error = %e, "closing the database");
    }
    tracing::info!("stopped");
}
