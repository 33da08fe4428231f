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
var ErrNoBalance = errors.New("account: no such asset")

// Positions returns the account's open positions: from Redis (or the
// memory tier while Redis is down), loaded from REST on a miss.
func (n *Node) Positions(ctx context.Context) ([]exchange.Position, error) {
	return cache.GetOrLoadJSON(ctx, n.cache, n.positionsKey, func(ctx context.Context) ([]exchange.Position, error) {
		if n.rest == nil {
			return nil, errors.New("account: no REST source")
		}
		_, ps, err := n.rest.Account(ctx)
		if ps == nil {
			ps = []exchange.Position{}
		}
		return mergePositions(nil, ps), err
	})
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
