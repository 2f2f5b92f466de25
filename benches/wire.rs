//! Bytes on the wire per change, measured through a counting TCP proxy in front of a real
//! tansu broker: a one-field update of a 1 KB document, as offline-sync sends it (the
//! changed field only, in a v1 envelope inside a signed record), with no compression, lz4
//! and zstd, at batch sizes 1 and 100; beside it the same envelope unsigned, which shows what
//! the signature costs on the wire. The baseline, measured in the same run over the same
//! proxy, is what the Strapi plugin sent: the whole document with every change, uncompressed.
//!
//! Run with `cargo bench --bench wire` (needs tansu: `./scripts/test.sh` installs it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use offline_sync::kafka::testing::{Tansu, free_port};
use offline_sync::kafka::{Compression, KafkaConfig, KafkaTransport};
use offline_sync::model::{
    Change, ContentType, DocumentId, Fields, Hlc, Message, Op, ShipId, SigningKey, encode,
};
use offline_sync::transport::Transport;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHANGES: usize = 200;

/// Forwards every connection on `listen` to `target`, counting the bytes sent by clients.
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

fn document() -> Fields {
    let mut f = Fields::new();
    for i in 0..16 {
        f.insert(format!("field_{i:02}"), json!(format!("{:0>52}", i)));
    }
    f
}

fn envelope(seq: u64, id: DocumentId, fields: Fields, op: Op) -> Vec<u8> {
    encode(&Message::Change(Change {
        resent: false,
        ship: ShipId::new("ship-atlantic-001").unwrap_or_else(|_| unreachable!()),
        seq,
        ct: ContentType::new("api::article.article").unwrap_or_else(|_| unreachable!()),
        id,
        op,
        fields,
        base: seq + 1_000,
        unseen: Default::default(),
        hlc: Hlc {
            ms: 1_764_112_000_000 + seq,
            c: 0,
        },
    }))
}

async fn measure(
    address: &str,
    counter: &AtomicU64,
    codec: Compression,
    batch: usize,
    full: bool,
    signed: bool,
) -> Result<f64> {
    let mut cfg = KafkaConfig::new(vec![address.to_owned()]);
    cfg.compression = codec;
    let t = KafkaTransport::new(cfg)?;
    let topic = format!("wire-{codec:?}-{batch}-{full}-{signed}").to_lowercase();
    let key = SigningKey::from_seed([7; 32]);
    t.ensure_topic(&topic, 1).await?;
    t.publish(&topic, Some(b"warm-up"), vec![b"{}".to_vec()]).await?;
    let id = DocumentId::new_v7();
    let base = document();
    let values: Vec<Vec<u8>> = (0..CHANGES as u64)
        .map(|seq| {
            let mut changed = Fields::new();
            changed.insert("field_07".into(), json!(format!("status update number {seq}")));
            let value = if full {
                let mut whole = base.clone();
                whole.extend(changed);
                envelope(seq, id, whole, Op::Update)
            } else {
                envelope(seq, id, changed, Op::Update)
            };
            if signed {
                key.seal("ship-atlantic-001", &value)
            } else {
                value
            }
        })
        .collect();
    let before = counter.load(Ordering::Relaxed);
    for chunk in values.chunks(batch) {
        t.publish(&topic, Some(b"ship-atlantic-001"), chunk.to_vec())
            .await?;
    }
    let sent = counter.load(Ordering::Relaxed) - before;
    Ok(sent as f64 / CHANGES as f64)
}

#[tokio::main]
async fn main() -> Result<()> {
    let proxy_port = free_port()?;
    let broker_port = free_port()?;
    let broker = Tansu::start_advertising("memory://tansu/", &[], broker_port, proxy_port)
        .context("starting tansu (./scripts/test.sh installs it)")?;
    let listen = TcpListener::bind(("127.0.0.1", proxy_port)).await?;
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(proxy(listen, broker.port(), counter.clone()));
    let doc_bytes = serde_json::to_vec(&document())?.len();

    println!(
        "bytes on the wire per change (client → broker, {CHANGES} changes, document of {doc_bytes} bytes)"
    );
    println!(
        "| compression | batch | offline-sync (changed field, signed) | of which the signature | baseline (whole document, as the seed) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        for batch in [1, 100] {
            let ours = measure(&broker.address(), &counter, codec, batch, false, true).await?;
            let unsigned = measure(&broker.address(), &counter, codec, batch, false, false).await?;
            let baseline = measure(&broker.address(), &counter, Compression::None, 1, true, false).await?;
            println!(
                "| {codec:?} | {batch} | {ours:.0} | {:.0} | {baseline:.0} | {:.1}× smaller |",
                ours - unsigned,
                baseline / ours
            );
        }
    }
    Ok(())
}
