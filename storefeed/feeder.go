package storefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/store"
)

// Defaults of Config.
const (
	DefaultExchange     = "binance"
	DefaultQueue        = 4096
	DefaultQueueBytes   = 64 << 20
	DefaultMaxFrame     = 1 << 20
	DefaultStaleAfter   = 15 * time.Second
	DefaultHeartbeatGap = 8 * time.Second
	DefaultResyncEvery  = time.Minute
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 5 * time.Second
	// MaxGapRetries bounds the resyncs of a series whose gap the node does
	// not serve yet (a node backfilling after Redis came back empty);
	// then the gap is given up and counted in Stats.GapsUnfilled.
	MaxGapRetries = 20
)

// Config configures a Feeder. Node, WSToken and Symbols are required; zero
// fields take the defaults.
type Config struct {
	// Node is the node's base URL, "http://127.0.0.1:8080"; its /ws is
	// dialled at the same host (ws:// or wss://).
	Node string
	// WSToken is the node's /ws token (serve --ws-token), sent as
	// "Authorization: Bearer <token>" with the upgrade.
	WSToken string
	// APIToken, when set, is sent as "Authorization: Bearer <token>" with
	// every HTTP request (a node that requires a token on its routes).
	APIToken string
	// Exchange names the Store's exchange and routes ("binance").
	Exchange string
	// Symbols are the symbols whose klines and tickers are kept.
	Symbols []string
	// Intervals are the kline intervals read from the node for each
	// symbol, as the node streams them ("1m", "5m"; default "1m").
	Intervals []string
	// Generate are timeframes the Store derives from 1m candles
	// (store.Store.EnableGeneration): "1m" must be in Intervals, and a
	// timeframe cannot be both read and derived.
	Generate []string
	// Assets are the balances read over HTTP at each resync (default
	// "USDT"); balance events of any asset are applied.
	Assets []string
	// Mode is the prefix of the node's event names ("live").
	Mode string
	// Queue and QueueBytes bound the frames received and not applied yet;
	// when full, a frame is dropped (Stats.EventsDropped) and, since it
	// may have been anything, the feeder resyncs over HTTP.
	Queue, QueueBytes int
	// MaxFrame bounds one WebSocket frame; a larger one ends the
	// connection (1009), which the feeder reconnects.
	MaxFrame int64
	// HTTPTimeout bounds each HTTP request and the wait for the
	// subscription's acknowledgement (10 s).
	HTTPTimeout time.Duration
	// StaleAfter: with no frame for this long (nodes send a heartbeat
	// every 5 s), the feeder pings the node: no pong ends the connection;
	// a pong means events are not flowing (the node's Redis is down), so
	// it resyncs over HTTP, and again after each StaleAfter of silence.
	StaleAfter time.Duration
	// HeartbeatGap: a heartbeat arriving this long after the previous one
	// of the same node means events were lost; the feeder resyncs.
	HeartbeatGap time.Duration
	// ResyncEvery re-reads positions, balances and tickers periodically, a
	// net under lost account events (negative: never).
	ResyncEvery time.Duration
	// BackoffMin and BackoffMax bound the jittered reconnection backoff,
	// which doubles from BackoffMin after each failed connection.
	BackoffMin, BackoffMax time.Duration
	// HTTPClient makes the HTTP requests (http.DefaultClient when nil).
	HTTPClient *http.Client
	// OnClosed, when set, is called by Run's goroutine after a closed
	// kline from an event was applied: the Store holds it. It must not
	// block; it may read the Store.
	OnClosed func(symbol, interval string, openTime int64)
	// Logger receives connection and resync news (slog.Default() when nil).
	Logger *slog.Logger
}

// Feeder keeps a store.Store current from a tradecache node. New builds it;
// Run feeds the Store until its context ends.
type Feeder struct {
	cfg    Config
	st     *store.Store
	client *Client
	wsURL  string
	events []string // subscribed event names

	running atomic.Bool
	ready   chan struct{}
	stats   counters

	// Run's goroutine owns everything below.
	series    map[seriesKey]*series
	order     []*series // series in configuration order
	posTime   map[string]int64
	balTime   map[string]int64
	lastPrice map[string]float64
	beats     map[string]beat
	acct      resyncState // positions and balances
	noAccount bool
	tickers   bool // tickers to read at the next flush
	lastPoll  time.Time
	readyDone bool
}

type seriesKey struct{ symbol, interval string }

// series is the feeder's view of one candle series read from the node.
type series struct {
	symbol, interval string
	tf               int64 // milliseconds
	smallest         bool  // the symbol's shortest interval: its closes price positions
	newest           int64 // open time of the newest candle held; 0 none
	closed           bool  // the newest is closed
	trades           int64 // the newest's trade count
	resyncState
	from int64 // resync until the node's rows reach back to this open time
}

// resyncState is what is owed a resync: when it is due and how often it
// has failed.
type resyncState struct {
	dirty    bool
	attempts int
	due      time.Time
}

type beat struct {
	at     time.Time
	tier   string
	uptime float64
}

