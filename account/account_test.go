package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/account"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeExchange is an account in process: REST state and a user stream fed
// by the test. It stands in for the wire (exchange/sim is the wire-level
// fixture, tested with the client in cmd/tradecache); Redis is real.
type fakeExchange struct {
	mu        sync.Mutex
	balances  []exchange.Balance
	positions []exchange.Position
	keys      int
	active    string
	events    chan exchange.UserEvent
	expire    chan struct{}
	creates   atomic.Int64
	accounts  atomic.Int64
	failing   atomic.Int64 // Account calls still to fail
}

func newFake() *fakeExchange {
	return &fakeExchange{
		balances: []exchange.Balance{{Asset: "USDT", WalletBalance: "10000", CrossWalletBalance: "10000", AvailableBalance: "10000"}},
		positions: []exchange.Position{
			{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.5", EntryPrice: "70000"},
			{Symbol: "ETHUSDT", PositionSide: "BOTH", PositionAmt: "-2", EntryPrice: "3000", MarkPrice: "3010", LiquidationPrice: "4500", Notional: "-6020"},
		},
		events: make(chan exchange.UserEvent, 16),
		expire: make(chan struct{}, 1),
	}
}

func (f *fakeExchange) CreateListenKey(context.Context) (string, error) {
	f.creates.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active == "" {
		f.keys++
		f.active = fmt.Sprintf("key-%d", f.keys)
	}
	return f.active, nil
}
func (f *fakeExchange) KeepAliveListenKey(_ context.Context, k string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k != f.active {
		return exchange.ErrListenKeyNotFound
	}
	return nil
}
func (f *fakeExchange) CloseListenKey(context.Context, string) error { return nil }

// push applies an account update to the exchange's REST state, as a real
// exchange would, and sends it on the stream.
func (f *fakeExchange) push(ev exchange.UserEvent) {
	f.mu.Lock()
	for _, p := range ev.Account.Positions {
		found := false
		for i := range f.positions {
			if f.positions[i].Symbol == p.Symbol && f.positions[i].PositionSide == p.PositionSide {
				f.positions[i], found = p, true
			}
		}
		if !found {
			f.positions = append(f.positions, p)
		}
	}
	for _, b := range ev.Account.Balances {
		for i := range f.balances {
			if f.balances[i].Asset == b.Asset {
				f.balances[i] = b
			}
		}
	}
	f.mu.Unlock()
	f.events <- ev
}
func (f *fakeExchange) Account(context.Context) ([]exchange.Balance, []exchange.Position, error) {
	f.accounts.Add(1)
	if f.failing.Add(-1) >= 0 {
		return nil, nil, errors.New("fake: REST unavailable")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]exchange.Balance(nil), f.balances...), append([]exchange.Position(nil), f.positions...), nil
}

type streamFunc func(context.Context) error

func (s streamFunc) Run(ctx context.Context) error { return s(ctx) }

// streams serves events from f.events; an expiry makes it report the key
// expired and reconnect with a fresh one.
func (f *fakeExchange) streams(listenKey func(context.Context) (string, error), onEvent func(exchange.UserEvent), onConnect func(), onExpired func(string)) (account.UserStreamer, error) {
	return streamFunc(func(ctx context.Context) error {
		for {
			key, err := listenKey(ctx)
			if err != nil {
				return err
			}
			f.mu.Lock()
			valid := key == f.active
			f.mu.Unlock()
			if !valid {
				onExpired(key)
				continue
			}
			onConnect()
		loop:
			for {
				select {
				case <-ctx.Done():
					return nil
				case ev := <-f.events:
					onEvent(ev)
				case <-f.expire:
					f.mu.Lock()
					f.active = ""
					f.mu.Unlock()
					onExpired(key)
					break loop
				}
			}
		}
	}), nil
}

type node struct {
	n      *account.Node
	c      *cache.Cache
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, r *testenv.Redis, reg *keyspace.Registry, f *fakeExchange, id string) *node {
	t.Helper()
	return startNodeEvents(t, r, reg, f, id, nil)
}

