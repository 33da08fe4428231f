package marketdata_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeExchange is a deterministic exchange in process: a 1m kline every
// `minute` of real time, its OHLC a function of its open time, so REST and
// the stream agree on every kline. It stands in for the wire (package
// exchange/sim is the wire-level fixture); Redis is real.
type fakeExchange struct {
	minute time.Duration
	start  time.Time
	origin int64 // open time of the first kline, ms

	restCalls   atomic.Int64
	tickerCalls atomic.Int64
	infoCalls   atomic.Int64
	otherKlines atomic.Int64 // klines calls for series not configured (interval other than 1m)

	listed atomic.Pointer[[]string] // symbols listed besides BTCUSDT and ETHUSDT
}

func newFake(minute time.Duration) *fakeExchange {
	return &fakeExchange{minute: minute, start: time.Now(), origin: 1_700_000_000_000 - 1_700_000_000_000%60000}
}

// current is the open time of the open kline now.
func (f *fakeExchange) current() int64 {
	return f.origin + int64(time.Since(f.start)/f.minute)*60000
}

func (f *fakeExchange) kline(open int64, closed bool) exchange.Kline {
	p := 100 + (open/60000)%50
	return exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: open, CloseTime: open + 59999,
		Open: strconv.FormatInt(p, 10), High: strconv.FormatInt(p+2, 10), Low: strconv.FormatInt(p-1, 10),
		Close: strconv.FormatInt(p+1, 10), Volume: "10", Closed: closed}
}

func (f *fakeExchange) Klines(_ context.Context, symbol, interval string, start, _ int64, limit int) ([]exchange.Kline, error) {
	f.restCalls.Add(1)
	if interval != "1m" {
		f.otherKlines.Add(1)
	}
	cur := f.current()
	from := max(start, cur-int64(limit-1)*60000, f.origin-100*60000)
	var out []exchange.Kline
	for t := from - from%60000; t <= cur && len(out) < limit; t += 60000 {
		out = append(out, f.kline(t, t < cur))
	}
	return out, nil
}

func (f *fakeExchange) Ticker24h(_ context.Context, symbol string) (exchange.Ticker24h, error) {
	f.tickerCalls.Add(1)
	time.Sleep(20 * time.Millisecond)
	return exchange.Ticker24h{Symbol: symbol, LastPrice: "101"}, nil
}

func (f *fakeExchange) Symbols(context.Context) ([]exchange.SymbolInfo, error) {
	f.infoCalls.Add(1)
	time.Sleep(20 * time.Millisecond)
	out := []exchange.SymbolInfo{
		{Symbol: "BTCUSDT", Status: "TRADING", Raw: json.RawMessage(`{"symbol":"BTCUSDT","status":"TRADING"}`)},
		{Symbol: "ETHUSDT", Status: "TRADING", Raw: json.RawMessage(`{"symbol":"ETHUSDT","status":"TRADING"}`)},
	}
	if p := f.listed.Load(); p != nil {
		for _, s := range *p {
			out = append(out, exchange.SymbolInfo{Symbol: s, Status: "TRADING", Raw: json.RawMessage(`{"symbol":"` + s + `"}`)})
		}
	}
	return out, nil
}

// streams emits the open kline every 10 ms and each closing kline once.
func (f *fakeExchange) streams(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
	return streamerFunc(func(ctx context.Context) error {
		onConnect("/market")
		last := f.current()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			cur := f.current()
			for o := last; o < cur; o += 60000 {
				onEvent(exchange.Event{Kind: exchange.EventKline, Kline: f.kline(o, true)})
			}
			last = cur
			onEvent(exchange.Event{Kind: exchange.EventKline, Kline: f.kline(cur, false)})
			onEvent(exchange.Event{Kind: exchange.EventBookTicker, Book: exchange.BookTicker{Symbol: "BTCUSDT", BidPrice: "100", AskPrice: "101"}})
			onEvent(exchange.Event{Kind: exchange.EventTickers, Tickers: []exchange.Ticker24h{{Symbol: "BTCUSDT", LastPrice: "100.5"}, {Symbol: "XPTUSDT", LastPrice: "1"}}})
		}
	}), nil
}

