//! Scenario 5, fleet scale: many ships in one process, each with its own SQLite database and
//! broker connection, write their changes at once while the master applies them. Reported:
//! the master's throughput over the whole burst and the worst ship's lag (from its last write
//! until the master applied it).
//!
//! Baseline: the same number of rows inserted raw into PostgreSQL, 100 a statement, with the
//! same driver: what the master's database takes with nothing else to do.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use offline_sync::model::{DocumentId, Fields};
use sea_orm::Database;
use serde_json::json;

use crate::Scale;
use crate::setup::{self, Broker, Rng};
use crate::table::{Table, count, ms, ratio, secs};

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let ships = scale.pick(200, 10);
    let each = scale.pick(50, 5);
    let total = ships * each;
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    let master = setup::master(&broker, &setup::postgres("bench_fleet").await?, |_| {}).await?;
    let mut fleet = Vec::with_capacity(ships);
    for i in 0..ships {
        fleet.push(
            setup::replica(
                &broker,
                &setup::sqlite(dir.path(), &format!("ship-{i}")),
                i,
                |c| {
                    c.poll_wait = Duration::from_secs(1);
                },
            )
            .await?,
        );
    }
    let mut running = vec![master.start()];
    running.extend(fleet.iter().map(|r| r.start()));
    let ct = setup::article();
    let started = Instant::now();
    let mut writers = Vec::with_capacity(ships);
    for (i, ship) in fleet.iter().enumerate() {
        let (ship, ct) = (ship.clone(), ct.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = Rng::new(i as u64 + 10);
            let id = DocumentId::new_v7();
            ship.create_with_id(&ct, id, setup::document(&mut rng)).await?;
            for n in 1..each {
                let mut f = Fields::new();
                f.insert("count".into(), json!(n));
                ship.update(&ct, id, f).await?;
            }
            Ok::<_, anyhow::Error>(started.elapsed())
        }));
    }
    let mut last_write = Vec::with_capacity(ships);
    for w in writers {
        last_write.push(w.await??);
    }
    let mut done: BTreeMap<String, Duration> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let waited = loop {
        match master.storage().ships().await {
            Ok(records) => {
                for s in records.iter().filter(|s| s.last_seq >= each as u64) {
                    done.entry(s.ship.as_str().to_owned())
                        .or_insert_with(|| started.elapsed());
                }
            }
            Err(e) => break Err(anyhow::Error::from(e)),
        }
        if done.len() >= ships {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the master applying every ship's changes: not done within 30 min"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    for r in running {
        r.shutdown().await;
    }
    waited?;
    let worst = (0..ships)
        .filter_map(|i| {
            let applied = done.get(&format!("ship-{i}"))?;
            Some(applied.saturating_sub(last_write[i]))
        })
        .max()
        .unwrap_or(Duration::ZERO);
    let mut rng = Rng::new(9);
    let payloads: Vec<Vec<u8>> = (0..total)
        .map(|_| serde_json::to_vec(&setup::document(&mut rng)).unwrap_or_default())
        .collect();
    let raw = crate::throughput::raw_inserts(
        &Database::connect(setup::postgres("bench_fleet_raw").await?).await?,
        &payloads,
        false,
    )
    .await?;
    let mut table = Table::new(&[
        "path",
        "ships",
        "changes",
        "changes/s",
        "seconds",
        "worst ship lag ms",
    ]);
    table.row(vec![
        "raw PostgreSQL inserts, 100 a statement (baseline)".into(),
        "–".into(),
        count(total as f64),
        count(setup::rate(total, raw)),
        secs(raw),
        "–".into(),
    ]);
    table.row(vec![
        "**every ship writing at once → master applied all**".into(),
        ships.to_string(),
        count(total as f64),
        count(setup::rate(total, took)),
        secs(took),
        ms(worst),
    ]);
    table.print();
    println!(
        "Master throughput under the whole fleet: {} of raw inserts.\n",
        ratio(setup::rate(total, took), setup::rate(total, raw))
    );
    Ok(())
}
