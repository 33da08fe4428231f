package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Config configures a simulated exchange. The zero value of every field
// means its default.
type Config struct {
	// Symbols are the USDⓈ-M perpetuals to list (default BTCUSDT, ETHUSDT).
	// Each is upper-case letters/digits ending in USDT or USDC. BTCUSDT,
	// ETHUSDT, BNBUSDT, SOLUSDT, XRPUSDT and DOGEUSDT carry Binance's real
	// precisions; others get seeded ones.
	Symbols []string
	// Seed selects the market: the same seed gives the same klines.
	Seed int64
	// Speed makes the sim clock run Speed times faster than real time
	// (default 1). At 60 a 1m kline closes every real second.
	Speed float64
	// Start is the sim clock at New (default: the real time at New).
	Start time.Time

	// KlineUpdateEvery is the real-time period of kline stream updates
	// (default 250 ms).
	KlineUpdateEvery time.Duration
	// TickerEvery is the real-time period of <symbol>@ticker (default 2 s).
	TickerEvery time.Duration
	// TickerArrEvery is the real-time period of !ticker@arr (default 1 s).
	TickerArrEvery time.Duration
	// BookTickerEvery is the real-time period of <symbol>@bookTicker and
	// !bookTicker (default 100 ms).
	BookTickerEvery time.Duration

	// PingInterval is how often the server pings each connection (default
	// 3 min); PongTimeout how long it waits for the pong before dropping the
	// connection (default 10 min).
	PingInterval time.Duration
	PongTimeout  time.Duration
	// ConnLifetime closes a connection (1001) after this long (default 24 h).
	ConnLifetime time.Duration

	// MaxStreams is the subscription limit per connection (default 1024).
	MaxStreams int
	// MaxIncoming is the incoming message limit per connection and second
	// (default 10): a token bucket of that size refilled at that rate.
	// Exceeding it closes the connection with 1008 "Too many requests".
	MaxIncoming int
	// WriteQueue bounds each connection's outgoing queue, in messages
	// (default 1024). A connection whose queue is full is closed with 1008.
	WriteQueue int
	// WriteTimeout bounds one frame write (default 10 s); a connection that
	// exceeds it is dropped.
	WriteTimeout time.Duration

	// WeightLimit is the REST request weight allowed per client IP and UTC
	// minute of the real wall clock (default 2400).
	WeightLimit int
	// History is how many klines of each interval exist before the bar
	// containing Start (default 1500), never earlier than the listing.
	History int
	// ListedFor is how long before Start the symbols were listed (default
	// 4 × 365 days), rounded down to a UTC midnight. It bounds history and
	// is exchangeInfo's onboardDate.
	ListedFor time.Duration

	// Accounts are the accounts the signed endpoints and the user data
	// stream serve, by API key.
	Accounts []Account
	// ListenKeyTTL is how long a listenKey lives without a keepalive, in
	// real time (default 60 min).
	ListenKeyTTL time.Duration

	// Chaos, when set, puts FaultChaos in force from New with these knobs;
	// they are also POST /sim/fault?mode=chaos's defaults.
	Chaos *Chaos
}

func (c *Config) setDefaults() {
	if len(c.Symbols) == 0 {
		c.Symbols = []string{"BTCUSDT", "ETHUSDT"}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	def(&c.KlineUpdateEvery, 250*time.Millisecond)
	def(&c.TickerEvery, 2*time.Second)
	def(&c.TickerArrEvery, time.Second)
	def(&c.BookTickerEvery, 100*time.Millisecond)
	def(&c.PingInterval, 3*time.Minute)
	def(&c.PongTimeout, 10*time.Minute)
	def(&c.ConnLifetime, 24*time.Hour)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.ListedFor, 4*365*24*time.Hour)
	def(&c.ListenKeyTTL, time.Hour)
	defInt(&c.MaxStreams, 1024)
	defInt(&c.MaxIncoming, 10)
	defInt(&c.WriteQueue, 1024)
	defInt(&c.WeightLimit, 2400)
	defInt(&c.History, 1500)
}

// Server is a simulated Binance USDⓈ-M futures exchange. Create it with New,
// serve Handler, and call Run to drive the streams.
//
// Goroutines: Run's (computes every stream payload and enqueues it); per
// connection, the handler's (reads requests), a writer (owns the socket's
// writes and pings) and at most one ping waiter; all end with the
// connection; one timer per live listenKey. Locks: the account lock
// (acctMu) is taken first, then the hub lock (connections,
// subscriptions), then the listenKey lock; none is held while blocking;
// the fault, weight, REST counter, refusal, pinned-price and per-symbol
// memo locks are leaves.
type Server struct {
	cfg     Config
	syms    []*symbol
	byName  map[string]*symbol // BTCUSDT
	byLower map[string]*symbol // btcusdt
	origin  time.Time          // real time at New; carries the monotonic reading
	startMs int64
	listMs  int64
	handler http.Handler
	running atomic.Bool

	hub     hub
	fault   faultState
	weights weightTable
	rest    restCounters
	refusal refusalState
	accountState

	msgsSent  atomic.Int64
	bytesSent atomic.Int64
	slowDrops atomic.Int64
}

