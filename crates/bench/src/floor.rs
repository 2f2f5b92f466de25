//! The floor of scenario 1: the work the design asks of every change of a drain, done raw —
//! the same parts (SQLite, the Ed25519 record signature, tansu, PostgreSQL) with nothing of
//! offline-sync's engine around them — one stage at a time, each measured by the wall clock
//! and by the CPU the whole machine spent during it (`/proc/stat`: this process, tansu and
//! PostgreSQL alike).
//!
//! What each stage does is the least the protocol allows (DESIGN.md §4 and §5): the ship
//! reads its outbox and marks what it sent; every record is signed by its sender and verified
//! by its reader; the master applies a batch in one transaction (reads the documents it
//! touches, takes the CSNs, writes the documents with their field versions, the commits to
//! broadcast, the ship's seq and its consumer offset); the master's commits go back through
//! the broker; the ship takes the commits of its own changes (the versions, the
//! acknowledgements, its offset). No JSON merging, no field-level decisions, no conflicts,
//! no metrics: the engine does all of these on top.
//!
//! The sum of the stages' CPU per change bounds what any implementation of this protocol can
//! drain on this machine's cores, however it overlaps the stages: `cores ÷ CPU per change`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use offline_sync::model::{DocumentId, unseal, verify_all};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

use crate::setup::{self, Broker};
use crate::table::{Table, count};
use crate::throughput::Change;

/// Rows a statement when the floor fills the ship's tables before it measures.
const FILL_ROWS: usize = 100;

/// The clock ticks of `/proc/stat`: fixed at 100 a second by the kernel's ABI.
const USER_HZ: u64 = 100;

/// One measured stage.
struct Stage {
    name: &'static str,
    wall: Duration,
    busy: Duration,
}

/// What the floor found: its table, and how many changes a second the machine can carry at
/// most, through the master's apply and through the whole round trip.
pub(crate) struct Floor {
    table: Table,
    pub(crate) to_master: f64,
    pub(crate) round_trip: f64,
}

impl Floor {
    pub(crate) fn print(&self) {
        self.table.print();
    }
}

/// CPU time the machine's cores have spent busy since boot (user, nice, system, irq, softirq,
/// steal).
fn busy() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .context("/proc/stat has no cpu line")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    Ok(Duration::from_millis(busy * 1000 / USER_HZ))
}

/// Runs `stage`, adding its wall time and the machine's busy CPU during it to `stages`.
async fn measure<T>(
    stages: &mut Vec<Stage>,
    name: &'static str,
    stage: impl Future<Output = Result<T>>,
) -> Result<T> {
    setup::progress(&format!("floor: {name}"));
    let (cpu, started) = (busy()?, Instant::now());
    let out = stage.await?;
    stages.push(Stage {
        name,
        wall: started.elapsed(),
        busy: busy()?.saturating_sub(cpu),
    });
    Ok(out)
}

