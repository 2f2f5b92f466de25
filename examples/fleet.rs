//! Quick start: a master and two ships in one process, over the in-memory transport, with
//! SQLite files in a temporary directory.
//!
//! Run with `cargo run --release --example fleet`. It narrates a ship editing offline and
//! reconnecting, a concurrent edit merged automatically, a real conflict recorded and
//! resolved, then compares every node's documents with the master's and prints `converged`
//! (exit status 1 if they differ).
//!
//! With `-- --kafka HOST:PORT` the same walk-through runs over a real Kafka-protocol broker,
//! on the topics `ship-updates` and `master-updates`, each node with its own connection. Use
//! a fresh broker (or delete those topics first): a fresh master must not meet another
//! master's history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use offline_sync::engine::{Core, Master, MasterConfig, Page, Replica, ReplicaConfig};
use offline_sync::kafka::{KafkaConfig, KafkaTransport};
use offline_sync::model::{ConflictStatus, ContentType, Fields, ShipId, Strategy};
use offline_sync::storage::{SeaStorage, Storage};
use offline_sync::transport::{FaultControl, FaultyTransport, MemoryTransport, Transport};
use serde_json::json;

fn fields(v: serde_json::Value) -> Fields {
    v.as_object().cloned().unwrap_or_default()
}

