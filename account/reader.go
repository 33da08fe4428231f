package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
)

// ErrNoBalance is returned for an asset the account does not hold.
var ErrNoBalance = exchange.ErrNoBalance

// Positions returns the account's open positions: from Redis (or the
// memory tier while Redis is down), loaded from REST on a miss.
//
// While another node holds the stream (its lease exists), a miss is loaded
// but not stored: a REST snapshot stored unfenced could overwrite a newer
// update the holder just merged. With no holder, the loaded value is stored.
func (n *Node) Positions(ctx context.Context) ([]exchange.Position, error) {
	load := func(ctx context.Context) ([]exchange.Position, error) {
		if n.rest == nil {
			return nil, errors.New("account: no REST source")
		}
		_, ps, err := n.rest.Account(ctx)
		if ps == nil {
			ps = []exchange.Position{}
		}
		return mergePositions(nil, ps), err
	}
	if cl := n.cache.Redis(); cl != nil && !n.Streaming() {
		held, err := cl.Do(ctx, cl.B().Exists().Key(n.leaseKey.Name()).Build()).AsInt64()
		if err == nil && held == 1 {
			// Another node holds the stream: read, load on a miss, store nothing.
			ps, ok, err := cache.GetJSON[[]exchange.Position](ctx, n.cache, n.positionsKey)
			if err != nil || ok {
				return ps, err
			}
			v, err, _ := n.sf.Do("positions", func() (any, error) { return load(ctx) })
			ps, _ = v.([]exchange.Position)
			return ps, err
		}
	}
	return cache.GetOrLoadJSON(ctx, n.cache, n.positionsKey, load)
}

// Balance returns one asset's balance, read-through like Positions.
func (n *Node) Balance(ctx context.Context, asset string) (exchange.Balance, error) {
	k, err := n.keys.Balance(asset)
	if err != nil {
		return exchange.Balance{}, err
	}
	want := strings.ToUpper(asset)
	return cache.GetOrLoadJSON(ctx, n.cache, k, func(ctx context.Context) (exchange.Balance, error) {
		if n.rest == nil {
			return exchange.Balance{}, errors.New("account: no REST source")
		}
		bs, _, err := n.rest.Account(ctx)
		if err != nil {
			return exchange.Balance{}, err
		}
		for _, b := range bs {
			if b.Asset == want {
				return b, nil
			}
		}
		return exchange.Balance{}, fmt.Errorf("%w: %s", ErrNoBalance, want)
	})
}