// startNodeEvents starts a node publishing its events to ev (none when nil).
func startNodeEvents(t *testing.T, r *testenv.Redis, reg *keyspace.Registry, f *fakeExchange, id string, ev account.EventPublisher) *node {
	t.Helper()
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, ProbeMin: 20 * time.Millisecond, ProbeMax: 200 * time.Millisecond, HealthInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lease, _ := reg.AccountLeader("main")
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(c, leader.Config{Lease: lease, Epoch: epoch, Keys: reg, NodeID: id, RetryEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n, err := account.New(account.Config{Reseed: time.Hour, Events: ev}, reg, c, f, f.streams, el)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd := &node{n: n, c: c, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() { n.Run(ctx) })
	go func() { wg.Wait(); close(nd.done) }()
	t.Cleanup(func() { cancel(); <-nd.done })
	return nd
}

func positionsIn(t *testing.T, r *testenv.Redis, reg *keyspace.Registry) []exchange.Position {
	t.Helper()
	rc := r.Client(t)
	v, err := rc.Do(context.Background(), rc.B().Get().Key(reg.Positions().Name()).Build()).ToString()
	if err != nil {
		return nil
	}
	var ps []exchange.Position
	if err := json.Unmarshal([]byte(v), &ps); err != nil {
		t.Fatalf("positions key holds %q: %v", v, err)
	}
	return ps
}

func TestSeedDeltaAndSharedListenKey(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	a := startNode(t, r, reg, f, "a")
	b := startNode(t, r, reg, f, "b")
	testenv.Eventually(t, 5*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "never seeded")
	if a.n.Streaming() == b.n.Streaming() {
		t.Fatalf("streaming: a %v, b %v; want exactly one", a.n.Streaming(), b.n.Streaming())
	}
	rc := r.Client(t)
	ctx := context.Background()
	for _, k := range []string{reg.Positions().Name(), mustKey(reg.Balance("USDT")).Name(), mustKey(reg.ListenKey("main")).Name()} {
		if p, _ := rc.Do(ctx, rc.B().Pttl().Key(k).Build()).AsInt64(); p <= 0 {
			t.Errorf("%s PTTL %d", k, p)
		}
	}

	// A delta that mentions BTCUSDT only leaves ETHUSDT as it was.
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Reason:    "ORDER",
		Balances:  []exchange.Balance{{Asset: "USDT", WalletBalance: "9990", CrossWalletBalance: "9990"}},
		Positions: []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.7", EntryPrice: "70100"}},
	}})
	want := []exchange.Position{
		{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.7", EntryPrice: "70100"},
		{Symbol: "ETHUSDT", PositionSide: "BOTH", PositionAmt: "-2", EntryPrice: "3000", MarkPrice: "3010", LiquidationPrice: "4500", Notional: "-6020"},
	}
	testenv.Eventually(t, 2*time.Second, func() bool { return cmp.Equal(positionsIn(t, r, reg), want) }, "delta not merged: %v", positionsIn(t, r, reg))

	// A delta on ETHUSDT replaces what the stream carries and keeps the
	// REST-only fields of the seed.
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Positions: []exchange.Position{{Symbol: "ETHUSDT", PositionSide: "BOTH", PositionAmt: "-3", EntryPrice: "3005"}},
	}})
	want[1].PositionAmt, want[1].EntryPrice = "-3", "3005"
	testenv.Eventually(t, 2*time.Second, func() bool { return cmp.Equal(positionsIn(t, r, reg), want) }, "REST fields not kept: %v", positionsIn(t, r, reg))
	for _, nd := range []*node{a, b} { // every node reads the same
		ps, err := nd.n.Positions(ctx)
		if err != nil || !cmp.Equal(ps, want) {
			t.Fatalf("Positions = %v, %v", ps, err)
		}
		bal, err := nd.n.Balance(ctx, "usdt")
		if err != nil || bal.WalletBalance != "9990" {
			t.Fatalf("Balance = %+v, %v", bal, err)
		}
		// The stream's delta has no availableBalance: the seed's is kept.
		if bal.AvailableBalance != "10000" {
			t.Errorf("availableBalance after a delta = %q, want the seed's 10000", bal.AvailableBalance)
		}
	}
	if v, _ := rc.Do(ctx, rc.B().Get().Key(mustKey(reg.Balance("USDT")).Name()).Build()).ToString(); !strings.Contains(v, `"availableBalance":"10000"`) {
		t.Errorf("balance key after a delta: %s", v)
	}
	// Closing ETHUSDT removes it.
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Positions: []exchange.Position{{Symbol: "ETHUSDT", PositionSide: "BOTH", PositionAmt: "0", EntryPrice: "0"}},
	}})
	testenv.Eventually(t, 2*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 1 }, "flat position kept")

	// One listenKey for both nodes; an expiry makes a new one, cached.
	if n := f.creates.Load(); n != 1 {
		t.Errorf("%d listenKeys created, want 1 shared", n)
	}
	seeds := f.accounts.Load()
	f.expire <- struct{}{}
	testenv.Eventually(t, 2*time.Second, func() bool {
		v, _ := rc.Do(ctx, rc.B().Get().Key(mustKey(reg.ListenKey("main")).Name()).Build()).ToString()
		return v == "key-2"
	}, "no new listenKey after expiry")
	testenv.Eventually(t, 2*time.Second, func() bool { return f.accounts.Load() > seeds }, "not re-seeded after reconnecting")
}

