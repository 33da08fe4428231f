package store

import "sync"

// ClosedTrade is a completed trade: a position opened and closed.
type ClosedTrade struct {
	ID string // identifies the trade
	// Exchange and Symbol name the route of the trade.
	Exchange, Symbol string
	// Type is "long" or "short".
	Type string
	// Qty is the quantity traded, unsigned.
	Qty float64
	// EntryPrice and ExitPrice are the average entry and exit prices.
	EntryPrice, ExitPrice float64
	Leverage              float64 // leverage used, 1 for spot
	// PNL is the realised profit net of Fee, in the settlement currency.
	PNL, Fee float64
	// OpenedAt and ClosedAt are Unix milliseconds.
	OpenedAt, ClosedAt int64
}

// closedTradesState guards the completed-trade list.
type closedTradesState struct {
	mu   sync.RWMutex
	ring bounded[ClosedTrade]
}

// AddClosedTrade appends a completed trade, dropping the oldest beyond
// Config.ClosedTradeCapacity.
func (s *Store) AddClosedTrade(t ClosedTrade) {
	c := &s.state().closed
	c.mu.Lock()
	c.ring.push(t)
	c.mu.Unlock()
}

// ClosedTrades returns a copy of the newest n completed trades, oldest
// first; all of them when n ≤ 0.
func (s *Store) ClosedTrades(n int) []ClosedTrade {
	c := &s.state().closed
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ring.lastN(n)
}

// ClosedTradeCount returns the number of completed trades held and the
// number added since New or Reset, dropped ones included.
func (s *Store) ClosedTradeCount() (held int, added uint64) {
	c := &s.state().closed
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ring.len(), uint64(c.ring.len()) + c.ring.dropped
}
