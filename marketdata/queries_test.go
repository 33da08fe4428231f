package marketdata_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/marketdata"
)

// countingREST counts the calls made through it.
type countingREST struct {
	exchange.MarketREST
	klines, symbols atomic.Int64
}

func (c *countingREST) Klines(ctx context.Context, symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error) {
	c.klines.Add(1)
	return c.MarketREST.Klines(ctx, symbol, interval, start, end, limit)
}

func (c *countingREST) Symbols(ctx context.Context) ([]exchange.SymbolInfo, error) {
	c.symbols.Add(1)
	return c.MarketREST.Symbols(ctx)
}

// readerOn is a Reader of a node configured for BTCUSDT 1m with a window
// of window klines, on Redis, reading REST through rest; the node does not
// run (nothing writes).
func readerOn(t *testing.T, r *testenv.Redis, reg *keyspace.Registry, rest exchange.MarketREST, window int) (*marketdata.Reader, *cache.Cache) {
	t.Helper()
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, CallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Redis() != nil }, "no redis")
	n, err := marketdata.New(marketdata.Config{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}, Window: window}, reg, c, rest, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n.Reader(), c
}

// TestKlinesRangeServesTheWindowAndRESTBeyond: a kline query is answered
// as the exchange answers it (its REST being the truth), from the window
// where the window holds the answer, with one REST call for the part
// older than the window, and none at all for a window that is not full.
func TestKlinesRangeServesTheWindowAndRESTBeyond(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	simREST, _ := simExchange(t)
	rest := &countingREST{MarketREST: simREST}
	rd, _ := readerOn(t, r, reg, rest, 100)
	rc := r.Client(t)
	ctx := context.Background()
	key, _ := reg.Kline("BTCUSDT", "1m")
	const minute = int64(60000)
	// A full window of planted klines (unlike the exchange's: their open is
	// 100) ending ten minutes ago, within the exchange's history.
	first := time.Now().Add(-110*time.Minute).UnixMilli() / minute * minute
	held := plantSeries(t, rc, key, first, 100)
	truthOf := func(interval string, start, end int64, limit int) []exchange.Kline {
		ks, err := simREST.Klines(ctx, "BTCUSDT", interval, start, end, limit)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	truth := func(start, end int64, limit int) []exchange.Kline { return truthOf("1m", start, end, limit) }
	cat := func(parts ...[]exchange.Kline) []exchange.Kline {
		var out []exchange.Kline
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name       string
		start, end int64
		limit      int
		want       []exchange.Kline
		restCalls  int64
		interval   string // "": 1m, the configured series
	}{
		{"newest within the window", 0, 0, 50, held[50:], 0, ""},
		{"newest beyond the window", 0, 0, 150, cat(truth(0, first-1, 50), held), 1, ""},
		{"start within", held[10].OpenTime, 0, 20, held[10:30], 0, ""},
		{"start within, to the newest", held[95].OpenTime, 0, 10, held[95:], 0, ""},
		{"start and end within", held[10].OpenTime + 1, held[20].OpenTime, 50, held[11:21], 0, ""},
		{"start before", first - 30*minute, 0, 50, cat(truth(first-30*minute, first-1, 50), held[:20]), 1, ""},
		{"start and end before", first - 30*minute, first - 20*minute, 50, truth(first-30*minute, first-20*minute, 50), 1, ""},
		{"end within", 0, held[40].OpenTime, 10, held[31:41], 0, ""},
		{"end within, reaching before", 0, held[5].OpenTime, 10, cat(truth(0, first-1, 4), held[:6]), 1, ""},
		{"end before", 0, first - 5*minute, 10, truth(0, first-5*minute, 10), 1, ""},
		{"a series nobody streams", first, 0, 5, truthOf("5m", first, 0, 5), 1, "5m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rest.klines.Load()
			got, err := rd.KlinesRange(ctx, "BTCUSDT", cmp.Or(tt.interval, "1m"), tt.start, tt.end, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if n := rest.klines.Load() - before; n != tt.restCalls {
				t.Errorf("%d REST calls, want %d", n, tt.restCalls)
			}
		})
	}

	// Queries out of bounds are refused.
	for _, q := range [][3]int64{{0, 0, 0}, {0, 0, 1501}, {2, 1, 10}} {
		if _, err := rd.KlinesRange(ctx, "BTCUSDT", "1m", q[0], q[1], int(q[2])); !errors.Is(err, marketdata.ErrBadKlineQuery) {
			t.Errorf("KlinesRange%v = %v, want ErrBadKlineQuery", q, err)
		}
	}

	// A window that is not full holds every kline there is (a young
	// listing): no REST call, whatever the query.
	rc.Do(ctx, rc.B().Del().Key(key.Name()).Build())
	held = plantSeries(t, rc, key, first, 60)
	before := rest.klines.Load()
	for _, q := range [][3]int64{{0, 0, 150}, {first - 30*minute, 0, 50}, {0, held[5].OpenTime, 10}} {
		got, err := rd.KlinesRange(ctx, "BTCUSDT", "1m", q[0], q[1], int(q[2]))
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64][]exchange.Kline{150: held, 50: held[:50], 10: held[:6]}[q[2]]
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("KlinesRange%v of a window not full (-want +got):\n%s", q, diff)
		}
	}
	if n := rest.klines.Load() - before; n != 0 {
		t.Errorf("%d REST calls for a window not full, want none", n)
	}
}

