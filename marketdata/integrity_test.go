package marketdata_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
)

// scripted is an exchange whose clock and stream the test drives: cur is
// the open time of the open 1m bar; REST answers the truth (truth) up to
// it; the stream delivers what the test emits.
type scripted struct {
	cur       atomic.Int64
	restCalls atomic.Int64

	mu      sync.Mutex
	onEvent func(exchange.Event)
	connect func(string)

	pubMu     sync.Mutex // guards published
	published []exchange.Kline

	// restGate, when set, holds every REST klines call until closed.
	restGate chan struct{}
}

// PublishAsync records the node's kline events.
func (s *scripted) PublishAsync(name string, data any) error {
	if kp, ok := data.(*exchange.Kline); ok {
		data = *kp // the node publishes by pointer
	}
	if k, ok := data.(exchange.Kline); ok && name == "kline" {
		s.pubMu.Lock()
		s.published = append(s.published, k)
		s.pubMu.Unlock()
	}
	return nil
}

// publishedClosed is the open times of the closed klines published.
func (s *scripted) publishedClosed() map[int64]int {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	out := map[int64]int{}
	for _, k := range s.published {
		if k.Closed {
			out[k.OpenTime]++
		}
	}
	return out
}

const bar = int64(60000)

func newScripted() *scripted {
	s := &scripted{}
	s.cur.Store(1_700_000_000_000 - 1_700_000_000_000%bar)
	return s
}

// truth is the final kline of open time t.
func truth(t int64) exchange.Kline {
	p := 100 + (t/bar)%50
	f := func(v int64) string { return strconv.FormatInt(v, 10) + ".50" }
	return exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: t, CloseTime: t + bar - 1,
		Open: f(p), High: f(p + 3), Low: f(p - 2), Close: f(p + 1), Volume: "12.5", QuoteVolume: "1500.25",
		Trades: 40, TakerBuyBase: "6", TakerBuyQuote: "720.1", Closed: true}
}

// partial is bar t still in progress: a lower high, another close, less volume.
func partial(t int64) exchange.Kline {
	k := truth(t)
	p := 100 + (t/bar)%50
	k.High, k.Close, k.Volume, k.Trades, k.Closed = strconv.FormatInt(p+2, 10), strconv.FormatInt(p, 10), "3", 11, false
	return k
}

// forged is bar t final with other prices.
func forged(t int64) exchange.Kline {
	k := truth(t)
	k.Close, k.Volume = k.High, "99"
	return k
}

