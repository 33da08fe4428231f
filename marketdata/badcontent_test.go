package marketdata_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
)

// simExchange serves the simulated exchange (BTCUSDT and ETHUSDT, 1500
// klines of history) on a loopback port until the test ends, and returns
// its REST client and a stream factory reaching it.
func simExchange(t *testing.T) (*binance.REST, marketdata.StreamFactory) {
	t.Helper()
	s, err := sim.New(sim.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	streams := func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		return binance.NewStreams(binance.StreamConfig{BaseURL: "ws://" + addr, Streams: names, OnEvent: onEvent, OnConnect: onConnect,
			DialTimeout: time.Second, BackoffMax: time.Second, Logger: slog.New(slog.DiscardHandler)})
	}
	return binance.NewREST(binance.RESTConfig{BaseURL: "http://" + addr}), streams
}

// logBuffer collects a node's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines holding every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// simNode is a node on Redis r and the simulated exchange: BTCUSDT 1m,
// Window 100. With lead it campaigns (and, alone, leads); without, it only
// reads, so what a test plants stays until the test removes it.
type simNode struct {
	c    *cache.Cache
	n    *marketdata.Node
	logs *logBuffer
}

func startSimNode(t *testing.T, r *testenv.Redis, reg *keyspace.Registry, rest *binance.REST, streams marketdata.StreamFactory, lead bool) *simNode {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, CallTimeout: time.Second, HealthInterval: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(c, leader.Config{Lease: lease, Epoch: epoch, Keys: reg, NodeID: "n1", RetryEvery: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n, err := marketdata.New(marketdata.Config{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}, Window: 100,
		CheckEvery: 300 * time.Millisecond, Logger: log}, reg, c, rest, streams, el)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	if lead {
		wg.Go(func() { n.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Redis() != nil }, "no redis")
	if lead {
		testenv.Eventually(t, 5*time.Second, func() bool { return n.Mode() == marketdata.ModeLeader }, "never led")
	}
	return &simNode{c: c, n: n, logs: logs}
}

// klineJSON is the member the leader writes for k.
func klineJSON(t *testing.T, k exchange.Kline) string {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// plantSeries writes n closed klines, a minute apart from open, into key.
func plantSeries(t *testing.T, rc valkey.Client, key keyspace.Key, open int64, n int) []exchange.Kline {
	t.Helper()
	var ks []exchange.Kline
	cmd := rc.B().Zadd().Key(key.Name()).ScoreMember()
	for i := range n {
		k := exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: open + int64(i)*60000, CloseTime: open + int64(i)*60000 + 59999,
			Open: "100", High: "101", Low: "99", Close: "100.5", Volume: "7", Closed: true}
		ks = append(ks, k)
		cmd = cmd.ScoreMember(float64(k.OpenTime), klineJSON(t, k))
	}
	ctx := context.Background()
	if err := rc.Do(ctx, cmd.Build()).Error(); err != nil {
		t.Fatal(err)
	}
	rc.Do(ctx, rc.B().Pexpire().Key(key.Name()).Milliseconds(key.TTL().Milliseconds()).Build())
	return ks
}

func gather(t *testing.T, cs ...prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	return reg
}

// TestOversizedKlineMemberIsNeverFetched: a 30 MB member at the top of a
// kline set, read by 50 concurrent callers of the Reader and then 50 of
// the HTTP API, all at once, for limit=1. Each gets the newest kline that
// is not it; the process allocates a few MB in all (fetching the member
// once would be 30 MB, the old ZRANGE fetched it 100 times: 3 GB); every
// read is counted.
func TestOversizedKlineMemberIsNeverFetched(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	rest, streams := simExchange(t)
	nd := startSimNode(t, r, reg, rest, streams, false)
	rc := r.Client(t)
	ctx := context.Background()
	key, _ := reg.Kline("BTCUSDT", "1m")
	ks := plantSeries(t, rc, key, 1_700_000_040_000, 200)
	newest := ks[len(ks)-1]
	member := `{"t":` + strconv.FormatInt(newest.OpenTime+60000, 10) + `,"s":"` + strings.Repeat("X", 30<<20) + `"}`
	if err := rc.Do(ctx, rc.B().Zadd().Key(key.Name()).ScoreMember().ScoreMember(float64(newest.OpenTime+60000), member).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	member = ""
	srv := httptest.NewServer((&httpapi.Server{NodeID: "n1", Cache: nd.c, Started: time.Now(), Market: nd.n.Reader()}).Handler())
	defer srv.Close()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	rd := nd.n.Reader()
	for range 50 {
		wg.Go(func() {
			got, err := rd.Klines(ctx, "BTCUSDT", "1m", 1)
			if err == nil && (len(got) != 1 || got[0] != newest) {
				err = fmt.Errorf("reader: %+v, want the newest kline below the oversized member", got)
			}
			errs <- err
		})
		wg.Go(func() {
			res, err := http.Get(srv.URL + "/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1")
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var rows [][]any
			if err := json.Unmarshal(b, &rows); res.StatusCode != 200 || err != nil || len(rows) != 1 || rows[0][0] != float64(newest.OpenTime) {
				errs <- fmt.Errorf("http: %d %s", res.StatusCode, b)
				return
			}
			errs <- nil
		})
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("100 reads of a series topped by a 30 MB member: %.1f MB allocated, heap in use %.1f MB before, %.1f MB after",
		float64(alloc)/(1<<20), float64(before.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20))
	if alloc > 16<<20 {
		t.Errorf("allocated %.1f MB for 100 reads: the oversized member crossed the wire", float64(alloc)/(1<<20))
	}
	if after.HeapInuse > before.HeapInuse+16<<20 {
		t.Errorf("heap in use grew from %d to %d bytes", before.HeapInuse, after.HeapInuse)
	}
	want := `
# HELP tradecache_cache_oversized_total Values in Redis over their kind's size limit, refused or skipped without being fetched, by key kind.
# TYPE tradecache_cache_oversized_total counter
tradecache_cache_oversized_total{kind="kline"} 100
`
	if err := testutil.GatherAndCompare(gather(t, nd.c.Collector()), strings.NewReader(want), "tradecache_cache_oversized_total"); err != nil {
		t.Error(err)
	}
	if l := nd.logs.lines("unusable value in Redis", key.Name(), "reason=oversized"); len(l) != 1 || !strings.Contains(l[0], "31457") {
		t.Errorf("want one report naming the member's size, got %q", l)
	}
	rc.Do(ctx, rc.B().Del().Key(key.Name()).Build())
}

// TestKlineReadersSkipBadMembers: whatever a kline set holds beside
// klines, readers answer the newest klines without it, and count it.
func TestKlineReadersSkipBadMembers(t *testing.T) {
	r := testenv.Shared(t)
	rest, streams := simExchange(t)
	rc := r.Client(t)
	ctx := context.Background()
	const open = int64(1_700_000_040_000)
	top := open + 10*60000 // above the 10 klines planted
	// Reads of limit 1, 3, 10 and 500: every one meets a member at the
	// top, the last two one in the middle (counted once a read).
	tests := []struct {
		name   string
		score  int64
		member string
		reason string
		count  uint64
	}{
		{"not JSON, newest", top, "<html>", cache.BadUndecodable, 4},
		{"a JSON array, newest", top, "[1,2]", cache.BadUndecodable, 4},
		{"open time not its score, newest", top, `{"t":1700000040000,"s":"BTCUSDT","x":true}`, cache.BadUndecodable, 4},
		{"a field of the wrong type, newest", top, fmt.Sprintf(`{"t":%d,"o":100}`, top), cache.BadUndecodable, 4},
		{"oversized, newest", top, fmt.Sprintf(`{"t":%d,"s":"%s"}`, top, strings.Repeat("X", 5000)), cache.BadOversized, 4},
		{"oversized, in the middle", open + 5*60000 + 1, fmt.Sprintf(`{"t":%d,"s":"%s"}`, open+5*60000+1, strings.Repeat("X", 5000)), cache.BadOversized, 2},
		{"not JSON, in the middle", open + 5*60000 + 1, "garbage", cache.BadUndecodable, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
			nd := startSimNode(t, r, reg, rest, streams, false)
			key, _ := reg.Kline("BTCUSDT", "1m")
			ks := plantSeries(t, rc, key, open, 10)
			if err := rc.Do(ctx, rc.B().Zadd().Key(key.Name()).ScoreMember().ScoreMember(float64(tt.score), tt.member).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(key.Name()).Build()) })
			for _, limit := range []int{1, 3, 10, 500} {
				got, err := nd.n.Reader().Klines(ctx, "BTCUSDT", "1m", limit)
				if err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
				if diff := cmp.Diff(ks[max(0, len(ks)-limit):], got); diff != "" {
					t.Errorf("limit %d (-want +got):\n%s", limit, diff)
				}
			}
			if diff := cmp.Diff(map[cache.BadCount]uint64{{Kind: keyspace.KindKline, Reason: tt.reason}: tt.count}, nd.c.Stats().Bad); diff != "" {
				t.Errorf("bad counts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKlineReadersOfAWrongTypeKey: a kline key of another type reads as
// empty, so the series comes from REST, and is reported once.
func TestKlineReadersOfAWrongTypeKey(t *testing.T) {
	r := testenv.Shared(t)
	rest, streams := simExchange(t)
	rc := r.Client(t)
	ctx := context.Background()
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	nd := startSimNode(t, r, reg, rest, streams, false)
	for _, sym := range []string{"BTCUSDT", "ETHUSDT"} { // configured, not configured
		key, _ := reg.Kline(sym, "1m")
		rc.Do(ctx, rc.B().Set().Key(key.Name()).Value("a string").Ex(time.Minute).Build())
		defer rc.Do(ctx, rc.B().Del().Key(key.Name()).Build())
	}
	for range 10 {
		// Until the leader replaces it, REST answers: no reader is told
		// a configured series is empty.
		if ks, err := nd.n.Reader().Klines(ctx, "BTCUSDT", "1m", 5); err != nil || len(ks) != 5 || ks[0].Symbol != "BTCUSDT" {
			t.Fatalf("configured series of a string key = %v %v, want 5 klines from REST", ks, err)
		}
	}
	ks, err := nd.n.Reader().Klines(ctx, "ETHUSDT", "1m", 5)
	if err != nil || len(ks) != 5 || ks[0].Symbol != "ETHUSDT" {
		t.Fatalf("unconfigured series of a string key = %v %v, want 5 klines from REST", ks, err)
	}
	btc, _ := reg.Kline("BTCUSDT", "1m")
	if l := nd.logs.lines("unusable value in Redis", btc.Name(), "reason=wrong_type"); len(l) != 1 {
		t.Errorf("want one report of the wrong type, got %q", l)
	}
	if n := nd.c.Stats().Bad[cache.BadCount{Kind: keyspace.KindKline, Reason: cache.BadWrongType}]; n != 11 {
		t.Errorf("%d wrong-type reads counted, want 11", n)
	}
}

// TestLeaderRemovesBadContent: what readers cannot use in the series and
// hashes the leader writes — a non-JSON member above the open kline, an
// oversized one and a misplaced one inside the window, garbage hash fields
// — is removed by the leader's fenced writes; the series stays whole.
func TestLeaderRemovesBadContent(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	rest, streams := simExchange(t)
	nd := startSimNode(t, r, reg, rest, streams, true)
	rc := r.Client(t)
	ctx := context.Background()
	key, _ := reg.Kline("BTCUSDT", "1m")
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, _ := rc.Do(ctx, rc.B().Zcard().Key(key.Name()).Build()).AsInt64()
		return n == 100
	}, "the window never filled")
	last, err := rc.Do(ctx, rc.B().Zrange().Key(key.Name()).Min("-1").Max("-1").Withscores().Build()).AsZScores()
	if err != nil || len(last) != 1 {
		t.Fatal(last, err)
	}
	open := int64(last[0].Score)
	bad := map[float64]string{
		float64(open + 86_400_000):   "<html>not a kline</html>",                                                   // above everything: trim never removes it
		float64(open - 30*60000 + 1): fmt.Sprintf(`{"t":%d,"s":"%s"}`, open-30*60000+1, strings.Repeat("X", 5000)), // oversized, inside the window
		float64(open - 50*60000 + 7): `{"t":1,"s":"BTCUSDT"}`,                                                      // not at its score
	}
	zadd := rc.B().Zadd().Key(key.Name()).ScoreMember()
	for score, m := range bad {
		zadd = zadd.ScoreMember(score, m)
	}
	rc.Do(ctx, zadd.Build())
	books, tickers := reg.BookTicker(), reg.MarketTicker24h()
	rc.Do(ctx, rc.B().Hset().Key(books.Name()).FieldValue().FieldValue("XRPUSDT", "garbage").FieldValue("ETHUSDT", strings.Repeat("{", 5000)).Build())
	rc.Do(ctx, rc.B().Hset().Key(tickers.Name()).FieldValue().FieldValue("NOPEUSDT", `{"symbol":"OTHER"}`).Build())

	testenv.Eventually(t, 5*time.Second, func() bool {
		for score := range bad {
			s := strconv.FormatFloat(score, 'f', -1, 64)
			if n, _ := rc.Do(ctx, rc.B().Zcount().Key(key.Name()).Min(s).Max(s).Build()).AsInt64(); n != 0 {
				return false
			}
		}
		for _, f := range [][2]string{{books.Name(), "XRPUSDT"}, {books.Name(), "ETHUSDT"}, {tickers.Name(), "NOPEUSDT"}} {
			if ok, _ := rc.Do(ctx, rc.B().Hexists().Key(f[0]).Field(f[1]).Build()).AsBool(); ok {
				return false
			}
		}
		return true
	}, "the leader left bad content in place")
	ks, err := nd.n.Reader().Klines(ctx, "BTCUSDT", "1m", 100)
	// Until the whole-set check removes them, bad members below the range
	// a flush writes take window slots: the trim may have dropped as many
	// of the oldest klines (2 here), never one inside the series.
	if err != nil || len(ks) < 97 {
		t.Fatalf("series after repair: %d klines, %v", len(ks), err)
	}
	checkSeries(t, ks)
	st := nd.n.Stats()
	if st.MembersRemoved.Load() < 3 || st.FieldsRemoved.Load() < 3 {
		t.Errorf("removed %d members and %d fields, want 3 and 3", st.MembersRemoved.Load(), st.FieldsRemoved.Load())
	}
	if l := nd.logs.lines("write failed"); len(l) != 0 {
		t.Errorf("write failures: %q", l)
	}
	if l := nd.logs.lines("unusable value in Redis", "removed by the leader"); len(l) == 0 {
		t.Error("the removals were not reported")
	}
}

// TestDeposedLeaderRemovesNothing: once the lease is lost, the writer's
// fenced scripts refuse, removals included: a bad member planted then
// stays (and readers skip it).
func TestDeposedLeaderRemovesNothing(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindMarketWSLeader: 3 * time.Second}}))
	rest, streams := simExchange(t)
	nd := startSimNode(t, r, reg, rest, streams, true)
	rc := r.Client(t)
	ctx := context.Background()
	key, _ := reg.Kline("BTCUSDT", "1m")
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, _ := rc.Do(ctx, rc.B().Zcard().Key(key.Name()).Build()).AsInt64()
		return n == 100
	}, "the window never filled")
	rc.Do(ctx, rc.B().Set().Key(reg.MarketWSLeader().Name()).Value(`{"node":"intruder","epoch":999}`).Px(10*time.Second).Build())
	defer rc.Do(ctx, rc.B().Del().Key(reg.MarketWSLeader().Name()).Build())
	testenv.Eventually(t, 3*time.Second, func() bool { return nd.n.Stats().Fenced.Load() > 0 && nd.n.Mode() != marketdata.ModeLeader }, "not deposed")
	// One instant for the member and the count: two time.Now calls can
	// straddle a millisecond and count nothing.
	at := time.Now().Add(24 * time.Hour).UnixMilli()
	score := strconv.FormatInt(at, 10)
	rc.Do(ctx, rc.B().Zadd().Key(key.Name()).ScoreMember().ScoreMember(float64(at), "<html>").Build())
	time.Sleep(time.Second) // three check intervals, ten flushes
	if n, _ := rc.Do(ctx, rc.B().Zcount().Key(key.Name()).Min(score).Max(score).Build()).AsInt64(); n != 1 {
		t.Fatal("a deposed leader removed a member")
	}
	if nd.n.Stats().MembersRemoved.Load() != 0 {
		t.Error("removals counted by a deposed leader")
	}
	if ks, err := nd.n.Reader().Klines(ctx, "BTCUSDT", "1m", 10); err != nil || len(ks) != 10 {
		t.Errorf("readers: %d klines, %v", len(ks), err)
	}
	rc.Do(ctx, rc.B().Del().Key(key.Name()).Build())
}

