package store

import (
	"fmt"
	"slices"
	"sync"
)

// OrderStatus is the status of an order, spelled as in Jesse.
type OrderStatus string

// Order statuses. ACTIVE, QUEUED and PARTIALLY FILLED orders are active.
const (
	OrderActive          OrderStatus = "ACTIVE"
	OrderQueued          OrderStatus = "QUEUED"
	OrderPartiallyFilled OrderStatus = "PARTIALLY FILLED"
	OrderExecuted        OrderStatus = "EXECUTED"
	OrderCanceled        OrderStatus = "CANCELED"
	OrderRejected        OrderStatus = "REJECTED"
	OrderLiquidated      OrderStatus = "LIQUIDATED"
)

// IsActive reports whether an order with this status may still fill.
func (s OrderStatus) IsActive() bool {
	return s == OrderActive || s == OrderQueued || s == OrderPartiallyFilled
}

func (s OrderStatus) valid() bool {
	switch s {
	case OrderActive, OrderQueued, OrderPartiallyFilled, OrderExecuted, OrderCanceled, OrderRejected, OrderLiquidated:
		return true
	}
	return false
}

// Order is an order of one route: data only.
type Order struct {
	// ID is the client-side id, unique per route.
	ID string
	// ExchangeID is the id the exchange gave the order, unique per route
	// when not empty.
	ExchangeID string
	// Exchange and Symbol name the route the order belongs to.
	Exchange, Symbol string
	// Side is "buy" or "sell"; Type "market", "limit", "stop"…
	Side, Type string
	// Qty is the ordered quantity, FilledQty the part filled so far.
	Qty, FilledQty float64
	// Price is the limit or stop price; zero for a market order.
	Price float64
	// Status must be one of the OrderStatus constants; it decides whether
	// the order is active.
	Status OrderStatus
	// ReduceOnly marks an order that may only reduce a position.
	ReduceOnly bool
	// CreatedAt, ExecutedAt and CanceledAt are Unix milliseconds.
	CreatedAt, ExecutedAt, CanceledAt int64
}

func (o Order) check() error {
	if _, err := route(o.Exchange, o.Symbol); err != nil {
		return err
	}
	if o.ID == "" {
		return fmt.Errorf("%w: empty order id", ErrInvalid)
	}
	if !o.Status.valid() {
		return fmt.Errorf("%w: order status %q", ErrInvalid, o.Status)
	}
	if !finite(o.Qty, o.FilledQty, o.Price) {
		return fmt.Errorf("%w: non-finite quantity or price", ErrInvalid)
	}
	return nil
}

// orderRoute holds the orders of one route, oldest first; mu guards all
// fields. The maps index the same *Order values as orders; the values never
// leave the store, readers get copies.
type orderRoute struct {
	mu     sync.RWMutex
	orders []*Order
	ids    map[string]*Order // by ID
	exIDs  map[string]*Order // by non-empty ExchangeID
}

// AddOrder adds an order to its route. An order whose ID, or whose
// non-empty ExchangeID, equals (exactly) that of an order held for the
// route is refused with ErrDuplicateOrder. Beyond
// Config.OrderHistoryCapacity the oldest non-active order is dropped.
func (s *Store) AddOrder(o Order) error {
	if err := o.check(); err != nil {
		return fmt.Errorf("store: add order: %w", err)
	}
	r := s.state().orders.getOrCreate(routeKey{o.Exchange, o.Symbol})
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.ids[o.ID]; dup {
		return fmt.Errorf("store: add order %s %s: %w: id %q", o.Exchange, o.Symbol, ErrDuplicateOrder, o.ID)
	}
	if _, dup := r.exIDs[o.ExchangeID]; dup && o.ExchangeID != "" {
		return fmt.Errorf("store: add order %s %s: %w: exchange id %q", o.Exchange, o.Symbol, ErrDuplicateOrder, o.ExchangeID)
	}
	p := new(Order)
	*p = o
	r.orders = append(r.orders, p)
	r.ids[o.ID] = p
	if o.ExchangeID != "" {
		r.exIDs[o.ExchangeID] = p
	}
	r.trim(s.cfg.OrderHistoryCapacity)
	return nil
}

