//! A tansu broker for tests: started on a free loopback port in a temporary directory,
//! stopped when dropped. A test that needs it fails when tansu is not installed (run
//! `./scripts/test.sh`, which installs it); it never passes by skipping.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the tansu binary is: `TANSU` if set, else `~/.cargo/bin/tansu`, else `tansu` on the
/// `PATH`.
pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cargo/bin/tansu");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("tansu")
}

/// A free loopback port (bound then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running tansu broker.
#[derive(Debug)]
pub struct Tansu {
    child: Option<Child>,
    port: u16,
    advertised: u16,
    storage: String,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Tansu {
    /// Starts a broker with `memory://` storage.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with("memory://tansu/", &[])
    }

    /// Starts a broker with `sqlite://` storage in its directory, so it survives a restart.
    pub fn start_sqlite() -> std::io::Result<Self> {
        Self::start_with("sqlite://tansu.db", &[])
    }

    /// Starts a broker with the given storage URL and extra arguments.
    pub fn start_with(storage: &str, extra: &[&str]) -> std::io::Result<Self> {
        let port = free_port()?;
        Self::start_advertising(storage, extra, port, port)
    }

    /// Starts a broker listening on `port` that tells clients to connect to `advertised`
    /// (a proxy or a TLS terminator in front of it).
    pub fn start_advertising(
        storage: &str,
        extra: &[&str],
        port: u16,
        advertised: u16,
    ) -> std::io::Result<Self> {
        let mut t = Tansu {
            child: None,
            port,
            advertised,
            storage: storage.to_owned(),
            dir: tempfile::tempdir()?,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        t.spawn()?;
        Ok(t)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let log = std::fs::File::create(self.dir.path().join("tansu.log"))?;
        let child = Command::new(tansu_binary())
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &advertised])
            .args(["--storage-engine", &self.storage])
            .args(&self.extra)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start {} (install it with ./scripts/test.sh): {e}",
                        tansu_binary().display()
                    ),
                )
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(std::io::Error::other(format!(
                    "tansu exited with {status}: {}",
                    self.log()
                )));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::other(format!(
            "tansu did not listen within 30 s: {}",
            self.log()
        )))
    }

    /// The address clients use, `127.0.0.1:PORT` (the advertised one).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// The port the broker itself listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Creates a topic with tansu's own client, with topic configs (`key=value`) that rskafka
    /// cannot set, such as `retention.ms`.
    pub fn topic_create(&self, name: &str, partitions: u32, configs: &[&str]) -> std::io::Result<()> {
        let mut cmd = Command::new(tansu_binary());
        cmd.args(["topic", "create", name, "--partitions", &partitions.to_string()]);
        for c in configs {
            cmd.args(["--config", c]);
        }
        self.cli(cmd)
    }

    /// Deletes a topic with tansu's own client.
    pub fn topic_delete(&self, name: &str) -> std::io::Result<()> {
        let mut cmd = Command::new(tansu_binary());
        cmd.args(["topic", "delete", name]);
        self.cli(cmd)
    }

    fn cli(&self, mut cmd: Command) -> std::io::Result<()> {
        let out = cmd
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Replaces the extra arguments used by the next [`Tansu::restart`].
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Stops the broker (it stays stopped until [`Tansu::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port with the same storage.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
