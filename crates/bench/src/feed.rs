//! The change feed: what it costs a ship's writes (each write also writes its event, by a
//! trigger in the same transaction), and how fast a client reads it.
//!
//! Baseline: the same local writes into a database whose feed triggers were dropped,
//! measured in the same run; each database is fresh, so neither run writes into the other's
//! rows.

use std::time::Instant;

use anyhow::Result;
use offline_sync::model::{DocumentId, Hlc, LocalWrite, ShipId};
use offline_sync::storage::{CommonStorage, ReplicaStorage, SeaStorage};
use sea_orm::ConnectionTrait;

use crate::Scale;
use crate::setup::{self, Rng, rate};
use crate::table::{Table, count, ratio};

/// Events a read of the feed asks for, as a stream does.
const PAGE: usize = 200;

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(10_000, 300);
    let dir = tempfile::tempdir()?;
    let mut table = Table::new(&[
        "database",
        "without a feed (writes/s)",
        "with the feed (writes/s)",
        "with ÷ without",
        "feed read (events/s)",
    ]);
    for name in ["SQLite", "PostgreSQL"] {
        let off = url(name, dir.path(), "feed_off").await?;
        let plain = SeaStorage::connect(&off).await?;
        drop_triggers(&off).await?;
        let without = writes(&plain, n).await?;
        plain.close().await?;

        let fed = SeaStorage::connect(&url(name, dir.path(), "feed_on").await?).await?;
        let with = writes(&fed, n).await?;
        let started = Instant::now();
        let (mut after, mut events) = (0, 0);
        loop {
            let page = fed.feed(after, PAGE).await?;
            let Some(last) = page.events.last() else { break };
            after = last.seq;
            events += page.events.len();
        }
        let read = rate(events, started.elapsed());
        anyhow::ensure!(events == n, "{events} events for {n} writes");
        fed.close().await?;
        table.row(vec![
            name.to_owned(),
            count(without),
            count(with),
            ratio(with, without),
            count(read),
        ]);
    }
    println!(
        "{} local writes of a ship (half creates, half updates of about 1 KB), each in its own transaction.\n",
        count(n as f64)
    );
    table.print();
    Ok(())
}

/// A fresh database of `backend` named after `label` (a SQLite file in `dir`).
async fn url(backend: &str, dir: &std::path::Path, label: &str) -> Result<String> {
    match backend {
        "SQLite" => Ok(setup::sqlite(dir, label)),
        _ => setup::postgres(&format!("bench_{label}")).await,
    }
}

/// Writes `n` local changes, one transaction each; returns writes per second.
async fn writes(s: &SeaStorage, n: usize) -> Result<f64> {
    let ship = ShipId::new("ship-bench")?;
    let ct = setup::article();
    let mut rng = Rng::new(7);
    let ids: Vec<DocumentId> = (0..n.div_ceil(2)).map(|_| DocumentId::new_v7()).collect();
    let started = Instant::now();
    for i in 0..n {
        let id = ids[i % ids.len()];
        let fields = setup::document(&mut rng);
        let content_type = ct.clone();
        let w = if i < ids.len() {
            LocalWrite::Create {
                content_type,
                id,
                fields,
            }
        } else {
            LocalWrite::Update {
                content_type,
                id,
                fields,
            }
        };
        s.local_write(&ship, &w, Hlc::default(), i as u64 + 1).await?;
    }
    Ok(rate(n, started.elapsed()))
}

/// Drops the feed's triggers of the database at `url`: the database of the baseline.
async fn drop_triggers(url: &str) -> Result<()> {
    let db = sea_orm::Database::connect(url).await?;
    let drops: &[&str] = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => &["DROP TRIGGER documents_feed ON documents"],
        _ => &[
            "DROP TRIGGER documents_feed_insert",
            "DROP TRIGGER documents_feed_update",
        ],
    };
    for sql in drops {
        db.execute_unprepared(sql).await?;
    }
    db.close().await?;
    Ok(())
}
