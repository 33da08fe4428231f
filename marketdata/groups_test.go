package marketdata_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
	"github.com/tradecache/tradecache/streamgroups"
)

// TestStreamGroups: four nodes share 400 streams (100 symbols × 1m and 3m
// klines, ticker and book ticker; plus the whole-market tickers) in groups
// of at most 20, on real Redis and the simulated exchange at 60× speed.
// Two nodes die (their Redis connections cut, then stopped: no lease is
// released, no heartbeat removed): the two left carry every group within
// the lease TTL + 2 s, and no kline series has a gap or a wrong final
// (compared with the simulator's truth). The two come back and the groups
// rebalance to the four, each to the node ranked first for it. Throughout,
// no two terms of one group overlap, and every group's epochs grow with
// its terms.
func TestStreamGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 30 s")
	}
	const (
		leaseTTL = 3 * time.Second
		size     = 20
	)
	var symbols []string
	for i := range 100 {
		symbols = append(symbols, fmt.Sprintf("X%03dUSDT", i))
	}
	intervals := []string{"1m", "3m"}
	groups, err := marketdata.StreamGroups(symbols, intervals, size)
	if err != nil {
		t.Fatal(err)
	}
	var gnames []string
	streams := 0
	for _, g := range groups {
		gnames = append(gnames, g.Name)
		streams += len(g.Streams)
		if len(g.Streams) > size {
			t.Fatalf("%s: %d streams", g.Name, len(g.Streams))
		}
	}
	if streams != 401 {
		t.Fatalf("%d streams in the groups, want 401", streams)
	}

	ex, err := sim.New(sim.Config{Symbols: symbols, Seed: 7, Speed: 60, KlineUpdateEvery: time.Second,
		BookTickerEvery: 2 * time.Second, TickerEvery: 2 * time.Second, WeightLimit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ex.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	var simWG sync.WaitGroup
	defer func() { cancel(); simWG.Wait(); ts.Close() }()
	simWG.Go(func() { ex.Run(ctx) })

	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{
		keyspace.KindMarketWSGroup: leaseTTL, keyspace.KindMarketNodes: leaseTTL}}))
	leases := map[string]streamgroups.Lease{}
	for _, g := range gnames {
		l, _ := reg.MarketWSGroup(g)
		e, _ := reg.LeaderEpoch(l)
		leases[g] = streamgroups.Lease{Lease: l, Epoch: e}
	}
	rec := &termRecorder{}
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	defer func() {
		if t.Failed() {
			t.Logf("log (last lines):\n%s", lastLines(logs.String(), 60))
		}
	}()
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http")
	factory := func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		return binance.NewStreams(binance.StreamConfig{BaseURL: wsURL, Streams: names, OnEvent: onEvent, OnConnect: onConnect,
			Logger: log.With("component", "streams")})
	}

	start := func(id string) *groupNode {
		p := newProxy(t, r.Addr())
		opt, _ := cache.RedisOptions("redis://" + p.addr())
		// Patient with Redis: on a busy machine a node must not fall back
		// to its memory tier (and give up its groups) for slow answers;
		// this test is about nodes dying, not Redis.
		c, err := cache.New(cache.Config{Redis: opt, CallTimeout: 2 * time.Second, FailureThreshold: 20})
		if err != nil {
			t.Fatal(err)
		}
		co, err := streamgroups.New(c, streamgroups.Config{Groups: gnames, Leases: leases, Members: reg.MarketNodes(), NodeID: id, Keys: reg,
			Poll: 250 * time.Millisecond, RetryEvery: 250 * time.Millisecond, Logger: log.With("node", id)})
		if err != nil {
			t.Fatal(err)
		}
		md, err := marketdata.New(marketdata.Config{Symbols: symbols, Intervals: intervals, Window: 100, FlushEvery: 50 * time.Millisecond,
			Logger: log.With("node", id), Integrity: marketdata.Integrity{VerifyEvery: -1},
			Groups: recordingCampaigner{co, rec, id}, GroupSize: size},
			reg, c, binance.NewREST(binance.RESTConfig{BaseURL: ts.URL}), factory, nil)
		if err != nil {
			t.Fatal(err)
		}
		nctx, stop := context.WithCancel(ctx)
		gn := &groupNode{id: id, md: md, proxy: p, stop: stop, done: make(chan struct{})}
		go func() {
			defer close(gn.done)
			kctx, stopCache := context.WithCancel(context.Background())
			cacheDone := make(chan struct{})
			go func() { c.Run(kctx); close(cacheDone) }()
			md.Run(nctx)
			stopCache()
			<-cacheDone
		}()
		return gn
	}
	ids := []string{"node-a", "node-b", "node-c", "node-d"}
	nodes := map[string]*groupNode{}
	for _, id := range ids {
		nodes[id] = start(id)
	}
	defer func() {
		for _, n := range nodes {
			n.stop()
			<-n.done
		}
	}()
	// held is who holds each group now, from the nodes' own view; ok when
	// every group is held by one node, the one ranked first among live.
	settledOn := func(live []string) func() bool {
		return func() bool {
			want := streamgroups.Assign(gnames, live)
			got := map[string]string{}
			for _, id := range live {
				for _, g := range nodes[id].md.HeldGroups() {
					if got[g] != "" {
						return false
					}
					got[g] = id
				}
			}
			for _, g := range gnames {
				if got[g] != want[g] {
					return false
				}
			}
			return true
		}
	}
	testenv.Eventually(t, 15*time.Second, settledOn(ids), "the four nodes never shared the groups by rank")
	per := map[string]int{}
	for _, n := range streamgroups.Assign(gnames, ids) {
		per[n]++
	}
	t.Logf("%d groups over 4 nodes: %v", len(gnames), per)
	if len(per) != 4 {
		t.Fatalf("the ranking gives groups to %d of the 4 nodes: %v", len(per), per)
	}
	// Every series complete before anything dies (and the start's
	// backfills done: they are most of the test's load).
	checkGroupSeries(t, r, reg, ex, symbols, intervals, func() string {
		if !settledOn(ids)() {
			return "a group is not held by its node"
		}
		for _, id := range ids {
			if p := nodes[id].md.IntegrityStats().Pending; p > 0 {
				return fmt.Sprintf("%s: %d reconciliations pending", id, p)
			}
		}
		return ""
	})

	// Two nodes die: Redis no longer hears from them, then they stop.
	dead := []string{"node-c", "node-d"}
	var orphans []string
	for g, n := range streamgroups.Assign(gnames, ids) {
		if slices.Contains(dead, n) {
			orphans = append(orphans, g)
		}
	}
	killed := time.Now()
	for _, id := range dead {
		nodes[id].proxy.kill()
	}
	for _, id := range dead {
		nodes[id].stop()
		<-nodes[id].done
		delete(nodes, id)
	}
	survivors := []string{"node-a", "node-b"}
	testenv.Eventually(t, leaseTTL+2*time.Second-time.Since(killed), settledOn(survivors),
		"the two survivors did not carry every group within the lease TTL + 2 s")
	var takeover time.Duration
	for _, g := range orphans {
		at, ok := rec.startedAfter(g, killed)
		if !ok {
			t.Fatalf("%s: no term after the kill", g)
		}
		takeover = max(takeover, at.Sub(killed))
	}
	t.Logf("takeover of %d orphaned groups: the last began %v after the kill (lease TTL %v)", len(orphans), takeover.Round(time.Millisecond), leaseTTL)
	if takeover > leaseTTL+2*time.Second {
		t.Errorf("takeover took %v, want ≤ %v", takeover, leaseTTL+2*time.Second)
	}

	// The survivors backfill what nobody wrote meanwhile: no gap.
	time.Sleep(4 * time.Second)
	checkGroupSeries(t, r, reg, ex, symbols, intervals, func() string {
		if !settledOn(survivors)() {
			return "a group is not held by its node"
		}
		for _, id := range survivors {
			if p := nodes[id].md.IntegrityStats().Pending; p > 0 {
				return fmt.Sprintf("%s: %d reconciliations pending", id, p)
			}
		}
		return ""
	})

	// They come back: the groups rebalance to the four.
	back := time.Now()
	// The survivors' own groups stayed with them: a term of one after the
	// kill is on its node (a lease not renewed in time on a busy machine
	// is taken again by the node ranked first: the same).
	owner4 := streamgroups.Assign(gnames, ids)
	for _, g := range gnames {
		if slices.Contains(orphans, g) {
			continue
		}
		for _, x := range rec.termsAfter(g, killed) {
			if x.node != owner4[g] {
				t.Errorf("%s moved to %s %v after the kill, though its node %s lived", g, x.node, x.start.Sub(killed), owner4[g])
			} else {
				t.Logf("%s: %s took its lease again %v after the kill (a renewal came too late)", g, x.node, x.start.Sub(killed))
			}
		}
	}
	for _, id := range dead {
		nodes[id] = start(id)
	}
	testenv.Eventually(t, 10*time.Second, settledOn(ids), "the groups never rebalanced to the four nodes")
	t.Logf("rebalanced to four nodes in %v", time.Since(back).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	checkGroupSeries(t, r, reg, ex, symbols, intervals, func() string {
		if !settledOn(ids)() {
			return "a group is not held by its node"
		}
		for _, id := range ids {
			if p := nodes[id].md.IntegrityStats().Pending; p > 0 {
				return fmt.Sprintf("%s: %d reconciliations pending", id, p)
			}
		}
		return ""
	})
	for _, o := range rec.overlaps() {
		t.Error(o)
	}
	var fenced uint64
	for _, n := range nodes {
		fenced += n.md.Stats().Fenced.Load()
	}
	t.Logf("%d terms in all, none overlapping another of its group; %d writes refused by a fence (on the nodes still running)", rec.count(), fenced)
	if n := rec.count(); n != len(gnames)+2*len(orphans) {
		t.Logf("%d terms: more than the %d the moves need (a node started before the others saw it, or a lease was taken again)", n, len(gnames)+2*len(orphans))
	}
}