/// `head` followed by `rows` as one multi-row list of placeholders (`(?, ?), (?, ?)` on
/// SQLite, `($1, $2), ($3, $4)` on PostgreSQL), then `tail`; with the rows' values.
pub(crate) fn rows_sql(backend: DbBackend, head: &str, rows: Vec<Vec<Value>>, tail: &str) -> Statement {
    let mut sql = String::from(head);
    let mut values = Vec::new();
    for (r, row) in rows.into_iter().enumerate() {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for (c, v) in row.into_iter().enumerate() {
            if c > 0 {
                sql.push_str(", ");
            }
            values.push(v);
            match backend {
                DbBackend::Postgres => sql.push_str(&format!("${}", values.len())),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    Statement::from_sql_and_values(backend, sql, values)
}

/// The tables a node keeps, reduced to the columns the floor writes.
const SCHEMA: &str = "
    CREATE TABLE documents (document_id VARCHAR(36) PRIMARY KEY, fields TEXT NOT NULL,
        version BIGINT NOT NULL, meta TEXT NOT NULL, updated_at_ms BIGINT NOT NULL);
    CREATE TABLE offsets (topic VARCHAR(255) PRIMARY KEY, next_offset BIGINT NOT NULL);";

/// Measures the floor of draining `changes` (whose fields are `payloads`) from a SQLite ship
/// into a PostgreSQL master over `broker`, `batch` changes a transaction and a produce.
pub(crate) async fn run(
    broker: &Broker,
    changes: &[Change],
    payloads: &[Vec<u8>],
    batch: usize,
) -> Result<Floor> {
    let dir = tempfile::tempdir()?;
    let ship = Database::connect(setup::sqlite(dir.path(), &format!("floor-{batch}"))).await?;
    let master = Database::connect(setup::postgres(&format!("bench_floor_{batch}")).await?).await?;
    let docs: Vec<String> = (0..changes.iter().map(|c| c.id + 1).max().unwrap_or(0))
        .map(|_| DocumentId::new_v7().to_string())
        .collect();
    setup::progress("floor: filling the ship's outbox (not measured)");
    prepare_ship(&ship, changes, payloads, &docs).await?;
    prepare_master(&master).await?;

    let mut stages = Vec::new();
    let sent = measure(
        &mut stages,
        "ship: read the outbox, mark it sent (SQLite)",
        send(&ship, batch),
    )
    .await?;
    let topic = format!("floor-ship-updates-{batch}");
    let applied = carry(&mut stages, broker, "ship-0", &topic, SHIP_HOP, &sent, batch).await?;
    let commits = measure(
        &mut stages,
        "master: apply each batch in one transaction (PostgreSQL)",
        apply(&master, changes, &applied, payloads, &docs, batch),
    )
    .await?;
    let before_master = stages.len();
    let topic = format!("floor-master-updates-{batch}");
    let commits = carry(&mut stages, broker, "master", &topic, MASTER_HOP, &commits, batch).await?;
    measure(
        &mut stages,
        "ship: take its changes' commits: versions, acknowledgements (SQLite)",
        acknowledge(&ship, changes, &docs, commits.len(), batch),
    )
    .await?;

    let n = changes.len();
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let per_change = |s: &[Stage]| s.iter().map(|s| s.busy).sum::<Duration>().as_secs_f64() * 1e6 / n as f64;
    let ceiling = |us: f64| cores * 1e6 / us.max(1e-9);
    let header = format!("stage (raw, batches of {batch})");
    let mut table = Table::new(&[&header, "changes/s alone", "CPU µs a change"]);
    for s in &stages {
        table.row(vec![
            s.name.into(),
            count(setup::rate(n, s.wall)),
            format!("{:.1}", s.busy.as_secs_f64() * 1e6 / n as f64),
        ]);
    }
    let (to_master, round_trip) = (per_change(&stages[..before_master]), per_change(&stages));
    for (what, us) in [
        (
            "**until the master has applied it** (the stages above the master's signature)",
            to_master,
        ),
        ("**the whole round trip**", round_trip),
    ] {
        table.row(vec![
            format!("{what}: at most, on {cores} cores"),
            count(ceiling(us)),
            format!("{us:.1}"),
        ]);
    }
    Ok(Floor {
        table,
        to_master: ceiling(to_master),
        round_trip: ceiling(round_trip),
    })
}

/// The stages of the ship's records to the master: signing, the broker, verifying.
const SHIP_HOP: [&str; 3] = [
    "ship: sign each record (Ed25519)",
    "tansu: produce and fetch the ship's records",
    "master: verify each record (Ed25519, batched)",
];

/// The stages of the master's commits to the ship.
const MASTER_HOP: [&str; 3] = [
    "master: sign each commit (Ed25519)",
    "tansu: produce and fetch the master's commits",
    "ship: verify each commit (Ed25519, batched)",
];

/// Carries `messages` from `sender` to its reader through `topic`, a stage each for the
/// signing, the broker and the verifying, named by `names`; returns the messages as the
/// reader verified them.
async fn carry(
    stages: &mut Vec<Stage>,
    broker: &Broker,
    sender: &str,
    topic: &str,
    names: [&'static str; 3],
    messages: &[Vec<u8>],
    batch: usize,
) -> Result<Vec<Vec<u8>>> {
    let [sign, broker_stage, check] = names;
    let records = measure(stages, sign, async { Ok(setup::sealed(messages, sender, 3)) }).await?;
    let partition = setup::raw_partition(broker, topic).await?;
    let received = measure(stages, broker_stage, async {
        setup::produce_all(&partition, &records, batch).await?;
        setup::fetch_all(&partition, records.len()).await
    })
    .await?;
    measure(stages, check, async { verify(&received, batch) }).await
}

/// The signed records' messages, each verified by the key it names.
fn verify(records: &[Vec<u8>], batch: usize) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(records.len());
    for chunk in records.chunks(batch) {
        let unsealed = chunk.iter().map(|r| unseal(r)).collect::<Result<Vec<_>, _>>()?;
        if verify_all(&unsealed.iter().collect::<Vec<_>>()).contains(&false) {
            bail!("a record of the floor's own does not verify");
        }
        out.extend(unsealed.iter().map(|u| u.msg.to_vec()));
    }
    Ok(out)
}

async fn prepare_ship(
    db: &DatabaseConnection,
    changes: &[Change],
    payloads: &[Vec<u8>],
    docs: &[String],
) -> Result<()> {
    db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .await?;
    db.execute_unprepared(SCHEMA).await?;
    db.execute_unprepared(
        "CREATE TABLE outbox (seq BIGINT PRIMARY KEY, document_id VARCHAR(36) NOT NULL,
            op VARCHAR(16) NOT NULL, fields TEXT NOT NULL, base_version BIGINT NOT NULL,
            state VARCHAR(16) NOT NULL, sent_at_ms BIGINT, acked_at_ms BIGINT);
         CREATE INDEX outbox_by_state ON outbox (state, seq);",
    )
    .await?;
    let backend = db.get_database_backend();
    let rows = changes.iter().zip(payloads).enumerate().map(|(seq, (c, p))| {
        vec![
            (seq as i64 + 1).into(),
            docs[c.id].clone().into(),
            if c.create { "create" } else { "update" }.into(),
            String::from_utf8_lossy(p).into_owned().into(),
            0i64.into(),
            "pending".into(),
        ]
    });
    insert_all(
        db,
        backend,
        "INSERT INTO outbox (seq, document_id, op, fields, base_version, state) VALUES ",
        rows.collect(),
    )
    .await?;
    let created = changes.iter().zip(payloads).filter(|(c, _)| c.create);
    let rows = created.map(|(c, p)| {
        vec![
            docs[c.id].clone().into(),
            String::from_utf8_lossy(p).into_owned().into(),
            0i64.into(),
            "{}".into(),
            0i64.into(),
        ]
    });
    insert_all(
        db,
        backend,
        "INSERT INTO documents (document_id, fields, version, meta, updated_at_ms) VALUES ",
        rows.collect(),
    )
    .await
}

async fn insert_all(
    db: &DatabaseConnection,
    backend: DbBackend,
    head: &str,
    rows: Vec<Vec<Value>>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value>> = rows.by_ref().take(FILL_ROWS).collect();
        db.execute_raw(rows_sql(backend, head, chunk, "")).await?;
    }
    Ok(())
}

async fn prepare_master(db: &DatabaseConnection) -> Result<()> {
    db.execute_unprepared(SCHEMA).await?;
    db.execute_unprepared(
        "ALTER TABLE documents SET (fillfactor = 80);
         CREATE TABLE broadcasts (id BIGSERIAL PRIMARY KEY, csn BIGINT NOT NULL,
            payload TEXT NOT NULL, created_at_ms BIGINT NOT NULL);
         CREATE TABLE ships (ship_id VARCHAR(64) PRIMARY KEY, last_seq BIGINT NOT NULL);
         CREATE TABLE counters (name VARCHAR(32) PRIMARY KEY, value BIGINT NOT NULL);
         INSERT INTO ships VALUES ('ship-0', 0);
         INSERT INTO counters VALUES ('csn', 0);",
    )
    .await?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The ship's pusher: each batch of pending outbox rows read and marked sent in one
/// transaction. Returns the fields read, in seq order.
async fn send(db: &DatabaseConnection, batch: usize) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let txn = db.begin().await?;
        let rows = txn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!(
                    "SELECT seq, document_id, op, fields, base_version FROM outbox
                     WHERE state = 'pending' ORDER BY seq LIMIT {batch}"
                ),
            ))
            .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(out);
        };
        let (first, last): (i64, i64) = (first.try_get("", "seq")?, last.try_get("", "seq")?);
        for row in &rows {
            out.push(row.try_get::<String>("", "fields")?.into_bytes());
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE outbox SET state = 'sent', sent_at_ms = ? WHERE seq >= ? AND seq <= ?",
            [now_ms().into(), first.into(), last.into()],
        ))
        .await?;
        txn.commit().await?;
    }
}