func TestTakeoverKeepsAccountFresh(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindAccountLeader: time.Second}}))
	f := newFake()
	a := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, a.n.Streaming, "a never streamed")
	b := startNode(t, r, reg, f, "b")
	a.cancel()
	<-a.done
	testenv.Eventually(t, 3*time.Second, b.n.Streaming, "b never took over")
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Positions: []exchange.Position{{Symbol: "SOLUSDT", PositionSide: "BOTH", PositionAmt: "10", EntryPrice: "150"}},
	}})
	testenv.Eventually(t, 2*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 3 }, "new leader did not write")
}

func TestDeposedLeaderWritesNothing(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindAccountLeader: 5 * time.Second}}))
	f := newFake()
	a := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "never seeded")
	rc := r.Client(t)
	ctx := context.Background()
	lease, _ := reg.AccountLeader("main")
	rc.Do(ctx, rc.B().Set().Key(lease.Name()).Value(`{"node":"intruder","epoch":99}`).Px(10*time.Second).Build())
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Positions: []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "9", EntryPrice: "1"}},
	}})
	testenv.Eventually(t, 2*time.Second, func() bool { return a.n.Stats().Fenced.Load() > 0 || !a.n.Streaming() }, "write not fenced")
	if ps := positionsIn(t, r, reg); len(ps) != 2 || ps[0].PositionAmt != "0.5" {
		t.Fatalf("a deposed leader's write landed: %v", ps)
	}
	rc.Do(ctx, rc.B().Del().Key(lease.Name()).Build())
}

func TestReadThroughWithoutALeader(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	opt, _ := cache.RedisOptions(r.URL())
	c, _ := cache.New(cache.Config{Redis: opt})
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := account.New(account.Config{}, reg, c, f, f.streams, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if ps, err := n.Positions(context.Background()); err != nil || len(ps) != 2 {
				t.Errorf("Positions = %v, %v", ps, err)
			}
		})
	}
	wg.Wait()
	if got := f.accounts.Load(); got != 1 {
		t.Errorf("REST loaded %d times, want 1", got)
	}
	if _, err := n.Balance(context.Background(), "BNB"); err == nil {
		t.Error("balance of an asset not held")
	}
}

// recorder keeps the events a node publishes.
type recorder struct {
	mu     sync.Mutex
	events []string // "name data-JSON"
}

func (r *recorder) PublishAsync(name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.events = append(r.events, name+" "+string(b))
	r.mu.Unlock()
	return nil
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		name, _, _ := strings.Cut(e, " ")
		out = append(out, name)
	}
	return out
}

func (r *recorder) last(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if n, data, _ := strings.Cut(r.events[i], " "); n == name {
			return data
		}
	}
	return ""
}

