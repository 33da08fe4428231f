package node_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/adshao/go-binance/v2/common"
	"github.com/adshao/go-binance/v2/futures"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
)

// nodeOnSim runs a simulated exchange listing BTCUSDT and ETHUSDT and a
// node on Redis streaming both (1m klines, a window of window klines)
// from it, until the test ends. It returns the node's base URL and the
// exchange's, once the node leads, streams and holds a full window.
func nodeOnSim(t *testing.T, window int) (nodeURL, simURL string) {
	t.Helper()
	r := testenv.Shared(t)
	s, err := sim.New(sim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}})
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
	simURL = "http://" + ln.Addr().String()
	var out testenv.Buffer
	n, err := node.New(node.Config{NodeID: "faithful-1", Stdout: &out,
		Redis:    node.Redis{URL: r.URL()},
		Keys:     node.Keys{Prefix: testenv.Prefix(t), Naming: testenv.KeyNaming()},
		Exchange: node.Exchange{REST: simURL, WS: "ws://" + ln.Addr().String()},
		Market:   node.Market{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Intervals: []string{"1m"}, Window: window},
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
	testenv.Eventually(t, 5*time.Second, func() bool {
		m := addr.FindStringSubmatch(out.String())
		if m != nil {
			nodeURL = "http://" + m[1]
		}
		return m != nil
	}, "no address printed:\n%s", out.String())
	testenv.Eventually(t, 15*time.Second, func() bool {
		h := n.Health()
		if !h.Leader || h.Exchange == nil || h.Exchange.State != "connected" {
			return false
		}
		for _, path := range []string{"/fapi/v1/ticker/bookTicker", "/fapi/v1/ticker/24hr"} {
			if code, body := getBody(t, nodeURL+path); code != 200 || strings.Count(body, `"symbol"`) < 2 {
				return false
			}
		}
		for _, sym := range []string{"BTCUSDT", "ETHUSDT"} {
			var rows [][]any
			code, body := getBody(t, fmt.Sprintf("%s/api/v1/klines?symbol=%s&interval=1m&limit=%d", nodeURL, sym, window))
			if code != 200 || json.Unmarshal([]byte(body), &rows) != nil || len(rows) < window {
				return false
			}
		}
		return true
	}, "the node never settled: %+v", n.Health())
	return nodeURL, simURL
}

func client(baseURL string) *futures.Client {
	c := futures.NewClient("", "")
	c.BaseURL = baseURL
	c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	return c
}

// settled keeps the klines that closed before cutoff: the node's copy of
// a kline is final once the exchange has sent it closed and the leader
// has flushed it.
func settled(ks []*futures.Kline, cutoff int64) []*futures.Kline {
	return slices.DeleteFunc(slices.Clone(ks), func(k *futures.Kline) bool { return k.CloseTime >= cutoff })
}

// An unmodified Binance client (adshao/go-binance's futures package) given
// a node's base URL reads from it what it reads from the exchange: klines
// (within the node's window, beyond it, and by time), the 24hr tickers,
// the book tickers, exchangeInfo, the server's time; and gets Binance's
// errors as *common.APIError.
func TestBinanceClientReadsFromANode(t *testing.T) {
	const window = 100
	nodeURL, simURL := nodeOnSim(t, window)
	ctx := context.Background()
	nc, sc := client(nodeURL), client(simURL)

	if err := nc.NewPingService().Do(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	if st, err := nc.NewServerTimeService().Do(ctx); err != nil || time.Since(time.UnixMilli(st)).Abs() > 5*time.Second {
		t.Errorf("server time %d, %v: want about now", st, err)
	}

	// Klines: each query of the node against the same of the exchange,
	// over the klines that had settled when the node answered.
	const minute = int64(60000)
	now := time.Now().UnixMilli() / minute * minute
	for _, q := range []struct {
		name       string
		limit      int
		start, end int64
		want       int // rows the node answers; 0: limit
	}{
		{"the default 500, beyond the window", 0, 0, 0, 500},
		{"within the window", 50, 0, 0, 0},
		{"1500, the most Binance answers", 1500, 0, 0, 0},
		{"start and end within the window", 0, now - 30*minute, now - 20*minute, 11},
		{"start before the window", 40, now - 120*minute, 0, 0},
		{"end before the window", 10, 0, now - 200*minute, 0},
	} {
		t.Run("klines "+q.name, func(t *testing.T) {
			cutoff := time.Now().Add(-2 * time.Second).UnixMilli()
			ks := nc.NewKlinesService().Symbol("BTCUSDT").Interval("1m")
			if q.limit > 0 {
				ks.Limit(q.limit)
			}
			if q.start > 0 {
				ks.StartTime(q.start)
			}
			if q.end > 0 {
				ks.EndTime(q.end)
			}
			got, err := ks.Do(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := cmp.Or(q.want, q.limit)
			if len(got) != want {
				t.Fatalf("%d klines, want %d", len(got), want)
			}
			for i := 1; i < len(got); i++ {
				if d := got[i].OpenTime - got[i-1].OpenTime; d != minute {
					t.Fatalf("kline %d opens %d ms after the previous one", i, d)
				}
			}
			truth, err := sc.NewKlinesService().Symbol("BTCUSDT").Interval("1m").StartTime(got[0].OpenTime).Limit(len(got)).Do(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(settled(truth, cutoff), settled(got, cutoff)); diff != "" {
				t.Errorf("the node's klines differ from the exchange's (-exchange +node):\n%s", diff)
			}
		})
	}

	// 24hr tickers and book tickers: one symbol, and every symbol (the
	// node's: those it streams).
	tk, err := nc.NewListPriceChangeStatsService().Symbol("BTCUSDT").Do(ctx)
	if err != nil || len(tk) != 1 || tk[0].Symbol != "BTCUSDT" || tk[0].LastPrice == "" || tk[0].Count == 0 || tk[0].CloseTime == 0 {
		t.Errorf("ticker/24hr BTCUSDT: %+v %v", tk, err)
	}
	all, err := nc.NewListPriceChangeStatsService().Do(ctx)
	var syms []string
	for _, s := range all {
		syms = append(syms, s.Symbol)
	}
	if err != nil || !slices.Equal(syms, []string{"BTCUSDT", "ETHUSDT"}) {
		t.Errorf("ticker/24hr: symbols %v, %v", syms, err)
	}
	bt, err := nc.NewListBookTickersService().Symbol("ETHUSDT").Do(ctx)
	if err != nil || len(bt) != 1 || bt[0].Symbol != "ETHUSDT" || bt[0].BidPrice == "" || bt[0].AskQuantity == "" || bt[0].LastUpdateId == 0 || bt[0].Time == 0 {
		t.Errorf("bookTicker ETHUSDT: %+v %v", bt, err)
	}
	bts, err := nc.NewListBookTickersService().Do(ctx)
	syms = nil
	for _, b := range bts {
		syms = append(syms, b.Symbol)
		if b.LastUpdateId == 0 || b.Time == 0 || b.BidPrice == "" {
			t.Errorf("bookTicker %+v", b)
		}
	}
	if err != nil || !slices.Equal(syms, []string{"BTCUSDT", "ETHUSDT"}) {
		t.Errorf("bookTicker: symbols %v, %v", syms, err)
	}

	// exchangeInfo: the exchange's symbols, entry for entry.
	info, err := nc.NewExchangeInfoService().Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := sc.NewExchangeInfoService().Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(truth.Symbols, func(i, j int) bool { return truth.Symbols[i].Symbol < truth.Symbols[j].Symbol })
	if diff := gocmp.Diff(truth.Symbols, info.Symbols); diff != "" || info.Timezone != "UTC" || len(info.Symbols) != 2 {
		t.Errorf("exchangeInfo (timezone %q) symbols (-exchange +node):\n%s", info.Timezone, diff)
	}

	// Binance's errors, as the exchange answers them.
	for _, tc := range []struct {
		name string
		call func(c *futures.Client) error
	}{
		{"lower-case symbol", func(c *futures.Client) error {
			_, err := c.NewKlinesService().Symbol("btcusdt").Interval("1m").Do(ctx)
			return err
		}},
		{"unknown symbol", func(c *futures.Client) error {
			_, err := c.NewListPriceChangeStatsService().Symbol("NOPEUSDT").Do(ctx)
			return err
		}},
		{"unknown symbol, book ticker", func(c *futures.Client) error {
			_, err := c.NewListBookTickersService().Symbol("NOPEUSDT").Do(ctx)
			return err
		}},
		{"unknown interval", func(c *futures.Client) error {
			_, err := c.NewKlinesService().Symbol("BTCUSDT").Interval("7m").Do(ctx)
			return err
		}},
		{"limit over 1500", func(c *futures.Client) error {
			_, err := c.NewKlinesService().Symbol("BTCUSDT").Interval("1m").Limit(1501).Do(ctx)
			return err
		}},
		{"start after end", func(c *futures.Client) error {
			_, err := c.NewKlinesService().Symbol("BTCUSDT").Interval("1m").StartTime(now).EndTime(now - minute).Do(ctx)
			return err
		}},
		{"no symbol", func(c *futures.Client) error {
			_, err := c.NewKlinesService().Interval("1m").Do(ctx)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fromNode, fromExchange *common.APIError
			if err := tc.call(nc); !errors.As(err, &fromNode) {
				t.Fatalf("node: %v (%T), want a *common.APIError", err, err)
			}
			if err := tc.call(sc); !errors.As(err, &fromExchange) {
				t.Fatalf("exchange: %v (%T), want a *common.APIError", err, err)
			}
			if diff := gocmp.Diff(fromExchange, fromNode); diff != "" {
				t.Errorf("(-exchange +node):\n%s", diff)
			}
		})
	}
	// What a node does not serve (it is not an exchange): -5000.
	_, err = nc.NewDepthService().Symbol("BTCUSDT").Do(ctx)
	if e, ok := errors.AsType[*common.APIError](err); !ok || e.Code != -5000 || e.Message != "Path /fapi/v1/depth, Method GET is invalid" {
		t.Errorf("depth: %v, want -5000", err)
	}
}

// shape is v with every value replaced by its JSON type, and an array by
// the shapes of its elements, each once, in order of appearance.
func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = shape(x)
		}
		return out
	case []any:
		out := []any{}
		for _, x := range v {
			s := shape(x)
			if !slices.ContainsFunc(out, func(o any) bool { return gocmp.Equal(o, s) }) {
				out = append(out, s)
			}
		}
		return out
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// getJSON returns the status and the decoded body of GET url.
func getJSON(t *testing.T, url string) (int, any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: %d %.200s: %v", url, res.StatusCode, b, err)
	}
	return res.StatusCode, v
}

// The node's answers have the JSON keys and types of the exchange's own
// REST answers, key for key, for klines, the 24hr tickers and the book
// tickers, under Binance's paths and the node's; its errors are the
// exchange's, status, code and message.
func TestNodeAnswersInTheExchangesShapes(t *testing.T) {
	nodeURL, simURL := nodeOnSim(t, 50)
	for _, tc := range []struct {
		node, exchange string // paths
	}{
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=3", ""},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=100", ""}, // beyond the window
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=3", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=3"},
		{"/fapi/v1/ticker/24hr?symbol=BTCUSDT", ""},
		{"/fapi/v1/ticker/24hr", ""},
		{"/api/v1/ticker/24hr?symbol=ETHUSDT", "/fapi/v1/ticker/24hr?symbol=ETHUSDT"},
		{"/api/v1/ticker/24hr", "/fapi/v1/ticker/24hr"},
		{"/fapi/v1/ticker/bookTicker?symbol=BTCUSDT", ""},
		{"/fapi/v1/ticker/bookTicker", ""},
		{"/api/v1/bookTicker?symbol=BTCUSDT", "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT"},
		{"/api/v1/bookTicker", "/fapi/v1/ticker/bookTicker"},
		{"/fapi/v1/ping", ""},
		{"/fapi/v1/time", ""},
	} {
		exPath := cmp.Or(tc.exchange, tc.node)
		code, got := getJSON(t, nodeURL+tc.node)
		exCode, want := getJSON(t, simURL+exPath)
		if code != 200 || exCode != 200 {
			t.Errorf("%s: %d, exchange %d", tc.node, code, exCode)
		}
		if diff := gocmp.Diff(shape(want), shape(got)); diff != "" {
			t.Errorf("%s: shape (-exchange %s +node):\n%s", tc.node, exPath, diff)
		}
	}
	// exchangeInfo: its symbols' entries are the exchange's.
	_, got := getJSON(t, nodeURL+"/fapi/v1/exchangeInfo")
	_, want := getJSON(t, simURL+"/fapi/v1/exchangeInfo")
	gotInfo, wantInfo := got.(map[string]any), want.(map[string]any)
	if diff := gocmp.Diff(shape(wantInfo["symbols"]), shape(gotInfo["symbols"])); diff != "" {
		t.Errorf("exchangeInfo symbols: shape (-exchange +node):\n%s", diff)
	}
	for _, k := range []string{"timezone", "serverTime", "futuresType", "rateLimits", "exchangeFilters", "assets"} {
		if _, ok := gotInfo[k]; !ok {
			t.Errorf("exchangeInfo lacks %q", k)
		}
	}

	// Errors: the same status and body.
	for _, path := range []string{
		"/fapi/v1/klines?symbol=btcusdt&interval=1m",
		"/fapi/v1/klines?symbol=NOPEUSDT&interval=1m",
		"/fapi/v1/klines?symbol=BTCUSDT&interval=1s",
		"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501",
		"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=0",
		"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=abc",
		"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=2&endTime=1",
		"/fapi/v1/klines?interval=1m",
		"/fapi/v1/klines?symbol=BTCUSDT",
		"/fapi/v1/ticker/24hr?symbol=NOPEUSDT",
		"/fapi/v1/ticker/24hr?symbol=btcusdt",
		"/fapi/v1/ticker/bookTicker?symbol=NOPEUSDT",
		"/fapi/v2/ticker/price",
		"/fapi/v1/depth?symbol=BTCUSDT",
	} {
		code, got := getJSON(t, nodeURL+path)
		exCode, want := getJSON(t, simURL+path)
		if code != exCode || !gocmp.Equal(want, got) {
			t.Errorf("%s: %d %v, exchange %d %v", path, code, got, exCode, want)
		}
	}
}
