//! Scenario 1, ship → master throughput: a SQLite replica with a backlog of queued changes
//! (about 1 KB documents, creates and one-field updates mixed over a tenth as many documents)
//! drains over tansu into a PostgreSQL master; changes per second end to end, from the moment
//! the replica starts until the master has applied its last change.
//!
//! Baselines, the same bytes through the same parts with nothing of offline-sync around them:
//! batched multi-row inserts into SQLite and into PostgreSQL with the same driver (sqlx, by
//! sea-orm), and an rskafka produce then fetch of the changes' signed records through the
//! same broker. The ratio is end to end ÷ the slowest of them. Then the floor (`floor.rs`):
//! the work the protocol asks of each change, done raw stage by stage, with the CPU it takes
//! and so the most any implementation could drain on this machine.

use std::time::{Duration, Instant};

use anyhow::Result;
use offline_sync::engine::{Master, Replica, Topics};
use offline_sync::model::{DocumentId, Fields};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};

use crate::Scale;
use crate::chart::BarChart;
use crate::floor;
use crate::setup::{self, Broker, Rng};
use crate::table::{Table, count, ratio};

/// One change of the backlog.
pub(crate) struct Change {
    pub(crate) id: usize,
    pub(crate) create: bool,
    pub(crate) fields: Fields,
}

/// `n` changes over `n / 10` documents: a document's first change creates it, later ones set
/// one field.
pub(crate) fn backlog(n: usize, seed: u64) -> Vec<Change> {
    let docs = (n / 10).max(1);
    let mut rng = Rng::new(seed);
    let mut created = vec![false; docs];
    (0..n)
        .map(|_| {
            let id = rng.below(docs as u64) as usize;
            if created[id] {
                let (k, v) = setup::varied_field(&mut rng);
                let mut fields = Fields::new();
                fields.insert(k, v);
                Change {
                    id,
                    create: false,
                    fields,
                }
            } else {
                created[id] = true;
                Change {
                    id,
                    create: true,
                    fields: setup::document(&mut rng),
                }
            }
        })
        .collect()
}

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(100_000, 2_000);
    let changes = backlog(n, 1);
    let bytes: usize = changes
        .iter()
        .map(|c| serde_json::to_vec(&c.fields).map_or(0, |v| v.len()))
        .sum();
    println!(
        "{} changes ({} creates), {} bytes of fields, one ship.\n",
        count(n as f64),
        count(changes.iter().filter(|c| c.create).count() as f64),
        count(bytes as f64)
    );
    let broker = Broker::start()?;
    let payloads: Vec<Vec<u8>> = changes
        .iter()
        .map(|c| serde_json::to_vec(&c.fields).unwrap_or_default())
        .collect();

    let mut table = Table::new(&["stage", "batch", "changes/s", "seconds"]);
    setup::progress("raw SQLite inserts");
    let sqlite_dir = tempfile::tempdir()?;
    let raw_sqlite = raw_inserts(
        &Database::connect(setup::sqlite(sqlite_dir.path(), "raw")).await?,
        &payloads,
        true,
    )
    .await?;
    setup::progress("raw PostgreSQL inserts");
    let raw_pg = raw_inserts(
        &Database::connect(setup::postgres("bench_raw").await?).await?,
        &payloads,
        false,
    )
    .await?;
    setup::progress("raw rskafka produce and fetch");
    let raw_kafka = raw_produce_fetch(&broker, &payloads).await?;
    for (stage, took) in [
        ("raw SQLite inserts (sqlx, 100 rows a statement)", raw_sqlite),
        ("raw PostgreSQL inserts (sqlx, 100 rows a statement)", raw_pg),
        ("raw rskafka produce + fetch (zstd, 100 a batch)", raw_kafka),
    ] {
        table.timed(vec![stage.into(), "100".into()], n, took);
    }
    let slowest = [raw_sqlite, raw_pg, raw_kafka]
        .into_iter()
        .max()
        .unwrap_or(Duration::ZERO);
    // Two sizes even in the smoke run: a second run on the same broker is where an earlier
    // run's records would be read.
    let batches = if scale.smoke {
        vec![100, 500]
    } else {
        vec![100, 500, 1000]
    };
    // The floor at the smallest and the largest batch: the most a machine can carry is that
    // of the cheaper one.
    let mut floors = Vec::new();
    for batch in [batches[0], batches[batches.len() - 1]] {
        floors.push(floor::run(&broker, &changes, &payloads, batch).await?);
    }
    let most = |of: fn(&floor::Floor) -> f64| floors.iter().map(of).fold(0.0, f64::max);
    let (to_master, round_trip) = (most(|f| f.to_master), most(|f| f.round_trip));
    let mut ends = Vec::new();
    for batch in batches {
        let (fill, drain) = end_to_end(&broker, &changes, batch).await?;
        let fill_stage = "local writes into the replica's outbox (not timed end to end)";
        table.timed(vec![fill_stage.into(), "1".into()], n, fill);
        let end_to_end = "**end to end**: replica outbox → tansu → PostgreSQL master";
        table.timed(vec![end_to_end.into(), batch.to_string()], n, drain);
        ends.push((batch, drain));
    }
    table.print();
    let mut chart = BarChart::new(
        "Ship → master, end to end, by batch size",
        "changes/s",
        &["end to end (replica → tansu → PostgreSQL master)"],
    );
    for (batch, drain) in &ends {
        chart.group(format!("batch {batch}"), vec![setup::rate(n, *drain)]);
    }
    chart.reference("slowest raw stage", setup::rate(n, slowest));
    chart.save("throughput.svg")?;
    println!(
        "The floor: the work the protocol asks of each change, done raw, stage by stage; the CPU \
         is the whole machine's (this process, tansu, PostgreSQL) during each stage.\n"
    );
    for floor in &floors {
        floor.print();
    }
    for (batch, drain) in ends {
        let rate = setup::rate(n, drain);
        println!(
            "End to end at batch {batch}: {} of the slowest raw stage ({} changes/s); {} of the \
             floor's most until the master has applied ({} changes/s), {} of its most for the \
             whole round trip ({} changes/s), at its cheaper batch.",
            ratio(rate, setup::rate(n, slowest)),
            count(setup::rate(n, slowest)),
            ratio(rate, to_master),
            count(to_master),
            ratio(rate, round_trip),
            count(round_trip),
        );
    }
    println!();
    Ok(())
}