func (s *scripted) Klines(ctx context.Context, _, _ string, start, _ int64, limit int) ([]exchange.Kline, error) {
	if s.restGate != nil {
		select {
		case <-s.restGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.restCalls.Add(1)
	cur := s.cur.Load()
	from := cur - int64(limit-1)*bar
	if start > 0 {
		from = start
	}
	var out []exchange.Kline
	for t := from; t <= cur && len(out) < limit; t += bar {
		k := truth(t)
		if t == cur {
			k = partial(t)
		}
		out = append(out, k)
	}
	return out, nil
}

func (s *scripted) Ticker24h(context.Context, string) (exchange.Ticker24h, error) {
	return exchange.Ticker24h{}, nil
}
func (s *scripted) Symbols(context.Context) ([]exchange.SymbolInfo, error) { return nil, nil }

func (s *scripted) streams(_ []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
	s.mu.Lock()
	s.onEvent, s.connect = onEvent, onConnect
	s.mu.Unlock()
	return streamerFunc(func(ctx context.Context) error {
		onConnect("/market")
		<-ctx.Done()
		return nil
	}), nil
}

// emit delivers klines on the stream, with the exchange clock at the open bar.
func (s *scripted) emit(ks ...exchange.Kline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range ks {
		s.onEvent(exchange.Event{Kind: exchange.EventKline, EventTime: s.cur.Load() + 1000, Kline: k})
	}
}

func (s *scripted) reconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connect("/market")
}

// next closes the open bar: its final, then the new open bar's first update.
func (s *scripted) next() int64 {
	closed := s.cur.Load()
	s.cur.Add(bar)
	s.emit(truth(closed), partial(closed+bar))
	return closed
}

func startScripted(t *testing.T, s *scripted, ic marketdata.Integrity) (*marketdata.Node, func() []exchange.Kline) {
	t.Helper()
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt})
	if err != nil {
		t.Fatal(err)
	}
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(c, leader.Config{Lease: lease, Epoch: epoch, Keys: reg, NodeID: "a", RetryEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if ic.ReconcileDelay == 0 {
		ic.ReconcileDelay = 20 * time.Millisecond
	}
	n, err := marketdata.New(marketdata.Config{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}, Window: 50, FlushEvery: 10 * time.Millisecond, Integrity: ic, Events: s},
		reg, c, s, s.streams, el)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() { n.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if s.restGate == nil {
		testenv.Eventually(t, 5*time.Second, func() bool {
			return n.Mode() == marketdata.ModeLeader && n.IntegrityStats().Reconciliations["start"] == 1 && n.IntegrityStats().Pending == 0
		}, "no term or no first reconciliation")
	}
	stored := func() []exchange.Kline {
		ks, err := n.Reader().Klines(context.Background(), "BTCUSDT", "1m", 50)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	return n, stored
}

// settled waits until no reconciliation is pending and what the buffer
// holds is written.
func settled(t *testing.T, n *marketdata.Node) {
	t.Helper()
	time.Sleep(60 * time.Millisecond)
	testenv.Eventually(t, 5*time.Second, func() bool { return n.IntegrityStats().Pending == 0 }, "reconciliations still pending: %+v", n.IntegrityStats())
	time.Sleep(40 * time.Millisecond) // a flush
}

// storedAt returns the stored kline of open time t.
func storedAt(t *testing.T, stored func() []exchange.Kline, open int64) (exchange.Kline, bool) {
	t.Helper()
	for _, k := range stored() {
		if k.OpenTime == open {
			return k, true
		}
	}
	return exchange.Kline{}, false
}

func wantTruth(t *testing.T, stored func() []exchange.Kline, open int64) {
	t.Helper()
	k, ok := storedAt(t, stored, open)
	if !ok {
		t.Fatalf("kline %d missing", open)
	}
	if k != truth(open) {
		t.Fatalf("kline %d = %+v, want %+v", open, k, truth(open))
	}
}

// TestIntegrityConflict: a final repeated with other values is a
// conflict; the first is kept, and REST decides, whichever came first.
func TestIntegrityConflict(t *testing.T) {
	s := newScripted()
	n, stored := startScripted(t, s, marketdata.Integrity{VerifyEvery: -1})
	// The right final first, then a forged one: dropped, settled.
	b1 := s.next()
	settled(t, n)
	calls := s.restCalls.Load()
	s.emit(forged(b1))
	settled(t, n)
	wantTruth(t, stored, b1)
	st := n.IntegrityStats()
	if st.Conflicts != 1 || st.Settled != 1 || st.Dropped["conflict"] != 1 {
		t.Fatalf("after a forged repeat: %+v", st)
	}
	if st.Reconciliations["conflict"] != 1 || s.restCalls.Load() != calls+1 {
		t.Errorf("the conflict was not settled against REST: %+v, %d REST calls", st, s.restCalls.Load()-calls)
	}
	// Settled by REST: a second forged repeat is decided without a call.
	s.emit(forged(b1))
	settled(t, n)
	if st := n.IntegrityStats(); st.Conflicts != 2 || st.Settled != 2 || s.restCalls.Load() != calls+1 {
		t.Errorf("a repeat of a bar REST decided: %+v, %d REST calls", st, s.restCalls.Load()-calls)
	}

	// A forged final first, then the right one: REST wins over the first.
	b2 := s.cur.Load()
	s.cur.Add(bar)
	s.emit(forged(b2), truth(b2), partial(b2+bar))
	settled(t, n)
	wantTruth(t, stored, b2)
	st = n.IntegrityStats()
	if st.Conflicts != 3 || st.Settled != 3 || st.Repaired["differs"] != 1 {
		t.Errorf("a forged first final: %+v", st)
	}
}

// TestIntegrityInProgressNeverFinal: a bar whose final never came is
// written from REST, not left with its in-progress values; in-progress
// updates after the final are dropped.
func TestIntegrityInProgressNeverFinal(t *testing.T) {
	s := newScripted()
	n, stored := startScripted(t, s, marketdata.Integrity{VerifyEvery: -1})
	b1 := s.cur.Load()
	s.emit(partial(b1))
	settled(t, n)
	if k, _ := storedAt(t, stored, b1); k.Closed {
		t.Fatalf("open bar stored closed: %+v", k)
	}
	// The bar closes; its final is lost; the next bar begins.
	s.cur.Add(bar)
	s.emit(partial(b1+bar), partial(b1))
	settled(t, n)
	wantTruth(t, stored, b1)
	st := n.IntegrityStats()
	if st.Reconciliations["gap"] != 1 || st.Repaired["in_progress"] != 1 || st.Dropped["stale"] != 1 {
		t.Errorf("after a lost final: %+v", st)
	}
	// In-progress updates re-sent after the final change nothing.
	b2 := s.next()
	s.emit(partial(b2), partial(b2))
	settled(t, n)
	wantTruth(t, stored, b2)
	if st := n.IntegrityStats(); st.Dropped["stale"] != 3 {
		t.Errorf("in-progress updates after the final: %+v", st)
	}
	checkSeries(t, stored())
}

// TestIntegrityVerification: a wrong final nothing disputes is found by
// the background verification.
func TestIntegrityVerification(t *testing.T) {
	s := newScripted()
	n, stored := startScripted(t, s, marketdata.Integrity{VerifyEvery: 300 * time.Millisecond, VerifyDepth: 10})
	b1 := s.cur.Load()
	s.cur.Add(bar)
	s.emit(forged(b1), partial(b1+bar))
	testenv.Eventually(t, 3*time.Second, func() bool { return n.IntegrityStats().Repaired["differs"] == 1 }, "never verified: %+v", n.IntegrityStats())
	settled(t, n)
	wantTruth(t, stored, b1)
	if st := n.IntegrityStats(); st.Reconciliations["verify"] == 0 || st.Conflicts != 0 {
		t.Errorf("%+v", st)
	}
}

// TestIntegrityReconnect: a reconnect after which no bar had closed costs
// no REST call; one after bars closed compares them.
func TestIntegrityReconnect(t *testing.T) {
	s := newScripted()
	n, stored := startScripted(t, s, marketdata.Integrity{VerifyEvery: -1})
	s.next()
	settled(t, n)
	calls := s.restCalls.Load()
	s.reconnect()
	settled(t, n)
	if st := n.IntegrityStats(); st.Skipped != 1 || s.restCalls.Load() != calls {
		t.Errorf("a reconnect that lost nothing: %+v, %d REST calls", st, s.restCalls.Load()-calls)
	}
	// Three bars close while disconnected.
	missing := n.IntegrityStats().Repaired["missing"]
	b := s.cur.Load()
	s.cur.Add(3 * bar)
	s.reconnect()
	s.emit(partial(b + 3*bar))
	settled(t, n)
	for i := range int64(3) {
		wantTruth(t, stored, b+i*bar)
	}
	// The repaired finals went out as events too, for readers that follow
	// them; the term's first backfill did not.
	pub := s.publishedClosed()
	for i := range int64(3) {
		if pub[b+i*bar] == 0 {
			t.Errorf("closed kline %d repaired from REST but not published (%v)", b+i*bar, pub)
		}
	}
	if pub[b-10*bar] != 0 {
		t.Errorf("the start's backfill was published")
	}
	if st := n.IntegrityStats(); st.Reconciliations["reconnect"]+st.Reconciliations["gap"] != 1 || s.restCalls.Load() != calls+1 || st.Repaired["missing"]-missing != 2 {
		t.Errorf("a reconnect after 3 bars: %+v, %d REST calls", st, s.restCalls.Load()-calls)
	}
	checkSeries(t, stored())
}

// TestIntegrityLongOutage: after an outage longer than the window, one
// reconciliation of the window suffices: the series goes on from there.
func TestIntegrityLongOutage(t *testing.T) {
	s := newScripted()
	n, stored := startScripted(t, s, marketdata.Integrity{VerifyEvery: -1})
	s.next()
	settled(t, n)
	calls := s.restCalls.Load()
	s.cur.Add(200 * bar)
	s.reconnect()
	s.emit(partial(s.cur.Load()))
	settled(t, n)
	s.next()
	s.next()
	settled(t, n)
	if got := s.restCalls.Load() - calls; got != 1 {
		t.Errorf("%d REST calls after the outage, want 1: %+v", got, n.IntegrityStats())
	}
	ks := stored()
	if len(ks) != 50 {
		t.Fatalf("%d klines stored, want the window (50)", len(ks))
	}
	checkSeries(t, ks)
	for _, k := range ks[:len(ks)-1] {
		wantTruth(t, stored, k.OpenTime)
	}
}

// TestNoPartialHistoryAtStart: until a term's first reconciliation has
// written the window from REST, the stream's klines stay in the buffer: a
// reader never finds a series holding only the newest klines, which it
// would take for all the history there is.
func TestNoPartialHistoryAtStart(t *testing.T) {
	s := newScripted()
	s.restGate = make(chan struct{})
	n, stored := startScripted(t, s, marketdata.Integrity{VerifyEvery: -1})
	testenv.Eventually(t, 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return n.Mode() == marketdata.ModeLeader && s.onEvent != nil
	}, "no term streaming")
	s.next()
	s.next()
	time.Sleep(200 * time.Millisecond) // twenty flushes
	if w := n.Stats().KlinesWritten.Load(); w != 0 {
		t.Fatalf("%d stream klines written before the window", w)
	}
	close(s.restGate)
	settled(t, n)
	testenv.Eventually(t, 5*time.Second, func() bool { return len(stored()) >= 49 }, "the window was not written")
	checkSeries(t, stored())
	wantTruth(t, stored, s.cur.Load()-bar)
}
