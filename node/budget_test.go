package node_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
)

// get returns the status and body of GET url.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// A flood of junk symbols and assets on a node costs the exchange next to
// nothing: symbols are checked against one cached exchangeInfo, unknown
// ones answered from cache with Binance's -1121, junk assets from the list
// of assets held. A legitimate read-through works during and after it.
func TestJunkFloodCostsAHandfulOfRESTCalls(t *testing.T) {
	r := testenv.Shared(t)
	s, err := sim.New(sim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Accounts: []sim.Account{{APIKey: "flood-key", APISecret: "flood-secret", Balances: map[string]string{"USDT": "10000"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- s.Serve(ctx, ln) }()
	var out testenv.Buffer
	n, err := node.New(node.Config{NodeID: "flood-1", Stdout: &out,
		Redis:    node.Redis{URL: r.URL()},
		Keys:     node.Keys{Prefix: testenv.Prefix(t), Naming: testenv.KeyNaming()},
		Exchange: node.Exchange{REST: "http://" + ln.Addr().String(), WS: "ws://" + ln.Addr().String()},
		Market:   node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}},
		Account:  node.Account{APIKey: "flood-key", APISecret: "flood-secret"},
		HTTP:     node.HTTP{Listen: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-simDone
	})
	addr := regexp.MustCompile(`on http://(127\.0\.0\.1:\d+)`)
	var base string
	testenv.Eventually(t, 5*time.Second, func() bool {
		m := addr.FindStringSubmatch(out.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	}, "no address printed:\n%s", out.String())
	// Settled: leading, backfilled, the account seeded, exchangeInfo loaded.
	testenv.Eventually(t, 10*time.Second, func() bool {
		h := n.Health()
		code, _ := getBody(t, base+"/api/v1/balance?asset=USDT")
		return h.Leader && h.Exchange != nil && h.Exchange.State == "connected" && code == 200
	}, "the node never settled: %+v", n.Health())
	if code, body := getBody(t, base+"/api/v1/symbols/BTCUSDT"); code != 200 || !strings.Contains(body, `"symbol":"BTCUSDT"`) {
		t.Fatalf("BTCUSDT: %d %s", code, body)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return s.RESTStats().ByPath["/fapi/v1/klines"] > 0 }, "never backfilled")
	time.Sleep(200 * time.Millisecond)
	before := s.RESTStats()

	const invalid = `{"code":-1121,"msg":"Invalid symbol."}`
	var junk atomic.Int64
	flood := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; time.Now().Before(flood); i += 4 {
				var path string
				want, wantBody := 400, invalid
				switch i % 3 {
				case 0:
					path = fmt.Sprintf("/api/v1/symbols/JUNK%d", i)
				case 1:
					path = fmt.Sprintf("/api/v1/ticker/24hr?symbol=JUNK%d", i)
				case 2:
					path, want, wantBody = fmt.Sprintf("/api/v1/balance?asset=NOPE%d", i), 404, ""
				}
				code, body := getBody(t, base+path)
				if code != want || (wantBody != "" && body != wantBody) {
					t.Errorf("%s: %d %s, want %d %s", path, code, body, want, wantBody)
					return
				}
				junk.Add(1)
			}
		})
	}
	legit := func(when string) {
		code, body := getBody(t, base+"/api/v1/klines?symbol=BTCUSDT&interval=3m&limit=5")
		if code != 200 || !strings.HasPrefix(body, "[[") {
			t.Errorf("klines BTCUSDT 3m %s the flood: %d %s", when, code, body)
		}
	}
	for time.Now().Before(flood) {
		legit("during")
		time.Sleep(500 * time.Millisecond)
	}
	wg.Wait()
	legit("after")
	after := s.RESTStats()

	calls := map[string]int64{}
	var others int64
	for p, c := range after.ByPath {
		if d := c - before.ByPath[p]; d > 0 {
			calls[p] = d
			if p != "/fapi/v1/klines" {
				others += d
			}
		}
	}
	t.Logf("%d junk requests in 3 s; REST calls meanwhile: %v", junk.Load(), calls)
	if junk.Load() < 100 {
		t.Errorf("only %d junk requests: not a flood", junk.Load())
	}
	if others > 3 || calls["/fapi/v1/exchangeInfo"] > 1 || calls["/fapi/v1/ticker/24hr"] != 0 || calls["/fapi/v3/account"] > 1 {
		t.Errorf("the flood made REST calls: %v", calls)
	}
	if k := calls["/fapi/v1/klines"]; k < 6 || k > 10 {
		t.Errorf("%d klines calls, want one per legitimate request (7)", k)
	}
	if after.RateLimited != 0 {
		t.Errorf("the exchange refused %d requests", after.RateLimited)
	}
	_, metrics := getBody(t, base+"/metrics")
	for _, m := range []string{`tradecache_rest_weight_used `, `tradecache_rest_weight_remaining{priority="user"}`, `tradecache_rest_refused_total{priority="user",reason="budget"} 0`, `tradecache_rest_cooldowns_total{status="429"} 0`, `tradecache_rest_budget_store{store="redis"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}
