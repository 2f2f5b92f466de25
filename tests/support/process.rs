//! The real `master` and `replica` binaries as processes, driven over HTTP: what an operator
//! runs. Each node gets its own directory, port and database; its log is kept in a file and
//! printed when a check fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The directory holding the binaries of this build (`target/debug`), built once per test
/// process with the same cargo and profile (a no-op when they are fresh).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // target/<profile>/deps/<test> → target/<profile>
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("unexpected test binary location")?
            .to_path_buf();
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--quiet",
            "-p",
            "offline-sync-master",
            "-p",
            "offline-sync-replica",
        ]);
        if profile == "release" {
            cmd.arg("--release");
        } else if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let status = cmd.status().map_err(|e| format!("cannot run cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of the binaries failed: {status}"));
        }
        Ok(dir)
    });
    match dir {
        Ok(d) => d.join(name),
        Err(e) => panic!("{e}"),
    }
}

/// Settings that keep a node's loops brisk in a test: `broker`, the admin token, short
/// debounce, retry, heartbeat and poll wait.
pub fn brisk(broker: &str, admin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BROKERS", broker.to_owned()),
        ("SYNC_ADMIN_TOKEN", admin.to_owned()),
        ("SYNC_DEBOUNCE_MS", "20".to_owned()),
        ("SYNC_RETRY_DELAY", "200".to_owned()),
        ("SYNC_HEARTBEAT_INTERVAL", "500".to_owned()),
        ("SYNC_POLL_WAIT", "200".to_owned()),
    ]
}

/// The admin token of the tests that start nodes with both tokens.
pub const ADMIN: &str = "admin-token-0123456789abcdef";
/// The read token of the tests that start nodes with both tokens.
pub const READ: &str = "read-token-0123456789abcdef";

/// [`brisk`] settings with both tokens ([`ADMIN`], [`READ`]), and a ship offline after 5 s of
/// silence.
pub fn with_tokens(broker: &str) -> Vec<(&'static str, String)> {
    let mut env = brisk(broker, ADMIN);
    env.push(("SYNC_READ_TOKEN", READ.to_owned()));
    env.push(("SYNC_OFFLINE_THRESHOLD", "5000".to_owned()));
    env
}

