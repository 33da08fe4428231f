package keyspace_test

import (
	"testing"
	"time"

	"github.com/tradecache/tradecache/keyspace"
)

// The stream groups' keys: a lease per group beside the single group's
// market_ws_leader, its epoch, the membership set; each parses back.
func TestStreamGroupKeys(t *testing.T) {
	r := keyspace.MustNew(keyspace.Config{Prefix: "p:"})
	lease, err := r.MarketWSGroup("g3")
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := r.LeaderEpoch(lease)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  keyspace.Key
		name string
		kind string
		ttl  time.Duration
	}{
		{lease, "p:market_ws_leader:g3", keyspace.KindMarketWSGroup, 30 * time.Second},
		{epoch, "p:leader_epoch:market_ws_leader.g3", keyspace.KindLeaderEpoch, 7 * 24 * time.Hour},
		{r.MarketNodes(), "p:market_nodes", keyspace.KindMarketNodes, 30 * time.Second},
		{r.MarketWSLeader(), "p:market_ws_leader", keyspace.KindMarketWSLeader, 30 * time.Second},
	}
	for _, tt := range tests {
		if tt.key.Name() != tt.name || tt.key.TTL() != tt.ttl {
			t.Errorf("key %s (TTL %v), want %s (TTL %v)", tt.key.Name(), tt.key.TTL(), tt.name, tt.ttl)
		}
		if kind, _, err := r.Parse(tt.name); err != nil || kind != tt.kind {
			t.Errorf("Parse(%s) = %s, %v; want kind %s", tt.name, kind, err, tt.kind)
		}
	}
	if _, err := r.MarketWSGroup("g:1"); err == nil {
		t.Error("a group name with ':' was accepted")
	}
}
