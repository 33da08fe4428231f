package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/internal/testenv"
)

const (
	e2eKey    = "e2e-api-key-AKIAEXAMPLE"
	e2eSecret = "e2e-secret-never-shown-9f8e7d"
)

// accountCluster is a sim with one account and n nodes holding its keys.
func accountCluster(t *testing.T, n int, leaseTTL string) *cluster {
	r := testenv.Start(t)
	c := &cluster{t: t, redis: r}
	c.sim = spawn(t, "sim", "sim", "--listen", "127.0.0.1:0", "--speed", "1", "--symbols", "BTCUSDT,ETHUSDT",
		"--api-key", e2eKey, "--api-secret", e2eSecret, "--balance", "USDT=10000")
	for i := range n {
		c.nodes = append(c.nodes, c.node(fmt.Sprintf("n%d", i), leaseTTL, "--api-key", e2eKey, "--api-secret", e2eSecret))
	}
	return c
}

func positionsOf(t *testing.T, p *proc) map[string]string {
	t.Helper()
	var ps []exchange.Position
	if err := getJSON(p.url+"/api/v1/positions", &ps); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, x := range ps {
		m[x.Symbol] = x.PositionAmt
	}
	return m
}

// metricValue reads one sample of p's /metrics, by its name and labels as
// printed; 0 when absent.
func metricValue(t *testing.T, p *proc, sample string) float64 {
	t.Helper()
	res, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}

func TestAccountFillsReachEveryNode(t *testing.T) {
	c := accountCluster(t, 2, "3s")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "no market leader")
	client := binance.NewREST(binance.RESTConfig{BaseURL: c.sim.url, APIKey: e2eKey, APISecret: e2eSecret})
	ctx := context.Background()
	order := func(sym, side, qty string) {
		t.Helper()
		if _, err := client.PlaceOrder(ctx, binance.OrderRequest{Symbol: sym, Side: side, Type: "MARKET", Quantity: qty}); err != nil {
			t.Fatal(err)
		}
	}
	seen := func(want map[string]string) func() bool {
		return func() bool {
			for _, p := range c.nodes {
				got := positionsOf(t, p)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return false
				}
			}
			return true
		}
	}
	// Wait for the account stream to be up (the seed wrote the key).
	testenv.Eventually(t, 10*time.Second, seen(map[string]string{}), "no account seed")
	order("ETHUSDT", "SELL", "0.5")
	testenv.Eventually(t, time.Second+500*time.Millisecond, seen(map[string]string{"ETHUSDT": "-0.500"}), "fill not on every node within 1 s")
	start := time.Now()
	order("BTCUSDT", "BUY", "0.010")
	testenv.Eventually(t, 2*time.Second, seen(map[string]string{"BTCUSDT": "0.010", "ETHUSDT": "-0.500"}), "BTC fill lost ETH")
	t.Logf("fill visible on both nodes after %v", time.Since(start).Round(time.Millisecond))
	// The balance moved too (commission and PnL), on every node.
	for _, p := range c.nodes {
		var b exchange.Balance
		if err := getJSON(p.url+"/api/v1/balance?asset=USDT", &b); err != nil {
			t.Fatal(err)
		}
		if b.WalletBalance == "" || b.WalletBalance == "10000" || b.WalletBalance == "10000.00000000" {
			t.Errorf("%s: USDT balance %+v after two fills", p.name, b)
		}
	}

	// The sim expires the listenKey: a new one is made, the stream resumes.
	rc := c.redis.Client(t)
	old, err := rc.Do(ctx, rc.B().Get().Key("listen_key:main").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(c.sim.url+"/sim/listenkey/expire?listenKey="+old, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	testenv.Eventually(t, 10*time.Second, func() bool {
		k, err := rc.Do(ctx, rc.B().Get().Key("listen_key:main").Build()).ToString()
		return err == nil && k != old
	}, "no new listenKey after expiry")
	order("BTCUSDT", "BUY", "0.005")
	testenv.Eventually(t, 5*time.Second, seen(map[string]string{"BTCUSDT": "0.015", "ETHUSDT": "-0.500"}), "stream did not resume after the listenKey expired")

	// The exchange stalls for 7 s: it sends nothing, answers no ping, and
	// what it publishes meanwhile is lost — a fill's update among them.
	// The stall ends long before the stream would count as stale (30 s),
	// but the holder's ping goes unanswered, which resets its stream, and
	// the reconnection seeds from REST: the fill reaches every node within
	// seconds, not at the next periodic seed (2 min).
	res, err = http.Post(c.sim.url+"/sim/fault?mode=stall&duration=7s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	start = time.Now()
	order("ETHUSDT", "BUY", "0.2")
	testenv.Eventually(t, 30*time.Second, seen(map[string]string{"BTCUSDT": "0.015", "ETHUSDT": "-0.300"}), "a fill lost in a stall of the exchange not repaired")
	t.Logf("fill lost in a 7 s stall visible on both nodes after %v", time.Since(start).Round(time.Millisecond))
	// The holder's reset shows in /metrics.
	resets := 0.0
	for _, p := range c.nodes {
		resets += metricValue(t, p, `tradecache_user_stream_connection_events_total{event="pong_timeout"}`)
	}
	if resets < 1 {
		t.Errorf("no node counts a pong_timeout after the stall")
	}

	// Secrets appear nowhere: logs, /healthz, /metrics.
	for _, p := range c.nodes {
		texts := []string{p.log.String()}
		for _, path := range []string{"/healthz", "/metrics"} {
			r, err := http.Get(p.url + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			texts = append(texts, string(b))
		}
		for _, s := range texts {
			if strings.Contains(s, e2eSecret) || strings.Contains(s, e2eKey) {
				t.Fatalf("%s shows a secret", p.name)
			}
		}
	}
}

func TestAccountLeaderKilled(t *testing.T) {
	c := accountCluster(t, 2, "3s")
	client := binance.NewREST(binance.RESTConfig{BaseURL: c.sim.url, APIKey: e2eKey, APISecret: e2eSecret})
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, func() bool { return positionsOf(t, c.nodes[0]) != nil }, "no seed")
	rc := c.redis.Client(t)
	holder := func() string {
		v, _ := rc.Do(ctx, rc.B().Get().Key("account_leader:main").Build()).ToString()
		return v
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return holder() != "" }, "no account leader")
	var victim, other *proc
	if strings.Contains(holder(), `"n0"`) {
		victim, other = c.nodes[0], c.nodes[1]
	} else {
		victim, other = c.nodes[1], c.nodes[0]
	}
	victim.cmd.Process.Kill()
	testenv.Eventually(t, 6*time.Second, func() bool { return strings.Contains(holder(), `"`+other.name+`"`) }, "no takeover of the user stream")
	if _, err := client.PlaceOrder(ctx, binance.OrderRequest{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: "0.002"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Second, func() bool { return positionsOf(t, other)["BTCUSDT"] == "0.002" }, "new account leader did not write the fill")
	pttl, _ := rc.Do(ctx, rc.B().Pttl().Key("ats:positions:cache").Build()).AsInt64()
	if pttl <= 250_000 {
		t.Errorf("positions key PTTL %d ms: not fresh", pttl)
	}
}