type groupNode struct {
	id    string
	md    *marketdata.Node
	proxy *proxy
	stop  context.CancelFunc
	done  chan struct{}
}

// recordingCampaigner records every term of every group: node, epoch,
// start (after the lease was acquired) and end (when its work returned,
// before the lease is released).
type recordingCampaigner struct {
	*streamgroups.Coordinator
	rec  *termRecorder
	node string
}

func (rc recordingCampaigner) Run(ctx context.Context, work func(context.Context, string, leader.Term) error) error {
	return rc.Coordinator.Run(ctx, func(ctx context.Context, g string, lt leader.Term) error {
		i := rc.rec.begin(g, rc.node, lt.Epoch)
		defer rc.rec.end(i)
		return work(ctx, g, lt)
	})
}

type term struct {
	group, node string
	epoch       int64
	start, end  time.Time
}

type termRecorder struct {
	mu    sync.Mutex
	terms []term
}

func (r *termRecorder) begin(g, node string, epoch int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.terms = append(r.terms, term{group: g, node: node, epoch: epoch, start: time.Now()})
	return len(r.terms) - 1
}

func (r *termRecorder) end(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.terms[i].end = time.Now()
}

func (r *termRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.terms)
}

func (r *termRecorder) startedAfter(g string, t time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.terms {
		if x.group == g && x.start.After(t) {
			return x.start, true
		}
	}
	return time.Time{}, false
}

