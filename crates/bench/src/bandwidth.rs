//! Scenario 4, bytes on the wire per change: a counting TCP proxy sits between the Kafka
//! transport and tansu and counts what the client sends (Kafka produce requests with their
//! framing) while changes are produced as a ship sends them: the changed fields only, in a
//! signed record, with no compression, lz4 and zstd, one change a request and 100 a request.
//!
//! Three kinds of change: a one-field update of the same 1 KB document again and again (the
//! figure earlier runs gave), a realistic mix of one-field updates over 1,000 documents with
//! varied values, and 1 KB creates. Baselines in the same run: the seed's whole-document JSON,
//! one per request, uncompressed, through the same proxy; and gzip'd JSON batches of whole
//! rows as SymmetricDS sends them (100 rows a batch, counted without any framing).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use offline_sync::kafka::{Compression, KafkaConfig, KafkaTransport};
use offline_sync::model::{Change, DocumentId, Fields, Hlc, Message, Op, ShipId, SigningKey, encode};
use offline_sync::transport::Transport;
use offline_sync_kafka::testing::{Tansu, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Scale;
use crate::chart::BarChart;
use crate::setup::{self, Rng};
use crate::table::{Table, ratio};

/// Forwards every connection on `listen` to `target`, counting the bytes clients send.
async fn proxy(listen: TcpListener, target: u16, upstream: Arc<AtomicU64>) {
    while let Ok((client, _)) = listen.accept().await {
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = async {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    upstream.fetch_add(n as u64, Ordering::Relaxed);
                }
            };
            let down = async {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            };
            tokio::join!(up, down);
        });
    }
}

/// The kinds of change measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    SameDocument,
    Mix,
    Create,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::SameDocument => "one-field update, same document",
            Kind::Mix => "one-field update, mix over 1,000 documents",
            Kind::Create => "1 KB create",
        }
    }
    /// The label under a group of the chart.
    fn short(self) -> &'static str {
        match self {
            Kind::SameDocument => "same doc",
            Kind::Mix => "mix",
            Kind::Create => "create",
        }
    }
}

/// What a ship writes for `n` changes of `kind`: the fields each change carries and the
/// whole document after it (what the seed sent).
fn changes(kind: Kind, n: usize) -> Vec<(DocumentId, Op, Fields, Fields)> {
    let mut rng = Rng::new(4);
    let docs: Vec<(DocumentId, Fields)> = (0..1_000)
        .map(|_| (DocumentId::new_v7(), setup::document(&mut rng)))
        .collect();
    let mut docs = docs;
    (0..n)
        .map(|seq| match kind {
            Kind::SameDocument => {
                let (id, doc) = &mut docs[0];
                let mut changed = Fields::new();
                changed.insert(
                    "status".into(),
                    serde_json::json!(format!("status update number {seq}")),
                );
                doc.extend(changed.clone());
                (*id, Op::Update, changed, doc.clone())
            }
            Kind::Mix => {
                let i = rng.below(docs.len() as u64) as usize;
                let (id, doc) = &mut docs[i];
                let (k, v) = setup::varied_field(&mut rng);
                let mut changed = Fields::new();
                changed.insert(k, v);
                doc.extend(changed.clone());
                (*id, Op::Update, changed, doc.clone())
            }
            Kind::Create => {
                let doc = setup::document(&mut rng);
                (DocumentId::new_v7(), Op::Create, doc.clone(), doc)
            }
        })
        .collect()
}

/// The signed record a ship sends for one change.
fn record(key: &SigningKey, seq: u64, id: DocumentId, op: Op, fields: Fields) -> Vec<u8> {
    let ship = "ship-atlantic-001";
    let value = encode(&Message::Change(Change {
        resent: false,
        ship: ShipId::new(ship).unwrap_or_else(|_| unreachable!("a valid ship id")),
        seq,
        ct: setup::article(),
        id,
        op,
        fields,
        base: seq + 1_000,
        unseen: Default::default(),
        hlc: Hlc {
            ms: 1_764_112_000_000 + seq,
            c: 0,
        },
    }));
    key.seal(ship, &value)
}

