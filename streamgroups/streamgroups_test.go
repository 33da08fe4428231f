package streamgroups_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/streamgroups"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// units is n symbols with k streams each: S000 … .
func units(n, k int) []streamgroups.Unit {
	var out []streamgroups.Unit
	for i := range n {
		u := streamgroups.Unit{Name: fmt.Sprintf("S%03d", i)}
		for j := range k {
			u.Streams = append(u.Streams, fmt.Sprintf("s%03d@%d", i, j))
		}
		out = append(out, u)
	}
	return out
}

func TestCut(t *testing.T) {
	tests := []struct {
		name    string
		shared  []string
		units   []streamgroups.Unit
		size    int
		want    [][]string // units per group
		wantErr string
	}{
		{name: "one group", shared: []string{"!ticker@arr"}, units: units(3, 4), size: 200, want: [][]string{{"S000", "S001", "S002"}}},
		{name: "shared first, units whole", shared: []string{"!ticker@arr"}, units: units(5, 4), size: 9, want: [][]string{{"S000", "S001"}, {"S002", "S003"}, {"S004"}}},
		{name: "exact fit", units: units(4, 5), size: 10, want: [][]string{{"S000", "S001"}, {"S002", "S003"}}},
		{name: "unit too large", units: units(1, 5), size: 4, wantErr: "more than the group size"},
		{name: "size beyond Binance", units: units(1, 5), size: 1025, wantErr: "want 1 to 1024"},
		{name: "duplicate", units: append(units(1, 2), units(1, 2)...), size: 10, wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, err := streamgroups.Cut(tt.shared, tt.units, tt.size)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for i, g := range gs {
				if g.Name != fmt.Sprintf("g%d", i) {
					t.Errorf("group %d named %s", i, g.Name)
				}
				if len(g.Streams) > tt.size {
					t.Errorf("%s: %d streams > %d", g.Name, len(g.Streams), tt.size)
				}
				got = append(got, g.Units)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("units per group (-want +got):\n%s", diff)
			}
			if len(tt.shared) > 0 && !slices.Equal(gs[0].Streams[:len(tt.shared)], tt.shared) {
				t.Errorf("g0 starts with %v, want the shared %v", gs[0].Streams[:len(tt.shared)], tt.shared)
			}
		})
	}
}

// TestCutDeterministic: the order the units are configured in changes
// nothing, and every stream lands in exactly one group within the limit.
func TestCutDeterministic(t *testing.T) {
	us := units(100, 4) // 400 streams
	a, err := streamgroups.Cut([]string{"!ticker@arr"}, us, 200)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(us)
	slices.Reverse(rev)
	b, err := streamgroups.Cut([]string{"!ticker@arr"}, rev, 200)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("cut depends on the order of the units (-sorted +reversed):\n%s", diff)
	}
	seen := map[string]int{}
	for _, g := range a {
		if len(g.Streams) > 200 {
			t.Errorf("%s holds %d streams", g.Name, len(g.Streams))
		}
		for _, s := range g.Streams {
			seen[s]++
		}
	}
	if len(seen) != 401 {
		t.Errorf("%d distinct streams in the groups, want 401", len(seen))
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d groups", s, n)
		}
	}
	if len(a) != 3 {
		t.Errorf("%d groups, want 3 (200 + 200 + 1 streams)", len(a))
	}
}

func names(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// TestRendezvousLeave: a node leaving moves its groups only.
func TestRendezvousLeave(t *testing.T) {
	groups := names("g", 200)
	nodes := names("node-", 5)
	before := streamgroups.Assign(groups, nodes)
	for _, gone := range nodes {
		rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == gone })
		after := streamgroups.Assign(groups, rest)
		for _, g := range groups {
			if before[g] != gone && after[g] != before[g] {
				t.Errorf("%s left: %s moved from %s to %s", gone, g, before[g], after[g])
			}
			if after[g] == gone {
				t.Errorf("%s left and still owns %s", gone, g)
			}
		}
	}
}

