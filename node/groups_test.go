package node_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
)

// Two nodes on one Redis whose streams are cut into four groups share
// them, and /healthz says which node holds which: each node its own
// groups, disjoint, together all four, and the same holders on both; its
// exchange streams connected. One stops cleanly: the other holds all four
// within a few polls.
func TestNodesShareStreamGroups(t *testing.T) {
	r := testenv.Start(t)
	prefix := testenv.Prefix(t)
	start := func(id string) (*node.Node, func()) {
		out := &testenv.Buffer{}
		n, err := node.New(node.Config{NodeID: id, Stdout: out, Redis: node.Redis{URL: r.URL()}, Keys: node.Keys{Prefix: prefix, LeaseTTL: 3 * time.Second, Naming: testenv.KeyNaming()},
			Exchange: node.Exchange{Kind: node.ExchangeSim}, HTTP: node.HTTP{Listen: "127.0.0.1:0"},
			// 3 streams a symbol: g0 holds the whole-market tickers, g1–g3 a symbol each.
			Market: node.Market{Symbols: []string{"BTCUSDT", "ETHUSDT", "BNBUSDT"}, Intervals: []string{"1m"}, GroupSize: 3}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("%s: Run = %v", id, err)
				}
			})
		}
		t.Cleanup(stop)
		testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(out.String(), "cut into 4 stream groups of at most 3") },
			"the banner does not say the streams are cut into groups:\n%s", out)
		return n, stop
	}
	// The ranking gives node-1 g1 and g2, node-2 g0 and g3.
	a, _ := start("node-1")
	b, stopB := start("node-2")
	all := []string{"g0", "g1", "g2", "g3"}
	testenv.Eventually(t, 15*time.Second, func() bool {
		ha, hb := a.Health().Groups, b.Health().Groups
		if ha == nil || hb == nil || len(ha.Live) != 2 || len(ha.Holders) != 4 || !cmp.Equal(ha.Holders, hb.Holders) {
			return false
		}
		held := append(slices.Clone(ha.Held), hb.Held...)
		slices.Sort(held)
		for _, g := range ha.Held {
			if ha.Holders[g] != "node-1" {
				return false
			}
		}
		return slices.Equal(held, all)
	}, "the two nodes never shared the four groups: a %+v, b %+v", a.Health().Groups, b.Health().Groups)
	h := a.Health()
	if !slices.Equal(h.Groups.Held, []string{"g1", "g2"}) {
		t.Errorf("node-1 holds %v, want its rank's g1 and g2", h.Groups.Held)
	}
	if h.Groups.Total != 4 || h.Mode == "" {
		t.Errorf("health = %+v, groups %+v", h, h.Groups)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		h := a.Health()
		return h.Exchange != nil && h.Exchange.State == "connected" && h.Mode == "leader"
	}, "node-1's streams never connected: %+v", a.Health().Exchange)

	stopped := time.Now()
	stopB()
	testenv.Eventually(t, 5*time.Second, func() bool {
		g := a.Health().Groups
		return slices.Equal(g.Held, all) && len(g.Live) == 1
	}, "node-1 never took node-2's groups: %+v", a.Health().Groups)
	t.Logf("node-2 stopped cleanly: node-1 held every group %v later", time.Since(stopped).Round(time.Millisecond))
}