type streamerFunc func(ctx context.Context) error

func (s streamerFunc) Run(ctx context.Context) error { return s(ctx) }

type testNode struct {
	id     string
	c      *cache.Cache
	n      *marketdata.Node
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, r *testenv.Redis, reg *keyspace.Registry, f *fakeExchange, id string) *testNode {
	t.Helper()
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, CallTimeout: 200 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 200 * time.Millisecond, HealthInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(c, leader.Config{Lease: lease, Epoch: epoch, Keys: reg, NodeID: id, RetryEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n, err := marketdata.New(marketdata.Config{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}, Window: 500, FlushEvery: 20 * time.Millisecond, SymbolRefresh: time.Second}, reg, c, f, f.streams, el)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{id: id, c: c, n: n, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() { n.Run(ctx) })
	go func() { wg.Wait(); close(tn.done) }()
	t.Cleanup(func() { tn.stop() })
	return tn
}

func (tn *testNode) stop() { tn.cancel(); <-tn.done }

func streaming(ns []*testNode) []string {
	var ids []string
	for _, n := range ns {
		if n.n.Mode() == marketdata.ModeLeader {
			ids = append(ids, n.id)
		}
	}
	return ids
}

// checkSeries asserts open times are consecutive minutes, each once.
func checkSeries(t *testing.T, ks []exchange.Kline) {
	t.Helper()
	for i := 1; i < len(ks); i++ {
		if d := ks[i].OpenTime - ks[i-1].OpenTime; d != 60000 {
			t.Fatalf("kline %d opens %d ms after the previous one (want 60000): a gap or a duplicate", i, d)
		}
	}
}

// commonMinutes cuts each series to the open times all of them hold.
func commonMinutes(series [][]exchange.Kline) [][]exchange.Kline {
	var lo, hi int64 = math.MinInt64, math.MaxInt64
	for _, ks := range series {
		if len(ks) == 0 {
			return series
		}
		lo, hi = max(lo, ks[0].OpenTime), min(hi, ks[len(ks)-1].OpenTime)
	}
	out := make([][]exchange.Kline, len(series))
	for i, ks := range series {
		for _, k := range ks {
			if k.OpenTime >= lo && k.OpenTime <= hi {
				out[i] = append(out[i], k)
			}
		}
	}
	return out
}

func TestOneLeaderAllNodesServeTheSameKlines(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindMarketWSLeader: 2 * time.Second}}))
	f := newFake(100 * time.Millisecond)
	ns := []*testNode{startNode(t, r, reg, f, "a"), startNode(t, r, reg, f, "b"), startNode(t, r, reg, f, "c")}
	testenv.Eventually(t, 5*time.Second, func() bool { return len(streaming(ns)) == 1 }, "no single leader")
	ctx := context.Background()
	testenv.Eventually(t, 5*time.Second, func() bool {
		ks, _ := ns[0].n.Reader().Klines(ctx, "BTCUSDT", "1m", 500)
		return len(ks) >= 110
	}, "klines never reached redis")
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if l := streaming(ns); len(l) != 1 {
			t.Fatalf("leaders: %v", l)
		}
	}
	// The leader reports its streams connected; followers do not stream,
	// which is not a failure.
	for _, n := range ns {
		st, want := n.n.StreamStatus(time.Second), marketdata.StreamNotStreaming
		if n.n.Mode() == marketdata.ModeLeader {
			want = marketdata.StreamConnected
		}
		if st.State != want || st.Reason != "" {
			t.Errorf("node %s (%v): stream status %+v, want %s and no reason", n.id, n.n.Mode(), st, want)
		}
	}
	// Every node reads the same series from Redis. The leader keeps
	// writing between the reads, so the last-100 window may slide: compare
	// the minutes every read holds, without the open kline, which may move.
	var series [][]exchange.Kline
	for _, n := range ns {
		ks, err := n.n.Reader().Klines(ctx, "BTCUSDT", "1m", 100)
		if err != nil {
			t.Fatal(err)
		}
		series = append(series, ks[:len(ks)-1])
	}
	series = commonMinutes(series)
	if len(series[0]) < 80 {
		t.Fatalf("the reads share %d closed klines, want at least 80", len(series[0]))
	}
	for i := 1; i < len(series); i++ {
		if diff := cmp.Diff(series[0], series[i]); diff != "" {
			t.Fatalf("node %d serves other klines (-node0 +node%d):\n%s", i, i, diff)
		}
	}
	checkSeries(t, series[0])
	bt, ok, err := ns[1].n.Reader().BookTicker(ctx, "btcusdt")
	if err != nil || !ok || bt.BidPrice != "100" {
		t.Errorf("book ticker = %+v %v %v", bt, ok, err)
	}
	mt, err := ns[2].n.Reader().MarketTickers(ctx)
	if err != nil || mt["XPTUSDT"].LastPrice != "1" {
		t.Errorf("market tickers = %v %v", mt, err)
	}
	// Keys carry their TTLs.
	rc := r.Client(t)
	k, _ := reg.Kline("BTCUSDT", "1m")
	for _, name := range []string{k.Name(), reg.BookTicker().Name(), reg.MarketTicker24h().Name()} {
		if p, _ := rc.Do(ctx, rc.B().Pttl().Key(name).Build()).AsInt64(); p <= 0 {
			t.Errorf("%s PTTL %d", name, p)
		}
	}
	// Only the window is kept.
	if n, _ := rc.Do(ctx, rc.B().Zcard().Key(k.Name()).Build()).AsInt64(); n > 500 {
		t.Errorf("series holds %d klines, window 500", n)
	}
}

