//! `offline-sync-bench`: offline-sync measured against the physical limits of the machine it
//! runs on. Every scenario prints a table with its baseline, measured in the same run on the
//! same machine, and the ratio between them.
//!
//! ```text
//! cargo run --release -p offline-sync-bench -- [--smoke | --scale F] [--charts DIR] [scenario ...]
//! ```
//!
//! With no scenario named, every one runs. `--smoke` runs each at a size that takes seconds,
//! so the program is exercised by `./scripts/test.sh` and never rots; its figures mean little.
//! `--scale F` (above 0, at most 1) runs each at that fraction of its full size: a quicker
//! look, for a profile say. `--charts DIR` also writes the charts of `throughput` and
//! `bandwidth` there, as SVG.
//! The scenarios need PostgreSQL on 127.0.0.1:5432 (`OFFLINE_SYNC_TEST_PG`) and tansu
//! (`TANSU`), as the tests do.

mod bandwidth;
mod chart;
mod fanout;
mod feed;
mod filter;
mod fleet;
mod floor;
mod footprint;
mod latency;
mod setup;
mod table;
mod throughput;

use std::process::ExitCode;

use anyhow::Result;

/// How large a run is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    /// A run of seconds, to check the program works.
    pub(crate) smoke: bool,
    /// The fraction of the full size a real run takes (`--scale`, 1 by default).
    pub(crate) fraction: f64,
}

impl Scale {
    /// `full` (times `--scale`) in a real run, `smoke` in a smoke run.
    pub(crate) fn pick(self, full: usize, smoke: usize) -> usize {
        if self.smoke {
            smoke
        } else {
            ((full as f64 * self.fraction).round() as usize).max(smoke.min(full))
        }
    }
}

type Scenario = fn(Scale) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>>;

/// The scenarios, in the order they run: `module: "what it measures"`, each run by its module's
/// `run` and named after it.
macro_rules! scenarios {
    ($($module:ident: $what:literal,)+) => {
        &[$((stringify!($module), $what, |s| Box::pin($module::run(s)))),+]
    };
}

const SCENARIOS: &[(&str, &str, Scenario)] = scenarios! {
    throughput: "ship → master: a ship's offline backlog drained over tansu into a PostgreSQL master",
    fanout: "master → fleet: master commits until every replica applied them",
    latency: "one change at a time: ship write → master → another ship, p50/p99",
    bandwidth: "bytes on the wire per change, by compression and batch",
    fleet: "many ships in one process writing at once: master throughput and the worst lag",
    footprint: "replica memory idle and while draining; binary size",
    filter: "Strapi filters over many documents: a full scan against a field index",
    feed: "the change feed: its cost to a ship's writes, and how fast a client reads it",
};

fn usage() -> String {
    let mut out = String::from(
        "usage: offline-sync-bench [--smoke | --scale F] [--charts DIR] [scenario ...]\n\n\
         --smoke         each scenario at a size that takes seconds\n\
         --scale F       each scenario at fraction F (above 0, at most 1) of its full size\n\
         --charts DIR    also write the charts (SVG) into DIR\n\nscenarios:\n",
    );
    for (name, what, _) in SCENARIOS {
        out.push_str(&format!("  {name:<15} {what}\n"));
    }
    out
}

fn main() -> ExitCode {
    let mut smoke = false;
    let mut fraction = 1.0;
    let mut chosen = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--scale" => match args.next().and_then(|f| f.parse::<f64>().ok()) {
                Some(f) if f > 0.0 && f <= 1.0 => fraction = f,
                _ => {
                    eprint!("--scale takes a fraction above 0, at most 1\n\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--charts" => match args.next() {
                Some(dir) => chart::write_into(dir.into()),
                None => {
                    eprint!("--charts takes a directory\n\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                print!("{}", usage());
                return ExitCode::SUCCESS;
            }
            name => match SCENARIOS.iter().find(|(n, _, _)| *n == name) {
                Some(s) => chosen.push(s),
                None => {
                    eprint!("unknown scenario {name:?}\n\n{}", usage());
                    return ExitCode::from(2);
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = SCENARIOS.iter().collect();
    }
    // What the nodes do, on stderr, for a look inside a run: RUST_LOG=offline_sync_engine=debug.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scale = Scale { smoke, fraction };
    println!(
        "# offline-sync-bench{}\n",
        if smoke {
            " (smoke run)".to_owned()
        } else if fraction < 1.0 {
            format!(" (at {fraction} of the full size)")
        } else {
            String::new()
        }
    );
    println!("{}\n", setup::machine());
    for (name, what, run) in chosen {
        println!("## {name}: {what}\n");
        if let Err(e) = runtime.block_on(run(scale)) {
            eprintln!("scenario {name} failed: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
