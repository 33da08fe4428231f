package keyspace_test

import (
	"fmt"
	"time"

	"github.com/tradecache/tradecache/keyspace"
)

func Example() {
	reg := keyspace.MustNew(keyspace.Config{Prefix: "prod:"})

	k, err := reg.Kline("btcusdt", "1h")
	if err != nil {
		panic(err)
	}
	fmt.Println(k.Name(), k.TTL())

	_, err = reg.Kline("BTC USDT", "1h")
	fmt.Println(err != nil)
	// Output:
	// prod:market:kline:BTCUSDT:1h 2h0m0s
	// true
}

// A program declares its own key kinds with their TTLs, the way a trading
// system keeps its recommendation results in Redis.
func ExampleRegistry_Register() {
	reg := keyspace.MustNew(keyspace.Config{})
	err := reg.Register(keyspace.Kind{
		Name:    "recommendation",
		Pattern: "ats:recommendation:{SYMBOL}",
		TTL:     10 * time.Minute,
		Value:   "JSON object: the latest recommendation for the symbol",
	})
	if err != nil {
		panic(err)
	}
	k, _ := reg.Key("recommendation", "ethusdt")
	fmt.Println(k.Name(), k.TTL())

	err = reg.Register(keyspace.Kind{Name: "forever", Pattern: "forever:{id}"})
	fmt.Println(err)
	// Output:
	// ats:recommendation:ETHUSDT 10m0s
	// keyspace: register "forever": keyspace: a Redis key needs a positive TTL (got 0s)
}
