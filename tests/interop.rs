//! Interop with a Kafka client nobody here wrote: librdkafka through Python's
//! `confluent-kafka` (installed in a venv by `./scripts/test.sh`, found through
//! `OFFLINE_SYNC_PYTHON`). Records the engine writes read back as valid v1 JSON envelopes;
//! an envelope produced by librdkafka is applied by the master.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use offline_sync::model::{Change, DocumentId, Hlc, Message, Op, ShipId, encode};
use serde_json::json;
use support::{Broker, Fleet, MasterDb, Setup, ct, fields};

fn python() -> String {
    std::env::var("OFFLINE_SYNC_PYTHON")
        .expect("OFFLINE_SYNC_PYTHON must name a python with confluent-kafka (./scripts/test.sh sets it up)")
}

fn client(args: &[&str], stdin: Option<&[u8]>) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/kafka_client.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka_client.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_reads_the_engines_records_and_writes_records_the_engine_applies() {
    let f = Fleet::new(
        1,
        Setup {
            db: MasterDb::Postgres,
            broker: Broker::Kafka,
        },
        "interop",
    )
    .await;
    let doc = f.ships[0]
        .create(&ct(), fields(json!({"title": "from rust", "n": 1})))
        .await
        .unwrap();
    f.ships[0]
        .update(&ct(), doc.id, fields(json!({"n": 2})))
        .await
        .unwrap();
    f.sync().await;
    let address = f.kafka_address().unwrap();

    let ship_updates = client(&["consume", &address, "ship-updates", "2"], None);
    let envelopes: Vec<serde_json::Value> = ship_updates
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON envelope"))
        .collect();
    assert_eq!(envelopes.len(), 2);
    for e in &envelopes {
        assert_eq!(e["v"], 1);
        assert_eq!(e["kind"], "change");
        assert_eq!(e["ship"], "ship-0");
    }
    assert_eq!(envelopes[0]["op"], "create");
    assert_eq!(envelopes[1]["fields"], json!({"n": 2}));
    let master_updates = client(&["consume", &address, "master-updates", "2"], None);
    for line in master_updates.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!((e["v"].clone(), e["kind"].clone()), (json!(1), json!("commit")));
    }

    let id = DocumentId::new_v7();
    let change = Message::Change(Change {
        ship: ShipId::new("ship-python").unwrap(),
        seq: 1,
        ct: ct(),
        id,
        op: Op::Create,
        fields: fields(json!({"title": "from librdkafka"})),
        base: 0,
        hlc: Hlc::default(),
    });
    client(
        &["produce", &address, "ship-updates", "ship-python"],
        Some(&encode(&change)),
    );
    let mut applied = false;
    for _ in 0..50 {
        f.master.pull_all().await.unwrap();
        if let Some(d) = f.master.get(&ct(), id).await.unwrap() {
            assert_eq!(d.fields["title"], json!("from librdkafka"));
            applied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        applied,
        "the master did not apply the change produced by librdkafka"
    );
}