// Every seed is published whole (account_snapshot), since it may hold
// changes no delta announced; deltas are published as they come.
func TestSeedsArePublished(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	rec := &recorder{}
	startNodeEvents(t, r, reg, f, "a", rec)
	testenv.Eventually(t, 5*time.Second, func() bool { return rec.last("account_snapshot") != "" }, "no snapshot after the seed")
	snapshot := func() exchange.AccountSnapshot {
		var s exchange.AccountSnapshot
		if err := json.Unmarshal([]byte(rec.last("account_snapshot")), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := exchange.AccountSnapshot{Positions: f.positions, Balances: f.balances}
	if diff := cmp.Diff(want, snapshot()); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}

	// A fill while the stream is away: the next seed tells it.
	f.mu.Lock()
	f.positions = f.positions[:1] // ETHUSDT closed
	f.positions[0].PositionAmt = "0.9"
	f.mu.Unlock()
	f.expire <- struct{}{} // reconnect, seed
	testenv.Eventually(t, 5*time.Second, func() bool { return len(snapshot().Positions) == 1 }, "no snapshot after the reconnection")
	want = exchange.AccountSnapshot{Positions: []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.9", EntryPrice: "70000"}}, Balances: f.balances}
	if diff := cmp.Diff(want, snapshot()); diff != "" {
		t.Errorf("snapshot after the reconnection (-want +got):\n%s", diff)
	}

	// A delta is published as positions and balance, not as a snapshot.
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Balances:  []exchange.Balance{{Asset: "USDT", WalletBalance: "9990"}},
		Positions: []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "1", EntryPrice: "70001"}},
	}})
	testenv.Eventually(t, 2*time.Second, func() bool { return rec.last("balance") != "" }, "delta not published")
	if diff := cmp.Diff([]string{"account_snapshot", "account_snapshot", "positions", "balance"}, rec.names()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func mustKey(k keyspace.Key, err error) keyspace.Key {
	if err != nil {
		panic(err)
	}
	return k
}

// A position delta that finds no stored positions (the key expired, or was
// lost with Redis) is written, and a REST seed restores the rest.
func TestDeltaOnMissingKeyReseeds(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	a := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "never seeded")
	rc := r.Client(t)
	ctx := context.Background()
	rc.Do(ctx, rc.B().Del().Key(reg.Positions().Name()).Build())
	seeds := f.accounts.Load()
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Positions: []exchange.Position{{Symbol: "SOLUSDT", PositionSide: "BOTH", PositionAmt: "10", EntryPrice: "150"}},
	}})
	testenv.Eventually(t, 3*time.Second, func() bool { return f.accounts.Load() > seeds }, "no REST seed after a delta on a missing key")
	testenv.Eventually(t, 3*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 3 }, "positions not complete after the seed: %v", positionsIn(t, r, reg))
	if n := a.n.Stats().Unknown.Load(); n != 1 {
		t.Errorf("Stats.Unknown = %d, want 1", n)
	}
}

// An asset the account does not hold is answered from the list of assets
// held: without a holder, many junk assets cost one REST load; with one,
// its seeds keep the list and junk costs none. An asset a delta adds
// joins the list.
func TestJunkAssetsAnsweredFromCache(t *testing.T) {
	r := testenv.Shared(t)
	ctx := context.Background()
	t.Run("read-through", func(t *testing.T) {
		reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
		f := newFake()
		opt, _ := cache.RedisOptions(r.URL())
		c, _ := cache.New(cache.Config{Redis: opt})
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		n, err := account.New(account.Config{}, reg, c, f, f.streams, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				if _, err := n.Balance(ctx, fmt.Sprintf("NOPE%d", i)); !errors.Is(err, account.ErrNoBalance) {
					t.Errorf("NOPE%d: %v", i, err)
				}
			})
		}
		wg.Wait()
		for i := range 100 {
			if _, err := n.Balance(ctx, fmt.Sprintf("NOPE%d", i)); !errors.Is(err, account.ErrNoBalance) {
				t.Errorf("NOPE%d again: %v", i, err)
			}
		}
		if b, err := n.Balance(ctx, "usdt"); err != nil || b.WalletBalance != "10000" {
			t.Errorf("USDT: %+v, %v", b, err)
		}
		if got := f.accounts.Load(); got != 1 {
			t.Errorf("%d REST account loads for 200 junk assets and USDT, want 1", got)
		}
		if got := assetsIn(t, r, reg); !cmp.Equal(got, []string{"USDT"}) {
			t.Errorf("assets held = %v", got)
		}
	})
	t.Run("holder", func(t *testing.T) {
		reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
		f := newFake()
		a := startNode(t, r, reg, f, "a")
		testenv.Eventually(t, 5*time.Second, func() bool { return len(assetsIn(t, r, reg)) == 1 }, "never seeded")
		seeds := f.accounts.Load()
		for i := range 50 {
			if _, err := a.n.Balance(ctx, fmt.Sprintf("JUNK%d", i)); !errors.Is(err, account.ErrNoBalance) {
				t.Errorf("JUNK%d: %v", i, err)
			}
		}
		if got := f.accounts.Load(); got != seeds {
			t.Errorf("junk assets made %d REST loads, want 0", got-seeds)
		}
		f.mu.Lock()
		f.balances = append(f.balances, exchange.Balance{Asset: "BNB", WalletBalance: "1"})
		f.mu.Unlock()
		f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
			Balances: []exchange.Balance{{Asset: "BNB", WalletBalance: "1", CrossWalletBalance: "1"}},
		}})
		testenv.Eventually(t, 2*time.Second, func() bool { return cmp.Equal(assetsIn(t, r, reg), []string{"BNB", "USDT"}) }, "BNB never joined the list: %v", assetsIn(t, r, reg))
		rc := r.Client(t)
		bnb := mustKey(reg.Balance("BNB"))
		rc.Do(ctx, rc.B().Del().Key(bnb.Name()).Build()) // its key gone: the list says to load it
		if b, err := a.n.Balance(ctx, "BNB"); err != nil || b.WalletBalance != "1" {
			t.Errorf("BNB: %+v, %v", b, err)
		}
	})
}