// TestLeaderReplacesAWrongTypeKey: a kline key made a string (without a
// TTL) is deleted and rewritten by the leader's next fenced write and the
// series filled again from REST; planted again and again, it is replaced
// every time, reported in one log line, and never logged as a failed write.
func TestLeaderReplacesAWrongTypeKey(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	rest, streams := simExchange(t)
	nd := startSimNode(t, r, reg, rest, streams, true)
	rc := r.Client(t)
	ctx := context.Background()
	key, _ := reg.Kline("BTCUSDT", "1m")
	full := func() bool {
		n, _ := rc.Do(ctx, rc.B().Zcard().Key(key.Name()).Build()).AsInt64()
		return n == 100
	}
	testenv.Eventually(t, 10*time.Second, full, "the window never filled")
	const plants = 10
	for range plants {
		if err := rc.Do(ctx, rc.B().Set().Key(key.Name()).Value("not a sorted set").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Second, func() bool {
			typ, _ := rc.Do(ctx, rc.B().Type().Key(key.Name()).Build()).ToString()
			return typ == "zset"
		}, "the string key was not replaced")
	}
	testenv.Eventually(t, 10*time.Second, full, "the replaced series was not filled again")
	ks, err := nd.n.Reader().Klines(ctx, "BTCUSDT", "1m", 100)
	if err != nil || len(ks) != 100 {
		t.Fatalf("series after replacement: %d klines, %v", len(ks), err)
	}
	checkSeries(t, ks)
	if p, _ := rc.Do(ctx, rc.B().Pttl().Key(key.Name()).Build()).AsInt64(); p <= 0 {
		t.Errorf("replaced key PTTL %d", p)
	}
	if n := nd.n.Stats().KeysReplaced.Load(); n != plants {
		t.Errorf("%d replacements counted, want %d", n, plants)
	}
	if l := nd.logs.lines("unusable value in Redis", key.Name(), "reason=wrong_type"); len(l) != 1 {
		t.Errorf("want the wrong type reported once a minute, got %d lines: %q", len(l), l)
	}
	if l := nd.logs.lines("write failed"); len(l) != 0 {
		t.Errorf("write failures logged: %q", l)
	}
}

