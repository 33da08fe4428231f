#!/usr/bin/env bash
# End-to-end test of the dashboard: builds the node (which embeds web/dist as
# it is in the working tree: after changing web/src, run npm run build in web/
# first; scripts/check-web.sh checks the committed web/dist against the
# sources), starts `tradecache serve --demo` on a free loopback port, drives
# the page in Debian's Chromium (web/e2e/dashboard.mjs) and stops the node.
# It leaves tracked files as they are. Screenshots go to artifacts/
# (gitignored). Run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

chromium="${E2E_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "e2e: installing Debian's chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -x "$chromium" ]; then
    echo "e2e: $chromium is missing: apt-get install -y chromium (as root), or set E2E_CHROMIUM" >&2
    exit 1
  fi
fi
command -v node >/dev/null || { echo "e2e: node is missing" >&2; exit 1; }

cd web # playwright-core, for dashboard.mjs
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
cd "$root"

tmp="$(mktemp -d)"
node_pid="" redis_pid=""
stop() { # stop a process this script started, if it still runs
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi
}
cleanup() {
  stop "$node_pid"; stop "$redis_pid"
  [ -s "$tmp/redis2.pid" ] && stop "$(cat "$tmp/redis2.pid")" # the Redis dashboard.mjs restarted, if left
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# start_node ARGS...: starts the node, sets node_pid, token and addr.
start_node() {
  local port log
  port="$(free_port)"
  log="$tmp/node-$port.log"
  "$tmp/tradecache" serve --demo --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 &
  node_pid=$!
  token="" addr=""
  for _ in $(seq 1 300); do
    token="$(sed -n 's|^/ws token (generated for this run): \([^ ]*\)$|\1|p' "$log" | head -1)"
    addr="$(sed -n 's|.* on http://\([^ ]*\) (health.*|\1|p' "$log" | head -1)"
    [ -n "$token" ] && [ -n "$addr" ] && break
    kill -0 "$node_pid" 2>/dev/null || { echo "e2e: the node exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  if [ -z "$token" ] || [ -z "$addr" ]; then
    echo "e2e: no token or address from the node:" >&2; cat "$log" >&2; exit 1
  fi
  node_log="$log"
  echo "e2e: node on http://$addr $*"
}

run_page() { # run_page ENV...: runs dashboard.mjs against the current node
  local status=0
  env E2E_URL="http://$addr" E2E_TOKEN="$token" E2E_NODE_PID="$node_pid" "$@" node web/e2e/dashboard.mjs || status=$?
  if [ "$status" != 0 ]; then
    echo "e2e: node log (last 40 lines):" >&2; tail -40 "$node_log" >&2
    exit "$status"
  fi
}

go build -o "$tmp/tradecache" ./cmd/tradecache

# 1. The demo node, embedded memory tier: as `tradecache serve --demo`.
start_node
run_page
stop "$node_pid"

# 1b. Every route behind an API token (--api-auth all): the page sends the
# one it is given (#apitoken=), so its chart and panels fill as without.
api_token="e2e-api-token-$(date +%s)-0123456789"
start_node --api-auth all --api-token "$api_token"
run_page E2E_API_TOKEN="$api_token" E2E_SHOT_PREFIX=dashboard-apitoken
stop "$node_pid"

# 2. Against a Redis of its own, killed during the test: the degraded banner;
# then restarted on the same port (by dashboard.mjs): back to ok.
# Skipped when redis-server is missing or E2E_REDIS=0.
if [ "${E2E_REDIS:-1}" != 0 ] && command -v redis-server >/dev/null; then
  rport="$(free_port)"
  # started from a subshell, so that its death (SIGKILL by the test) is not reported as a job of ours
  redis_pid="$(redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 & echo $!)"
  for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  start_node --redis "redis://127.0.0.1:$rport"
  run_page E2E_REDIS_PID="$redis_pid" E2E_REDIS_PORT="$rport" E2E_REDIS_DIR="$tmp" \
    E2E_REDIS_PIDFILE="$tmp/redis2.pid" E2E_SHOT_PREFIX=dashboard-redis
  stop "$node_pid"
else
  echo "e2e: skipping the Redis part (no redis-server, or E2E_REDIS=0)"
fi
echo "dashboard e2e: all passed"
