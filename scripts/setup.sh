#!/usr/bin/env bash
# Provisions everything the build and the tests need, offline-safe: nothing is fetched from
# GitHub (worker-build would otherwise download wasm-bindgen and wasm-opt from there).
# Idempotent and quick when everything is already present; safe to run before every build.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Rust: wasm target, worker-build, wasm-bindgen CLI at the exact version in Cargo.lock ---
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
WORKER_BUILD_VERSION=0.8.7
# The CLI must match the wasm-bindgen crate in Cargo.lock exactly (schema check).
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)

if ! "$CARGO_BIN/worker-build" --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
  log "installing worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
if ! "$CARGO_BIN/wasm-bindgen" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lockfile pins a webpki-roots release the registry mirror here lacks.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# --- Node packages: wrangler (Node 20 compatible), esbuild, binaryen (wasm-opt 132), test clients ---
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# --- Debian's Chromium, for the browser tests (only when asked: the server needs none of it) ---
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  log "installing Debian chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