// termsAfter returns g's terms that started after t.
func (r *termRecorder) termsAfter(g string, t time.Time) []term {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []term
	for _, x := range r.terms {
		if x.group == g && x.start.After(t) {
			out = append(out, x)
		}
	}
	return out
}

// overlaps lists terms of one group that ran at once, and epochs that did
// not grow from one term to the next.
func (r *termRecorder) overlaps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := map[string][]term{}
	for _, x := range r.terms {
		by[x.group] = append(by[x.group], x)
	}
	var out []string
	for g, ts := range by {
		slices.SortFunc(ts, func(a, b term) int { return a.start.Compare(b.start) })
		for i := 1; i < len(ts); i++ {
			prev, cur := ts[i-1], ts[i]
			if prev.end.IsZero() || prev.end.After(cur.start) {
				out = append(out, fmt.Sprintf("%s: the term of %s (epoch %d) overlaps that of %s (epoch %d)", g, prev.node, prev.epoch, cur.node, cur.epoch))
			}
			if cur.epoch <= prev.epoch {
				out = append(out, fmt.Sprintf("%s: epoch %d of %s follows %d of %s", g, cur.epoch, cur.node, prev.epoch, prev.node))
			}
		}
	}
	return out
}

// checkGroupSeries waits until busy says nothing (every group held, no
// reconciliation pending) and every series reaches the present, then
// compares every series with the simulator's
// truth: consecutive open times, every kline that closed more than chaosN
// intervals ago equal to the truth.
func checkGroupSeries(t *testing.T, r *testenv.Redis, reg *keyspace.Registry, ex *sim.Server, symbols, intervals []string, busy func() string) {
	t.Helper()
	rc := r.Client(t)
	var stored map[string][]member
	var late string
	// now is the exchange's clock before the series are read: what closed
	// chaosN intervals before it is final in every series read after.
	var now int64
	settled := func() bool {
		if late = busy(); late != "" {
			return false
		}
		now = ex.Now().UnixMilli()
		stored = map[string][]member{}
		for _, s := range symbols {
			for _, iv := range intervals {
				key, _ := reg.Kline(s, iv)
				ms := readMembers(t, rc, key.Name())
				d, _ := keyspace.IntervalDuration(iv)
				lastClosed := now - now%d.Milliseconds() - d.Milliseconds()
				newest := int64(0)
				for _, m := range ms {
					if m.k.Closed {
						newest = m.k.OpenTime
					}
				}
				if newest < lastClosed-chaosN*d.Milliseconds() {
					late = fmt.Sprintf("%s %s: newest final %d, last closed %d", s, iv, newest, lastClosed)
					return false
				}
				stored[s+" "+iv] = ms
			}
		}
		// Nothing moved or began reconciling while the series were read.
		late = busy()
		return late == ""
	}
	testenv.Eventually(t, 20*time.Second, settled, "the series never settled: %v", lateMsg{&late})
	compared := 0
	for _, s := range symbols {
		for _, iv := range intervals {
			ms := stored[s+" "+iv]
			d, _ := keyspace.IntervalDuration(iv)
			if len(ms) < 10 {
				t.Fatalf("%s %s: %d klines stored", s, iv, len(ms))
			}
			truth, err := ex.TrueKlines(s, iv, ms[0].k.OpenTime, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int64]exchange.Kline{}
			for _, k := range truth {
				want[k.OpenTime] = k
			}
			for i, m := range ms {
				if i > 0 && m.score-ms[i-1].score != d.Milliseconds() {
					t.Errorf("%s %s: kline %d opens %d ms after the previous one: a gap or a duplicate", s, iv, m.score, m.score-ms[i-1].score)
				}
				if m.k.CloseTime >= now-chaosN*d.Milliseconds() {
					continue
				}
				compared++
				if w, ok := want[m.k.OpenTime]; !ok || m.k != w {
					t.Errorf("%s %s: kline %d = %+v, want %+v", s, iv, m.k.OpenTime, m.k, w)
				}
			}
		}
	}
	t.Logf("%d series: %d closed klines compared with the truth, no gap", len(symbols)*len(intervals), compared)
}

// lateMsg prints what kept the series from settling, when the wait fails.
type lateMsg struct{ s *string }

func (l lateMsg) String() string { return *l.s }

// proxy forwards TCP connections to Redis until killed: then it closes
// every connection and refuses new ones, as if the node had died.
type proxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func newProxy(t *testing.T, to string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, to: to}
	go p.serve()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.dead {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { io.Copy(c, u); c.Close() }()
	}
}

func (p *proxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
