#!/usr/bin/env bash
# Runs every test of the project: native unit tests of the core, black-box suites against the
# real runtime (wrangler dev / workerd), node unit tests of the app's modules and the unmodified
# peerjs client, the browser suite in Debian's Chromium, and a deployability check of the bundle. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
bash scripts/build.sh
source scripts/env.sh
export EDGE_MEET_SKIP_BUILD=1   # every wrangler started below reuses this build

echo "== deployable: wrangler deploy --dry-run"
out=$(mktemp -d)
npx wrangler deploy --dry-run --outdir "$out" 2>&1 | grep -E "Total Upload" | sed 's/^/   /'
wasm=$(ls "$out"/*.wasm)
echo "   bundle: $(gzip -9 -c "$wasm" | wc -c) bytes of wasm gzipped, $(gzip -9 -c "$out/index.js" | wc -c) bytes of JS gzipped"
rm -rf "$out"

echo "== bench quick mode (the harness works end to end; asserts nothing about speed)"
bash bench/run.sh --quick

echo "== cargo test (core unit tests + black-box suites against wrangler dev)"
cargo test --workspace --locked --tests

echo "== node --test tests/node (unit tests of the app's modules: mesh, roster, transport, protocol vocabulary, util; the unmodified peerjs client)"
node --test tests/node/

echo "== node --test tests/e2e (browser suite, Chromium, real WebRTC)"
node --test --test-concurrency=1 tests/e2e/
