#!/usr/bin/env bash
# Memory of a leader and a follower node streaming STREAMS exchange streams
# (default: 200, then 1000) from the simulator, against a private
# redis-server: each count is STREAMS/6 symbols, each with 4 kline
# intervals, @ticker and @bookTicker (plus the market's !ticker@arr), in
# one stream group (--stream-group-size 1024), so one node holds them all. After SETTLE
# seconds (60) it prints each node's mode (from /healthz), resident
# memory, Go heap in use and goroutines (from /metrics).
#
#   scripts/bench-memory.sh            # 200 and 1000 streams
#   scripts/bench-memory.sh 400        # one count
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(200 1000)
settle="${SETTLE:-60}"

work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/tradecache" ./cmd/tradecache
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { # url name divisor
	curl -fsS "$1/metrics" | awk -v n="$2" -v d="${3:-1}" '$1 == n { printf (d == 1 ? "%.0f" : "%.1f"), $2 / d }'
}

printf "%-8s %-9s %10s %10s %11s\n" STREAMS MODE RSS_MB HEAP_MB GOROUTINES
for streams in "${counts[@]}"; do
	symbols=$((streams / 6))
	list="$(seq -f 'S%gUSDT' 1 "$symbols" | paste -sd, -)"
	rport="$(freeport)"
	redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
	pids+=($!)
	sport="$(freeport)"
	"$work/tradecache" sim --listen "127.0.0.1:$sport" --speed 1 --symbols "$list" >"$work/sim.log" 2>&1 &
	pids+=($!)
	sleep 1
	urls=()
	for id in leader follower; do
		port="$(freeport)"
		"$work/tradecache" serve --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$rport" --node-id "$id" \
			--exchange-rest "http://127.0.0.1:$sport" --exchange-ws "ws://127.0.0.1:$sport" \
			--symbols "$list" --intervals 1m,5m,15m,1h --stream-group-size 1024 >"$work/$id.log" 2>&1 &
		pids+=($!)
		urls+=("http://127.0.0.1:$port")
		sleep 2 # the first node started leads
	done
	sleep "$settle"
	for i in 0 1; do
		role="$(curl -fsS "${urls[$i]}/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mode"])')"
		rss="$(metric "${urls[$i]}" process_resident_memory_bytes 1048576)"
		heap="$(metric "${urls[$i]}" go_memstats_heap_inuse_bytes 1048576)"
		gor="$(metric "${urls[$i]}" go_goroutines)"
		printf "%-8s %-9s %10s %10s %11s\n" "$streams" "$role" "$rss" "$heap" "$gor"
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
done