func TestFailoverKeepsTheSeriesWhole(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindMarketWSLeader: time.Second}}))
	f := newFake(50 * time.Millisecond)
	ns := []*testNode{startNode(t, r, reg, f, "a"), startNode(t, r, reg, f, "b")}
	testenv.Eventually(t, 5*time.Second, func() bool { return len(streaming(ns)) == 1 }, "no leader")
	time.Sleep(500 * time.Millisecond)
	first := streaming(ns)[0]
	for _, n := range ns {
		if n.id == first {
			n.stop()
		}
	}
	testenv.Eventually(t, 3*time.Second, func() bool { l := streaming(ns); return len(l) == 1 && l[0] != first }, "no takeover")
	time.Sleep(500 * time.Millisecond)
	var other *testNode
	for _, n := range ns {
		if n.id != first {
			other = n
		}
	}
	ks, err := other.n.Reader().Klines(context.Background(), "BTCUSDT", "1m", 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) < 100 {
		t.Fatalf("only %d klines", len(ks))
	}
	checkSeries(t, ks)
	for _, k := range ks[:len(ks)-1] {
		if want := f.kline(k.OpenTime, true); k != want {
			t.Fatalf("kline %d = %+v, want %+v", k.OpenTime, k, want)
		}
	}
}

func TestStandaloneWhileRedisIsDown(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake(50 * time.Millisecond)
	n := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, func() bool { return n.n.Mode() == marketdata.ModeLeader }, "never led")
	r.Stop(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return n.n.Mode() == marketdata.ModeStandalone }, "never went standalone")
	ctx := context.Background()
	testenv.Eventually(t, 5*time.Second, func() bool {
		ks, err := n.n.Reader().Klines(ctx, "BTCUSDT", "1m", 50)
		return err == nil && len(ks) == 50
	}, "no klines from memory")
	ks, _ := n.n.Reader().Klines(ctx, "BTCUSDT", "1m", 50)
	checkSeries(t, ks)
	r.Restart(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return n.n.Mode() == marketdata.ModeLeader }, "never rejoined")
	testenv.Eventually(t, 5*time.Second, func() bool {
		ks, err := n.n.Reader().Klines(ctx, "BTCUSDT", "1m", 100)
		return err == nil && len(ks) == 100
	}, "no klines in redis after recovery")
}

