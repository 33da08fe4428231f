#!/usr/bin/env bash
# The README's first command: runs a demo node (simulated exchange and
# account, embedded memory tier) with the dashboard embedded in the binary.
# Needs Go only. Arguments are passed to serve, e.g. --listen 127.0.0.1:9000.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/tradecache serve --demo "$@"