/// Bytes the client sent per value, producing `values` in batches of `batch` with `codec`.
async fn per_value(
    address: &str,
    counter: &AtomicU64,
    codec: Compression,
    batch: usize,
    values: Vec<Vec<u8>>,
) -> Result<f64> {
    let mut cfg = KafkaConfig::new(vec![address.to_owned()]);
    cfg.compression = codec;
    let t = KafkaTransport::new(cfg)?;
    let topic = format!("wire-{}", DocumentId::new_v7());
    t.ensure_topic(&topic, 1).await?;
    t.publish(&topic, Some(b"warm-up"), vec![b"{}".to_vec()]).await?;
    let n = values.len();
    let before = counter.load(Ordering::Relaxed);
    for chunk in values.chunks(batch) {
        t.publish(&topic, Some(b"ship-atlantic-001"), chunk.to_vec())
            .await?;
    }
    Ok((counter.load(Ordering::Relaxed) - before) as f64 / n as f64)
}

/// gzip'd JSON lines of `docs`, 100 a batch, per document.
fn gzip_batches(docs: &[Fields]) -> Result<f64> {
    let mut total = 0;
    for chunk in docs.chunks(100) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for d in chunk {
            serde_json::to_writer(&mut gz, d)?;
            gz.write_all(b"\n")?;
        }
        total += gz.finish()?.len();
    }
    Ok(total as f64 / docs.len().max(1) as f64)
}

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let n = scale.pick(1_000, 100);
    let proxy_port = free_port()?;
    let broker_port = free_port()?;
    let broker = Tansu::start_advertising("memory://tansu/", &[], broker_port, proxy_port)?;
    let listen = TcpListener::bind(("127.0.0.1", proxy_port)).await?;
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(proxy(listen, broker.port(), counter.clone()));
    let address = broker.address();
    let key = SigningKey::from_seed([7; 32]);
    println!("{n} changes of each kind, client → broker bytes per change, Kafka framing included.\n");
    let mut table = Table::new(&[
        "change",
        "compression",
        "batch",
        "offline-sync",
        "seed: whole document, one a request",
        "SymmetricDS-like: gzip'd JSON, 100 a batch",
        "ratio to the seed",
    ]);
    let mut chart = BarChart::new(
        "Bytes on the wire per change at batch 100, by compression",
        "bytes per change",
        &["offline-sync", "seed: whole document", "gzip'd JSON batches"],
    );
    for kind in [Kind::SameDocument, Kind::Mix, Kind::Create] {
        let written = changes(kind, n);
        let whole: Vec<Fields> = written.iter().map(|w| w.3.clone()).collect();
        let seed_values: Vec<Vec<u8>> = whole
            .iter()
            .map(|d| serde_json::to_vec(d).unwrap_or_default())
            .collect();
        let seed = per_value(&address, &counter, Compression::None, 1, seed_values).await?;
        let gzipped = gzip_batches(&whole)?;
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            for batch in [1, 100] {
                let values: Vec<Vec<u8>> = written
                    .iter()
                    .enumerate()
                    .map(|(seq, (id, op, fields, _))| record(&key, seq as u64, *id, *op, fields.clone()))
                    .collect();
                let ours = per_value(&address, &counter, codec, batch, values).await?;
                if batch == 100 {
                    chart.group(format!("{}\n{codec:?}", kind.short()), vec![ours, seed, gzipped]);
                }
                table.row(vec![
                    kind.label().into(),
                    format!("{codec:?}"),
                    batch.to_string(),
                    format!("{ours:.0}"),
                    format!("{seed:.0}"),
                    format!("{gzipped:.0}"),
                    ratio(ours, seed),
                ]);
            }
        }
    }
    table.print();
    chart.save("bandwidth.svg")?;
    Ok(())
}
