package cache_test

import (
	"context"
	"fmt"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/keyspace"
)

// A cache without Redis runs on the bounded memory tier; with
// Config.Redis set (cache.RedisOptions("redis://…")) and Run going, the same
// calls go to Redis and fall back to memory by themselves.
func Example() {
	ctx := context.Background()
	reg := keyspace.MustNew(keyspace.Config{})
	c, err := cache.New(cache.Config{})
	if err != nil {
		panic(err)
	}
	key, _ := reg.Ticker24h("BTCUSDT")

	_, ok, _ := c.Get(ctx, key)
	fmt.Println("cached:", ok)

	type ticker struct {
		LastPrice string `json:"lastPrice"`
	}
	loads := 0
	for range 3 {
		t, err := cache.GetOrLoadJSON(ctx, c, key, func(ctx context.Context) (ticker, error) {
			loads++ // e.g. GET /fapi/v1/ticker/24hr?symbol=BTCUSDT
			return ticker{LastPrice: "97000.5"}, nil
		})
		if err != nil {
			panic(err)
		}
		fmt.Println(t.LastPrice)
	}
	fmt.Println("loads:", loads, "tier:", c.Tier(), "TTL:", key.TTL())
	// Output:
	// cached: false
	// 97000.5
	// 97000.5
	// 97000.5
	// loads: 1 tier: memory TTL: 30s
}
