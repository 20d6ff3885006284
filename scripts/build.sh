#!/usr/bin/env bash
# Builds the Worker bundle into build/ (worker-build: cargo → wasm-bindgen → wasm-opt → esbuild).
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
worker-build --release