/// Polls `check` until it holds, for at most ten seconds.
async fn until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    while !check().await? {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn storage(dir: &std::path::Path, name: &str) -> Result<Arc<dyn Storage>> {
    let url = SeaStorage::sqlite_url(&dir.join(format!("{name}.db")));
    Ok(Arc::new(
        SeaStorage::connect(&url)
            .await
            .with_context(|| format!("opening {name}.db"))?,
    ))
}

struct Ship {
    replica: Replica,
    link: FaultControl,
}

/// Whether `check` holds on every ship of `ships`.
async fn on_every_ship(ships: [&Ship; 2], check: impl AsyncFn(&Replica) -> Result<bool>) -> Result<bool> {
    let mut all = true;
    for s in ships {
        all &= check(&s.replica).await?;
    }
    Ok(all)
}

/// How each node reaches the broker.
enum Broker {
    Memory(MemoryTransport),
    Kafka(String),
}

impl Broker {
    fn connect(&self) -> Result<Arc<dyn Transport>> {
        Ok(match self {
            Broker::Memory(m) => Arc::new(m.clone()),
            Broker::Kafka(address) => Arc::new(
                KafkaTransport::new(KafkaConfig::new(vec![address.clone()]))
                    .with_context(|| format!("configuring the Kafka transport for {address}"))?,
            ),
        })
    }
}

async fn ship(dir: &std::path::Path, broker: &Broker, name: &str) -> Result<Ship> {
    let mut cfg = ReplicaConfig::new(ShipId::new(name)?);
    cfg.debounce = Duration::from_millis(50);
    cfg.poll_wait = Duration::from_millis(100);
    cfg.heartbeat_interval = Duration::from_millis(500);
    cfg.retry.initial = Duration::from_millis(100);
    cfg.retry.max = Duration::from_millis(500);
    let (link, control) = FaultyTransport::new(broker.connect()?);
    let replica = Replica::new(cfg, storage(dir, name).await?, Arc::new(link));
    Ok(Ship {
        replica,
        link: control,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let broker = match args.as_slice() {
        [] => Broker::Memory(MemoryTransport::new()),
        [flag, address] if flag == "--kafka" => Broker::Kafka(address.clone()),
        _ => bail!("usage: fleet [--kafka HOST:PORT]"),
    };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let plans = ContentType::new("api::voyage-plan.voyage-plan")?;

    match &broker {
        Broker::Memory(_) => {
            println!("offline-sync quick start: one master, two ships, one in-memory broker")
        }
        Broker::Kafka(a) => println!("offline-sync quick start: one master, two ships, over Kafka at {a}"),
    }
    println!("  databases: SQLite files under {}", dir.path().display());
    let master_cfg = MasterConfig {
        poll_wait: Duration::from_millis(100),
        offline_after: Duration::from_secs(2),
        ..MasterConfig::default()
    };
    let master = Master::new(
        master_cfg,
        storage(dir.path(), "master").await?,
        broker.connect()?,
    );
    let atlantic = ship(dir.path(), &broker, "ship-atlantic").await?;
    let pacific = ship(dir.path(), &broker, "ship-pacific").await?;
    let running = [master.start(), atlantic.replica.start(), pacific.replica.start()];

    println!("\n1. The master publishes a voyage plan; both ships receive it.");
    let plan = master
        .create(
            &plans,
            fields(json!({"route": "Oslo → Reykjavik", "status": "planned", "cargo": "timber"})),
        )
        .await?;
    // Sets `v`'s fields of the plan on `node`, the master or a ship, and narrates it.
    let edit = async |node: &Core, v: serde_json::Value, narration: &str| -> Result<()> {
        node.update(&plans, plan.id, fields(v)).await?;
        println!("   {narration}");
        Ok(())
    };
    for s in [&atlantic, &pacific] {
        until("the plan reaches the ships", || async {
            Ok(s.replica.get(&plans, plan.id).await?.is_some())
        })
        .await?;
        println!(
            "   {} has the plan: {}",
            s.replica.ship(),
            serde_json::Value::Object(plan.fields.clone())
        );
    }

    println!("\n2. ship-atlantic loses its satellite link and keeps working.");
    atlantic.link.set_offline(true);
    for status in ["departed", "at sea", "storm detour"] {
        let narration = format!("ship-atlantic sets status = {status:?} (stored locally, queued)");
        edit(&atlantic.replica, json!({"status": status}), &narration).await?;
    }
    let queued = atlantic.replica.status().await?.pending;
    println!("   {queued} changes wait in ship-atlantic's outbox");
    println!("   the link comes back...");
    atlantic.link.set_offline(false);
    until("the queued changes reach the master", || async {
        Ok(master
            .get(&plans, plan.id)
            .await?
            .is_some_and(|d| d.fields["status"] == "storm detour"))
    })
    .await?;
    until("ship-pacific sees them", || async {
        Ok(pacific
            .replica
            .get(&plans, plan.id)
            .await?
            .is_some_and(|d| d.fields["status"] == "storm detour"))
    })
    .await?;
    println!("   drained: the master and ship-pacific now show status = \"storm detour\"");

    println!("\n3. Concurrent edits of different fields merge automatically.");
    atlantic.link.set_offline(true);
    let eta = json!({"eta": "2026-12-02"});
    edit(&atlantic.replica, eta, "ship-atlantic (offline) sets eta").await?;
    let cargo = json!({"cargo": "timber, salmon"});
    edit(&master, cargo, "the master, meanwhile, sets cargo").await?;
    atlantic.link.set_offline(false);
    until("both edits are merged on every node", || {
        on_every_ship([&atlantic, &pacific], async |r| {
            Ok(r.get(&plans, plan.id)
                .await?
                .is_some_and(|d| d.fields.get("eta").is_some() && d.fields["cargo"] == "timber, salmon"))
        })
    })
    .await?;
    let open = master
        .conflicts(Some(ConflictStatus::Open), Page::default())
        .await?;
    println!("   merged field by field; open conflicts: {}", open.len());

    println!("\n4. The same field edited on both sides is a real conflict.");
    atlantic.link.set_offline(true);
    let route = json!({"route": "Oslo → Tórshavn → Reykjavik"});
    edit(
        &atlantic.replica,
        route,
        "ship-atlantic (offline) reroutes via Tórshavn",
    )
    .await?;
    let route = json!({"route": "Oslo → Bergen → Reykjavik"});
    edit(&master, route, "the master reroutes via Bergen").await?;
    atlantic.link.set_offline(false);
    until("the conflict is recorded", || async {
        Ok(!master
            .conflicts(Some(ConflictStatus::Open), Page::default())
            .await?
            .is_empty())
    })
    .await?;
    let conflict = master
        .conflicts(Some(ConflictStatus::Open), Page::default())
        .await?
        .into_iter()
        .next()
        .context("an open conflict")?;
    println!(
        "   conflict #{} ({}) on {:?}: ship says {}, master says {}",
        conflict.id,
        conflict.draft.kind.as_str(),
        conflict.draft.fields,
        serde_json::Value::Object(conflict.draft.ship_values.clone()),
        serde_json::Value::Object(conflict.draft.master_values.clone()),
    );
    let merged = fields(json!({"route": "Oslo → Bergen → Tórshavn → Reykjavik"}));
    master
        .resolve(conflict.id, &Strategy::Merge { merge_data: merged })
        .await?;
    println!("   the operator resolves it with merge: both stops");
    until("the resolution reaches every ship", || {
        on_every_ship([&atlantic, &pacific], async |r| {
            Ok(r.get(&plans, plan.id)
                .await?
                .is_some_and(|d| d.fields["route"] == "Oslo → Bergen → Tórshavn → Reykjavik")
                && r.status().await?.pending + r.status().await?.in_flight == 0)
        })
    })
    .await?;

    let ships = master.ships().await?;
    println!("\n5. The master's ship registry:");
    for s in &ships {
        println!(
            "   {}: {} changes applied, {}",
            s.record.ship,
            s.record.changes_applied,
            if s.online { "online" } else { "offline" }
        );
    }

    for r in running {
        r.shutdown().await;
    }

    let (want, _) = master.list(&plans, Page::all()).await?;
    let mut differ = 0;
    for r in [&atlantic.replica, &pacific.replica] {
        let (got, _) = r.list(&plans, Page::all()).await?;
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.id == b.id && a.fields == b.fields);
        if !same {
            differ += 1;
            println!("   {} differs from the master", r.ship());
        }
    }
    if differ > 0 {
        println!("\nNOT converged: {differ} ship(s) differ from the master");
        std::process::exit(1);
    }
    println!(
        "\nAll 3 nodes converged: {} document(s) identical on the master and both ships.",
        want.len()
    );
    Ok(())
}
