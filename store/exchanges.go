package store

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Exchange is the state of one exchange account: data only, no behaviour.
type Exchange struct {
	// Name identifies the exchange ("binance"); it is the key of SetExchange.
	Name string
	// Type is "spot" or "futures".
	Type string
	// SettlementCurrency is the asset balances are settled in ("USDT").
	SettlementCurrency string
	// FeeRate is the fee per unit of traded value (0.0004 for 4 bp).
	FeeRate float64
	// Leverage and LeverageMode ("cross" or "isolated") apply to futures.
	Leverage     float64 // futures leverage (3 for 3×)
	LeverageMode string  // "cross" or "isolated"
	// StartingBalance is the balance in SettlementCurrency at start.
	StartingBalance float64
	// Balances is the wallet balance per asset. The store keeps its own
	// copy: changing the map after SetExchange, or the one Exchange
	// returns, does not change the store.
	Balances map[string]float64
}

func (e Exchange) clone() Exchange {
	e.Balances = maps.Clone(e.Balances)
	return e
}

// exchangesState guards the exchanges with one mutex: they change rarely
// and each access copies one small struct.
type exchangesState struct {
	mu sync.RWMutex
	m  map[string]Exchange
}

// SetExchange stores e under e.Name, replacing any previous state.
func (s *Store) SetExchange(e Exchange) error {
	if e.Name == "" {
		return fmt.Errorf("store: set exchange: %w: empty name", ErrInvalid)
	}
	e = e.clone()
	x := &s.state().exchanges
	x.mu.Lock()
	x.m[e.Name] = e
	x.mu.Unlock()
	return nil
}

// SetBalance sets the balance of one asset of an exchange already set,
// without a read-modify-write race with other balance updates.
func (s *Store) SetBalance(exchange, asset string, balance float64) error {
	if asset == "" || !finite(balance) {
		return fmt.Errorf("store: set balance %s: %w: asset %q, balance %v", exchange, ErrInvalid, asset, balance)
	}
	x := &s.state().exchanges
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.m[exchange]
	if !ok {
		return fmt.Errorf("store: set balance: exchange %q: %w", exchange, ErrNotFound)
	}
	if e.Balances == nil {
		e.Balances = make(map[string]float64)
	}
	// e.Balances is the store's own map, written only under x.mu.Lock and
	// cloned before it leaves the store.
	e.Balances[asset] = balance
	x.m[exchange] = e
	return nil
}

// Exchange returns a copy of the state of an exchange.
func (s *Store) Exchange(name string) (Exchange, bool) {
	x := &s.state().exchanges
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.m[name]
	return e.clone(), ok
}

// Exchanges returns copies of all exchanges, sorted by name.
func (s *Store) Exchanges() []Exchange {
	x := &s.state().exchanges
	x.mu.RLock()
	out := make([]Exchange, 0, len(x.m))
	for _, e := range x.m {
		out = append(out, e.clone())
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b Exchange) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
