#!/usr/bin/env bash
# Every check and test of offline-sync, on a fresh machine or a developer's:
#   1. makes sure PostgreSQL answers on 127.0.0.1:5432 (starts the installed cluster, or
#      installs one with apt-get) and fails loudly when it cannot; installs tansu 0.6.0 into
#      ~/.cargo/bin when it is not there yet (the Kafka tests start their own brokers); makes a
#      Python venv with confluent-kafka and schemathesis; installs Debian's chromium and
#      chromium-driver (the admin page tests) and @strapi/client from npm (the Strapi client
#      test, with the machine's Node.js);
#   2. cargo fmt --check, cargo clippy -D warnings, cargo deny, rustdoc with -D warnings;
#   3. builds the master and replica binaries; every test with cargo nextest (the simulation
#      with OFFLINE_SYNC_SIM_SEEDS seeds, 200 unless set), the doc tests, the quick start, and
#      every benchmark once at a size of seconds (offline-sync-bench --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export OFFLINE_SYNC_SIM_SEEDS="${OFFLINE_SYNC_SIM_SEEDS:-200}"
PG_HOST=127.0.0.1
PG_PORT=5432

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi
}

pg_up() {
  (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
}

ensure_postgres() {
  step "PostgreSQL on $PG_HOST:$PG_PORT"
  if ! pg_up; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      echo "no PostgreSQL cluster installed: installing one with apt-get"
      as_root apt-get update -qq || die "apt-get update failed"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
        || die "could not install PostgreSQL"
    fi
    for version in $(ls /etc/postgresql); do
      echo "starting cluster $version/main"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || die "PostgreSQL is not reachable on $PG_HOST:$PG_PORT; the storage and end-to-end tests need it"
  if command -v psql >/dev/null; then
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null \
      || die "PostgreSQL answers but refuses user postgres without a password (the tests expect trust auth on 127.0.0.1)"
    # Databases left by earlier runs (each test creates its own).
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc \
      "select datname from pg_database where datname like 'offline_sync_%'" | while read -r db; do
      psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "drop database if exists \"$db\"" >/dev/null || true
    done
  fi
  echo "PostgreSQL is up"
}

ensure_tansu() {
  step "tansu 0.6.0 (the Kafka-protocol broker the Kafka tests start, one per test)"
  local bin="${TANSU:-$HOME/.cargo/bin/tansu}"
  if [ ! -x "$bin" ] && command -v tansu >/dev/null; then bin=$(command -v tansu); fi
  if [ ! -x "$bin" ]; then
    echo "installing tansu 0.6.0 with cargo (about 20 minutes once on a 2-core machine; reused afterwards)"
    cargo install --locked tansu --version 0.6.0 --features dynostore,libsql || die "could not install tansu"
    bin="$HOME/.cargo/bin/tansu"
  fi
  "$bin" --version >/dev/null 2>&1 || die "tansu at $bin does not run"
  export TANSU="$bin"
  echo "using $("$bin" --version 2>&1 | head -n 1) at $bin"
}

ensure_python_tools() {
  step "Python venv with confluent-kafka (librdkafka, the interop test), cryptography (Ed25519) and schemathesis (the API fuzz test)"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || die "could not create a Python venv (python3 -m venv)"
  fi
  if ! .venv/bin/python -c 'import confluent_kafka' 2>/dev/null; then
    .venv/bin/pip install --quiet confluent-kafka || die "could not install confluent-kafka from PyPI"
  fi
  # Python's own Ed25519, so the forged-record and interop tests sign records independently.
  if ! .venv/bin/python -c 'import cryptography' 2>/dev/null; then
    .venv/bin/pip install --quiet cryptography || die "could not install cryptography from PyPI"
  fi
  if [ ! -x .venv/bin/schemathesis ]; then
    .venv/bin/pip install --quiet schemathesis || die "could not install schemathesis from PyPI"
  fi
  export OFFLINE_SYNC_PYTHON="$PWD/.venv/bin/python"
  echo "confluent-kafka $("$OFFLINE_SYNC_PYTHON" -c 'import confluent_kafka as c; print(c.version()[0], "librdkafka", c.libversion()[0])')"
  echo "$(.venv/bin/schemathesis --version)"
}

ensure_stunnel() {
  step "stunnel4 and openssl (TLS in front of tansu for the TLS test)"
  if ! command -v stunnel4 >/dev/null && ! command -v stunnel >/dev/null || ! command -v openssl >/dev/null; then
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stunnel4 openssl >/dev/null \
      || die "could not install stunnel4"
  fi
  echo "$(openssl version); stunnel $(dpkg-query -W -f='${Version}' stunnel4 2>/dev/null || echo present)"
}

ensure_chromium() {
  step "chromium and chromium-driver (the admin page tests drive a headless browser)"
  local browser="${CHROMIUM:-/usr/bin/chromium}" driver="${CHROMEDRIVER:-/usr/bin/chromedriver}"
  if [ ! -x "$browser" ] || [ ! -x "$driver" ]; then
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || die "could not install chromium and chromium-driver"
  fi
  [ -x "$browser" ] || die "no browser at $browser (set CHROMIUM to another one)"
  [ -x "$driver" ] || die "no chromedriver at $driver (set CHROMEDRIVER to another one)"
  echo "$("$browser" --version 2>/dev/null | head -n 1); $("$driver" --version | head -n 1)"
}

ensure_strapi_client() {
  step "Node.js and @strapi/client 1.6.2 from npm (the official Strapi client test)"
  command -v node >/dev/null || die "Node.js (node) is required: the Strapi client test runs @strapi/client"
  command -v npm >/dev/null || die "npm is required to install @strapi/client"
  if [ ! -d tests/strapi-client/node_modules/@strapi/client ]; then
    (cd tests/strapi-client && npm ci --no-audit --no-fund --loglevel=error) \
      || die "could not install @strapi/client from npm"
  fi
  echo "node $(node --version); @strapi/client $(node -p "require('./tests/strapi-client/node_modules/@strapi/client/package.json').version")"
}

ensure_tool() {
  local cmd=$1 crate=$2
  if ! cargo "$cmd" --version >/dev/null 2>&1; then
    step "installing $crate"
    cargo install --locked "$crate" || die "could not install $crate"
  fi
}

ensure_postgres
ensure_tansu
ensure_python_tools
ensure_stunnel
ensure_chromium
ensure_strapi_client
ensure_tool nextest cargo-nextest
ensure_tool deny cargo-deny

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo deny check bans licenses sources"
cargo deny check bans licenses sources

step "rustdoc with -D warnings"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --quiet

step "the master and replica binaries (tests/nodes.rs starts them as processes)"
cargo build --workspace --bins

step "cargo nextest run (simulation: $OFFLINE_SYNC_SIM_SEEDS seeds)"
cargo nextest run --workspace --no-fail-fast

step "doc tests"
cargo test --workspace --doc --quiet

step "quick start example"
out=$(cargo run --quiet --example fleet) || { echo "$out"; die "the quick start example failed"; }
echo "$out" | tail -n 1
echo "$out" | grep -q converged || die "the quick start example did not converge"

step "quick start example over Kafka (a tansu broker on a free port)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
broker_dir=$(mktemp -d)
(cd "$broker_dir" && exec env -i PATH="$PATH" "$TANSU" broker --silent \
  --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$broker_dir/tansu.log" 2>&1) &
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null || true; rm -rf "$broker_dir"' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
out=$(cargo run --quiet --example fleet -- --kafka "127.0.0.1:$port") \
  || { echo "$out"; cat "$broker_dir/tansu.log"; die "the quick start example over Kafka failed"; }
echo "$out" | tail -n 1
echo "$out" | grep -q converged || die "the quick start example over Kafka did not converge"

step "benchmarks, smoke run (seconds; a real run: cargo run --release -p offline-sync-bench)"
charts=$(mktemp -d)
out=$(cargo run --quiet -p offline-sync-bench -- --smoke --charts "$charts" 2>&1) || { echo "$out"; die "the benchmark smoke run failed"; }
echo "$out" | grep -c '^| ' | sed 's/^/table rows printed: /'
for scenario in throughput fanout latency bandwidth fleet footprint filter feed; do
  echo "$out" | grep -q "^## $scenario:" || { echo "$out"; die "the benchmark printed no $scenario table"; }
done
for chart in throughput bandwidth; do
  grep -q '</svg>' "$charts/$chart.svg" 2>/dev/null || die "the benchmark wrote no $chart chart"
done
rm -rf "$charts"

step "all checks passed"
