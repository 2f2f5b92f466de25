//! TLS and SASL against a real broker.
//!
//! tansu 0.6.0 cannot serve TLS itself (DESIGN.md §9), so `stunnel4` terminates TLS in front
//! of a plaintext tansu that advertises the stunnel port, with a CA and a server certificate
//! made by `openssl` for the test. SASL SCRAM-SHA-256 and -512 run against a tansu with
//! `--authentication` and `sqlite://` storage, whose users are created before it is started
//! with authentication on.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use offline_sync::kafka::testing::{Tansu, free_port, tansu_binary};
use offline_sync::kafka::{KafkaConfig, KafkaTransport, SaslMechanism, SaslSettings, TlsSettings};
use offline_sync::transport::{Error, FetchLimit, Transport};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new RSA key at `key` and, at `out`, a request to certify it for `subject` (with `extra`
/// `-x509`: a self-signed certificate).
fn new_key(key: &Path, out: &Path, subject: &str, extra: &[&str]) {
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes"])
        .args(extra)
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(out)
        .args(["-subj", subject]));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let cert = dir.join(format!("{name}-server.pem"));
    let ext = dir.join(format!("{name}-ext.cnf"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    new_key(
        &ca_key,
        &ca,
        &format!("/CN={name} test CA"),
        &["-x509", "-days", "2"],
    );
    new_key(&key, &csr, "/CN=127.0.0.1", &[]);
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(&cert)
        .arg("-extfile")
        .arg(&ext));
    (ca, cert, key)
}

struct Stunnel(Child);

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stunnel(dir: &Path, accept: u16, connect: u16, cert: &Path, key: &Path) -> Stunnel {
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {}\nkey = {}\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let bin = if Path::new("/usr/bin/stunnel4").exists() {
        "/usr/bin/stunnel4"
    } else {
        "stunnel"
    };
    let child = Command::new(bin)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel4 must be installed (./scripts/test.sh installs it)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", accept)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stunnel did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Stunnel(child)
}

fn config(address: String) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(vec![address]);
    cfg.request_timeout = Duration::from_secs(5);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_stunnel_works_with_the_right_ca_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path(), "right");
    let (other_ca, _, _) = certificates(dir.path(), "wrong");
    let (broker_port, tls_port) = (free_port().unwrap(), free_port().unwrap());
    let broker = Tansu::start_advertising("memory://tansu/", &[], broker_port, tls_port).unwrap();
    let _tls = stunnel(dir.path(), tls_port, broker.port(), &cert, &key);

    let mut cfg = config(broker.address());
    cfg.tls = Some(TlsSettings {
        ca_file: Some(ca),
        client_cert: None,
    });
    let t = KafkaTransport::new(cfg).unwrap();
    t.ensure_topic("secure", 1).await.unwrap();
    t.publish("secure", Some(b"k"), vec![b"over tls".to_vec()])
        .await
        .unwrap();
    let got = t
        .fetch("secure", 0, 0, FetchLimit::new(10, Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(got.records[0].record.value, b"over tls".to_vec());

    let mut wrong = config(broker.address());
    wrong.tls = Some(TlsSettings {
        ca_file: Some(other_ca),
        client_cert: None,
    });
    let err = KafkaTransport::new(wrong)
        .unwrap()
        .partitions("secure")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Refused { .. }),
        "a wrong CA is refused clearly: {err}"
    );
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    let plain = KafkaTransport::new(config(broker.address())).unwrap();
    let start = Instant::now();
    let err = plain.partitions("secure").await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20), "no hang");
    assert!(
        !matches!(err, Error::UnknownTopic { .. }),
        "a plaintext client must not get through: {err}"
    );
}

/// A tansu with SCRAM users and `--authentication` on.
fn scram_broker() -> Tansu {
    let port = free_port().unwrap();
    let mut setup = Tansu::start_advertising("sqlite://tansu.db", &[], port, port).unwrap();
    for (user, mechanism) in [("ship256", "scram256"), ("ship512", "scram512")] {
        run(Command::new(tansu_binary())
            .args(["user", "create", user, "right-password", "--mechanism", mechanism])
            .args(["--broker", &format!("tcp://127.0.0.1:{port}")]));
    }
    // Restart in the same directory (same sqlite file) with authentication on.
    setup.set_extra(&["--authentication"]);
    setup.restart().unwrap();
    setup
}

fn sasl(mechanism: SaslMechanism, user: &str, password: &str) -> Option<SaslSettings> {
    Some(SaslSettings {
        mechanism,
        username: user.into(),
        password: password.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_right_credentials_work_and_wrong_or_missing_ones_are_refused() {
    let broker = scram_broker();
    for (mechanism, user) in [
        (SaslMechanism::ScramSha256, "ship256"),
        (SaslMechanism::ScramSha512, "ship512"),
    ] {
        let mut cfg = config(broker.address());
        cfg.sasl = sasl(mechanism, user, "right-password");
        let t = KafkaTransport::new(cfg).unwrap();
        let topic = format!("auth-{user}");
        t.ensure_topic(&topic, 1)
            .await
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}\n{}", broker.log()));
        t.publish(&topic, None, vec![b"authenticated".to_vec()])
            .await
            .unwrap();

        // tansu 0.6.0 finishes a SCRAM exchange even when the proof is wrong; only a client
        // that checks the server's final message refuses to go on.
        let mut wrong = config(broker.address());
        wrong.sasl = sasl(mechanism, user, "wrong-password");
        let start = Instant::now();
        let err = KafkaTransport::new(wrong)
            .unwrap()
            .partitions(&topic)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Refused { .. }),
            "{mechanism:?} wrong password: {err}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "a wrong password must not hang"
        );
    }
    let missing = KafkaTransport::new(config(broker.address())).unwrap();
    let start = Instant::now();
    assert!(
        missing.partitions("auth-ship256").await.is_err(),
        "no credentials, no access"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "missing credentials must not hang"
    );

    // PLAIN is not offered by tansu: the configuration path is taken and the broker refuses.
    let mut plain = config(broker.address());
    plain.sasl = sasl(SaslMechanism::Plain, "ship256", "right-password");
    assert!(
        KafkaTransport::new(plain)
            .unwrap()
            .partitions("auth-ship256")
            .await
            .is_err()
    );
}
