//! `master`: the onshore node of offline-sync. Applies the ships' changes, numbers every
//! commit, broadcasts it, keeps the ship registry and the conflicts for an operator, and
//! serves the HTTP API. Every setting: `master --help`.

fn main() -> std::process::ExitCode {
    offline_sync_node::main(offline_sync_node::Mode::Master)
}
