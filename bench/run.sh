#!/usr/bin/env bash
# The benchmark harness (BENCHMARKS.md). `make bench` = full (3 runs, ~15 min on 2 cores);
# `make bench-quick` = the same harness in about a minute: proves it works, asserts nothing
# about speed. Extra arguments go to `loadgen suite` (e.g. --runs 1, --systems edge-workerd,floor,
# --scenarios relay300,chat).
#
# Every system is started on a free 127.0.0.1 port, loaded only over loopback, and stopped
# (its whole process group) when the suite ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
for a in "$@"; do args+=("$a"); done

# The Worker bundle under test (and, through scripts/setup.sh, the toolchain and npm packages:
# wrangler, miniflare/workerd, peer, socket.io).
bash scripts/build.sh
source scripts/env.sh
if [ ! -d node_modules/peer ] || [ ! -d node_modules/socket.io ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# The load generator (native, release).
cargo build --release --locked -p loadgen --quiet

exec target/release/loadgen suite --out bench/results.json "${args[@]}"