func TestReadThroughLoadsOnce(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake(time.Hour)
	n := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, func() bool { return n.c.Redis() != nil }, "no redis")
	rd := n.n.Reader()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		wg.Go(func() {
			tk, err := rd.Ticker24h(context.Background(), "ethusdt")
			if err == nil && tk.LastPrice != "101" {
				err = fmt.Errorf("ticker %+v", tk)
			}
			errs <- err
			sym := []string{"BTCUSDT", "ETHUSDT"}[i%2]
			info, err := rd.SymbolInfo(context.Background(), sym)
			if err == nil && !json.Valid(info) {
				err = fmt.Errorf("info %s", info)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if a, b := f.tickerCalls.Load(), f.infoCalls.Load(); a != 1 || b > 2 {
		t.Errorf("REST calls: ticker %d (want 1), exchangeInfo %d (want ≤ 2)", a, b)
	}
	if _, err := rd.SymbolInfo(context.Background(), "NOPEUSDT"); err == nil {
		t.Error("unknown symbol found")
	}
	if _, err := rd.Ticker24h(context.Background(), "BTC:USDT"); err == nil {
		t.Error("bad symbol accepted")
	}
}

// TestDeposedLeaderWritesNothing: once another token holds the lease, the
// leader's writes are refused by the fence and stop landing.
func TestDeposedLeaderWritesNothing(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindMarketWSLeader: 3 * time.Second}}))
	f := newFake(20 * time.Millisecond)
	n := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, func() bool { return n.n.Mode() == marketdata.ModeLeader }, "never led")
	rc := r.Client(t)
	ctx := context.Background()
	k, _ := reg.Kline("BTCUSDT", "1m")
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, _ := rc.Do(ctx, rc.B().Zcard().Key(k.Name()).Build()).AsInt64()
		return c > 100
	}, "no klines")
	// Steal the lease (as a split brain would): the next flush is fenced.
	rc.Do(ctx, rc.B().Set().Key(reg.MarketWSLeader().Name()).Value(`{"node":"intruder","epoch":999}`).Px(10*time.Second).Build())
	testenv.Eventually(t, 2*time.Second, func() bool { return n.n.Stats().Fenced.Load() > 0 }, "writes not fenced")
	last := func() string {
		m, _ := rc.Do(ctx, rc.B().Zrange().Key(k.Name()).Min("-1").Max("-1").Build()).AsStrSlice()
		return fmt.Sprint(m)
	}
	before := last()
	time.Sleep(300 * time.Millisecond) // 15 fake minutes: a live writer would have moved on
	if after := last(); after != before {
		t.Fatalf("a deposed leader's write landed: %s → %s", before, after)
	}
	if n.n.Mode() == marketdata.ModeLeader {
		t.Error("still leading with the lease stolen")
	}
	rc.Do(ctx, rc.B().Del().Key(reg.MarketWSLeader().Name()).Build())
}