/// Fills a replica's outbox with `changes` while it is stopped, then starts it and the master
/// and waits until the master applied the last one. Returns how long the filling took and how
/// long the drain took.
async fn end_to_end(broker: &Broker, changes: &[Change], batch: usize) -> Result<(Duration, Duration)> {
    let dir = tempfile::tempdir()?;
    let master = setup::master(broker, &setup::postgres("bench_throughput").await?, |c| {
        c.batch_size = batch;
        c.topics = run_topics(batch);
    })
    .await?;
    let ship = setup::replica(broker, &setup::sqlite(dir.path(), "ship"), 0, |c| {
        c.batch_size = batch;
        c.topics = run_topics(batch);
    })
    .await?;
    setup::progress(&format!("filling the replica's outbox (batch {batch})"));
    let fill = fill(&ship, changes).await?;
    setup::progress("draining it into the master");
    // A change that sets what a field already holds queues nothing: wait for what was queued.
    let n = ship.storage().replica_progress().await?.last_seq;
    let started = Instant::now();
    let running = (master.start(), ship.start());
    let waited = setup::wait_for(
        "the master applying the backlog",
        Duration::from_secs(1800),
        Duration::from_millis(20),
        || async { Ok(applied(&master).await? >= n) },
    )
    .await;
    let drain = started.elapsed();
    running.0.shutdown().await;
    running.1.shutdown().await;
    waited?;
    // What was measured is this ship's backlog, every record of it taken: a refused record
    // (another run's, a key the master did not pin) would make the figure someone else's.
    let refused = master.storage().dead_letter_counts().await?;
    if refused.open() > 0 {
        anyhow::bail!(
            "the master refused {} records of the drain: the figure would not be this run's",
            refused.open()
        );
    }
    Ok((fill, drain))
}

/// The topics of one end-to-end run: each run's master and ship start on topics of their
/// own, so a master never reads (and is never timed reading) an earlier run's records.
fn run_topics(batch: usize) -> Topics {
    Topics {
        ship_updates: format!("ship-updates-{batch}"),
        master_updates: format!("master-updates-{batch}"),
        snapshots: format!("master-snapshots-{batch}"),
    }
}

/// Writes `changes` on `ship`; returns how long it took.
pub(crate) async fn fill(ship: &Replica, changes: &[Change]) -> Result<Duration> {
    let ct = setup::article();
    let ids: Vec<DocumentId> = (0..changes.len().div_ceil(10).max(1) * 10)
        .map(|_| DocumentId::new_v7())
        .collect();
    let started = Instant::now();
    for c in changes {
        if c.create {
            ship.create_with_id(&ct, ids[c.id], c.fields.clone()).await?;
        } else {
            ship.update(&ct, ids[c.id], c.fields.clone()).await?;
        }
    }
    Ok(started.elapsed())
}

/// The last seq the master applied from `ship-0`.
pub(crate) async fn applied(master: &Master) -> Result<u64> {
    Ok(master
        .storage()
        .ships()
        .await?
        .iter()
        .map(|s| s.last_seq)
        .max()
        .unwrap_or(0))
}

/// Inserts `payloads` into a fresh table in transactions of 100 rows, one multi-row statement
/// each; on SQLite with the pragmas the node uses. Returns how long it took.
pub(crate) async fn raw_inserts(
    db: &DatabaseConnection,
    payloads: &[Vec<u8>],
    sqlite: bool,
) -> Result<Duration> {
    if sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .await?;
    }
    db.execute_unprepared("CREATE TABLE raw_changes (seq BIGINT PRIMARY KEY, fields TEXT NOT NULL)")
        .await?;
    let backend = db.get_database_backend();
    let started = Instant::now();
    for (b, chunk) in payloads.chunks(100).enumerate() {
        let rows = chunk.iter().enumerate().map(|(i, p)| {
            vec![
                ((b * 100 + i) as i64).into(),
                String::from_utf8_lossy(p).into_owned().into(),
            ]
        });
        let txn = db.begin().await?;
        txn.execute_raw(floor::rows_sql(
            backend,
            "INSERT INTO raw_changes (seq, fields) VALUES ",
            rows.collect(),
            "",
        ))
        .await?;
        txn.commit().await?;
    }
    Ok(started.elapsed())
}

/// Produces `payloads`, each as the signed record a ship sends, in batches of 100 with zstd,
/// then fetches them all back. Returns how long both took.
pub(crate) async fn raw_produce_fetch(broker: &Broker, payloads: &[Vec<u8>]) -> Result<Duration> {
    let partition = setup::raw_partition(broker, "raw-throughput").await?;
    let records = setup::sealed(payloads, "ship-0", 3);
    let started = Instant::now();
    setup::produce_all(&partition, &records, 100).await?;
    setup::fetch_all(&partition, payloads.len()).await?;
    Ok(started.elapsed())
}
