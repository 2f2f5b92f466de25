//! Filtered listings over many documents: what a Strapi filter costs a ship app, and what
//! an index over a field (`SYNC_INDEXES`) saves.
//!
//! Baseline: the same listing without the index, which reads every document of the type (a
//! full scan of its rows), measured in the same run on the same database. Each listing asks
//! for the first page of 25 and the count, as a Strapi client's `find` does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use offline_sync::model::{ContentType, DocumentId};
use offline_sync::storage::{
    Case, CommonStorage, DocumentQuery, Filter, Member, Page, SeaStorage, Test, TextTest,
};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;

use crate::Scale;
use crate::setup;
use crate::table::{Table, count, ms, ratio};

/// Timed runs of each listing; the median is shown.
const RUNS: usize = 15;

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(100_000, 2_000);
    let dir = tempfile::tempdir()?;
    let databases = [
        ("SQLite", setup::sqlite(dir.path(), "filter")),
        ("PostgreSQL", setup::postgres("bench_filter").await?),
    ];
    let mut table = Table::new(&[
        "database",
        "filter",
        "matches",
        "full scan (ms)",
        "with index (ms)",
        "full scan ÷ index",
    ]);
    for (name, url) in databases {
        let s = SeaStorage::connect(&url).await?;
        let ct = setup::article();
        fill(&url, &ct, n).await?;
        let listings = listings(n);
        let mut scans = Vec::new();
        for (_, query) in &listings {
            scans.push(median(&s, &ct, query).await?);
        }
        let indexed: BTreeSet<String> = ["status".to_owned(), "n".to_owned()].into();
        s.index_fields(&indexed).await?;
        analyze(&url).await?;
        for ((label, query), (scan, matches)) in listings.iter().zip(scans) {
            let (with_index, again) = median(&s, &ct, query).await?;
            anyhow::ensure!(
                again == matches,
                "{label}: {again} matches with the index, {matches} without"
            );
            table.row(vec![
                name.to_owned(),
                (*label).to_owned(),
                count(matches as f64),
                ms(scan),
                ms(with_index),
                ratio(scan.as_secs_f64(), with_index.as_secs_f64()),
            ]);
        }
        s.close().await?;
    }
    println!(
        "{} documents of one type; `SYNC_INDEXES=status,n` for the second column.\n",
        count(n as f64)
    );
    table.print();
    Ok(())
}

/// The listings measured: an equality on a field with 100 values, on a unique number, and
/// a text search that no index answers.
fn listings(n: usize) -> Vec<(&'static str, DocumentQuery)> {
    let field = |name: &str| Member::Field(vec![name.to_owned()]);
    let one = |filter| DocumentQuery {
        filter: Some(filter),
        sort: Vec::new(),
        ..Default::default()
    };
    vec![
        (
            "status $eq (1 in 100)",
            one(Filter::Test(field("status"), Test::Eq("s7".into()))),
        ),
        (
            "n $eq (one document)",
            one(Filter::Test(field("n"), Test::Eq((n / 2).to_string()))),
        ),
        (
            "title $containsi (no index applies)",
            one(Filter::Test(
                field("title"),
                Test::Text(TextTest::Contains, "X 4242".into(), Case::Insensitive),
            )),
        ),
    ]
}

/// The median time of the first page and count of `query`, and how many documents match.
async fn median(s: &SeaStorage, ct: &ContentType, query: &DocumentQuery) -> Result<(Duration, u64)> {
    let page = Page { offset: 0, limit: 25 };
    let mut times = Vec::with_capacity(RUNS);
    let mut matches = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let (_, total) = s.find_documents(ct, query, page).await?;
        times.push(started.elapsed());
        matches = total;
    }
    times.sort_unstable();
    Ok((times[RUNS / 2], matches))
}

/// Writes `n` live documents of `ct` straight into `documents`, 500 a statement in one
/// transaction: the listing is measured, not the writes.
async fn fill(url: &str, ct: &ContentType, n: usize) -> Result<()> {
    let db = sea_orm::Database::connect(url).await?;
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    for start in (0..n).step_by(500) {
        let mut values = Vec::new();
        let mut rows = Vec::new();
        for i in start..(start + 500).min(n) {
            let fields = json!({
                "n": i,
                "status": format!("s{}", i % 100),
                "title": format!("Document x {i}"),
                "shipId": format!("ship-{}", i % 50),
            });
            let at = values.len();
            let p = |k: usize| match backend {
                sea_orm::DbBackend::Postgres => format!("${}", at + k),
                _ => "?".to_owned(),
            };
            rows.push(format!("({}, {}, {}, FALSE, 1, '{{}}', 0)", p(1), p(2), p(3)));
            values.push(sea_orm::Value::from(ct.as_str().to_owned()));
            values.push(sea_orm::Value::from(DocumentId::new_v7().to_string()));
            values.push(sea_orm::Value::from(fields.to_string()));
        }
        let sql = format!(
            "INSERT INTO documents (content_type, document_id, fields, deleted, version, meta, updated_at_ms) \
             VALUES {}",
            rows.join(", ")
        );
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    txn.commit().await?;
    analyze_on(&db).await?;
    db.close().await?;
    Ok(())
}

/// Refreshes the planner's statistics, as a database does on its own after many writes.
async fn analyze(url: &str) -> Result<()> {
    let db = sea_orm::Database::connect(url).await?;
    analyze_on(&db).await?;
    db.close().await?;
    Ok(())
}

async fn analyze_on(db: &sea_orm::DatabaseConnection) -> Result<()> {
    db.execute_unprepared("ANALYZE").await?;
    Ok(())
}
