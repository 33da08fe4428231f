package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
)

// ErrNoBalance is returned for an asset the account does not hold.
var ErrNoBalance = exchange.ErrNoBalance

// Positions returns the account's open positions: from Redis (or the
// memory tier while Redis is down), loaded from REST on a miss.
//
// A REST load is stored only while no node holds the stream (storesReads):
// the holder's fenced writes keep the key, and a REST snapshot stored
// outside them could overwrite a newer update the holder just merged.
// Otherwise a miss is loaded and answered, not stored, and a value no
// reader could use is a miss too, left for the holder's next write.
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
	if !n.storesReads(ctx) {
		ps, ok, err := cache.GetValidJSON[[]exchange.Position](ctx, n.cache, n.positionsKey)
		if err != nil || ok {
			return ps, err
		}
		v, err, _ := n.sf.Do("positions", func() (any, error) { return load(ctx) })
		ps, _ = v.([]exchange.Position)
		return ps, err
	}
	return cache.GetOrLoadJSON(ctx, n.cache, n.positionsKey, load)
}

// Balance returns one asset's balance: from Redis (or the memory tier
// while Redis is down), loaded from REST on a miss. What the balance key
// holds but no reader could use — over its limit, without a TTL, of
// another Redis type, not a balance's JSON — is a miss too. On a miss, an
// asset missing from the list of assets held (account_assets:{account})
// is ErrNoBalance without a request. However many assets miss at once,
// one REST load serves them.
//
// As for Positions, a REST load is stored only while no node holds the
// stream: then the balance asked for is loaded again and overwritten
// (cache.GetOrLoadValid), and the load stores the list of assets and
// every balance, so a stream of junk assets costs at most one signed
// call. While a node holds it, the holder's seeds keep the list and the
// balances, and a miss is answered from REST, not stored.
func (n *Node) Balance(ctx context.Context, asset string) (exchange.Balance, error) {
	k, err := n.keys.Balance(asset)
	if err != nil {
		return exchange.Balance{}, err
	}
	want := strings.ToUpper(asset)
	var b exchange.Balance
	if n.storesReads(ctx) {
		b, err = cache.GetOrLoadJSON(ctx, n.cache, k, func(ctx context.Context) (exchange.Balance, error) {
			return n.loadBalance(ctx, want)
		})
	} else {
		var ok bool
		if b, ok, err = cache.GetValidJSON[exchange.Balance](ctx, n.cache, k); err == nil && !ok {
			b, err = n.loadBalance(ctx, want)
		}
	}
	if errors.Is(err, ErrNoBalance) {
		return exchange.Balance{}, fmt.Errorf("%w: %s", ErrNoBalance, want)
	}
	return b, err
}

// loadBalance is Balance's load of asset want on a miss: ErrNoBalance
// without a request when the list of assets held lacks it, else from a
// REST load of the whole account (loadBalances).
func (n *Node) loadBalance(ctx context.Context, want string) (exchange.Balance, error) {
	if held, ok, err := cache.GetJSON[[]string](ctx, n.cache, n.assetsKey); err == nil && ok && !slices.Contains(held, want) {
		return exchange.Balance{}, ErrNoBalance
	}
	held, bs, err := n.loadBalances(ctx, true)
	if err == nil && bs == nil && slices.Contains(held, want) {
		// Held, its key gone meanwhile: load it after all.
		held, bs, err = n.loadBalances(ctx, false)
	}
	if err != nil {
		return exchange.Balance{}, err
	}
	if slices.Contains(held, want) {
		for _, b := range bs {
			if b.Asset == want {
				return b, nil
			}
		}
	}
	return exchange.Balance{}, ErrNoBalance
}

type loaded struct {
	held []string
	bs   []exchange.Balance
}

// loadBalances loads the account's balances from REST, once however many
// callers ask at once, and stores the list of assets held and every
// balance while no node holds the stream (storesReads). With recheck, a
// list stored since the caller looked answers instead (bs nil). The load
// runs with its own deadline, not cancelled when the first caller gives
// up.
func (n *Node) loadBalances(ctx context.Context, recheck bool) ([]string, []exchange.Balance, error) {
	name := "balances"
	if recheck {
		name = "balances?"
	}
	ch := n.sf.DoChan(name, func() (any, error) {
		if n.rest == nil {
			return nil, errors.New("account: no REST source")
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if recheck {
			if held, ok, err := cache.GetJSON[[]string](lctx, n.cache, n.assetsKey); err == nil && ok {
				return loaded{held: held}, nil
			}
		}
		bs, _, err := n.rest.Account(lctx)
		if err != nil {
			return nil, err
		}
		held := assetsOf(bs)
		if n.storesReads(lctx) {
			// Nobody merges the stream into them: keep the list and every
			// balance.
			if err := cache.SetJSON(lctx, n.cache, n.assetsKey, held); err != nil {
				n.cfg.Logger.Debug("account: cache the assets held", "err", err)
			}
			for _, b := range bs {
				if k, err := n.keys.Balance(b.Asset); err == nil {
					cache.SetJSON(lctx, n.cache, k, b)
				}
			}
		}
		return loaded{held: held, bs: bs}, nil
	})
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, nil, res.Err
		}
		l := res.Val.(loaded)
		return l.held, l.bs, nil
	}
}

// storesReads reports whether a REST read-through may be stored: only
// while no node holds the user data stream. The holder itself does not
// (its fenced writes under its write lock keep the keys, and a REST
// snapshot stored outside them could overwrite a newer delta), nor does
// any node while the stream's lease exists. Without Redis a node that
// does not hold the stream stores in its memory tier; a failed check
// stores nothing.
func (n *Node) storesReads(ctx context.Context) bool {
	if n.Streaming() {
		return false
	}
	cl := n.cache.Redis()
	if cl == nil {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
	defer cancel()
	held, err := cl.Do(cctx, cl.B().Exists().Key(n.leaseKey.Name()).Build()).AsInt64()
	return err == nil && held == 0
}
