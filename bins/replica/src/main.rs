//! `replica`: the node on a ship. Serves the document API from its own database with or
//! without a link, queues every change durably, sends it to the master when the broker is in
//! reach and applies the master's commits. Every setting: `replica --help`.

fn main() -> std::process::ExitCode {
    offline_sync_node::main(offline_sync_node::Mode::Replica)
}
