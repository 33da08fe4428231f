package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/bench"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
)

// TestMain runs the tests, or, started by bench fanout or bench ingest
// (in a test) as its client, exchange or subscriber process, this
// executable's bench fanout-clients, bench ingest-sim or bench ingest-sub.
func TestMain(m *testing.M) {
	if bench.IsFanoutClients(os.Getenv) || bench.IsIngestSim(os.Getenv) || bench.IsIngestSub(os.Getenv) {
		os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	testenv.Main(m)
}

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut testenv.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// startServe runs serve in the background and returns its base URL.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testenv.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--exchange", "sim"}, args...), func(string) string { return "" }, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d: %s", code, errOut.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop within 15s of cancellation")
		}
	})
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`)
	var url string
	testenv.Eventually(t, 5*time.Second, func() bool {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			url = "http://" + m[1]
			return true
		}
		return false
	}, "serve printed no address; stderr: %s", errOut.String())
	return url
}

func health(t *testing.T, url string) httpapi.Health {
	t.Helper()
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h httpapi.Health
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServeDemo(t *testing.T) {
	url := startServe(t, "--demo", "--node-id", "demo-1")
	h := health(t, url)
	if h.Status != "ok" || h.CacheTier != "memory" || h.Redis != "embedded" || h.NodeID != "demo-1" {
		t.Fatalf("healthz = %+v", h)
	}
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	res.Body.Close()
	for _, m := range []string{`tradecache_cache_tier{tier="memory"} 1`, "go_goroutines", "process_resident_memory_bytes",
		`tradecache_marketdata_mode{mode="standalone"} 1`, `tradecache_stream_dropped_total{reason="malformed"}`, "tradecache_stream_connections"} {
		if !strings.Contains(b.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func TestServeWithRedisDegradesAndRecovers(t *testing.T) {
	r := testenv.Start(t)
	url := startServe(t, "--redis", r.URL(), "--redis-timeout", "100ms")
	testenv.Eventually(t, 5*time.Second, func() bool { return health(t, url).CacheTier == "redis" }, "never on redis")
	r.Stop(t)
	testenv.Eventually(t, 5*time.Second, func() bool {
		h := health(t, url)
		return h.Status == "degraded" && h.CacheTier == "memory"
	}, "healthz never turned degraded with redis down")
	r.Restart(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return health(t, url).Status == "ok" }, "never recovered")
}

func TestServeStartsWithoutRedis(t *testing.T) {
	r := testenv.Start(t)
	r.Stop(t)
	url := startServe(t, "--redis", r.URL())
	if h := health(t, url); h.Status != "degraded" || h.CacheTier != "memory" {
		t.Fatalf("with redis down: %+v", h)
	}
	r.Restart(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return health(t, url).Status == "ok" }, "never recovered")
}

func TestCacheAndKeysCommands(t *testing.T) {
	r := testenv.Start(t)
	env := map[string]string{"REDIS_URL": r.URL()}
	if code, _, errOut := runCmd(t, env, "cache", "set", "ticker_24h", "btcusdt", `{"lastPrice":"1"}`); code != 0 {
		t.Fatalf("cache set: %d %s", code, errOut)
	}
	code, out, _ := runCmd(t, env, "cache", "get", "ticker_24h", "BTCUSDT")
	if code != 0 || out != "{\"lastPrice\":\"1\"}\n" {
		t.Fatalf("cache get = %d %q", code, out)
	}
	// A kline series is a sorted set the leader writes: cache set refuses
	// to write it as a string, and leases and epochs are never written by
	// hand; get reads a sorted set as one.
	for _, tt := range []struct {
		kind string
		args []string
	}{
		{"kline", []string{"cache", "set", "kline", "BTCUSDT", "1h", "[]"}},
		{"market_ws_leader", []string{"cache", "set", "market_ws_leader", "x"}},
		{"market_ws_leader", []string{"cache", "del", "market_ws_leader"}},
		{"leader_epoch", []string{"cache", "set", "leader_epoch", "market_ws_leader", "7"}},
		{"leader_epoch", []string{"cache", "flush", "--yes", "leader_epoch"}},
	} {
		if code, _, errOut := runCmd(t, env, tt.args...); code != 2 || !strings.Contains(errOut, tt.kind) {
			t.Errorf("%v: exit %d, %q; want 2 naming %s", tt.args, code, errOut, tt.kind)
		}
	}
	rc := r.Client(t)
	ctx := context.Background()
	rc.Do(ctx, rc.B().Zadd().Key("market:kline:BTCUSDT:1h").ScoreMember().ScoreMember(1, `{"t":1}`).Build())
	rc.Do(ctx, rc.B().Expire().Key("market:kline:BTCUSDT:1h").Seconds(7199).Build())
	if code, out, errOut := runCmd(t, env, "cache", "get", "kline", "BTCUSDT", "1h"); code != 0 || out != "{\"t\":1}\n" {
		t.Errorf("cache get kline = %d %q %q", code, out, errOut)
	}
	code, out, _ = runCmd(t, env, "keys", "ls", "market:*")
	if code != 0 || !strings.Contains(out, "market:kline:BTCUSDT:1h") || !strings.Contains(out, "1h59m") {
		t.Fatalf("keys ls = %d %q", code, out)
	}
	if code, _, _ := runCmd(t, env, "cache", "del", "ticker_24h", "BTCUSDT"); code != 0 {
		t.Fatal("cache del failed")
	}
	if code, _, errOut := runCmd(t, env, "cache", "get", "ticker_24h", "BTCUSDT"); code != 1 || !strings.Contains(errOut, "miss") {
		t.Fatalf("get after del = %d %q", code, errOut)
	}

	// Bad input: a clear error and exit status 2.
	for _, args := range [][]string{
		{"cache", "get", "ticker_24h", "BTC:USDT"},
		{"cache", "get", "nokind"},
		{"cache", "set", "ticker_24h", "BTCUSDT", "--ttl", "0s"},
		{"cache", "set", "--ttl", "-1s", "ticker_24h", "BTCUSDT", "x"},
		{"cache", "frob", "ticker_24h", "BTCUSDT"},
		{"keys", "nope"},
		{"serve", "--listen", "nohost"},
		{"nope"},
	} {
		if code, _, errOut := runCmd(t, env, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
	if code, _, errOut := runCmd(t, nil, "cache", "get", "ticker_24h", "X"); code != 2 || !strings.Contains(errOut, "REDIS_URL") {
		t.Errorf("cache without redis: %d %q", code, errOut)
	}

	// Flush a kind: refused without --yes, then every key of the kind goes.
	if code, _, _ := runCmd(t, env, "cache", "flush", "kline"); code != 2 {
		t.Errorf("flush without --yes: exit %d", code)
	}
	if code, out, errOut := runCmd(t, env, "cache", "flush", "--yes", "kline"); code != 0 || !strings.Contains(out, "flushed 1 keys") {
		t.Fatalf("flush: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd(t, env, "keys", "ls", "market:*"); code != 0 || strings.Contains(out, "market:kline") {
		t.Fatalf("after flush: %q", out)
	}

	// The audit: clean, then a TTL-less key makes it fail and name the key.
	code, out, _ = runCmd(t, env, "keys", "audit")
	if code != 0 || !strings.Contains(out, "without TTL: 0") {
		t.Fatalf("clean audit = %d:\n%s", code, out)
	}
	rc.Do(ctx, rc.B().Set().Key("leaked:forever").Value("x").Build())
	code, out, errOut := runCmd(t, env, "keys", "audit", "--json")
	if code != 1 || !strings.Contains(out, `"leaked:forever"`) || !strings.Contains(errOut, "1 keys without TTL") {
		t.Fatalf("audit with a leak = %d:\n%s\n%s", code, out, errOut)
	}
	rc.Do(ctx, rc.B().Del().Key("leaked:forever").Build())
}

func TestBenchCacheOutput(t *testing.T) {
	r := testenv.Start(t)
	code, out, errOut := runCmd(t, map[string]string{"REDIS_URL": r.URL()}, "bench", "cache", "--duration", "200ms", "--concurrency", "4", "--keys", "100")
	if code != 0 {
		t.Fatalf("bench cache: %d %s", code, errOut)
	}
	line := regexp.MustCompile(`^[a-z0-9_.-]+ -?[0-9.e+]+ [a-z/]+$`)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !line.MatchString(l) {
			t.Errorf("bad figure line %q", l)
		}
		seen[strings.Fields(l)[0]] = true
	}
	for _, f := range []string{"cache.get.redis", "cache.get.redis.p99", "cache.set.redis.p50", "redis-benchmark.get", "cache.get.redis.ratio"} {
		if !seen[f] {
			t.Errorf("no figure %s in:\n%s", f, out)
		}
	}
	code, out, _ = runCmd(t, nil, "bench", "cache", "--duration", "100ms", "--json")
	if code != 0 || !strings.Contains(out, `"cache.get.memory": {`) {
		t.Fatalf("bench cache --json on memory = %d %s", code, out)
	}
}

// bench fanout runs its clients in a process of its own: this executable
// (here the test binary, whose TestMain then runs bench fanout-clients).
func TestBenchFanoutClientProcess(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "bench", "fanout", "--clients", "10", "--rate", "100", "--duration", "200ms")
	if code != 0 {
		t.Fatalf("bench fanout: %d %s", code, errOut)
	}
	for _, f := range []string{"fanout.client_process 1 bool", "fanout.delivered_ratio 1 ratio", "fanout.clients_cpu "} {
		if !strings.Contains(out, f) {
			t.Errorf("no %q in:\n%s", f, out)
		}
	}
	if !strings.Contains(errOut, "10 clients (in a process of their own)") {
		t.Errorf("log = %q", errOut)
	}
	code, out, _ = runCmd(t, nil, "bench", "fanout", "--clients", "3", "--rate", "100", "--duration", "100ms", "--in-process")
	if code != 0 || !strings.Contains(out, "fanout.client_process 0 bool") {
		t.Fatalf("bench fanout --in-process = %d %s", code, out)
	}
	// Not by hand, and not listed.
	if code, _, errOut := runCmd(t, nil, "bench", "fanout-clients"); code != 2 || !strings.Contains(errOut, "started by bench fanout") {
		t.Errorf("bench fanout-clients by hand = %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, nil, "bench", "ingest-sub"); code != 2 || !strings.Contains(errOut, "started by bench ingest") {
		t.Errorf("bench ingest-sub by hand = %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, nil, "bench", "ingest", "--redis", "redis://127.0.0.1:1", "--subscriber"); code != 2 || !strings.Contains(errOut, "add --events") {
		t.Errorf("bench ingest --subscriber without --events = %d %q", code, errOut)
	}
	if _, out, _ := runCmd(t, nil, "bench", "-h"); strings.Contains(out, "fanout-clients") || strings.Contains(out, "ingest-sub") {
		t.Errorf("bench -h lists a hidden command:\n%s", out)
	}
}

func TestConfigCheckRedactsSecrets(t *testing.T) {
	env := map[string]string{"BINANCE_API_KEY": "key-hunter2", "BINANCE_API_SECRET": "secret-hunter2",
		"REDIS_URL": "redis://:pw-hunter2@127.0.0.1:6379/0", "TRADECACHE_WS_TOKEN": "token-hunter2-0123456789",
		"TRADECACHE_API_TOKEN":            "api-token-hunter2-0123456789",
		"TRADECACHE_NOTIFY_SLACK_WEBHOOK": "https://hooks.slack.test/T/B/hunter2"}
	for _, format := range [][]string{nil, {"--json"}} {
		code, out, errOut := runCmd(t, env, append([]string{"config", "check", "--env-file", "/dev/null"}, format...)...)
		if code != 0 {
			t.Fatalf("config check exit %d: %s", code, errOut)
		}
		if strings.Contains(out, "hunter2") {
			t.Fatalf("config check shows a secret:\n%s", out)
		}
		for _, want := range []string{"api-secret", "(redacted)", "redis://:xxxxx@127.0.0.1:6379/0", "env BINANCE_API_KEY", "notify-slack-webhook", "env TRADECACHE_NOTIFY_SLACK_WEBHOOK", "env TRADECACHE_API_TOKEN"} {
			if !strings.Contains(out, want) {
				t.Errorf("config check %v lacks %s:\n%s", format, want, out)
			}
		}
	}
	if code, _, errOut := runCmd(t, env, "config", "check", "--env-file", "/dev/null", "--symbols", "BTC USDT"); code != 2 || !strings.Contains(errOut, "--symbols") {
		t.Errorf("bad field: exit %d, %q", code, errOut)
	}
}

// Each command takes only its own flags: -h lists them, settings of other
// commands cannot break it, flags go anywhere on the line.
func TestCommandLine(t *testing.T) {
	noEnv := map[string]string{"TRADECACHE_ENV_FILE": "/dev/null"}
	help := []struct {
		args      []string
		want, not []string
	}{
		{[]string{"keys", "kinds", "-h"}, []string{"--key-prefix", "--lease-ttl"}, []string{"--redis", "--listen", "--ws-token", "--symbols"}},
		{[]string{"bench", "filecache", "-h"}, []string{"--entries", "--value-size", "--duration", "--json"}, []string{"--redis", "--listen", "--key-prefix", "--env-file"}},
		{[]string{"cache", "-h"}, []string{"cache get", "cache set", "cache del", "cache flush"}, []string{"--listen", "--ws-token"}},
		{[]string{"keys", "-h"}, []string{"keys audit", "keys ls", "keys kinds"}, []string{"unknown"}},
		{[]string{"bench", "-h"}, []string{"bench cache", "bench filecache", "bench ingest", "bench fanout"}, []string{"unknown"}},
		{[]string{"cache", "flush", "-h"}, []string{"--dir", "--yes", "--redis", "--key-prefix"}, []string{"--listen", "--symbols"}},
		{[]string{"-h"}, []string{"serve", "sim", "keys audit", "cache flush", "bench filecache", "bench fanout", "bench ingest", "config check", "version"}, nil},
	}
	for _, tt := range help {
		code, out, errOut := runCmd(t, noEnv, tt.args...)
		if code != 0 {
			t.Errorf("%v: exit %d %s", tt.args, code, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %s:\n%s", tt.args, w, out)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(out, n+" ") || strings.Contains(out, n+"\n") {
				t.Errorf("%v lists %s:\n%s", tt.args, n, out)
			}
		}
	}

	// Settings of other commands do not break a command.
	if code, out, errOut := runCmd(t, map[string]string{"TRADECACHE_WS_TOKEN": "short", "TRADECACHE_ENV_FILE": "/dev/null"}, "keys", "kinds"); code != 0 || !strings.Contains(out, "market_ws_leader") {
		t.Errorf("keys kinds with a short TRADECACHE_WS_TOKEN: %d %s", code, errOut)
	}
	dir := t.TempDir()
	fc, err := filecache.Open(dir, filecache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fc.Set("k", []byte("v"), time.Hour)
	fc.Close()
	if code, out, errOut := runCmd(t, map[string]string{"TRADECACHE_LISTEN": "8080", "TRADECACHE_ENV_FILE": "/dev/null"}, "cache", "flush", "--yes", "--dir", dir); code != 0 || !strings.Contains(out, "flushed 1 entries") {
		t.Errorf("cache flush --dir with TRADECACHE_LISTEN=8080: %d %q %s", code, out, errOut)
	}
	// A mistyped directory is refused and not created.
	typo := filepath.Join(dir, "typo")
	if code, _, errOut := runCmd(t, noEnv, "cache", "flush", "--yes", "--dir", typo); code != 2 || !strings.Contains(errOut, "not a file cache") {
		t.Errorf("cache flush --dir typo: %d %s", code, errOut)
	}
	if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache flush created %s: %v", typo, err)
	}

	// Contradictions name both settings; unknown flags name the flag.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"serve", "--exchange", "sim", "--exchange-rest", "http://x"}, []string{"--exchange sim", "--exchange-rest http://x"}},
		{[]string{"serve", "--demo", "--exchange-ws", "ws://x"}, []string{"--demo", "--exchange-ws ws://x"}},
		{[]string{"keys", "kinds", "--redis", "redis://x:1"}, []string{"-redis"}},
		{[]string{"bench", "ingest", "--symbols-count", "3"}, []string{"-symbols-count"}},
	} {
		if code, _, errOut := runCmd(t, noEnv, tt.args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", tt.args, code)
		} else {
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%v: %q does not name %s", tt.args, errOut, w)
				}
			}
		}
	}
}

// Flags after the positional arguments count.
func TestFlagsAfterArguments(t *testing.T) {
	r := testenv.Start(t)
	noEnv := map[string]string{"TRADECACHE_ENV_FILE": "/dev/null"}
	if code, _, errOut := runCmd(t, noEnv, "cache", "set", "ticker_24h", "BTCUSDT", `{"lastPrice":"2"}`, "--redis", r.URL()); code != 0 {
		t.Fatalf("cache set … --redis URL: %d %s", code, errOut)
	}
	if code, out, errOut := runCmd(t, noEnv, "cache", "get", "ticker_24h", "BTCUSDT", "--redis", r.URL()); code != 0 || out != "{\"lastPrice\":\"2\"}\n" {
		t.Fatalf("cache get … --redis URL: %d %q %s", code, out, errOut)
	}
}

// The README's configuration table names every setting serve takes, with
// its environment variable: docs cannot drift from the loader.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var s config.Serve
	r, err := config.ServeCommand("serve", &s).Parse(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range r.Settings {
		for _, w := range []string{"`--" + st.Flag + "`", "`" + st.Env + "`"} {
			if !bytes.Contains(readme, []byte(w)) {
				t.Errorf("README.md does not list %s (group %s)", w, st.Group)
			}
		}
	}
}

// A node whose exchange is unreachable says so on /healthz within
// --stale-after, with the reason, instead of "ok".
func TestServeDegradedWithDeadExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	url := startServe(t, "--exchange", "binance", "--exchange-rest", "http://"+dead, "--exchange-ws", "ws://"+dead, "--stale-after", "1s")
	var h httpapi.Health
	testenv.Eventually(t, 5*time.Second, func() bool {
		h = health(t, url)
		return h.Status == "degraded"
	}, "healthz never turned degraded with the exchange unreachable: %+v", h)
	if h.Exchange == nil || h.Exchange.State != "down" || len(h.Reasons) == 0 || !strings.Contains(strings.Join(h.Reasons, "; "), "exchange") {
		t.Errorf("healthz = %+v (exchange %+v)", h, h.Exchange)
	}
}

// On a Redis Cluster, keys ls and cache flush reach every master, and
// cluster-named keys are written and read with --key-naming cluster.
func TestKeyToolsOnCluster(t *testing.T) {
	r := testenv.StartCluster(t)
	env := map[string]string{"TRADECACHE_ENV_FILE": "/dev/null", "REDIS_URL": r.URL(), "TRADECACHE_KEY_NAMING": "cluster"}

	symbols := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"}
	for _, s := range symbols {
		if code, _, errOut := runCmd(t, env, "cache", "set", "ticker_24h", s, `{"lastPrice":"2"}`); code != 0 {
			t.Fatalf("cache set %s: %d %s", s, code, errOut)
		}
	}
	if code, out, errOut := runCmd(t, env, "cache", "get", "ticker_24h", "BTCUSDT"); code != 0 || out != "{\"lastPrice\":\"2\"}\n" {
		t.Fatalf("cache get: %d %q %s", code, out, errOut)
	}
	rc := r.Client(t)
	masters := map[string]bool{}
	for addr, n := range rc.Nodes() {
		if k, _ := n.Do(context.Background(), n.B().Dbsize().Build()).AsInt64(); k > 0 {
			masters[addr] = true
		}
	}
	if len(masters) < 2 {
		t.Fatalf("the keys live on %d masters; the test needs them spread", len(masters))
	}
	code, out, errOut := runCmd(t, env, "keys", "ls", "ticker_24h:*")
	if code != 0 {
		t.Fatalf("keys ls: %d %s", code, errOut)
	}
	for _, s := range symbols {
		if !strings.Contains(out, "ticker_24h:{"+s+"}") {
			t.Errorf("keys ls lacks %s:\n%s", s, out)
		}
	}
	if code, out, errOut := runCmd(t, env, "cache", "flush", "ticker_24h", "--yes"); code != 0 || !strings.Contains(out, "flushed "+strconv.Itoa(len(symbols))+" keys") {
		t.Fatalf("cache flush: %d %q %s", code, out, errOut)
	}
	if code, out, _ := runCmd(t, env, "keys", "audit"); code != 0 || !strings.Contains(out, "keys: 0") {
		t.Errorf("keys audit after the flush: %d\n%s", code, out)
	}
}
