//! Scenario 3, latency at low load: one change at a time on a ship (no debounce), timed until
//! the master holds it and until another ship holds it; p50 and p99.
//!
//! Baseline: one record produced with rskafka and read by a consumer already polling the
//! partition every 10 ms, through the same broker: what a change's trip costs with nothing
//! but Kafka on the way. A change makes that trip twice (ship → master → ship). tansu answers
//! a fetch when its wait ends rather than when a record arrives, so every node here polls
//! every 10 ms too.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use offline_sync::model::DocumentId;
use serde_json::json;

use crate::Scale;
use crate::setup::{self, Broker, Rng};
use crate::table::{Table, ms};

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(1_000, 20);
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    // tansu answers a fetch when its wait ends, not when a record arrives as Kafka does: the
    // poll wait bounds each hop, so the nodes poll every 10 ms here.
    let poll = Duration::from_millis(10);
    let master = setup::master(&broker, &setup::postgres("bench_latency").await?, |c| {
        c.poll_wait = poll
    })
    .await?;
    let writer = setup::replica(&broker, &setup::sqlite(dir.path(), "writer"), 0, |c| {
        c.poll_wait = poll
    })
    .await?;
    let reader = setup::replica(&broker, &setup::sqlite(dir.path(), "reader"), 1, |c| {
        c.poll_wait = poll
    })
    .await?;
    let running = [master.start(), writer.start(), reader.start()];
    let ct = setup::article();
    let id = DocumentId::new_v7();
    let mut rng = Rng::new(3);
    writer.create_with_id(&ct, id, setup::document(&mut rng)).await?;
    let poll = Duration::from_millis(1);
    let limit = Duration::from_secs(30);
    setup::wait_for("the document reaching the other ship", limit, poll, || async {
        Ok(reader.get(&ct, id).await?.is_some())
    })
    .await?;
    let mut to_master = Vec::with_capacity(n);
    let mut to_ship = Vec::with_capacity(n);
    for i in 0..n {
        let mut f = offline_sync::model::Fields::new();
        f.insert("count".into(), json!(i));
        let started = Instant::now();
        writer.update(&ct, id, f).await?;
        let has = |doc: Option<offline_sync::storage::StoredDoc>| {
            doc.is_some_and(|d| d.fields.get("count") == Some(&json!(i)))
        };
        setup::wait_for("the change reaching the master", limit, poll, || async {
            Ok(has(master.get(&ct, id).await?))
        })
        .await?;
        to_master.push(started.elapsed());
        setup::wait_for("the change reaching the other ship", limit, poll, || async {
            Ok(has(reader.get(&ct, id).await?))
        })
        .await?;
        to_ship.push(started.elapsed());
    }
    for r in running {
        r.shutdown().await;
    }
    let mut raw = raw_round_trips(&broker, n).await?;
    let mut table = Table::new(&["path", "p50 ms", "p99 ms", "samples"]);
    table.row(vec![
        "raw rskafka: produce → waiting consumer (baseline, one hop)".into(),
        ms(setup::percentile(&mut raw, 50.0)),
        ms(setup::percentile(&mut raw, 99.0)),
        n.to_string(),
    ]);
    table.row(vec![
        "ship write → visible on the master".into(),
        ms(setup::percentile(&mut to_master, 50.0)),
        ms(setup::percentile(&mut to_master, 99.0)),
        n.to_string(),
    ]);
    table.row(vec![
        "ship write → visible on another ship".into(),
        ms(setup::percentile(&mut to_ship, 50.0)),
        ms(setup::percentile(&mut to_ship, 99.0)),
        n.to_string(),
    ]);
    table.print();
    Ok(())
}

/// Times `n` records, one at a time, from produce until a consumer long-polling the partition
/// has it.
async fn raw_round_trips(broker: &Broker, n: usize) -> Result<Vec<Duration>> {
    let producer = setup::raw_partition(broker, "raw-latency").await?;
    let consumer = setup::raw_reader(broker, "raw-latency").await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let offset = i as i64;
        let waiting = consumer.clone();
        let fetch = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let (got, _) = waiting.fetch_records(offset, 1..1024 * 1024, 10).await?;
                if !got.is_empty() {
                    return Ok::<_, anyhow::Error>(Instant::now());
                }
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("record {offset} never arrived");
                }
            }
        });
        // Let the consumer's fetch reach the broker before producing.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let record = setup::raw_record(
            Some(b"ship-0".to_vec()),
            format!("{{\"count\":{i}}}").into_bytes(),
        );
        let produced = Instant::now();
        setup::produce_all(&producer, &[record], 1).await?;
        let received = fetch.await??;
        samples.push(received.saturating_duration_since(produced));
    }
    Ok(samples)
}