/// Starts `master` with `env` on the database at `database_url`, and waits until it is ready.
pub fn start_master(dir: &Path, mut env: Vec<(&'static str, String)>, database_url: String) -> Node {
    env.push(("DATABASE_URL", database_url));
    let m = Node::start("master", "master", dir, &env);
    m.wait_ready();
    m
}

/// Starts a `replica` for `ship` with `env`, and waits until it is ready.
pub fn start_replica(dir: &Path, mut env: Vec<(&'static str, String)>, ship: &str) -> Node {
    env.push(("SYNC_SHIP_ID", ship.to_owned()));
    let r = Node::start("replica", ship, dir, &env);
    r.wait_ready();
    r
}

/// Starts a master with [`with_tokens`] settings on a fresh PostgreSQL database named after
/// `label`.
pub fn master_with_tokens(dir: &Path, broker: &str, label: &str) -> Node {
    start_master(dir, with_tokens(broker), fresh_postgres(label))
}

/// Starts a replica for `ship` with [`with_tokens`] settings and `extra`.
pub fn replica_with_tokens(dir: &Path, broker: &str, ship: &str, extra: &[(&'static str, String)]) -> Node {
    let mut env = with_tokens(broker);
    env.extend(extra.iter().cloned());
    start_replica(dir, env, ship)
}

/// A fresh PostgreSQL database for a node started as a process, by URL.
pub fn fresh_postgres(label: &str) -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(offline_sync::storage::testing::fresh_postgres(label))
        .expect("PostgreSQL on 127.0.0.1:5432 (./scripts/test.sh starts it)")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Sends a request; `token` goes in `Authorization: Bearer`. Panics when no answer comes.
pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    try_request(method, url, token, body).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request, or says why no answer came (a refused connection, a process killed
/// while answering).
pub fn try_request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let agent = agent();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let res = match body {
        Some(b) => {
            let req = req
                .header("Content-Type", "application/json")
                .body(b.to_string())
                .unwrap();
            agent.run(req)
        }
        None => agent.run(req.body(()).unwrap()),
    };
    let mut res = res.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = res.body_mut().read_to_string().unwrap_or_default();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Polls `check` every 100 ms for up to `limit`; true once it holds.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The content type the process tests write.
pub const ARTICLE: &str = "api::article.article";

/// A running `master` or `replica`.
pub struct Node {
    pub name: String,
    bin: String,
    pub port: u16,
    env: Vec<(String, String)>,
    pub dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    pub admin: Option<String>,
}

impl Node {
    /// Starts `bin` with `env` (and nothing else of the test's environment but PATH and
    /// HOME) in `dir`, on a free port, and waits until it answers its liveness probe.
    pub fn start(bin: &str, name: &str, dir: &Path, env: &[(&str, String)]) -> Node {
        let port = free_port();
        let mut node = Node {
            name: name.to_owned(),
            bin: bin.to_owned(),
            port,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            dir: dir.to_path_buf(),
            child: None,
            log: dir.join(format!("{name}.log")),
            admin: env
                .iter()
                .find(|(k, _)| *k == "SYNC_ADMIN_TOKEN")
                .map(|(_, v)| v.clone()),
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(binary(&self.bin));
        cmd.current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("PORT", self.port.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin)),
        );
        let live = self.url("/api/offline-sync/health/live");
        let up = eventually(Duration::from_secs(60), || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("{} exited at start with {status}:\n{}", self.name, self.log());
            }
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && request("GET", &live, None, None).status == 200
        });
        assert!(up, "{} did not answer within 60 s:\n{}", self.name, self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A request with the admin token (if the node has one).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        request(method, &self.url(path), self.admin.as_deref(), body)
    }

    /// Creates an `api::article.article` with `data` through the API; its documentId.
    pub fn create_article(&self, data: Value) -> String {
        let a = self.call(
            "POST",
            &format!("/api/documents/{ARTICLE}"),
            Some(&serde_json::json!({ "data": data })),
        );
        assert_eq!(a.status, 201, "{} on {}", a.body, self.name);
        a.json()["data"]["documentId"].as_str().unwrap().to_owned()
    }

    /// The article `id` as the node serves it (fields and version); `None` when it answers 404.
    pub fn article(&self, id: &str) -> Option<Value> {
        let a = self.call("GET", &format!("/api/documents/{ARTICLE}/{id}"), None);
        match a.status {
            200 => Some(a.json()["data"].clone()),
            404 => None,
            other => panic!("GET {id} on {}: {other} {}", self.name, a.body),
        }
    }

    /// The first 100 live articles, without the node-local `updatedAt`.
    pub fn articles(&self) -> Vec<Value> {
        let a = self.call("GET", &format!("/api/documents/{ARTICLE}?pageSize=100"), None);
        assert_eq!(a.status, 200, "{}", a.body);
        let mut docs = a.json()["data"].as_array().unwrap().clone();
        // Each node keeps its own times of a document's writes.
        for d in &mut docs {
            let d = d.as_object_mut().unwrap();
            d.remove("updatedAt");
            d.remove("createdAt");
        }
        docs
    }

    /// Waits until the readiness probe says 200.
    pub fn wait_ready(&self) {
        let ready = eventually(Duration::from_secs(60), || {
            self.call("GET", "/api/offline-sync/health/ready", None).status == 200
        });
        assert!(ready, "{} not ready:\n{}", self.name, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the status and how long it
    /// took.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "{} did not exit within {limit:?} of SIGTERM:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL, as a power cut or the OOM killer would, and waits for
    /// it to be gone.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sets (or replaces) a setting for the next start.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Every live document of `content_type` by id, with its fields (without the node's own
    /// `version` and `updatedAt`), read page by page.
    pub fn documents(&self, content_type: &str) -> BTreeMap<String, Value> {
        let mut out = std::collections::BTreeMap::new();
        for page in 1.. {
            let a = self.call(
                "GET",
                &format!("/api/documents/{content_type}?page={page}&pageSize=100"),
                None,
            );
            assert_eq!(a.status, 200, "{}", a.body);
            let data = a.json()["data"].as_array().cloned().unwrap_or_default();
            if data.is_empty() {
                break;
            }
            for mut d in data {
                let id = d["documentId"].as_str().unwrap().to_owned();
                let fields = d.as_object_mut().unwrap();
                for k in ["documentId", "version", "createdAt", "updatedAt"] {
                    fields.remove(k);
                }
                out.insert(id, d);
            }
        }
        out
    }

    /// Starts the node again with the same settings, port, directory and database.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log());
        }
    }
}

/// A TCP proxy that can cut every connection and refuse new ones: a database "unreachable"
/// without touching the real server.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes carried from the server to its clients.
    carried: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(target: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let carried = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, s, c) = (down.clone(), streams.clone(), carried.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect((target.0.as_str(), target.1)) else {
                    continue;
                };
                {
                    let mut all = s.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), None);
                pipe(server, client, Some(c.clone()));
            }
        });
        Proxy {
            port,
            down,
            streams,
            carried,
        }
    }

    /// Bytes carried from the server to its clients so far.
    pub fn carried(&self) -> u64 {
        self.carried.load(Ordering::SeqCst)
    }

    /// Cuts every open connection and refuses new ones (or lets them through again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for s in self.streams.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<std::sync::atomic::AtomicU64>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if let Some(c) = &count {
                        c.fetch_add(n as u64, Ordering::SeqCst);
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
