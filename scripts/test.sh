#!/usr/bin/env bash
# The test command of tradecache (the README's second command, and CI's).
# It installs what the tests need when it is missing (scripts/install-tools.sh:
# redis-server from Debian's packages, staticcheck from the Go module proxy
# into bin/), then runs
# go vet, staticcheck and every test under the race detector, every
# benchmark once, then the Redis-facing packages' tests again on a
# three-master Redis Cluster. Tests start
# their own redis-server on free loopback ports; nothing else is required.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-tools.sh
export PATH="$PWD/bin:$PATH"

echo "== go vet" >&2
go vet ./...
echo "== staticcheck" >&2
staticcheck ./...
echo "== go test -race" >&2
go test -race -count=1 -timeout 15m ./...

# Every Go benchmark once (-benchtime 1x), so that none rots unnoticed;
# the figures themselves come from full runs (BENCHMARKS.md).
echo "== go test -bench . -benchtime 1x" >&2
go test -run '^$' -bench . -benchtime 1x -count=1 -timeout 10m ./...

# The same tests of every package that talks to Redis, on three-master
# Redis Clusters (internal/testenv starts them; keys named for a cluster).
# -short leaves out the minutes-long chaos runs, which the pass above made.
echo "== go test -race on a Redis Cluster (TRADECACHE_TEST_TOPOLOGY=cluster)" >&2
TRADECACHE_TEST_TOPOLOGY=cluster go test -race -short -count=1 -timeout 15m \
	./internal/testenv ./cache ./leader ./bus ./internal/keyaudit ./ratelimit ./account ./marketdata ./streamgroups ./node

# The dashboard bundle the binary embeds (web/dist, committed) is what a
# fresh npm ci && npm run build of web/ makes.
echo "== dashboard bundle (scripts/check-web.sh)" >&2
scripts/check-web.sh

# The dashboard in a real browser (Debian's chromium, installed when
# missing): the page of `serve --demo`, candles that move, the status, and
# the degraded banner when a node's Redis dies. Screenshots: artifacts/.
echo "== dashboard e2e (web/e2e/run.sh)" >&2
web/e2e/run.sh