// New returns a simulated exchange. It starts no goroutine.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Speed < 0 {
		return nil, fmt.Errorf("sim: negative Speed %v", cfg.Speed)
	}
	now := time.Now()
	if cfg.Start.IsZero() {
		cfg.Start = now
	}
	cfg.Start = cfg.Start.Truncate(time.Millisecond)
	s := &Server{
		cfg:     cfg,
		byName:  map[string]*symbol{},
		byLower: map[string]*symbol{},
		origin:  now,
		startMs: cfg.Start.UnixMilli(),
	}
	// The listing is at a UTC midnight, so that two runs started on the
	// same day with the same seed list the same onboardDate and history.
	s.listMs = max(s.startMs-cfg.ListedFor.Milliseconds(), 0) / dayMs * dayMs
	for i, name := range cfg.Symbols {
		if _, dup := s.byName[name]; dup {
			return nil, fmt.Errorf("sim: duplicate symbol %q", name)
		}
		sy, err := newSymbol(name, i, cfg.Seed)
		if err != nil {
			return nil, err
		}
		s.syms = append(s.syms, sy)
		s.byName[name] = sy
		s.byLower[sy.lower] = sy
	}
	accts, err := newAccounts(cfg.Accounts, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	s.accounts = accts
	s.keys.init()
	s.hub.init()
	s.weights.used = map[string]int{}
	s.initChaos()
	s.handler = s.routes()
	return s, nil
}

// Now returns the sim clock: Start plus Speed times the real time elapsed
// since New.
func (s *Server) Now() time.Time {
	return s.cfg.Start.Add(time.Duration(float64(time.Since(s.origin)) * s.cfg.Speed))
}

func (s *Server) nowMs() int64 { return s.Now().UnixMilli() }

// Handler returns the HTTP handler serving REST, the WebSocket streams and
// the /sim control endpoints.
func (s *Server) Handler() http.Handler { return s.handler }

// Run drives the market streams until ctx ends, then closes every
// WebSocket connection (1001) and returns nil. REST works without Run;
// market streams deliver nothing until it runs (user data, pushed by
// orders, does not need it). Run may not run twice at once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run is already running")
	}
	defer s.running.Store(false)
	kt := time.NewTicker(s.cfg.KlineUpdateEvery)
	defer kt.Stop()
	tt := time.NewTicker(s.cfg.TickerEvery)
	defer tt.Stop()
	at := time.NewTicker(s.cfg.TickerArrEvery)
	defer at.Stop()
	bt := time.NewTicker(s.cfg.BookTickerEvery)
	defer bt.Stop()
	var chaos sync.WaitGroup
	defer chaos.Wait()
	chaos.Go(func() { s.driveChaos(ctx) })
	prev := s.nowMs()
	for {
		select {
		case <-ctx.Done():
			s.closeAll(websocket.StatusGoingAway)
			return nil
		case <-kt.C:
			prev = s.tickKlines(prev)
		case <-tt.C:
			s.tickTickers()
		case <-at.C:
			s.tickTickerArr()
		case <-bt.C:
			s.tickBook()
		}
	}
}

// Serve serves on ln and runs the market until ctx ends. It logs nothing.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	wg.Wait()
	if err == nil {
		if err = <-errc; errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	return err
}

// ListenAndServe listens on addr (e.g. "127.0.0.1:8090") and serves until
// ctx ends. It prints nothing.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Stats are counters of the WebSocket side.
type Stats struct {
	Connections     int   `json:"connections"`
	Subscriptions   int   `json:"subscriptions"` // summed over connections
	Streams         int   `json:"streams"`       // distinct deliverable streams with subscribers
	MessagesSent    int64 `json:"messagesSent"`  // frames written, control answers included
	BytesSent       int64 `json:"bytesSent"`
	SlowDisconnects int64 `json:"slowDisconnects"` // closed for a full queue or a write timeout
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	st := Stats{
		MessagesSent:    s.msgsSent.Load(),
		BytesSent:       s.bytesSent.Load(),
		SlowDisconnects: s.slowDrops.Load(),
	}
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	st.Connections = len(s.hub.clients)
	st.Streams = len(s.hub.topics)
	for c := range s.hub.clients {
		st.Subscriptions += len(c.subs)
	}
	return st
}
