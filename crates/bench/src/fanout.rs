//! Scenario 2, master → fleet fan-out: the master commits a backlog of changes while its
//! publisher and the replicas are stopped; then everything starts, and the time until every
//! replica has applied the master's last commit is measured.
//!
//! Baseline: the same number of signed records produced with rskafka in batches of 100, then
//! fetched in full by as many consumers as there are replicas, at once, through the same
//! broker.

use std::time::{Duration, Instant};

use anyhow::Result;
use offline_sync::model::DocumentId;

use crate::Scale;
use crate::setup::{self, Broker};
use crate::table::{Table, count, ratio};
use crate::throughput::backlog;

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(10_000, 300);
    let ships = scale.pick(5, 2);
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    let master = setup::master(&broker, &setup::postgres("bench_fanout").await?, |_| {}).await?;
    let mut replicas = Vec::new();
    for i in 0..ships {
        replicas.push(
            setup::replica(
                &broker,
                &setup::sqlite(dir.path(), &format!("ship-{i}")),
                i,
                |_| {},
            )
            .await?,
        );
    }
    let ct = setup::article();
    let changes = backlog(n, 2);
    let ids: Vec<DocumentId> = (0..n.div_ceil(10).max(1)).map(|_| DocumentId::new_v7()).collect();
    for c in &changes {
        if c.create {
            master.create_with_id(&ct, ids[c.id], c.fields.clone()).await?;
        } else {
            master.update(&ct, ids[c.id], c.fields.clone()).await?;
        }
    }
    let last = master.storage().last_csn().await?;
    let started = Instant::now();
    let mut running = vec![master.start()];
    running.extend(replicas.iter().map(|r| r.start()));
    let waited = setup::wait_for(
        "every replica applying the master's backlog",
        Duration::from_secs(1800),
        Duration::from_millis(20),
        || async {
            for r in &replicas {
                if r.storage().replica_progress().await?.applied_csn < last {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await;
    let took = started.elapsed();
    for r in running {
        r.shutdown().await;
    }
    waited?;
    let payloads: Vec<Vec<u8>> = changes
        .iter()
        .map(|c| serde_json::to_vec(&c.fields).unwrap_or_default())
        .collect();
    let raw = raw_fanout(&broker, &payloads, ships).await?;
    let mut table = Table::new(&["path", "replicas", "changes/s (per replica)", "seconds"]);
    let baseline = "raw rskafka: produce, then every consumer fetches all (baseline)";
    table.timed(vec![baseline.into(), ships.to_string()], n, raw);
    let ours = "**master commits → every replica applied them**";
    table.timed(vec![ours.into(), ships.to_string()], n, took);
    table.print();
    println!(
        "Fan-out: {} of the baseline, {} master commits ({} creates).\n",
        ratio(setup::rate(n, took), setup::rate(n, raw)),
        count(n as f64),
        count(changes.iter().filter(|c| c.create).count() as f64)
    );
    Ok(())
}

/// Produces `payloads` as signed records, then lets `consumers` fetch them all at once.
async fn raw_fanout(broker: &Broker, payloads: &[Vec<u8>], consumers: usize) -> Result<Duration> {
    let producer = setup::raw_partition(broker, "raw-fanout").await?;
    let records = setup::sealed(payloads, "master", 5);
    let n = payloads.len();
    let started = Instant::now();
    setup::produce_all(&producer, &records, 100).await?;
    let mut readers = Vec::new();
    for _ in 0..consumers {
        let reader = setup::raw_reader(broker, "raw-fanout").await?;
        readers.push(tokio::spawn(async move { setup::fetch_all(&reader, n).await }));
    }
    for r in readers {
        r.await??;
    }
    Ok(started.elapsed())
}
