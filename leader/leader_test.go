package leader_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type node struct {
	id     string
	e      *leader.Elector
	cancel context.CancelFunc
	done   chan struct{}
	terms  atomic.Int64
	lost   atomic.Int64
}

func keys(t *testing.T, ttl time.Duration) (*keyspace.Registry, keyspace.Key, keyspace.Key) {
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t), TTL: map[string]time.Duration{keyspace.KindMarketWSLeader: ttl}}))
	lease := reg.MarketWSLeader()
	epoch, err := reg.LeaderEpoch(lease)
	if err != nil {
		t.Fatal(err)
	}
	return reg, lease, epoch
}

func connect(t *testing.T, r *testenv.Redis) *cache.Cache {
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, CallTimeout: 100 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Redis() != nil }, "no redis")
	return c
}

// start runs an elector whose work holds leadership until its context ends.
func start(t *testing.T, c *cache.Cache, id string, lease, epoch keyspace.Key, onTerm func(context.Context, leader.Term)) *node {
	e, err := leader.New(c, leader.Config{Lease: lease, Epoch: epoch, NodeID: id, RetryEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{id: id, e: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		e.Run(ctx, func(ctx context.Context, term leader.Term) error {
			n.terms.Add(1)
			if onTerm != nil {
				onTerm(ctx, term)
			}
			<-ctx.Done()
			if errors.Is(context.Cause(ctx), leader.ErrLost) {
				n.lost.Add(1)
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-n.done })
	return n
}

func leaders(ns []*node) []string {
	var ids []string
	for _, n := range ns {
		if ok, _ := n.e.Leading(); ok {
			ids = append(ids, n.id)
		}
	}
	return ids
}

func TestExactlyOneLeaderAndCleanHandover(t *testing.T) {
	r := testenv.Shared(t)
	_, lease, epoch := keys(t, 2*time.Second)
	var ns []*node
	for i := range 3 {
		ns = append(ns, start(t, connect(t, r), fmt.Sprintf("n%d", i), lease, epoch, nil))
	}
	testenv.Eventually(t, 3*time.Second, func() bool { return len(leaders(ns)) == 1 }, "no leader")
	// Over several renewal periods there is never more than one leader.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if l := leaders(ns); len(l) > 1 {
			t.Fatalf("two leaders at once: %v", l)
		}
	}
	first := leaders(ns)[0]
	var old *node
	for _, n := range ns {
		if n.id == first {
			old = n
		}
	}
	_, t1 := old.e.Leading()
	// A clean shutdown releases the lease: a follower leads within 2 s.
	stopped := time.Now()
	old.cancel()
	<-old.done
	testenv.Eventually(t, 2*time.Second, func() bool { l := leaders(ns); return len(l) == 1 && l[0] != first }, "no takeover after clean shutdown")
	t.Logf("takeover after clean shutdown in %v", time.Since(stopped))
	for _, n := range ns {
		if ok, t2 := n.e.Leading(); ok && t2.Epoch <= t1.Epoch {
			t.Errorf("new epoch %d not above %d", t2.Epoch, t1.Epoch)
		}
	}
	rc := r.Client(t)
	pttl, _ := rc.Do(context.Background(), rc.B().Pttl().Key(epoch.Name()).Build()).AsInt64()
	if pttl <= 0 {
		t.Errorf("epoch key PTTL %d: it must carry a TTL", pttl)
	}
}

func TestLeadershipEndsWhenLeaseIsTaken(t *testing.T) {
	r := testenv.Shared(t)
	_, lease, epoch := keys(t, time.Second)
	c := connect(t, r)
	var term leader.Term
	var mu sync.Mutex
	n := start(t, c, "a", lease, epoch, func(_ context.Context, tm leader.Term) { mu.Lock(); term = tm; mu.Unlock() })
	testenv.Eventually(t, 2*time.Second, func() bool { ok, _ := n.e.Leading(); return ok }, "never led")
	rc := r.Client(t)
	ctx := context.Background()
	// Someone else holds the lease now (an operator, a split brain): the
	// next renewal notices and the work's context ends with ErrLost.
	rc.Do(ctx, rc.B().Set().Key(lease.Name()).Value(`{"node":"intruder","epoch":999}`).Px(5*time.Second).Build())
	testenv.Eventually(t, time.Second, func() bool { return n.lost.Load() == 1 }, "work context not cancelled")
	// A fenced write with the old token is refused.
	mu.Lock()
	fence := term.Fence
	mu.Unlock()
	write := valkey.NewLuaScript(leader.FenceCheck + `redis.call('SET', KEYS[2], 'x', 'PX', 60000) return 1`)
	err := write.Exec(ctx, rc, []string{fence.Key, lease.Name() + ":data"}, []string{fence.Token}).Error()
	if !leader.IsFenced(err) {
		t.Fatalf("write with a stale token: %v", err)
	}
	if n, _ := rc.Do(ctx, rc.B().Exists().Key(lease.Name()+":data").Build()).AsInt64(); n != 0 {
		t.Fatal("fenced write landed")
	}
	rc.Do(ctx, rc.B().Del().Key(lease.Name()).Build())
}

// TestLeadershipEndsBeforeTheLeaseCanExpire: Redis hangs, renewals fail;
// the leader's context ends before the lease TTL runs out, so it never acts
// as leader while another node could have the lease.
func TestLeadershipEndsBeforeTheLeaseCanExpire(t *testing.T) {
	r := testenv.Start(t)
	_, lease, epoch := keys(t, time.Second)
	c := connect(t, r)
	var acquired atomic.Int64
	n := start(t, c, "a", lease, epoch, func(context.Context, leader.Term) { acquired.Store(time.Now().UnixNano()) })
	testenv.Eventually(t, 2*time.Second, func() bool { return acquired.Load() != 0 }, "never led")
	r.Pause(t)
	paused := time.Now()
	testenv.Eventually(t, 2*time.Second, func() bool { return n.lost.Load() == 1 }, "leadership survived a hung redis")
	if d := time.Since(time.Unix(0, acquired.Load())); d >= time.Second+100*time.Millisecond {
		t.Errorf("stepped down %v after acquiring, lease TTL 1s", d)
	}
	t.Logf("stepped down %v after redis hung", time.Since(paused))
	r.Resume(t)
}

// TestSlotFencesOnCluster: on a Redis Cluster, keys named for it, a term's
// writes are fenced per slot: once a later term has written a slot, the
// earlier term's writes there are refused; Held tells the earlier term
// its lease is gone; the account's keys, in the lease's slot, are checked
// against the lease itself.
func TestSlotFencesOnCluster(t *testing.T) {
	r := testenv.StartCluster(t)
	reg := keyspace.MustNew(keyspace.Config{Prefix: testenv.Prefix(t), HashTags: true})
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	c := connect(t, r)
	rc := r.Client(t)
	ctx := context.Background()
	elect := func(id string) (leader.Term, func()) {
		e, err := leader.New(c, leader.Config{Lease: lease, Epoch: epoch, NodeID: id, RetryEvery: 50 * time.Millisecond, Keys: reg})
		if err != nil {
			t.Fatal(err)
		}
		terms := make(chan leader.Term, 1)
		ectx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.Run(ectx, func(ctx context.Context, term leader.Term) error {
				terms <- term
				<-ctx.Done()
				return nil
			})
		}()
		select {
		case term := <-terms:
			return term, func() { cancel(); <-done }
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never led", id)
		}
		return leader.Term{}, nil
	}
	write := valkey.NewLuaScript(leader.FenceCheck + `redis.call('SET', KEYS[2], ARGV[2], 'PX', 60000) return 1`)
	put := func(term leader.Term, k keyspace.Key, v string) error {
		fk, token, err := term.Fence.For(k)
		if err != nil {
			t.Fatal(err)
		}
		return write.Exec(ctx, rc, []string{fk, k.Name()}, []string{token, v}).Error()
	}
	btc, _ := reg.Ticker24h("BTCUSDT")
	eth, _ := reg.Ticker24h("ETHUSDT")

	a, stopA := elect("a")
	if !a.Fence.Slotted() {
		t.Fatal("a cluster-named term is not fenced per slot")
	}
	if err := put(a, btc, "a1"); err != nil {
		t.Fatalf("first term's write: %v", err)
	}
	stopA() // releases the lease
	b, stopB := elect("b")
	defer stopB()
	if b.Epoch <= a.Epoch {
		t.Fatalf("epochs %d then %d", a.Epoch, b.Epoch)
	}
	if err := a.Fence.Held(ctx, rc); !leader.IsFenced(err) {
		t.Errorf("Held of a lost term: %v", err)
	}
	if err := b.Fence.Held(ctx, rc); err != nil {
		t.Errorf("Held of the current term: %v", err)
	}
	if err := put(b, btc, "b1"); err != nil {
		t.Fatalf("second term's write: %v", err)
	}
	if err := put(a, btc, "a2"); !leader.IsFenced(err) {
		t.Fatalf("the first term wrote a slot the second had written: %v", err)
	}
	if v, _ := rc.Do(ctx, rc.B().Get().Key(btc.Name()).Build()).ToString(); v != "b1" {
		t.Errorf("value %q, want b1", v)
	}
	// A slot the second term has not written yet still takes the first
	// term's write (the documented limit), until the second writes it.
	if err := put(a, eth, "a1"); err != nil {
		t.Errorf("first term, unwritten slot: %v", err)
	}
	if err := put(b, eth, "b1"); err != nil {
		t.Fatalf("second term: %v", err)
	}
	if err := put(a, eth, "a2"); !leader.IsFenced(err) {
		t.Errorf("first term after the second wrote: %v", err)
	}
	// The lease's own slot: checked against the lease.
	if k, _, _ := b.Fence.For(reg.BookTicker()); k != lease.Name() {
		t.Errorf("fence of a {market} key: %q, want the lease", k)
	}
	if err := put(a, reg.BookTicker(), "a"); !leader.IsFenced(err) {
		t.Errorf("first term in the lease's slot: %v", err)
	}
	for _, k := range []keyspace.Key{btc, eth, reg.BookTicker()} {
		rc.Do(ctx, rc.B().Del().Key(k.Name()).Build())
	}
}
