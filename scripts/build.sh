#!/usr/bin/env bash
# Builds the Worker bundle into build/ (worker-build: cargo → wasm-bindgen → wasm-opt → esbuild).
# Skips worker-build when build/index.js is newer than every Rust input: its wasm-bindgen and
# wasm-opt steps take ~20 s even when cargo has nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${EDGE_MEET_SKIP_BUILD:-}" = 1 ] && [ -f build/index.js ]; then
  exit 0
fi
bash scripts/setup.sh
source scripts/env.sh
# The unmodified peerjs client, served to browsers from the npm package (never committed).
mkdir -p public/vendor
cp node_modules/peerjs/dist/peerjs.min.js public/vendor/peerjs.min.js
if [ -f build/index.js ] && [ -z "$(find src crates Cargo.toml Cargo.lock wrangler.toml -newer build/index.js -print -quit)" ]; then
  echo "[build] build/ is up to date" >&2
  exit 0
fi
worker-build --release