/// The master's apply: each batch in one transaction. Returns the commits to broadcast.
async fn apply(
    db: &DatabaseConnection,
    changes: &[Change],
    verified: &[Vec<u8>],
    payloads: &[Vec<u8>],
    docs: &[String],
    size: usize,
) -> Result<Vec<Vec<u8>>> {
    // The documents' fields as the master holds them after each change: a create's fields,
    // kept by the one-field updates that follow (the floor merges nothing).
    let mut held: HashMap<usize, String> = HashMap::new();
    let mut commits = Vec::with_capacity(changes.len());
    let pg = DbBackend::Postgres;
    for (b, (batch, msgs)) in changes.chunks(size).zip(verified.chunks(size)).enumerate() {
        let txn = db.begin().await?;
        let touched: Vec<Vec<Value>> = batch.iter().map(|c| vec![docs[c.id].clone().into()]).collect();
        txn.query_all_raw(rows_sql(
            pg,
            "SELECT document_id, fields, version, meta FROM documents WHERE document_id IN (VALUES ",
            touched,
            ")",
        ))
        .await?;
        let row = txn
            .query_one_raw(Statement::from_string(
                pg,
                format!(
                    "UPDATE counters SET value = value + {} WHERE name = 'csn' RETURNING value",
                    batch.len()
                ),
            ))
            .await?
            .context("no CSN counter")?;
        let first_csn = row.try_get::<i64>("", "value")? - batch.len() as i64 + 1;
        let mut documents: HashMap<usize, Vec<Value>> = HashMap::new();
        let mut broadcasts = Vec::with_capacity(batch.len());
        let now = now_ms();
        for (i, (c, msg)) in batch.iter().zip(msgs).enumerate() {
            let csn = first_csn + i as i64;
            let p = &payloads[b * size + i];
            if c.create {
                held.insert(c.id, String::from_utf8_lossy(p).into_owned());
            }
            let fields = held.get(&c.id).cloned().unwrap_or_default();
            let meta = field_versions(c, csn);
            documents.insert(
                c.id,
                vec![
                    docs[c.id].clone().into(),
                    fields.into(),
                    csn.into(),
                    meta.into(),
                    now.into(),
                ],
            );
            let commit = format!(
                "{{\"csn\":{csn},\"document_id\":\"{}\",\"fields\":{}}}",
                docs[c.id],
                String::from_utf8_lossy(msg)
            );
            broadcasts.push(vec![csn.into(), commit.clone().into(), now.into()]);
            commits.push(commit.into_bytes());
        }
        txn.execute_raw(rows_sql(
            pg,
            "INSERT INTO documents (document_id, fields, version, meta, updated_at_ms) VALUES ",
            documents.into_values().collect(),
            " ON CONFLICT (document_id) DO UPDATE SET fields = excluded.fields, \
             version = excluded.version, meta = excluded.meta, updated_at_ms = excluded.updated_at_ms",
        ))
        .await?;
        txn.execute_raw(rows_sql(
            pg,
            "INSERT INTO broadcasts (csn, payload, created_at_ms) VALUES ",
            broadcasts,
            "",
        ))
        .await?;
        let last_seq = (b * size + batch.len()) as i64;
        txn.execute_raw(Statement::from_sql_and_values(
            pg,
            "UPDATE ships SET last_seq = $1 WHERE ship_id = 'ship-0'",
            [last_seq.into()],
        ))
        .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            pg,
            "INSERT INTO offsets VALUES ('ship-updates', $1) \
             ON CONFLICT (topic) DO UPDATE SET next_offset = excluded.next_offset",
            [last_seq.into()],
        ))
        .await?;
        txn.commit().await?;
    }
    Ok(commits)
}

