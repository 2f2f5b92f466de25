//! A Kafka client nobody here wrote: librdkafka through Python's `confluent-kafka`
//! (`tests/interop/kafka_client.py`, in the venv `./scripts/test.sh` makes and names in
//! `OFFLINE_SYNC_PYTHON`), with Python's own Ed25519 to sign records independently.

use std::io::Write;
use std::process::{Command, Stdio};

fn python() -> String {
    std::env::var("OFFLINE_SYNC_PYTHON")
        .expect("OFFLINE_SYNC_PYTHON must name a python with confluent-kafka (./scripts/test.sh sets it up)")
}

/// Runs `kafka_client.py` with `args` and `stdin`; returns what it printed.
pub fn client(args: &[&str], stdin: Option<&[u8]>) -> String {
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

/// Produces `value` to `topic` with `key` ("" for none), as it is.
pub fn produce(broker: &str, topic: &str, key: &str, value: &[u8]) {
    client(&["produce", broker, topic, key], Some(value));
}

/// Produces the envelope `msg` to `topic` with `key`, signed by Python as `signer` with the
/// base64 Ed25519 `seed`.
pub fn produce_signed(broker: &str, topic: &str, key: &str, signer: &str, seed: &str, msg: &[u8]) {
    client(&["produce", broker, topic, key, signer, seed], Some(msg));
}

/// The first `count` record values of `topic` (partition 0), one string each (`count` 0:
/// every record below the high watermark when it starts).
pub fn consume(broker: &str, topic: &str, count: usize) -> Vec<String> {
    client(&["consume", broker, topic, &count.to_string()], None)
        .lines()
        .map(str::to_owned)
        .collect()
}
