package leader_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
)

// Killing the master of a Sentinel-managed Redis ends the term it fenced
// when the failover outlasts the lease (1 s here; the Sentinel needs more
// than 1 s to call the master down); once the replica is promoted, one
// node leads again, with a higher epoch, and never two at once meanwhile.
// (A failover quicker than the lease lets the leader renew the lease the
// replica holds, and keep its term: the epoch replicated with it.)
func TestSentinelFailoverNewEpoch(t *testing.T) {
	s := testenv.StartSentinel(t)
	_, lease, epoch := keys(t, time.Second)
	var ns []*node
	for i := range 2 {
		opt, err := cache.RedisOptions(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		c, err := cache.New(cache.Config{Redis: opt, CallTimeout: 100 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		testenv.Eventually(t, 5*time.Second, func() bool { return c.Redis() != nil }, "no redis")
		ns = append(ns, start(t, c, fmt.Sprintf("n%d", i), lease, epoch, nil))
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return len(leaders(ns)) == 1 }, "no leader")
	var before int64
	var beforeToken string
	for _, n := range ns {
		if ok, term := n.e.Leading(); ok {
			before, beforeToken = term.Epoch, term.Fence.Token
		}
	}
	// The replica has the lease and the epoch (replication is asynchronous:
	// a master killed before it replicated them takes them with it, and
	// the epoch is handed out again; see the package doc).
	mc := s.Master.Client(t)
	if n, err := mc.Do(context.Background(), mc.B().Wait().Numreplicas(1).Timeout(2000).Build()).AsInt64(); err != nil || n < 1 {
		t.Fatalf("WAIT 1: %d replicas, %v", n, err)
	}
	old := s.MasterAddr(t)
	s.Master.Stop(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := leaders(ns); len(l) > 1 {
			t.Fatalf("two leaders at once: %v", l)
		}
		var after int64
		for _, n := range ns {
			if ok, term := n.e.Leading(); ok {
				after = term.Epoch
			}
		}
		if after > before && s.MasterAddr(t) != old {
			for _, n := range ns {
				if ok, term := n.e.Leading(); ok && term.Fence.Token == beforeToken {
					t.Errorf("the new term reuses the old token %s", beforeToken)
				}
			}
			t.Logf("epoch %d → %d after the master %s died (now %s)", before, after, old, s.MasterAddr(t))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader with an epoch above %d within 30 s of the master's death (leaders %v)", before, leaders(ns))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An epoch handed out twice (its increment lost with a master that died
// before replicating it) still makes a new token: the nonce differs, so a
// write fenced by the lost term cannot pass the new term's check.
func TestReusedEpochNewToken(t *testing.T) {
	r := testenv.Shared(t)
	_, lease, epoch := keys(t, 2*time.Second)
	c := connect(t, r)
	first := start(t, c, "n0", lease, epoch, nil)
	testenv.Eventually(t, 3*time.Second, func() bool { ok, _ := first.e.Leading(); return ok }, "no leader")
	_, t1 := first.e.Leading()
	first.cancel()
	<-first.done
	rc := r.Client(t)
	rc.Do(context.Background(), rc.B().Del().Key(epoch.Name()).Build()) // the increment is lost
	second := start(t, c, "n0", lease, epoch, nil)
	testenv.Eventually(t, 3*time.Second, func() bool { ok, _ := second.e.Leading(); return ok }, "no leader again")
	_, t2 := second.e.Leading()
	if t2.Epoch != t1.Epoch {
		t.Fatalf("epochs %d and %d: the test wants the same epoch twice", t1.Epoch, t2.Epoch)
	}
	if t2.Fence.Token == t1.Fence.Token {
		t.Errorf("the same token %s for two terms", t1.Fence.Token)
	}
}
