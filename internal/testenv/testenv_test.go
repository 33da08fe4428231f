package testenv_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestStopRestartPause(t *testing.T) {
	r := testenv.Start(t)
	c := r.Client(t)
	ctx := context.Background()
	do := func() error {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		return c.Do(ctx, c.B().Set().Key("k").Value("v").ExSeconds(10).Build()).Error()
	}
	if err := do(); err != nil {
		t.Fatal(err)
	}
	r.Stop(t)
	if err := do(); err == nil {
		t.Fatal("write succeeded against a stopped server")
	}
	r.Restart(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return do() == nil }, "no write after restart")
	r.Pause(t)
	if err := do(); err == nil {
		t.Fatal("write succeeded against a paused server")
	}
	r.Resume(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return do() == nil }, "no write after resume")
}

func TestSharedAndPrefix(t *testing.T) {
	a, b := testenv.Shared(t), testenv.Shared(t)
	if a != b {
		t.Fatal("Shared started two servers")
	}
	if p, q := testenv.Prefix(t), testenv.Prefix(t); p == q {
		t.Fatalf("Prefix repeated %q", p)
	}
}

func TestRequirePass(t *testing.T) {
	r := testenv.Start(t, testenv.RequirePass("pw"))
	want := "redis://:pw@" + r.Addr()
	if r.IsCluster() { // every master a seed
		want += "?addr=" + url.QueryEscape(r.Addrs()[1]) + "&addr=" + url.QueryEscape(r.Addrs()[2])
	}
	if got := r.URL(); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	ctx := context.Background()
	c := r.Client(t)
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("PING with the password: %v", err)
	}
	anon, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err == nil {
		err = anon.Do(ctx, anon.B().Ping().Build()).Error()
		anon.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password: %v, want NOAUTH", err)
	}
	r.Restart(t) // still requires the password, still answers it
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Do(ctx, c.B().Ping().Build()).Error() == nil }, "no PING after restart")
}

// TestCluster: three masters share the slots; a client follows keys to
// their masters, the audit scans every master, and the cluster survives
// a stop and restart of all its nodes, and of one.
func TestCluster(t *testing.T) {
	r := testenv.StartCluster(t)
	if len(r.Addrs()) != testenv.ClusterMasters || !r.IsCluster() {
		t.Fatalf("addrs %v", r.Addrs())
	}
	c := r.Client(t)
	if c.Mode() != valkey.ClientModeCluster {
		t.Fatalf("client mode %v, want cluster", c.Mode())
	}
	ctx := context.Background()
	set := func(k string) error {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return c.Do(ctx, c.B().Set().Key(k).Value("v").ExSeconds(30).Build()).Error()
	}
	// Keys on every master: a, b, c hash to slots 15495, 3300, 7365.
	for _, k := range []string{"a", "b", "c"} {
		if err := set(k); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	per := map[string]int64{}
	for addr, n := range c.Nodes() {
		per[addr], _ = n.Do(ctx, n.B().Dbsize().Build()).AsInt64()
	}
	for addr, n := range per {
		if n != 1 {
			t.Errorf("master %s holds %d keys, want 1 (%v)", addr, n, per)
		}
	}
	r.Stop(t)
	if err := set("a"); err == nil {
		t.Fatal("write succeeded against a stopped cluster")
	}
	r.Restart(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return set("a") == nil && set("b") == nil && set("c") == nil }, "no write after restart")
	r.Node(1).Stop(t)
	r.Node(1).Restart(t)
	testenv.Eventually(t, 10*time.Second, func() bool { return set("a") == nil && set("b") == nil && set("c") == nil }, "no write after one master's restart")
}

// TestClusterFailover: with replicas, CLUSTER FAILOVER swaps a shard's
// master and replica and keeps its keys; a shard whose master is killed
// and started again takes writes again.
func TestClusterFailover(t *testing.T) {
	r := testenv.StartCluster(t, testenv.ClusterReplicas())
	c := r.Client(t)
	ctx := context.Background()
	set := func(k string) error {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return c.Do(ctx, c.B().Set().Key(k).Value("v").ExSeconds(60).Build()).Error()
	}
	if err := set("b"); err != nil { // slot 3300: shard 0
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // replicated
	r.Failover(t, 0)
	testenv.Eventually(t, 10*time.Second, func() bool {
		v, err := c.Do(ctx, c.B().Get().Key("b").Build()).ToString()
		return err == nil && v == "v"
	}, "key lost or unreachable after CLUSTER FAILOVER")
	// Kill the shard's master now (the replica at start) and start it
	// again: whether its replica was promoted meanwhile or it comes back
	// as the master, the shard takes writes again.
	r.Replica(0).Stop(t)
	time.Sleep(4 * time.Second) // past the node timeout
	r.Replica(0).Restart(t)
	testenv.Eventually(t, 30*time.Second, func() bool { return set("b") == nil }, "no write after the master died and came back")
	r.Failover(t, 0) // a coordinated failover again, whichever node is master now
}