// TestBookTickersAndExchangeInfo: every book ticker held, and every listed
// symbol's exchangeInfo entry (loaded from REST once, then from Redis),
// skipping fields that are not their symbol's.
func TestBookTickersAndExchangeInfo(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	simREST, _ := simExchange(t)
	rest := &countingREST{MarketREST: simREST}
	rd, c := readerOn(t, r, reg, rest, 100)
	rc := r.Client(t)
	ctx := context.Background()

	books := reg.BookTicker()
	rc.Do(ctx, rc.B().Hset().Key(books.Name()).FieldValue().
		FieldValue("BTCUSDT", `{"symbol":"BTCUSDT","bidPrice":"1","updateId":7}`).
		FieldValue("ETHUSDT", `{"symbol":"ETHUSDT","bidPrice":"2"}`).
		FieldValue("SOLUSDT", `{"symbol":"BTCUSDT"}`).Build())
	rc.Do(ctx, rc.B().Expire().Key(books.Name()).Seconds(60).Build())
	got, err := rd.BookTickers(ctx)
	want := map[string]exchange.BookTicker{"BTCUSDT": {Symbol: "BTCUSDT", BidPrice: "1", UpdateID: 7}, "ETHUSDT": {Symbol: "ETHUSDT", BidPrice: "2"}}
	if diff := gocmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("BookTickers: %v (-want +got):\n%s", err, diff)
	}

	symbols := func(infos []json.RawMessage) []string {
		var out []string
		for _, b := range infos {
			var s struct{ Symbol, Status string }
			if err := json.Unmarshal(b, &s); err != nil || s.Status != "TRADING" {
				t.Errorf("entry %.80s: %v", b, err)
			}
			out = append(out, s.Symbol)
		}
		return out
	}
	for range 3 {
		infos, err := rd.ExchangeInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff([]string{"BTCUSDT", "ETHUSDT"}, symbols(infos)); diff != "" {
			t.Errorf("ExchangeInfo symbols (-want +got):\n%s", diff)
		}
	}
	if n := rest.symbols.Load(); n != 1 {
		t.Errorf("%d exchangeInfo loads, want 1", n)
	}
	info := reg.ExchangeInfo()
	rc.Do(ctx, rc.B().Hset().Key(info.Name()).FieldValue().FieldValue("XRPUSDT", "<html>").Build())
	infos, err := rd.ExchangeInfo(ctx)
	if diff := gocmp.Diff([]string{"BTCUSDT", "ETHUSDT"}, symbols(infos)); err != nil || diff != "" {
		t.Errorf("ExchangeInfo beside a bad field: %v (-want +got):\n%s", err, diff)
	}
	wantBad := map[cache.BadCount]uint64{
		{Kind: keyspace.KindBookTicker, Reason: cache.BadUndecodable}:   1,
		{Kind: keyspace.KindExchangeInfo, Reason: cache.BadUndecodable}: 1,
	}
	if diff := gocmp.Diff(wantBad, c.Stats().Bad); diff != "" {
		t.Errorf("bad counts (-want +got):\n%s", diff)
	}
}
