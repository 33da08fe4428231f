package store

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Store is the runtime state of one trading process. Create it with New;
// the zero Store is not usable. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	caps   [tfEnd]int // candle capacity per timeframe
	bucket [tfEnd]bucketing
	st     atomic.Pointer[state]
}

// state is everything Reset discards. Each part has its own lock; see the
// package documentation for what guards what.
type state struct {
	app       appState
	vars      varsState
	logs      logsState
	closed    closedTradesState
	exchanges exchangesState
	orders    *registry[routeKey, orderRoute]
	positions *registry[routeKey, positionSlot]
	candles   *registry[seriesKey, series]
	tickers   *registry[routeKey, tickerRoute]
	trades    *registry[routeKey, tradeRoute]
	books     *registry[routeKey, bookRoute]
}

// New returns an empty store bounded by cfg. Zero fields of cfg take their
// defaults (see Config); New does not fail, use Config.Validate to reject a
// configuration it would correct.
func New(cfg Config) *Store {
	s := &Store{}
	s.cfg, s.caps = cfg.withDefaults()
	for tf := tf1m; tf < tfEnd; tf++ {
		s.bucket[tf] = bucketingFor(tf, s.cfg.MondayWeeks)
	}
	s.st.Store(s.newState())
	return s
}

// Config returns the configuration in effect, defaults filled in.
func (s *Store) Config() Config {
	c := s.cfg
	c.CandleCapacityByTimeframe = make(map[string]int, len(s.cfg.CandleCapacityByTimeframe))
	for k, v := range s.cfg.CandleCapacityByTimeframe {
		c.CandleCapacityByTimeframe[k] = v
	}
	return c
}

// Reset discards all state: candles and their generation settings, orders,
// positions, trades, logs, exchanges, vars, app state. It swaps in a fresh
// state in one atomic store, so a method that starts after Reset returns
// sees only the new state. A write running concurrently with Reset may land
// in the discarded state: it is ordered before the Reset.
func (s *Store) Reset() {
	s.st.Store(s.newState())
}

func (s *Store) newState() *state {
	cfg := s.cfg
	return &state{
		app:    appState{daily: newBounded[DailyBalance](cfg.DailyBalanceCapacity)},
		vars:   varsState{m: make(map[string]any)},
		logs:   logsState{info: newBounded[LogEntry](cfg.LogCapacity), errors: newBounded[LogEntry](cfg.LogCapacity)},
		closed: closedTradesState{ring: newBounded[ClosedTrade](cfg.ClosedTradeCapacity)},
		exchanges: exchangesState{
			m: make(map[string]Exchange),
		},
		orders: newRegistry(func(routeKey) *orderRoute {
			return &orderRoute{ids: make(map[string]*Order), exIDs: make(map[string]*Order)}
		}),
		positions: newRegistry(func(routeKey) *positionSlot { return &positionSlot{} }),
		candles: newRegistry(func(k seriesKey) *series {
			return &series{tf: k.tf, ring: newBounded[Candle](s.caps[k.tf])}
		}),
		tickers: newRegistry(func(routeKey) *tickerRoute {
			return &tickerRoute{ring: newBounded[Ticker](cfg.TickerCapacity)}
		}),
		trades: newRegistry(func(routeKey) *tradeRoute {
			return &tradeRoute{ring: newBounded[TradeBucket](cfg.TradeCapacity)}
		}),
		books: newRegistry(func(routeKey) *bookRoute {
			return &bookRoute{ring: newBounded[Orderbook](cfg.OrderbookCapacity)}
		}),
	}
}

// state returns the current state.
func (s *Store) state() *state { return s.st.Load() }

// route validates and returns the key of an exchange-symbol route.
func route(exchange, symbol string) (routeKey, error) {
	if exchange == "" || symbol == "" {
		return routeKey{}, fmt.Errorf("%w: empty exchange or symbol (%q, %q)", ErrInvalid, exchange, symbol)
	}
	return routeKey{exchange, symbol}, nil
}

// finite reports whether every value is neither NaN nor infinite.
func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// varsState holds the free-form variables (Jesse's store.vars, behind
// Strategy.shared_vars).
type varsState struct {
	mu sync.RWMutex
	m  map[string]any
}

// SetVar stores v under key, replacing any previous value. The store keeps
// v as given and hands the same value to every reader: store values that
// are not mutated afterwards (numbers, strings, structs, or slices and maps
// treated as immutable).
func (s *Store) SetVar(key string, v any) {
	vs := &s.state().vars
	vs.mu.Lock()
	vs.m[key] = v
	vs.mu.Unlock()
}

// Var returns the value stored under key.
func (s *Store) Var(key string) (any, bool) {
	vs := &s.state().vars
	vs.mu.RLock()
	v, ok := vs.m[key]
	vs.mu.RUnlock()
	return v, ok
}

// DeleteVar removes key.
func (s *Store) DeleteVar(key string) {
	vs := &s.state().vars
	vs.mu.Lock()
	delete(vs.m, key)
	vs.mu.Unlock()
}
