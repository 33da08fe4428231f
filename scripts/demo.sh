#!/usr/bin/env bash
# The README's first command: builds the dashboard when npm is available
# (a node without it still serves its API and says how to build the page),
# then runs a demo node: simulated exchange, embedded memory tier.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v npm >/dev/null 2>&1 && [ ! -f web/dist/index.html ]; then
  (cd web && npm ci --no-audit --no-fund && npm run build) || echo "demo: dashboard build failed; the API still works" >&2
fi
exec go run ./cmd/tradecache serve --demo "$@"
