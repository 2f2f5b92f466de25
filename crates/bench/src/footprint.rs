//! Scenario 6, footprint: the `replica` binary started as a ship runs it (SQLite, a tansu
//! broker), its resident memory idle and at its peak while it takes a burst of writes through
//! its API and drains them; and the size of the binary as built (the profile this benchmark
//! runs in: `release` keeps line tables for backtraces), stripped, and as shipped (`dist`:
//! stripped, fat LTO, one codegen unit; measured when it was built beforehand).
//!
//! Baselines in the same run: the resident memory of the tansu broker idle (a Rust server
//! doing nothing) and of this benchmark process before any scenario state (a tokio runtime).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Scale;
use crate::setup::{self, Broker, Rng};
use crate::table::{Table, count};

const TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// Resident memory of `pid` in bytes, from `/proc`.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1024.0 / 1024.0)
}

/// `target/<profile>`, next to this benchmark's own binary.
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("unexpected benchmark location")?
        .to_path_buf())
}

/// The profile this benchmark was built with (`debug` is cargo's `dev`).
fn own_profile() -> Result<String> {
    let dir = target_dir()?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    Ok(if name == "debug" {
        "dev".into()
    } else {
        name.into()
    })
}

/// Builds `offline-sync-replica` with `profile`; returns the binary.
fn build(profile: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        // With the benchmark itself, so features unify as when the benchmark was built and
        // nothing is rebuilt.
        .args([
            "build",
            "--quiet",
            "-p",
            "offline-sync-replica",
            "-p",
            "offline-sync-bench",
            "--profile",
            profile,
        ])
        .env(
            "CARGO_TARGET_DIR",
            target_dir()?.parent().context("no target directory")?,
        )
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --profile {profile} failed: {status}");
    }
    let dir = if profile == "dev" { "debug" } else { profile };
    let target = target_dir()?;
    Ok(target
        .parent()
        .map_or(target.clone(), Path::to_path_buf)
        .join(dir)
        .join("replica"))
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; returns the status code.
async fn request(port: u16, method: &str, path: &str, body: &str) -> Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await?;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(16)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP answer: {head:?}"))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn run(scale: Scale) -> Result<()> {
    let own = rss(std::process::id())?;
    let writes = scale.pick(5_000, 200);
    let profile = own_profile()?;
    setup::progress(&format!("building the replica ({profile})"));
    let binary = build(&profile)?;
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    let port = offline_sync_kafka::testing::free_port()?;
    let child = Command::new(&binary)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("KAFKA_BROKERS", broker.address())
        .env("SYNC_SHIP_ID", "ship-footprint")
        .env("SYNC_ADMIN_TOKEN", TOKEN)
        .env("SYNC_DEBOUNCE_MS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let replica = Running(child);
    setup::progress("waiting for the replica to answer");
    let pid = replica.0.id();
    setup::wait_for(
        "the replica answering",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            Ok(request(port, "GET", "/api/offline-sync/health/ready", "")
                .await
                .ok()
                == Some(200))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(if scale.smoke { 1 } else { 5 })).await;
    let idle = rss(pid)?;
    let tansu_idle = rss(broker_pid(&broker)?).unwrap_or(0);
    let mut rng = Rng::new(6);
    let mut peak = idle;
    setup::progress("writing through the API");
    let started = Instant::now();
    for i in 0..writes {
        let body = serde_json::json!({ "data": setup::document(&mut rng) }).to_string();
        let code = request(port, "POST", "/api/documents/api::article.article", &body).await?;
        if code != 201 {
            bail!("write {i} answered {code}");
        }
        if i % 20 == 0 {
            peak = peak.max(rss(pid)?);
        }
    }
    setup::progress("waiting for the outbox to drain");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        peak = peak.max(rss(pid)?);
        if unsent(port).await? == Some(0) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the replica did not drain its outbox within 10 min");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    drop(replica);
    let mut table = Table::new(&["what", "MiB"]);
    table.row(vec![
        "this benchmark process at start (baseline: a tokio runtime)".into(),
        mib(own),
    ]);
    table.row(vec![
        "tansu broker, idle (baseline: a Rust server doing nothing)".into(),
        mib(tansu_idle),
    ]);
    table.row(vec![
        "**replica, idle** (SQLite, broker connected, loops running)".into(),
        mib(idle),
    ]);
    table.row(vec![
        format!(
            "**replica, peak** while taking {} writes and draining them",
            count(writes as f64)
        ),
        mib(peak),
    ]);
    table.print();
    println!("The burst took {:.1} s through the API.\n", took.as_secs_f64());
    let mut sizes = Table::new(&["binary", "profile", "MiB"]);
    sizes.row(vec![
        "replica".into(),
        format!("{profile} (as this benchmark was built)"),
        mib(std::fs::metadata(&binary)?.len()),
    ]);
    let stripped = dir.path().join("replica-stripped");
    std::fs::copy(&binary, &stripped)?;
    if Command::new("strip")
        .arg(&stripped)
        .status()
        .is_ok_and(|s| s.success())
    {
        sizes.row(vec![
            "replica".into(),
            format!("{profile}, stripped"),
            mib(std::fs::metadata(&stripped)?.len()),
        ]);
    }
    let dist = target_dir()?
        .parent()
        .context("no target directory")?
        .join("dist")
        .join("replica");
    match std::fs::metadata(&dist) {
        Ok(m) => sizes.row(vec![
            "replica".into(),
            "dist (stripped, fat LTO), as shipped".into(),
            mib(m.len()),
        ]),
        Err(_) => sizes.row(vec![
            "replica".into(),
            "dist: not built (`cargo build --profile dist -p offline-sync-replica`, then run again)".into(),
            "–".into(),
        ]),
    }
    sizes.print();
    Ok(())
}

/// The replica's changes not yet accepted by the broker, from its status (no master runs
/// here, so sent changes stay unanswered).
async fn unsent(port: u16) -> Result<Option<u64>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "GET /api/offline-sync/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await?;
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let status: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    Ok(status["data"]["unsent"].as_u64())
}

/// The pid of the tansu process listening on the broker's port.
fn broker_pid(broker: &Broker) -> Result<u32> {
    broker.pid().context("tansu's pid")
}
