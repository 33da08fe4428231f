#!/usr/bin/env bash
# Measures the resident memory of a leader and a follower streaming
# SYMBOLS symbols × 2 intervals from the simulated exchange into Redis.
# usage: scripts/rss.sh REDIS_URL [MINUTES] [SYMBOLS] [SPEED]
# Prints RSS (KiB) of both nodes every minute.
set -euo pipefail
cd "$(dirname "$0")/.."
redis=${1:?redis url}; minutes=${2:-10}; nsym=${3:-200}; speed=${4:-60}
bin=$(mktemp -d)/tradecache
go build -o "$bin" ./cmd/tradecache
syms=$(for i in $(seq 1 "$nsym"); do printf 'R%04dUSDT,' "$i"; done); syms=${syms%,}
"$bin" sim --listen 127.0.0.1:19090 --speed "$speed" --symbols "$syms" >/dev/null &
sim=$!
trap 'kill $sim ${a:-} ${b:-} 2>/dev/null' EXIT
sleep 2
common=(--redis "$redis" --key-prefix rss: --exchange-rest http://127.0.0.1:19090 --exchange-ws ws://127.0.0.1:19090
        --symbols "$syms" --intervals 1m,5m --log-level warn)
"$bin" serve "${common[@]}" --node-id rss-a --listen 127.0.0.1:18091 >/dev/null 2>&1 & a=$!
sleep 3
"$bin" serve "${common[@]}" --node-id rss-b --listen 127.0.0.1:18092 >/dev/null 2>&1 & b=$!
for m in $(seq 1 "$minutes"); do
  sleep 60
  ra=$(awk '/VmRSS/{print $2}' /proc/$a/status); rb=$(awk '/VmRSS/{print $2}' /proc/$b/status)
  la=$(curl -s 127.0.0.1:18091/healthz | grep -o '"mode":"[a-z]*"'); lb=$(curl -s 127.0.0.1:18092/healthz | grep -o '"mode":"[a-z]*"')
  echo "minute $m: node-a $la rss ${ra} KiB; node-b $lb rss ${rb} KiB"
done
