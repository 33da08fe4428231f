package store

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Ticker is a ticker of one route (Jesse's [ts, last, high, low, volume]).
type Ticker struct {
	Timestamp int64 // Unix milliseconds
	// Last is the last price; High, Low and Volume those of the ticker's
	// rolling window.
	Last, High, Low, Volume float64
}

// tickerRoute holds the tickers of one route; mu guards ring.
type tickerRoute struct {
	mu   sync.RWMutex
	ring bounded[Ticker]
}

// spacing returns a throttle as milliseconds; a negative throttle is 0.
func spacing(d time.Duration) int64 {
	return max(d.Milliseconds(), 0)
}

// AddTicker stores a ticker when the route holds none or when its timestamp
// is at least Config.TickerThrottle after the newest one held (Jesse's 1 s
// throttle; the comparison uses ticker timestamps, not the clock, so a
// replay stores the same tickers). It reports whether the ticker was
// stored. A ticker older than the newest is never stored. Beyond
// Config.TickerCapacity the oldest ticker is dropped.
func (s *Store) AddTicker(exchange, symbol string, t Ticker) (bool, error) {
	k, err := route(exchange, symbol)
	if err != nil {
		return false, fmt.Errorf("store: add ticker: %w", err)
	}
	if t.Timestamp <= 0 || !finite(t.Last, t.High, t.Low, t.Volume) {
		return false, fmt.Errorf("store: add ticker %s %s: %w: %+v", exchange, symbol, ErrInvalid, t)
	}
	r := s.state().tickers.getOrCreate(k)
	r.mu.Lock()
	defer r.mu.Unlock()
	// The difference is negative for an older ticker, below any spacing.
	if last, ok := r.ring.last(); ok && t.Timestamp-last.Timestamp < spacing(s.cfg.TickerThrottle) {
		return false, nil
	}
	r.ring.push(t)
	return true, nil
}

// Tickers returns a copy of the newest n tickers of a route, oldest first;
// all of them when n ≤ 0.
func (s *Store) Tickers(exchange, symbol string, n int) []Ticker {
	r := s.state().tickers.get(routeKey{exchange, symbol})
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ring.lastN(n)
}

// CurrentTicker returns the newest ticker of a route.
func (s *Store) CurrentTicker(exchange, symbol string) (Ticker, bool) {
	r := s.state().tickers.get(routeKey{exchange, symbol})
	if r == nil {
		return Ticker{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ring.last()
}

// Trade is one public trade of a route.
type Trade struct {
	Timestamp  int64   // Unix milliseconds
	Price, Qty float64 // both positive
	// Buy is true when the taker bought.
	Buy bool
}

// TradeBucket aggregates the trades of one window (Jesse's
// [ts, vwap, buy_qty, sell_qty, buy_count, sell_count]).
type TradeBucket struct {
	// Timestamp is that of the first trade of the window.
	Timestamp int64
	// VWAP is the volume-weighted average price of the window's trades.
	VWAP float64
	// BuyQty and SellQty sum the quantities taken by buyers and sellers.
	BuyQty, SellQty float64
	// BuyCount and SellCount count those trades.
	BuyCount, SellCount int
}

// tradeAgg accumulates the trades of the pending window.
type tradeAgg struct {
	first       int64
	n           int
	sumPQ, sumQ float64
	buyQ, sellQ float64
	buyN, sellN int
}

func (a tradeAgg) bucket() TradeBucket {
	return TradeBucket{
		Timestamp: a.first, VWAP: a.sumPQ / a.sumQ,
		BuyQty: a.buyQ, SellQty: a.sellQ, BuyCount: a.buyN, SellCount: a.sellN,
	}
}

// tradeRoute holds the trade buckets of one route; mu guards all fields.
type tradeRoute struct {
	mu      sync.RWMutex
	ring    bounded[TradeBucket]
	pending tradeAgg
}

// AddTrade aggregates a trade, as Jesse does: trades within
// Config.TradeBucket of the first trade of the pending window join it; the
// first trade at or after that closes the window, which is stored as a
// TradeBucket (so a window is stored only when the next one starts), and
// opens a new one. Beyond Config.TradeCapacity the oldest bucket is
// dropped. Price and quantity must be positive and finite.
func (s *Store) AddTrade(exchange, symbol string, t Trade) error {
	k, err := route(exchange, symbol)
	if err != nil {
		return fmt.Errorf("store: add trade: %w", err)
	}
	if t.Timestamp <= 0 || !finite(t.Price, t.Qty) || t.Price <= 0 || t.Qty <= 0 {
		return fmt.Errorf("store: add trade %s %s: %w: %+v", exchange, symbol, ErrInvalid, t)
	}
	r := s.state().trades.getOrCreate(k)
	r.mu.Lock()
	defer r.mu.Unlock()
	a := &r.pending
	if a.n > 0 && t.Timestamp-a.first >= s.cfg.TradeBucket.Milliseconds() {
		r.ring.push(a.bucket())
		*a = tradeAgg{}
	}
	if a.n == 0 {
		a.first = t.Timestamp
	}
	a.n++
	a.sumPQ += t.Price * t.Qty
	a.sumQ += t.Qty
	if t.Buy {
		a.buyQ += t.Qty
		a.buyN++
	} else {
		a.sellQ += t.Qty
		a.sellN++
	}
	return nil
}

// TradeBuckets returns a copy of the newest n stored trade buckets of a
// route, oldest first; all of them when n ≤ 0.
func (s *Store) TradeBuckets(exchange, symbol string, n int) []TradeBucket {
	r := s.state().trades.get(routeKey{exchange, symbol})
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ring.lastN(n)
}

// CurrentTradeBucket returns the newest stored trade bucket of a route
// (Jesse's get_current_trade).
func (s *Store) CurrentTradeBucket(exchange, symbol string) (TradeBucket, bool) {
	r := s.state().trades.get(routeKey{exchange, symbol})
	if r == nil {
		return TradeBucket{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ring.last()
}

// PendingTradeBucket returns the aggregate of the window still open, which
// AddTrade stores when the next window starts.
func (s *Store) PendingTradeBucket(exchange, symbol string) (TradeBucket, bool) {
	r := s.state().trades.get(routeKey{exchange, symbol})
	if r == nil {
		return TradeBucket{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.pending.n == 0 {
		return TradeBucket{}, false
	}
	return r.pending.bucket(), true
}

// Level is one price level of an orderbook.
type Level struct {
	Price float64 // positive
	Qty   float64 // zero or positive
}

// Orderbook is the top of an orderbook: asks by ascending price, bids by
// descending price, best first.
type Orderbook struct {
	Timestamp int64 // Unix milliseconds
	// Asks by ascending price and Bids by descending price, best first,
	// at most Config.OrderbookDepth each.
	Asks, Bids []Level
}

func (ob Orderbook) clone() Orderbook {
	ob.Asks, ob.Bids = slices.Clone(ob.Asks), slices.Clone(ob.Bids)
	return ob
}

// checkSide validates one side; ascending for asks, descending for bids.
func checkSide(levels []Level, ascending bool) error {
	for i, l := range levels {
		if !finite(l.Price, l.Qty) || l.Price <= 0 || l.Qty < 0 {
			return fmt.Errorf("level %d %+v", i, l)
		}
		if i > 0 && (ascending && l.Price <= levels[i-1].Price || !ascending && l.Price >= levels[i-1].Price) {
			return fmt.Errorf("level %d price %v out of order", i, l.Price)
		}
	}
	return nil
}

// bookRoute holds the orderbooks of one route; mu guards all fields. The
// level slices it holds are its own copies and never modified.
type bookRoute struct {
	mu       sync.RWMutex
	latest   Orderbook
	hasBook  bool
	lastSnap int64 // timestamp of the newest snapshot
	ring     bounded[Orderbook]
}

// AddOrderbook stores the top Config.OrderbookDepth levels of each side of
// ob (a copy) as the current orderbook of the route, and also as a
// snapshot when none was taken at least Config.OrderbookThrottle before
// (Jesse's one snapshot per second). It reports whether a snapshot was
// taken. An orderbook older than the current one is ignored. Beyond
// Config.OrderbookCapacity the oldest snapshot is dropped.
func (s *Store) AddOrderbook(exchange, symbol string, ob Orderbook) (bool, error) {
	k, err := route(exchange, symbol)
	if err != nil {
		return false, fmt.Errorf("store: add orderbook: %w", err)
	}
	if ob.Timestamp <= 0 {
		return false, fmt.Errorf("store: add orderbook %s %s: %w: timestamp %d", exchange, symbol, ErrInvalid, ob.Timestamp)
	}
	if err := checkSide(ob.Asks, true); err != nil {
		return false, fmt.Errorf("store: add orderbook %s %s: %w: asks: %w", exchange, symbol, ErrInvalid, err)
	}
	if err := checkSide(ob.Bids, false); err != nil {
		return false, fmt.Errorf("store: add orderbook %s %s: %w: bids: %w", exchange, symbol, ErrInvalid, err)
	}
	depth := s.cfg.OrderbookDepth
	ob.Asks = slices.Clone(ob.Asks[:min(len(ob.Asks), depth)])
	ob.Bids = slices.Clone(ob.Bids[:min(len(ob.Bids), depth)])
	r := s.state().books.getOrCreate(k)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hasBook && ob.Timestamp < r.latest.Timestamp {
		return false, nil
	}
	r.latest, r.hasBook = ob, true
	if r.ring.len() > 0 && ob.Timestamp-r.lastSnap < spacing(s.cfg.OrderbookThrottle) {
		return false, nil
	}
	r.ring.push(ob)
	r.lastSnap = ob.Timestamp
	return true, nil
}

// CurrentOrderbook returns a copy of the newest orderbook of a route.
func (s *Store) CurrentOrderbook(exchange, symbol string) (Orderbook, bool) {
	r := s.state().books.get(routeKey{exchange, symbol})
	if r == nil {
		return Orderbook{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.latest.clone(), r.hasBook
}

// BestAsk returns the lowest ask of the newest orderbook of a route.
func (s *Store) BestAsk(exchange, symbol string) (Level, bool) {
	return s.best(exchange, symbol, true)
}

// BestBid returns the highest bid of the newest orderbook of a route.
func (s *Store) BestBid(exchange, symbol string) (Level, bool) {
	return s.best(exchange, symbol, false)
}

func (s *Store) best(exchange, symbol string, ask bool) (Level, bool) {
	r := s.state().books.get(routeKey{exchange, symbol})
	if r == nil {
		return Level{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	side := r.latest.Bids
	if ask {
		side = r.latest.Asks
	}
	if len(side) == 0 {
		return Level{}, false
	}
	return side[0], true
}

// Orderbooks returns copies of the newest n orderbook snapshots of a route,
// oldest first; all of them when n ≤ 0.
func (s *Store) Orderbooks(exchange, symbol string, n int) []Orderbook {
	r := s.state().books.get(routeKey{exchange, symbol})
	if r == nil {
		return nil
	}
	r.mu.RLock()
	out := r.ring.lastN(n)
	r.mu.RUnlock()
	for i := range out {
		out[i] = out[i].clone()
	}
	return out
}