// TestRendezvousJoin: a node joining takes about 1/n of the groups, only
// for itself, and every node gets a fair share.
func TestRendezvousJoin(t *testing.T) {
	groups := names("g", 1000)
	for n := 2; n <= 8; n++ {
		nodes := names("node-", n-1)
		before := streamgroups.Assign(groups, nodes)
		after := streamgroups.Assign(groups, append(slices.Clone(nodes), "newcomer"))
		moved := 0
		for _, g := range groups {
			if after[g] != before[g] {
				moved++
				if after[g] != "newcomer" {
					t.Errorf("n=%d: %s moved from %s to %s, not to the newcomer", n, g, before[g], after[g])
				}
			}
		}
		want := len(groups) / n
		if moved < want*7/10 || moved > want*13/10 {
			t.Errorf("n=%d: %d groups moved, want about %d", n, moved, want)
		}
	}
}

func TestRankOwner(t *testing.T) {
	nodes := names("node-", 4)
	for _, g := range names("g", 50) {
		r := streamgroups.Rank(g, nodes)
		if r[0] != streamgroups.Owner(g, nodes) {
			t.Errorf("%s: rank %v, owner %s", g, r, streamgroups.Owner(g, nodes))
		}
		rev := slices.Clone(nodes)
		slices.Reverse(rev)
		if streamgroups.Owner(g, rev) != r[0] {
			t.Errorf("%s: owner depends on the order of the nodes", g)
		}
	}
}

// coordNode is one coordinator with its own cache (own Redis client).
type coordNode struct {
	id     string
	co     *streamgroups.Coordinator
	cancel context.CancelFunc
	done   chan struct{}
}

// TestCoordinatorShares runs three coordinators on real Redis: every group
// held by its first-ranked node, never two terms of one group at once; one
// leaves and its groups move; it comes back and takes them back.
func TestCoordinatorShares(t *testing.T) {
	r := testenv.Shared(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{
		keyspace.KindMarketWSGroup: 2 * time.Second, keyspace.KindMarketNodes: 2 * time.Second}}))
	groups := names("g", 12)
	leases := map[string]streamgroups.Lease{}
	for _, g := range groups {
		l, _ := reg.MarketWSGroup(g)
		e, _ := reg.LeaderEpoch(l)
		leases[g] = streamgroups.Lease{Lease: l, Epoch: e}
	}
	var mu sync.Mutex
	active := map[string]string{} // group → node in a term now
	var overlaps []string
	work := func(id string) func(ctx context.Context, g string, _ leader.Term) error {
		return func(ctx context.Context, g string, _ leader.Term) error {
			mu.Lock()
			if o := active[g]; o != "" {
				overlaps = append(overlaps, fmt.Sprintf("%s: %s and %s", g, o, id))
			}
			active[g] = id
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			delete(active, g)
			mu.Unlock()
			return nil
		}
	}
	ctx := t.Context()
	start := func(id string) *coordNode {
		opt, _ := cache.RedisOptions(r.URL())
		c, err := cache.New(cache.Config{Redis: opt})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		// The cache outlives the coordinator, which releases through it.
		kctx, stopCache := context.WithCancel(context.Background())
		cacheDone := make(chan struct{})
		go func() { c.Run(kctx); close(cacheDone) }()
		testenv.Eventually(t, 5*time.Second, func() bool { return c.Redis() != nil }, "cache never connected")
		co, err := streamgroups.New(c, streamgroups.Config{Groups: groups, Leases: leases, Members: reg.MarketNodes(), NodeID: id, Keys: reg,
			Poll: 100 * time.Millisecond, RetryEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n := &coordNode{id: id, co: co, cancel: cancel, done: make(chan struct{})}
		go func() { co.Run(cctx, work(id)); stopCache(); <-cacheDone; close(n.done) }()
		return n
	}
	stop := func(n *coordNode) { n.cancel(); <-n.done }
	settled := func(live []string) func() bool {
		return func() bool {
			want := streamgroups.Assign(groups, live)
			mu.Lock()
			defer mu.Unlock()
			return cmp.Equal(want, active)
		}
	}
	nodes := []*coordNode{start("a"), start("b"), start("c")}
	defer func() {
		for _, n := range nodes {
			stop(n)
		}
	}()
	testenv.Eventually(t, 5*time.Second, settled([]string{"a", "b", "c"}), "groups never spread by rank: %v", active)
	testenv.Eventually(t, 2*time.Second, func() bool {
		v := nodes[0].co.View()
		return len(v.Live) == 3 && cmp.Equal(v.Holders, streamgroups.Assign(groups, v.Live))
	}, "a's view never showed every group's holder: %+v", nodes[0].co.View())
	stop(nodes[1])
	testenv.Eventually(t, 3*time.Second, settled([]string{"a", "c"}), "b's groups never moved: %v", active)
	nodes[1] = start("b")
	testenv.Eventually(t, 5*time.Second, settled([]string{"a", "b", "c"}), "groups never rebalanced to b: %v", active)
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("two terms of one group at once: %v", overlaps)
	}
}

