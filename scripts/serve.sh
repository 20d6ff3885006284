#!/usr/bin/env bash
# Serves the app on http://127.0.0.1:8787 with wrangler dev (workerd, the real Workers runtime).
# Rebuilds when src/ changes. State (chat history) persists in .wrangler/state.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
source scripts/env.sh
exec npx wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "$@"
