package store

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// Position is the position of one route.
type Position struct {
	// Exchange and Symbol name the route of the position.
	Exchange, Symbol string
	// Qty is signed: positive long, negative short, zero closed.
	Qty float64
	// EntryPrice is the average entry price; CurrentPrice the last price
	// seen.
	EntryPrice, CurrentPrice float64
	Leverage                 float64 // leverage, 1 for spot
	LiquidationPrice         float64 // zero when unknown or none
	// OpenedAt and UpdatedAt are Unix milliseconds.
	OpenedAt, UpdatedAt int64
}

// IsOpen reports whether the position holds a quantity.
func (p Position) IsOpen() bool { return p.Qty != 0 }

// positionSlot is the position of one route; mu guards it.
type positionSlot struct {
	mu  sync.RWMutex
	p   Position
	set bool
}

// SetPosition stores the position of the route (p.Exchange, p.Symbol).
func (s *Store) SetPosition(p Position) error {
	if _, err := route(p.Exchange, p.Symbol); err != nil {
		return fmt.Errorf("store: set position: %w", err)
	}
	if !finite(p.Qty, p.EntryPrice, p.CurrentPrice, p.Leverage, p.LiquidationPrice) {
		return fmt.Errorf("store: set position %s %s: %w: non-finite value", p.Exchange, p.Symbol, ErrInvalid)
	}
	slot := s.state().positions.getOrCreate(routeKey{p.Exchange, p.Symbol})
	slot.mu.Lock()
	slot.p, slot.set = p, true
	slot.mu.Unlock()
	return nil
}

// SetCurrentPrice updates the current price of a position already set,
// without a read-modify-write race with other updates of the position.
func (s *Store) SetCurrentPrice(exchange, symbol string, price float64, ts int64) error {
	if !finite(price) {
		return fmt.Errorf("store: set current price %s %s: %w: %v", exchange, symbol, ErrInvalid, price)
	}
	slot := s.state().positions.get(routeKey{exchange, symbol})
	if slot != nil {
		slot.mu.Lock()
		defer slot.mu.Unlock()
	}
	if slot == nil || !slot.set {
		return fmt.Errorf("store: set current price %s %s: position: %w", exchange, symbol, ErrNotFound)
	}
	slot.p.CurrentPrice, slot.p.UpdatedAt = price, ts
	return nil
}

// Position returns the position of a route.
func (s *Store) Position(exchange, symbol string) (Position, bool) {
	slot := s.state().positions.get(routeKey{exchange, symbol})
	if slot == nil {
		return Position{}, false
	}
	slot.mu.RLock()
	defer slot.mu.RUnlock()
	return slot.p, slot.set
}

// OpenPositions returns the open positions sorted by exchange and symbol.
func (s *Store) OpenPositions() []Position {
	var out []Position
	for _, slot := range s.state().positions.values() {
		slot.mu.RLock()
		if slot.set && slot.p.IsOpen() {
			out = append(out, slot.p)
		}
		slot.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b Position) int {
		return cmp.Or(cmp.Compare(a.Exchange, b.Exchange), cmp.Compare(a.Symbol, b.Symbol))
	})
	return out
}
