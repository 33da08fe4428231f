package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
)

// Two nodes on one Redis whose streams are cut into four groups share
// them, and /healthz says which node holds which: each node its own
// groups, disjoint, together all four, and the same holders on both.
func TestNodesShareStreamGroups(t *testing.T) {
	r := testenv.Start(t)
	prefix := testenv.Prefix(t)
	start := func(id string) *node.Node {
		n, err := node.New(node.Config{NodeID: id, Redis: node.Redis{URL: r.URL()}, Keys: node.Keys{Prefix: prefix, LeaseTTL: 3 * time.Second},
			Exchange: node.Exchange{Kind: node.ExchangeSim}, HTTP: node.HTTP{Listen: "127.0.0.1:0"},
			// 3 streams a symbol: g0 holds the whole-market tickers, g1–g3 a symbol each.
			Market: node.Market{Symbols: []string{"BTCUSDT", "ETHUSDT", "BNBUSDT"}, Intervals: []string{"1m"}, GroupSize: 3}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run = %v", id, err)
			}
		})
		return n
	}
	a, b := start("node-a"), start("node-b")
	all := []string{"g0", "g1", "g2", "g3"}
	testenv.Eventually(t, 15*time.Second, func() bool {
		ha, hb := a.Health().Groups, b.Health().Groups
		if ha == nil || hb == nil || len(ha.Live) != 2 || len(ha.Holders) != 4 || !cmp.Equal(ha.Holders, hb.Holders) {
			return false
		}
		held := append(slices.Clone(ha.Held), hb.Held...)
		slices.Sort(held)
		for _, g := range ha.Held {
			if ha.Holders[g] != "node-a" {
				return false
			}
		}
		return slices.Equal(held, all)
	}, "the two nodes never shared the four groups: a %+v, b %+v", a.Health().Groups, b.Health().Groups)
	h := a.Health()
	if h.Groups.Total != 4 || h.Mode == "" {
		t.Errorf("health = %+v, groups %+v", h, h.Groups)
	}
}