// Symbols are checked against the exchange's list before any REST call:
// a flood of unknown ones costs one exchangeInfo, shared by every node;
// those still missing after a reload are cached in unknown_symbol:{SYMBOL},
// and those missing from a fresh snapshot write nothing (a flood cannot
// grow the keyspace). A symbol listed after the snapshot is found once the
// snapshot is older than SymbolRefresh.
func TestUnknownSymbolsNeverReachREST(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake(time.Hour)
	a, b := startNode(t, r, reg, f, "a"), startNode(t, r, reg, f, "b")
	testenv.Eventually(t, 5*time.Second, func() bool { return a.c.Redis() != nil && b.c.Redis() != nil }, "no redis")
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 300 {
		rd := []*testNode{a, b}[i%2].n.Reader()
		wg.Go(func() {
			sym := fmt.Sprintf("JUNK%dUSDT", i%50)
			var err error
			switch i % 3 {
			case 0:
				_, err = rd.SymbolInfo(ctx, sym)
			case 1:
				_, err = rd.Ticker24h(ctx, sym)
			case 2:
				_, err = rd.Klines(ctx, sym, "3m", 10)
			}
			if !errors.Is(err, marketdata.ErrUnknownSymbol) {
				t.Errorf("%s: %v, want ErrUnknownSymbol", sym, err)
			}
		})
	}
	wg.Wait()
	if ks, err := a.n.Reader().Klines(ctx, "btcusdt", "3m", 10); err != nil || len(ks) == 0 {
		t.Errorf("a listed symbol's unconfigured series: %d klines, %v", len(ks), err)
	}
	// Each node's concurrent misses share one request; a node that finds
	// the other's snapshot in Redis makes none.
	infos := f.infoCalls.Load()
	if got := []int64{f.tickerCalls.Load(), f.otherKlines.Load()}; infos < 1 || infos > 2 || !cmp.Equal(got, []int64{0, 1}) {
		t.Errorf("REST calls: exchangeInfo %d (want 1, at most one per node), ticker %d (want 0), klines of unconfigured series %d (want 1, BTCUSDT's)", infos, got[0], got[1])
	}
	for i := range 20 { // the snapshot is in Redis now: no more requests
		if _, err := []*testNode{a, b}[i%2].n.Reader().Ticker24h(ctx, fmt.Sprintf("MORE%dUSDT", i)); !errors.Is(err, marketdata.ErrUnknownSymbol) {
			t.Errorf("MORE%dUSDT: %v", i, err)
		}
	}
	if n := f.infoCalls.Load(); n != infos {
		t.Errorf("exchangeInfo loaded again with a fresh snapshot in Redis: %d → %d", infos, n)
	}
	rc := r.Client(t)
	negs := r.KeysMatching(t, testenvPattern(reg, "unknown_symbol:*"))
	if len(negs) == 0 || len(negs) > 50 {
		t.Errorf("%d unknown_symbol keys after the flood of 50 junk symbols (want 1 to 50: those of the reload)", len(negs))
	}
	for _, k := range negs {
		if strings.Contains(k, "MORE") {
			t.Errorf("%s written for a symbol missing from a fresh snapshot", k)
		}
		if v, _ := rc.Do(ctx, rc.B().Get().Key(k).Build()).ToString(); v != `{"code":-1121,"msg":"Invalid symbol."}` {
			t.Errorf("%s = %q", k, v)
		}
		if ttl, _ := rc.Do(ctx, rc.B().Pttl().Key(k).Build()).AsInt64(); ttl <= 0 || ttl > 60_000 {
			t.Errorf("%s PTTL %d", k, ttl)
		}
	}
	info := reg.ExchangeInfo()
	if n, err := rc.Do(ctx, rc.B().Hlen().Key(info.Name()).Build()).AsInt64(); err != nil || n != 2 {
		t.Errorf("%s holds %d symbols, %v", info, n, err)
	}

	// A listing after the snapshot: unknown while the snapshot is young,
	// found once it is older than SymbolRefresh (1 s in startNode).
	f.listed.Store(&[]string{"NEWUSDT", "NEXTUSDT"})
	if _, err := a.n.Reader().SymbolInfo(ctx, "NEWUSDT"); !errors.Is(err, marketdata.ErrUnknownSymbol) {
		t.Errorf("NEWUSDT against a fresh snapshot: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if v, err := b.n.Reader().SymbolInfo(ctx, "NEXTUSDT"); err != nil || string(v) != `{"symbol":"NEXTUSDT"}` {
		t.Errorf("NEXTUSDT after the snapshot aged: %s, %v", v, err)
	}
	if v, err := a.n.Reader().SymbolInfo(ctx, "NEWUSDT"); err != nil || string(v) != `{"symbol":"NEWUSDT"}` {
		t.Errorf("NEWUSDT (not negatively cached: it was missing from a fresh snapshot): %s, %v", v, err)
	}
	if n := f.infoCalls.Load(); n != infos+1 {
		t.Errorf("exchangeInfo loaded %d times, want %d", n, infos+1)
	}
}

// testenvPattern is the SCAN/KEYS pattern of a kind's keys under reg's prefix.
func testenvPattern(reg *keyspace.Registry, p string) string { return reg.Prefix() + p }
