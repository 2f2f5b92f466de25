//! Interop with a Kafka client nobody here wrote: librdkafka through Python's
//! `confluent-kafka` (installed in a venv by `./scripts/test.sh`, found through
//! `OFFLINE_SYNC_PYTHON`). Records the engine writes read back as signed records around
//! valid v1 JSON envelopes; a record signed by Python's own Ed25519 and produced by librdkafka
//! is applied by the master.

#![allow(clippy::unwrap_used)]

mod support;

use offline_sync::model::{Change, DocumentId, Hlc, Message, Op, ShipId, SigningKey, encode};
use serde_json::json;
use support::librdkafka::client;
use support::{Broker, Fleet, MasterDb, Setup, create_doc, ct, edit, fields, read};

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
    let doc = create_doc(&f.ships[0], json!({"title": "from rust", "n": 1})).await;
    edit(&f.ships[0], doc.id, json!({"n": 2})).await;
    f.sync().await;
    let address = f.kafka_address().unwrap();

    let ship_updates = client(&["consume", &address, "ship-updates", "2"], None);
    let envelopes: Vec<serde_json::Value> = ship_updates
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON envelope"))
        .collect();
    assert_eq!(envelopes.len(), 2);
    for e in &envelopes {
        assert_eq!((e["v"].clone(), e["by"].clone()), (json!(2), json!("ship-0")));
        assert!(e["sig"].is_string() && e["key"].is_string(), "{e}");
        let m = &e["msg"];
        assert_eq!(m["v"], 1);
        assert_eq!(m["kind"], "change");
        assert_eq!(m["ship"], "ship-0");
    }
    assert_eq!(envelopes[0]["msg"]["op"], "create");
    assert_eq!(envelopes[1]["msg"]["fields"], json!({"n": 2}));
    let master_updates = client(&["consume", &address, "master-updates", "2"], None);
    for line in master_updates.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!((e["v"].clone(), e["by"].clone()), (json!(2), json!("master")));
        assert_eq!(
            (e["msg"]["v"].clone(), e["msg"]["kind"].clone()),
            (json!(1), json!("commit"))
        );
    }

    let id = DocumentId::new_v7();
    let change = Message::Change(Change {
        resent: false,
        ship: ShipId::new("ship-python").unwrap(),
        seq: 1,
        ct: ct(),
        id,
        op: Op::Create,
        fields: fields(json!({"title": "from librdkafka"})),
        base: 0,
        unseen: Default::default(),
        hlc: Hlc::default(),
    });
    let seed = SigningKey::from_seed([42; 32]).to_base64();
    client(
        &[
            "produce",
            &address,
            "ship-updates",
            "ship-python",
            "ship-python",
            &seed,
        ],
        Some(&encode(&change)),
    );
    let mut applied = false;
    for _ in 0..50 {
        f.master.pull_all().await.unwrap();
        if let Some(d) = read(&f.master, id).await {
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