// New checks cfg and returns a Feeder of st. It enables the generated
// timeframes on st; it does no I/O and starts no goroutine.
func New(st *store.Store, cfg Config) (*Feeder, error) {
	if st == nil {
		return nil, errors.New("storefeed: nil Store")
	}
	if cfg.WSToken == "" {
		return nil, errors.New("storefeed: WSToken is required (the node's --ws-token)")
	}
	if len(cfg.Symbols) == 0 {
		return nil, errors.New("storefeed: no symbols")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if len(cfg.Intervals) == 0 {
		cfg.Intervals = []string{"1m"}
	}
	if len(cfg.Assets) == 0 {
		cfg.Assets = []string{"USDT"}
	}
	if cfg.Mode == "" {
		cfg.Mode = bus.DefaultMode
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	def(&cfg.HTTPTimeout, 10*time.Second)
	def(&cfg.StaleAfter, DefaultStaleAfter)
	def(&cfg.HeartbeatGap, DefaultHeartbeatGap)
	def(&cfg.ResyncEvery, DefaultResyncEvery)
	def(&cfg.BackoffMin, DefaultBackoffMin)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	if cfg.BackoffMax < cfg.BackoffMin {
		return nil, errors.New("storefeed: BackoffMax below BackoffMin")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Symbols = slices.Clone(cfg.Symbols)
	for i, s := range cfg.Symbols {
		cfg.Symbols[i] = strings.ToUpper(s)
	}
	client, err := NewClient(cfg.Node, cfg.APIToken, cfg.HTTPClient, cfg.HTTPTimeout)
	if err != nil {
		return nil, err
	}
	f := &Feeder{
		cfg: cfg, st: st, client: client,
		wsURL:     "ws" + strings.TrimPrefix(client.Base(), "http") + "/ws",
		ready:     make(chan struct{}),
		series:    map[seriesKey]*series{},
		posTime:   map[string]int64{},
		balTime:   map[string]int64{},
		lastPrice: map[string]float64{},
		beats:     map[string]beat{},
	}
	for _, sym := range cfg.Symbols {
		var shortest *series
		for _, iv := range cfg.Intervals {
			d, err := store.TimeframeDuration(iv)
			if err != nil {
				return nil, fmt.Errorf("storefeed: interval %q: %w", iv, err)
			}
			k := seriesKey{sym, iv}
			if f.series[k] != nil {
				return nil, fmt.Errorf("storefeed: interval %s given twice", iv)
			}
			s := &series{symbol: sym, interval: iv, tf: d.Milliseconds()}
			f.series[k] = s
			f.order = append(f.order, s)
			if shortest == nil || s.tf < shortest.tf {
				shortest = s
			}
		}
		shortest.smallest = true
		if len(cfg.Generate) > 0 {
			if f.series[seriesKey{sym, "1m"}] == nil {
				return nil, errors.New("storefeed: Generate derives from 1m: add 1m to Intervals")
			}
			for _, g := range cfg.Generate {
				gd, err := store.TimeframeDuration(g)
				if err != nil {
					return nil, fmt.Errorf("storefeed: generate %q: %w", g, err)
				}
				for _, iv := range cfg.Intervals {
					if d, _ := store.TimeframeDuration(iv); d == gd {
						return nil, fmt.Errorf("storefeed: %s is both read (Intervals) and derived (Generate)", g)
					}
				}
			}
			if err := st.EnableGeneration(cfg.Exchange, sym, cfg.Generate...); err != nil {
				return nil, fmt.Errorf("storefeed: %w", err)
			}
		}
	}
	for _, name := range []string{"kline", "ticker", "orders", "positions", "balance", "account_snapshot", "info_log", "error_log", "heartbeat", "cache_tier"} {
		f.events = append(f.events, cfg.Mode+"."+name)
	}
	return f, nil
}

// Store is the Store the feeder keeps current.
func (f *Feeder) Store() *store.Store { return f.st }

// Client is the feeder's client of the node's HTTP API.
func (f *Feeder) Client() *Client { return f.client }

// Ready is closed once the Store was first warmed up from the node: every
// series read (as far as the node serves it), the tickers, and the
// positions and balances (unless the node has no account).
func (f *Feeder) Ready() <-chan struct{} { return f.ready }

var errStale = errors.New("storefeed: no frame and no pong from the node")

// Run feeds the Store until ctx ends, then returns nil. It connects to the
// node's /ws, subscribes, warms the Store over HTTP and applies events;
// after any reconnection, and whenever events may have been lost (a gap
// in a kline series, a dropped frame, a heartbeat gap, a node whose cache
// came back to Redis, a silent connection), it re-reads over HTTP what it
// may have missed. Reconnections back off from BackoffMin to BackoffMax,
// jittered. It returns an error only when the node refuses a token
// (ErrUnauthorized), or when called twice.
func (f *Feeder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("storefeed: Run called twice")
	}
	if _, ok := f.st.Exchange(f.cfg.Exchange); !ok {
		if err := f.st.SetExchange(store.Exchange{Name: f.cfg.Exchange, Type: "futures", SettlementCurrency: f.cfg.Assets[0], Balances: map[string]float64{}}); err != nil {
			return fmt.Errorf("storefeed: %w", err)
		}
	}
	for _, s := range f.order {
		// A Store filled beforehand is resynced from its newest candle.
		if c, ok := f.st.CurrentCandle(f.cfg.Exchange, s.symbol, s.interval); ok {
			s.newest = int64(c[store.ColTimestamp])
		}
	}
	attempt := 0
	for {
		start := time.Now()
		err := f.session(ctx)
		f.stats.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnauthorized) {
			return err
		}
		if time.Since(start) > f.cfg.BackoffMax {
			attempt = 0
		}
		d := min(f.cfg.BackoffMin<<min(attempt, 20), f.cfg.BackoffMax)
		d = d/2 + rand.N(d/2+1)
		attempt++
		f.cfg.Logger.Warn("storefeed: connection to the node ended; reconnecting", "node", f.client.Base(), "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session is one connection to /ws: dial, subscribe, then apply frames
// (and resync over HTTP) until the connection or ctx ends.
func (f *Feeder) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, f.cfg.HTTPTimeout)
	conn, res, err := websocket.Dial(dctx, f.wsURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + f.cfg.WSToken}},
	})
	cancel()
	if err != nil {
		f.stats.dialErrors.Add(1)
		if res != nil && (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden) {
			return fmt.Errorf("%w: /ws answered %d", ErrUnauthorized, res.StatusCode)
		}
		return fmt.Errorf("storefeed: dial %s: %w", f.wsURL, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(f.cfg.MaxFrame)
	if f.stats.connects.Add(1) > 1 {
		f.stats.reconnects.Add(1)
	}
	f.stats.connected.Store(true)
	clear(f.beats) // gaps are measured within a connection

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	r := &reader{q: make(chan []byte, f.cfg.Queue), errc: make(chan error, 1), maxBytes: int64(f.cfg.QueueBytes), st: &f.stats}
	r.last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Go(func() { r.run(sctx, conn) })
	defer func() {
		stop()
		conn.CloseNow()
		wg.Wait()
		f.stats.queued.Store(0)
	}()

	sub := fmt.Sprintf(`{"type":"subscribe","events":["%s"]}`, strings.Join(f.events, `","`))
	wctx, cancel := context.WithTimeout(ctx, f.cfg.HTTPTimeout)
	err = conn.Write(wctx, websocket.MessageText, []byte(sub))
	cancel()
	if err != nil {
		return fmt.Errorf("storefeed: subscribe: %w", err)
	}
	subscribed := false
	subDeadline := time.Now().Add(f.cfg.HTTPTimeout)
	tick := time.NewTicker(min(time.Second, f.cfg.StaleAfter/2))
	defer tick.Stop()
	for {
		if r.overflow.Swap(false) && subscribed {
			f.resyncAll("events dropped: the queue was full")
		}
		if subscribed {
			if err := f.flush(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.errc:
			return fmt.Errorf("storefeed: read: %w", err)
		case b := <-r.q:
			r.bytes.Add(-int64(len(b)))
			f.stats.queued.Add(-1)
			if f.handle(b) && !subscribed {
				subscribed = true
				f.cfg.Logger.Info("storefeed: subscribed; reading what the Store may lack", "node", f.client.Base())
				f.resyncAll("connected")
			}
		case now := <-tick.C:
			if !subscribed {
				if now.After(subDeadline) {
					return errors.New("storefeed: the node did not acknowledge the subscription")
				}
				continue
			}
			if now.Sub(time.Unix(0, r.last.Load())) > f.cfg.StaleAfter {
				pctx, cancel := context.WithTimeout(ctx, min(5*time.Second, f.cfg.StaleAfter))
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					f.stats.staleReconnects.Add(1)
					return errStale
				}
				f.stats.silences.Add(1)
				r.last.Store(now.UnixNano())
				f.resyncAll("no events: the node is silent")
			}
			if f.cfg.ResyncEvery > 0 && now.Sub(f.lastPoll) > f.cfg.ResyncEvery {
				f.lastPoll = now
				f.acct.mark(now)
				f.tickers = true
			}
		}
	}
}

// reader moves frames from the connection to the bounded queue.
type reader struct {
	q        chan []byte
	errc     chan error
	bytes    atomic.Int64
	maxBytes int64
	last     atomic.Int64 // unix nanos of the newest frame
	overflow atomic.Bool
	st       *counters
}

func (r *reader) run(ctx context.Context, conn *websocket.Conn) {
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			r.errc <- err
			return
		}
		r.last.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			r.st.malformed.Add(1)
			continue
		}
		n := int64(len(b))
		if r.bytes.Add(n) > r.maxBytes {
			r.bytes.Add(-n)
			r.drop()
			continue
		}
		r.st.queued.Add(1)
		select {
		case r.q <- b:
		default:
			r.bytes.Add(-n)
			r.st.queued.Add(-1)
			r.drop()
		}
	}
}

func (r *reader) drop() {
	r.st.dropped.Add(1)
	r.overflow.Store(true)
}