// TestReadThroughHealsBadContent: a read-through key holding what cannot
// be used is loaded again from the exchange and overwritten with its TTL.
func TestReadThroughHealsBadContent(t *testing.T) {
	r := testenv.Shared(t)
	rest, streams := simExchange(t)
	rc := r.Client(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		kind   string
		value  string
		ttl    time.Duration // 0: none
		reason string
	}{
		{"ticker not JSON, no TTL", keyspace.KindTicker24h, "<html>", 0, cache.BadNoTTL},
		{"ticker not JSON", keyspace.KindTicker24h, "<html>", time.Hour, cache.BadUndecodable},
		{"ticker without TTL", keyspace.KindTicker24h, `{"symbol":"ETHUSDT","lastPrice":"1"}`, 0, cache.BadNoTTL},
		{"ticker oversized", keyspace.KindTicker24h, `{"symbol":"ETHUSDT","x":"` + strings.Repeat("X", 5000) + `"}`, time.Hour, cache.BadOversized},
		{"symbol info not JSON", keyspace.KindSymbolInfo, "garbage", time.Hour, cache.BadUndecodable},
		{"symbol info of another symbol", keyspace.KindSymbolInfo, `{"symbol":"BTCUSDT"}`, time.Hour, cache.BadUndecodable},
		{"symbol info oversized", keyspace.KindSymbolInfo, `{"symbol":"ETHUSDT","x":"` + strings.Repeat("X", 100<<10) + `"}`, time.Hour, cache.BadOversized},
		{"symbol info a hash", keyspace.KindSymbolInfo, "", time.Hour, cache.BadWrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
			nd := startSimNode(t, r, reg, rest, streams, false)
			key, _ := reg.Key(tt.kind, "ETHUSDT")
			plant := rc.B().Set().Key(key.Name()).Value(tt.value).Build()
			if tt.value == "" {
				plant = rc.B().Hset().Key(key.Name()).FieldValue().FieldValue("symbol", "ETHUSDT").Build()
			}
			rc.Do(ctx, plant)
			if tt.ttl > 0 {
				rc.Do(ctx, rc.B().Pexpire().Key(key.Name()).Milliseconds(tt.ttl.Milliseconds()).Build())
			}
			t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(key.Name()).Build()) })
			rd := nd.n.Reader()
			switch tt.kind {
			case keyspace.KindTicker24h:
				tk, err := rd.Ticker24h(ctx, "ETHUSDT")
				if err != nil || tk.Symbol != "ETHUSDT" || tk.LastPrice == "" {
					t.Fatalf("Ticker24h = %+v %v", tk, err)
				}
			case keyspace.KindSymbolInfo:
				info, err := rd.SymbolInfo(ctx, "ETHUSDT")
				var s struct{ Symbol, Status string }
				if err != nil || json.Unmarshal(info, &s) != nil || s.Symbol != "ETHUSDT" || s.Status != "TRADING" {
					t.Fatalf("SymbolInfo = %s %v", info, err)
				}
			}
			v, err := rc.Do(ctx, rc.B().Get().Key(key.Name()).Build()).ToString()
			if err != nil || !strings.Contains(v, `"symbol":"ETHUSDT"`) || len(v) > key.MaxValue() {
				t.Errorf("Redis holds %.80q %v after the read, want the exchange's value", v, err)
			}
			if p, _ := rc.Do(ctx, rc.B().Pttl().Key(key.Name()).Build()).AsInt64(); p <= 0 || p > key.TTL().Milliseconds() {
				t.Errorf("PTTL %d after the read, want the key's TTL %v", p, key.TTL())
			}
			if diff := cmp.Diff(map[cache.BadCount]uint64{{Kind: tt.kind, Reason: tt.reason}: 1}, nd.c.Stats().Bad); diff != "" {
				t.Errorf("bad counts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHashReadersSkipBadFields: a book ticker or whole-market ticker field
// that is oversized, not JSON or of another symbol reads as missing; the
// rest of the hash is served.
func TestHashReadersSkipBadFields(t *testing.T) {
	r := testenv.Shared(t)
	rest, streams := simExchange(t)
	rc := r.Client(t)
	ctx := context.Background()
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	nd := startSimNode(t, r, reg, rest, streams, false)
	books, tickers := reg.BookTicker(), reg.MarketTicker24h()
	big := `{"symbol":"ETHUSDT","x":"` + strings.Repeat("X", 5000) + `"}`
	for _, k := range []keyspace.Key{books, tickers} {
		rc.Do(ctx, rc.B().Hset().Key(k.Name()).FieldValue().
			FieldValue("BTCUSDT", `{"symbol":"BTCUSDT","bidPrice":"1","lastPrice":"2"}`).
			FieldValue("ETHUSDT", big).FieldValue("XRPUSDT", "<html>").FieldValue("SOLUSDT", `{"symbol":"BTCUSDT"}`).Build())
		rc.Do(ctx, rc.B().Expire().Key(k.Name()).Seconds(60).Build())
		defer rc.Do(ctx, rc.B().Del().Key(k.Name()).Build())
	}
	rd := nd.n.Reader()
	if bt, ok, err := rd.BookTicker(ctx, "BTCUSDT"); err != nil || !ok || bt.BidPrice != "1" {
		t.Errorf("BookTicker(BTCUSDT) = %+v %v %v", bt, ok, err)
	}
	for _, sym := range []string{"ETHUSDT", "XRPUSDT", "SOLUSDT"} {
		if bt, ok, err := rd.BookTicker(ctx, sym); err != nil || ok {
			t.Errorf("BookTicker(%s) = %+v %v %v, want not held", sym, bt, ok, err)
		}
	}
	mt, err := rd.MarketTickers(ctx)
	if err != nil || len(mt) != 1 || mt["BTCUSDT"].LastPrice != "2" {
		t.Errorf("MarketTickers = %v %v, want BTCUSDT alone", mt, err)
	}
	want := map[cache.BadCount]uint64{
		{Kind: keyspace.KindBookTicker, Reason: cache.BadOversized}:        1,
		{Kind: keyspace.KindBookTicker, Reason: cache.BadUndecodable}:      2,
		{Kind: keyspace.KindMarketTicker24h, Reason: cache.BadOversized}:   1,
		{Kind: keyspace.KindMarketTicker24h, Reason: cache.BadUndecodable}: 2,
	}
	if diff := cmp.Diff(want, nd.c.Stats().Bad); diff != "" {
		t.Errorf("bad counts (-want +got):\n%s", diff)
	}
}

// TestBackfillPassesOverABadNewestMember: a garbage member above
// everything does not make a new leader think its series is up to date:
// the backfill starts from the newest kline readers can decode (here none,
// so the whole window) and the garbage is removed.
func TestBackfillPassesOverABadNewestMember(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	rest, streams := simExchange(t)
	rc := r.Client(t)
	ctx := context.Background()
	key, _ := reg.Kline("BTCUSDT", "1m")
	future := float64(time.Now().Add(24 * time.Hour).UnixMilli())
	rc.Do(ctx, rc.B().Zadd().Key(key.Name()).ScoreMember().ScoreMember(future, "<html>").Build())
	rc.Do(ctx, rc.B().Expire().Key(key.Name()).Seconds(600).Build())
	nd := startSimNode(t, r, reg, rest, streams, true)
	testenv.Eventually(t, 10*time.Second, func() bool {
		n, _ := rc.Do(ctx, rc.B().Zcard().Key(key.Name()).Build()).AsInt64()
		return n == 100
	}, "the window was not backfilled")
	ks, err := nd.n.Reader().Klines(ctx, "BTCUSDT", "1m", 100)
	if err != nil || len(ks) != 100 {
		t.Fatalf("series: %d klines, %v", len(ks), err)
	}
	checkSeries(t, ks)
	if ks[len(ks)-1].OpenTime > time.Now().UnixMilli() {
		t.Errorf("newest kline opens at %d, in the future", ks[len(ks)-1].OpenTime)
	}
}
