// Package python_test runs read_keys.py, a Python reader of every key kind,
// against a node on a real Redis: a documented key format that drifts from
// what the node writes fails here.
package python_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	apiKey    = "python-reader-key"
	apiSecret = "python-reader-secret-0123456789"
)

// python finds an interpreter that has redis-py: Debian's python3 (package
// python3-redis, which scripts/install-tools.sh installs), or the one
// TRADECACHE_PYTHON names. Without one the test fails: it never skips.
func python(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("TRADECACHE_PYTHON"), "/usr/bin/python3", "python3"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if err := exec.Command(c, "-c", "import redis").Run(); err == nil {
			return c
		}
	}
	t.Fatal("no python3 with redis-py: apt-get install python3-redis (scripts/install-tools.sh does), or set TRADECACHE_PYTHON")
	return ""
}

func TestPythonReadsEveryKind(t *testing.T) {
	py := python(t)
	r := testenv.Start(t)
	out := &testenv.Buffer{}
	n, err := node.New(node.Config{NodeID: "py-1", Demo: true, Stdout: out,
		Redis:   node.Redis{URL: r.URL()},
		HTTP:    node.HTTP{Listen: "127.0.0.1:0"},
		Account: node.Account{APIKey: apiKey, APISecret: apiSecret},
		Market:  node.Market{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Intervals: []string{"1m", "5m"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	addrs := regexp.MustCompile(`on http://(127\.0\.0\.1:\d+) .*simulated exchange on (http://127\.0\.0\.1:\d+)`)
	var m []string
	testenv.Eventually(t, 5*time.Second, func() bool { m = addrs.FindStringSubmatch(out.String()); return m != nil }, "no addresses in the banner")
	nodeURL, simURL := "http://"+m[1], m[2]
	get := func(path string, v any) error {
		res, err := http.Get(nodeURL + path)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		return json.NewDecoder(res.Body).Decode(v)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		var h struct{ Leader bool }
		return get("/healthz", &h) == nil && h.Leader
	}, "the node never led")
	// Read-through kinds exist once asked for; a fill makes a position.
	var x any
	for _, p := range []string{"/api/v1/ticker/24hr?symbol=BTCUSDT", "/api/v1/symbols/BTCUSDT", "/api/v1/symbols/NOPEUSDT"} {
		if err := get(p, &x); err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
	}
	client := binance.NewREST(binance.RESTConfig{BaseURL: simURL, APIKey: apiKey, APISecret: apiSecret})
	testenv.Eventually(t, 10*time.Second, func() bool {
		var ps []any
		return get("/api/v1/positions", &ps) == nil
	}, "no account seed")
	if _, err := client.PlaceOrder(ctx, binance.OrderRequest{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: "0.010"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		var ps []struct{ Symbol string }
		return get("/api/v1/positions", &ps) == nil && len(ps) == 1
	}, "the fill never reached the positions")

	// unknown_symbol is written only after a reload of exchangeInfo that
	// still lacks a symbol: read_keys.py checks its format when present.
	all := "positions,balance,kline,ticker_24h,market_ticker_24h,book_ticker,symbol_info,listen_key,market_ws_leader,account_leader,leader_epoch,exchange_info,account_assets"
	var stdout, stderr strings.Builder
	var runErr error
	// A kind still being written (the whole-market tickers come every few
	// seconds) is retried for 15 s; a drifted format fails at once.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		stdout.Reset()
		stderr.Reset()
		cmd := exec.CommandContext(ctx, py, "read_keys.py", "--require", all)
		cmd.Env = append(os.Environ(), "REDIS_URL="+r.URL())
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr = cmd.Run()
		missing := strings.Contains(stderr.String(), ": no key matching")
		if runErr == nil || !missing || time.Now().After(deadline) {
			break
		}
	}
	if runErr != nil {
		t.Fatalf("read_keys.py: %v\n%s%s", runErr, stdout.String(), stderr.String())
	}
	for _, k := range strings.Split(all, ",") {
		if !regexp.MustCompile(`(?m)^ok ` + k + ` [1-9]`).MatchString(stdout.String()) {
			t.Errorf("no keys of %s read:\n%s", k, stdout.String())
		}
	}
	t.Logf("read_keys.py:\n%s", stdout.String())
}