func assetsIn(t *testing.T, r *testenv.Redis, reg *keyspace.Registry) []string {
	t.Helper()
	rc := r.Client(t)
	k := mustKey(reg.AccountAssets("main"))
	v, err := rc.Do(context.Background(), rc.B().Get().Key(k.Name()).Build()).ToString()
	if err != nil {
		return nil
	}
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		t.Fatalf("%s holds %q: %v", k, v, err)
	}
	if p, _ := rc.Do(context.Background(), rc.B().Pttl().Key(k.Name()).Build()).AsInt64(); p <= 0 || p > 300_000 {
		t.Errorf("%s PTTL %d", k, p)
	}
	return out
}

// Bad content in the positions key or the list of assets held — not JSON,
// not an array, elements of the wrong type, over the key's limit, a key
// of another Redis type — reads as missing in the holder's fenced merge:
// the delta is written and a REST seed restores the rest, instead of
// every ACCOUNT_UPDATE failing until the next periodic seed. A delta's
// positions on good content need no seed, but its assets on a bad list
// do: the list written would lack the others.
func TestBadStoredContentIsMissingToTheHolder(t *testing.T) {
	r := testenv.Start(t)
	rc := r.Client(t)
	ctx := context.Background()
	str := func(v string) func(string) valkey.Completed {
		return func(k string) valkey.Completed { return rc.B().Set().Key(k).Value(v).Ex(time.Minute).Build() }
	}
	hash := func(k string) valkey.Completed {
		return rc.B().Hset().Key(k).FieldValue().FieldValue("f", "v").Build()
	}
	pad := `[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"0.5","entryPrice":"70000"}` + strings.Repeat(" ", 1<<20) + `]`
	tests := []struct {
		name              string
		positions, assets func(string) valkey.Completed
	}{
		{"arrays of numbers", str(`[1,2]`), str(`[1]`)},
		{"strings", str(`"x"`), str(`"x"`)},
		{"not JSON", str(`<html>`), str(`<html>`)},
		{"objects", str(`{"symbol":"BTCUSDT"}`), str(`{"a":"USDT"}`)},
		{"wrong field types", str(`[{"symbol":1,"positionSide":"BOTH"}]`), str(`[["USDT"]]`)},
		{"JSON null", str(`null`), str(`null`)},
		{"hashes", hash, hash},
		{"oversized", str(pad), str(`["USDT"]`)},
		{"the list of assets only", nil, str(`"x"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
			f := newFake()
			a := startNode(t, r, reg, f, "a")
			testenv.Eventually(t, 5*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "never seeded")
			testenv.Eventually(t, 5*time.Second, func() bool { return a.n.Stats().Seeds.Load() == 1 }, "the seed not counted")
			assets := mustKey(reg.AccountAssets("main"))
			for k, plant := range map[string]func(string) valkey.Completed{reg.Positions().Name(): tt.positions, assets.Name(): tt.assets} {
				if plant == nil {
					continue
				}
				rc.Do(ctx, rc.B().Del().Key(k).Build())
				if err := rc.Do(ctx, plant(k)).Error(); err != nil {
					t.Fatal(err)
				}
				rc.Do(ctx, rc.B().Pexpire().Key(k).Milliseconds(60_000).Build())
			}
			seeds := f.accounts.Load()
			f.mu.Lock()
			f.balances = append(f.balances, exchange.Balance{Asset: "BNB", WalletBalance: "1", CrossWalletBalance: "1"})
			f.mu.Unlock()
			f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
				Balances:  []exchange.Balance{{Asset: "BNB", WalletBalance: "1", CrossWalletBalance: "1"}},
				Positions: []exchange.Position{{Symbol: "SOLUSDT", PositionSide: "BOTH", PositionAmt: "10", EntryPrice: "150"}},
			}})
			testenv.Eventually(t, 3*time.Second, func() bool { return f.accounts.Load() > seeds }, "no REST seed after a delta on bad content")
			testenv.Eventually(t, 3*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 3 }, "positions not complete after the seed: %v", positionsIn(t, r, reg))
			testenv.Eventually(t, 3*time.Second, func() bool { return cmp.Equal(assetsIn(t, r, reg), []string{"BNB", "USDT"}) }, "assets after the seed: %v", assetsIn(t, r, reg))
			if n := a.n.Stats().WriteErrors.Load(); n != 0 {
				t.Errorf("%d write errors, want none", n)
			}
		})
	}
}

// The holder carries availableBalance into a stream delta inside its
// fenced write: a value planted in the balance key is measured there, not
// fetched, however large, and one no reader could use carries nothing.
func TestBalanceCarryIsBounded(t *testing.T) {
	r := testenv.Start(t)
	rc := r.Client(t)
	ctx := context.Background()
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	rec := &recorder{}
	a := startNodeEvents(t, r, reg, f, "a", rec)
	usdt := mustKey(reg.Balance("USDT"))
	testenv.Eventually(t, 5*time.Second, func() bool { return len(assetsIn(t, r, reg)) == 1 }, "never seeded")
	outBytes := func() int64 {
		info, err := rc.Do(ctx, rc.B().Info().Section("stats").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
				var n int64
				fmt.Sscan(v, &n)
				return n
			}
		}
		t.Fatal("no total_net_output_bytes")
		return 0
	}
	for i, planted := range []string{
		// 8 MB
		`{"asset":"USDT","availableBalance":"5","pad":"` + strings.Repeat("x", 8<<20) + `"}`,
		// another asset's
		`{"asset":"BTC","availableBalance":"5"}`,
		// not an object
		`[{"asset":"USDT","availableBalance":"5"}]`,
	} {
		if err := rc.Do(ctx, rc.B().Set().Key(usdt.Name()).Value(planted).Ex(time.Minute).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		before := outBytes()
		wallet := fmt.Sprint(9000 + i)
		f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
			Balances: []exchange.Balance{{Asset: "USDT", WalletBalance: wallet, CrossWalletBalance: wallet}},
		}})
		// Published after the write, as written.
		testenv.Eventually(t, 3*time.Second, func() bool { return strings.Contains(rec.last("balance"), `"walletBalance":"`+wallet+`"`) }, "planted value %d: not published", i)
		if grew := outBytes() - before; grew > 1<<20 {
			t.Errorf("planted value %d: Redis sent %d bytes for one delta", i, grew)
		}
		want := `{"asset":"USDT","walletBalance":"` + wallet + `","crossWalletBalance":"` + wallet + `","updateTime":0}`
		if got := rec.last("balance"); got != "["+want+"]" {
			t.Errorf("planted value %d: published %s, want nothing carried", i, got)
		}
		if v, _ := rc.Do(ctx, rc.B().Get().Key(usdt.Name()).Build()).ToString(); v != want {
			t.Errorf("planted value %d: the delta was written as %s", i, v)
		}
	}
	// A usable stored balance is carried, and published as written.
	rc.Do(ctx, rc.B().Set().Key(usdt.Name()).Value(`{"asset":"USDT","walletBalance":"1","availableBalance":"7/8"}`).Ex(time.Minute).Build())
	f.push(exchange.UserEvent{Kind: exchange.UserAccountUpdate, Account: exchange.AccountUpdate{
		Balances: []exchange.Balance{{Asset: "USDT", WalletBalance: "2", CrossWalletBalance: "2"}},
	}})
	testenv.Eventually(t, 3*time.Second, func() bool {
		b, ok, err := cache.GetJSON[exchange.Balance](ctx, a.c, usdt)
		return err == nil && ok && b.WalletBalance == "2" && b.AvailableBalance == "7/8"
	}, "availableBalance not carried")
	testenv.Eventually(t, 2*time.Second, func() bool { return strings.Contains(rec.last("balance"), `"availableBalance":"7/8"`) }, "not published as written")
	if n := a.n.Stats().WriteErrors.Load(); n != 0 {
		t.Errorf("%d write errors", n)
	}
}

// A balance key holding what no reader could use — not JSON, another
// JSON, no TTL, over its limit, another Redis type — is a miss: loaded
// again from REST and overwritten with its TTL, instead of failing or
// being served forever. An asset missing from the list of assets held is
// still ErrNoBalance without a request, whatever its key holds.
func TestBalanceReadsHealBadContent(t *testing.T) {
	r := testenv.Shared(t)
	rc := r.Client(t)
	ctx := context.Background()
	str := func(v string, ttl bool) func(string) valkey.Completed {
		return func(k string) valkey.Completed {
			if !ttl {
				return rc.B().Set().Key(k).Value(v).Build()
			}
			return rc.B().Set().Key(k).Value(v).Ex(time.Minute).Build()
		}
	}
	tests := []struct {
		name  string
		plant func(string) valkey.Completed
	}{
		{"not JSON", str(`<html>`, true)},
		{"another JSON", str(`[1,2]`, true)},
		{"no TTL", str(`{"asset":"USDT","walletBalance":"1","crossWalletBalance":"1"}`, false)},
		{"oversized", str(`{"asset":"USDT","walletBalance":"`+strings.Repeat("9", 5<<10)+`"}`, true)},
		{"a hash", func(k string) valkey.Completed { return rc.B().Hset().Key(k).FieldValue().FieldValue("f", "v").Build() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
			f := newFake()
			opt, _ := cache.RedisOptions(r.URL())
			c, _ := cache.New(cache.Config{Redis: opt})
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			n, err := account.New(account.Config{}, reg, c, f, f.streams, nil)
			if err != nil {
				t.Fatal(err)
			}
			assets := mustKey(reg.AccountAssets("main"))
			rc.Do(ctx, rc.B().Set().Key(assets.Name()).Value(`["USDT"]`).Ex(time.Minute).Build())
			usdt, nope := mustKey(reg.Balance("USDT")), mustKey(reg.Balance("NOPE"))
			for _, k := range []keyspace.Key{usdt, nope} {
				if err := rc.Do(ctx, tt.plant(k.Name())).Error(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(k.Name()).Build()) })
			}
			if _, err := n.Balance(ctx, "nope"); !errors.Is(err, account.ErrNoBalance) || err.Error() != "no such asset: NOPE" {
				t.Errorf("NOPE: %v", err)
			}
			if got := f.accounts.Load(); got != 0 {
				t.Errorf("%d REST loads for an asset not held", got)
			}
			for range 3 {
				if b, err := n.Balance(ctx, "usdt"); err != nil || b.WalletBalance != "10000" {
					t.Fatalf("USDT: %+v, %v", b, err)
				}
			}
			if got := f.accounts.Load(); got != 1 {
				t.Errorf("%d REST loads, want 1 (then read back)", got)
			}
			if v, err := rc.Do(ctx, rc.B().Get().Key(usdt.Name()).Build()).ToString(); err != nil || !strings.Contains(v, `"walletBalance":"10000"`) {
				t.Errorf("%s holds %q, %v after a read", usdt, v, err)
			}
			if p, _ := rc.Do(ctx, rc.B().Pttl().Key(usdt.Name()).Build()).AsInt64(); p <= 0 || p > 300_000 {
				t.Errorf("%s PTTL %d after a read", usdt, p)
			}
		})
	}
}

// While a node holds the stream, a read-through answers from REST and
// stores nothing: on the holder, a REST snapshot stored outside its write
// lock could overwrite a fresher delta; on another node, it would be an
// unfenced write racing the holder's.
func TestReadsStoreNothingWhileTheStreamIsHeld(t *testing.T) {
	r := testenv.Start(t)
	rc := r.Client(t)
	ctx := context.Background()
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	a, b := startNode(t, r, reg, f, "a"), startNode(t, r, reg, f, "b")
	testenv.Eventually(t, 5*time.Second, func() bool { return len(assetsIn(t, r, reg)) == 1 && len(positionsIn(t, r, reg)) == 2 }, "never seeded")
	holder, other := a, b
	if b.n.Streaming() {
		holder, other = b, a
	}
	if !holder.n.Streaming() {
		t.Fatal("no node streams")
	}
	usdt, assets := mustKey(reg.Balance("USDT")), mustKey(reg.AccountAssets("main"))
	exists := func(k string) bool {
		n, _ := rc.Do(ctx, rc.B().Exists().Key(k).Build()).AsInt64()
		return n == 1
	}
	for name, nd := range map[string]*node{"the holder": holder, "another node": other} {
		rc.Do(ctx, rc.B().Del().Key(usdt.Name(), assets.Name(), reg.Positions().Name()).Build())
		loads := f.accounts.Load()
		if bal, err := nd.n.Balance(ctx, "USDT"); err != nil || bal.WalletBalance != "10000" {
			t.Errorf("%s: USDT %+v, %v", name, bal, err)
		}
		if _, err := nd.n.Balance(ctx, "JUNK"); !errors.Is(err, account.ErrNoBalance) {
			t.Errorf("%s: JUNK %v", name, err)
		}
		if ps, err := nd.n.Positions(ctx); err != nil || len(ps) != 2 {
			t.Errorf("%s: positions %v, %v", name, ps, err)
		}
		if f.accounts.Load() == loads {
			t.Errorf("%s: answered without REST", name)
		}
		for _, k := range []string{usdt.Name(), assets.Name(), reg.Positions().Name()} {
			if exists(k) {
				t.Errorf("%s stored %s from a read", name, k)
			}
		}
	}
	// What no reader could use is a miss there too, answered from REST and
	// left for the holder's next fenced write.
	for _, k := range []string{usdt.Name(), reg.Positions().Name()} {
		rc.Do(ctx, rc.B().Set().Key(k).Value("<html>").Ex(time.Minute).Build())
	}
	for name, nd := range map[string]*node{"the holder": holder, "another node": other} {
		if bal, err := nd.n.Balance(ctx, "USDT"); err != nil || bal.WalletBalance != "10000" {
			t.Errorf("%s: USDT over bad content: %+v, %v", name, bal, err)
		}
		if ps, err := nd.n.Positions(ctx); err != nil || len(ps) != 2 {
			t.Errorf("%s: positions over bad content: %v, %v", name, ps, err)
		}
	}
	if v, _ := rc.Do(ctx, rc.B().Get().Key(usdt.Name()).Build()).ToString(); v != "<html>" {
		t.Errorf("a read replaced the bad balance with %q", v)
	}
}

// TestReseedAfterRedisFailed: a write Redis acknowledged and then lost (a
// master failing over before it replicated) leaves the positions stale
// with nothing to tell; once Redis answers again after failing, the holder
// seeds from REST, long before the periodic re-seed.
func TestReseedAfterRedisFailed(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	a := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 5*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "never seeded")
	// The lost write: positions as they were before a fill.
	rc := r.Client(t)
	ctx := context.Background()
	rc.Do(ctx, rc.B().Set().Key(reg.Positions().Name()).Value("[]").Px(5*time.Minute).Build())
	// Redis fails for less than the lease: the term goes on.
	r.Pause(t)
	time.Sleep(400 * time.Millisecond)
	r.Resume(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "positions not re-read from REST after Redis failed")
	if n := a.n.Stats().RedisReseeds.Load(); n == 0 {
		t.Error("no seed counted for the Redis failure")
	}
}

// A seed whose REST call fails is retried (with backoff) until one
// succeeds, not left to the next periodic Reseed (an hour here).
func TestSeedRetriedAfterFailure(t *testing.T) {
	r := testenv.Start(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	f := newFake()
	f.failing.Store(2)
	a := startNode(t, r, reg, f, "a")
	testenv.Eventually(t, 15*time.Second, func() bool { return len(positionsIn(t, r, reg)) == 2 }, "never seeded after the REST calls failed")
	if n := a.n.Stats().SeedRetries.Load(); n < 2 {
		t.Errorf("SeedRetries = %d, want ≥ 2", n)
	}
}