// UpdateOrder replaces the order of the same route and ID. The exchange id
// may change (an order gets one once submitted) but not to one held by
// another order of the route.
func (s *Store) UpdateOrder(o Order) error {
	if err := o.check(); err != nil {
		return fmt.Errorf("store: update order: %w", err)
	}
	r := s.state().orders.get(routeKey{o.Exchange, o.Symbol})
	if r == nil {
		return fmt.Errorf("store: update order %s %s %q: %w", o.Exchange, o.Symbol, o.ID, ErrNotFound)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.ids[o.ID]
	if p == nil {
		return fmt.Errorf("store: update order %s %s %q: %w", o.Exchange, o.Symbol, o.ID, ErrNotFound)
	}
	if o.ExchangeID != p.ExchangeID {
		if other := r.exIDs[o.ExchangeID]; other != nil && o.ExchangeID != "" {
			return fmt.Errorf("store: update order %s %s %q: %w: exchange id %q held by %q",
				o.Exchange, o.Symbol, o.ID, ErrDuplicateOrder, o.ExchangeID, other.ID)
		}
		delete(r.exIDs, p.ExchangeID)
		if o.ExchangeID != "" {
			r.exIDs[o.ExchangeID] = p
		}
	}
	*p = o
	r.trim(s.cfg.OrderHistoryCapacity)
	return nil
}

// RemoveOrder removes an order of a route by ID.
func (s *Store) RemoveOrder(exchange, symbol, id string) error {
	r := s.state().orders.get(routeKey{exchange, symbol})
	if r == nil {
		return fmt.Errorf("store: remove order %s %s %q: %w", exchange, symbol, id, ErrNotFound)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.ids[id]
	if p == nil {
		return fmt.Errorf("store: remove order %s %s %q: %w", exchange, symbol, id, ErrNotFound)
	}
	r.remove(slices.Index(r.orders, p))
	return nil
}

// ClearOrders removes every order of a route, active ones included (Jesse's
// reset_trade_orders).
func (s *Store) ClearOrders(exchange, symbol string) {
	r := s.state().orders.get(routeKey{exchange, symbol})
	if r == nil {
		return
	}
	r.mu.Lock()
	r.orders = nil
	clear(r.ids)
	clear(r.exIDs)
	r.mu.Unlock()
}

// remove removes the order at index i.
func (r *orderRoute) remove(i int) {
	p := r.orders[i]
	r.orders = slices.Delete(r.orders, i, i+1)
	delete(r.ids, p.ID)
	if p.ExchangeID != "" {
		delete(r.exIDs, p.ExchangeID)
	}
}

// trim drops the oldest non-active orders while more than capacity are
// held.
func (r *orderRoute) trim(capacity int) {
	for len(r.orders) > capacity {
		i := slices.IndexFunc(r.orders, func(o *Order) bool { return !o.Status.IsActive() })
		if i < 0 {
			return
		}
		r.remove(i)
	}
}

// Order returns the order of a route with this ID (exact match).
func (s *Store) Order(exchange, symbol, id string) (Order, bool) {
	return s.lookupOrder(exchange, symbol, id, false)
}

// OrderByExchangeID returns the order of a route with this exchange id
// (exact match).
func (s *Store) OrderByExchangeID(exchange, symbol, exchangeID string) (Order, bool) {
	return s.lookupOrder(exchange, symbol, exchangeID, true)
}

func (s *Store) lookupOrder(exchange, symbol, id string, byExchangeID bool) (Order, bool) {
	r := s.state().orders.get(routeKey{exchange, symbol})
	if r == nil || id == "" {
		return Order{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.ids
	if byExchangeID {
		m = r.exIDs
	}
	if p := m[id]; p != nil {
		return *p, true
	}
	return Order{}, false
}

// Orders returns copies of the orders of a route, active and past, oldest
// first.
func (s *Store) Orders(exchange, symbol string) []Order {
	return s.listOrders(exchange, symbol, false)
}

// ActiveOrders returns copies of the active orders of a route, oldest
// first.
func (s *Store) ActiveOrders(exchange, symbol string) []Order {
	return s.listOrders(exchange, symbol, true)
}

func (s *Store) listOrders(exchange, symbol string, activeOnly bool) []Order {
	r := s.state().orders.get(routeKey{exchange, symbol})
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Order
	for _, p := range r.orders {
		if !activeOnly || p.Status.IsActive() {
			out = append(out, *p)
		}
	}
	return out
}

// ActiveOrderCount returns the number of active orders of all routes.
func (s *Store) ActiveOrderCount() int {
	n := 0
	for _, r := range s.state().orders.values() {
		r.mu.RLock()
		for _, p := range r.orders {
			if p.Status.IsActive() {
				n++
			}
		}
		r.mu.RUnlock()
	}
	return n
}