// TestCoordinatorFreeGrace: a node that heartbeats but never campaigns
// ranks first for some groups; after the free-lease grace the working
// nodes take them, so every group is streamed all the same; and they keep
// them longer after each hand-back that did not take, so the groups move
// a few times, not every grace.
func TestCoordinatorFreeGrace(t *testing.T) {
	r := testenv.Shared(t)
	const ttl = time.Second
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{
		keyspace.KindMarketWSGroup: ttl, keyspace.KindMarketNodes: ttl}}))
	groups := names("g", 8)
	leases := map[string]streamgroups.Lease{}
	for _, g := range groups {
		l, _ := reg.MarketWSGroup(g)
		e, _ := reg.LeaderEpoch(l)
		leases[g] = streamgroups.Lease{Lease: l, Epoch: e}
	}
	phantomFirst := 0
	for _, g := range groups {
		if streamgroups.Owner(g, []string{"a", "b", "phantom"}) == "phantom" {
			phantomFirst++
		}
	}
	if phantomFirst == 0 {
		t.Fatal("the phantom ranks first for no group: pick other names")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc := r.Client(t)
	go func() {
		// The phantom's heartbeat, on Redis's clock like the real ones.
		for ctx.Err() == nil {
			tm, err := rc.Do(ctx, rc.B().Time().Build()).AsStrSlice()
			if err == nil && len(tm) == 2 {
				var sec, usec int64
				fmt.Sscan(tm[0], &sec)
				fmt.Sscan(tm[1], &usec)
				rc.Do(ctx, rc.B().Zadd().Key(reg.MarketNodes().Name()).ScoreMember().ScoreMember(float64(sec*1000+usec/1000), "phantom").Build())
				rc.Do(ctx, rc.B().Pexpire().Key(reg.MarketNodes().Name()).Milliseconds(ttl.Milliseconds()).Build())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var mu sync.Mutex
	held := map[string]string{}
	terms := map[string]int{}
	var wg sync.WaitGroup
	for _, id := range []string{"a", "b"} {
		opt, _ := cache.RedisOptions(r.URL())
		c, err := cache.New(cache.Config{Redis: opt})
		if err != nil {
			t.Fatal(err)
		}
		kctx, stopCache := context.WithCancel(context.Background())
		cacheDone := make(chan struct{})
		go func() { c.Run(kctx); close(cacheDone) }()
		co, err := streamgroups.New(c, streamgroups.Config{Groups: groups, Leases: leases, Members: reg.MarketNodes(), NodeID: id, Keys: reg,
			Poll: 100 * time.Millisecond, RetryEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return c.Redis() != nil }, "cache never connected")
		wg.Go(func() {
			co.Run(ctx, func(ctx context.Context, g string, _ leader.Term) error {
				mu.Lock()
				held[g] = id
				terms[g]++
				mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				delete(held, g)
				mu.Unlock()
				return nil
			})
			stopCache()
			<-cacheDone
		})
	}
	start := time.Now()
	testenv.Eventually(t, ttl+3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(held) == len(groups)
	}, "the phantom's groups were never taken: %v", held)
	t.Logf("the phantom's %d groups were taken after %v (grace %v)", phantomFirst, time.Since(start).Round(time.Millisecond), ttl)
	mu.Lock()
	clear(terms)
	mu.Unlock()
	time.Sleep(6 * ttl)
	mu.Lock()
	for _, g := range groups {
		if streamgroups.Owner(g, []string{"a", "b", "phantom"}) != "phantom" {
			continue
		}
		// Undamped: a term every grace and a poll (about 5); damped: held
		// 1, 2, 4 graces after the free ones.
		if terms[g] > 4 {
			t.Errorf("%s: %d terms in %v: moved every grace", g, terms[g], 6*ttl)
		}
	}
	t.Logf("terms of each group in the next %v: %v", 6*ttl, terms)
	mu.Unlock()
	cancel()
	wg.Wait()
}