/// The per-field versions the master keeps of a document: each field this change set, at
/// `csn` (a create sets every field).
fn field_versions(c: &Change, csn: i64) -> String {
    let versions: serde_json::Map<String, serde_json::Value> =
        c.fields.keys().map(|k| (k.clone(), csn.into())).collect();
    serde_json::Value::Object(versions).to_string()
}

/// The ship taking the master's commits of its own changes: in each batch's transaction, the
/// documents' new versions (one statement), the outbox rows acknowledged, the offset.
async fn acknowledge(
    db: &DatabaseConnection,
    changes: &[Change],
    docs: &[String],
    n: usize,
    size: usize,
) -> Result<()> {
    let sqlite = DbBackend::Sqlite;
    for (b, batch) in changes[..n].chunks(size).enumerate() {
        let txn = db.begin().await?;
        let mut versions: HashMap<usize, i64> = HashMap::new();
        for (i, c) in batch.iter().enumerate() {
            versions.insert(c.id, (b * size + i + 1) as i64);
        }
        let rows = versions
            .into_iter()
            .map(|(id, csn)| vec![docs[id].clone().into(), csn.into()])
            .collect();
        txn.execute_raw(rows_sql(
            sqlite,
            "WITH v(document_id, version) AS (VALUES ",
            rows,
            ") UPDATE documents SET version = v.version FROM v WHERE documents.document_id = v.document_id",
        ))
        .await?;
        let (first, last) = ((b * size + 1) as i64, (b * size + batch.len()) as i64);
        txn.execute_raw(Statement::from_sql_and_values(
            sqlite,
            "UPDATE outbox SET state = 'acked', acked_at_ms = ? WHERE seq >= ? AND seq <= ?",
            [now_ms().into(), first.into(), last.into()],
        ))
        .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            sqlite,
            "INSERT INTO offsets VALUES ('master-updates', ?) \
             ON CONFLICT (topic) DO UPDATE SET next_offset = excluded.next_offset",
            [last.into()],
        ))
        .await?;
        txn.commit().await?;
    }
    Ok(())
}
