package binance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/tradecache/tradecache/exchange"
)

// Default stream settings: Binance's USDⓈ-M stream host and its documented
// per-connection limits.
const (
	DefaultStreamURL         = "wss://fstream.binance.com"
	DefaultMaxStreamsPerConn = 1024 // Binance's limit; the 1025th loses all
	DefaultMaxSubscribeBatch = 200
	DefaultControlRate       = 5.0 // control messages per second (limit 10)
	DefaultPingInterval      = 20 * time.Second
	DefaultStaleAfter        = 30 * time.Second
	DefaultRotate            = 23*time.Hour + 50*time.Minute
	DefaultRotateOverlap     = 2 * time.Second
	DefaultBackoffMin        = 250 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultHealthyAfter      = time.Minute
	DefaultMaxFrame          = 4 << 20
	DefaultDialTimeout       = 10 * time.Second
	DefaultAckTimeout        = 10 * time.Second

	// A user data stream's own defaults (the package doc, "User data
	// stream", says why).
	DefaultUserPingInterval = 5 * time.Second
	DefaultPongTimeout      = 5 * time.Second
	DefaultUserBackoffMax   = 5 * time.Second

	maxControlRate = 10.0
)

// Routed base paths (2026 URL split).
const (
	PathMarket = "/market"
	PathPublic = "/public"
)

// StreamConfig configures Streams. Zero values take the defaults.
type StreamConfig struct {
	// BaseURL is the host to connect to; the routed path and
	// "/stream?streams=" are appended. Default wss://fstream.binance.com.
	BaseURL string
	// Streams are the stream names: "btcusdt@kline_1m", "!ticker@arr",
	// "btcusdt@bookTicker"… The symbol part must be lower case (Binance
	// acknowledges upper case and then sends nothing). Each name is routed
	// to /public (bookTicker, depth) or /market (everything else).
	// Duplicates are dropped. Only kline, 24hrTicker (single and
	// !ticker@arr) and bookTicker payloads are decoded; frames of other
	// subscribed streams are counted as Unknown and dropped.
	Streams []string

	// OnEvent receives every decoded event. It is called from the reading
	// goroutine of a connection; calls are serialised per connection slot
	// but several slots (paths, or >1024 streams) call it concurrently, so
	// it must be safe for concurrent use. It must return quickly: while it
	// runs, that connection reads nothing, answers no pings, and after
	// StaleAfter it is reset as dead. Hand heavy work to a bounded queue.
	OnEvent func(exchange.Event)
	// OnConnect is called after each (re)connection of a slot has been
	// subscribed (all SUBSCRIBE acks in): the consumer backfills from REST
	// what it may have missed. Events may arrive before it. It is not called
	// for a make-before-break rotation, which leaves no gap.
	OnConnect func(path string)
	// OnDisconnect is called once after each OnConnect when that
	// connection is lost (err says why; ctx's error at shutdown).
	OnDisconnect func(path string, err error)

	MaxStreamsPerConn int           // default 1024 (the maximum)
	MaxSubscribeBatch int           // names per SUBSCRIBE; default 200
	ControlRate       float64       // control messages/s per connection; default 5, at most 10
	PingInterval      time.Duration // client pings; default 20 s
	StaleAfter        time.Duration // no frame of any kind for this long → reset; default 30 s
	Rotate            time.Duration // replace connections this old; default 23h50m
	RotateOverlap     time.Duration // both connections deliver this long; default 2 s
	BackoffMin        time.Duration // default 250 ms
	BackoffMax        time.Duration // default 30 s
	HealthyAfter      time.Duration // a connection up this long resets the backoff; default 1 min
	MaxFrame          int64         // larger messages are counted and reset the connection; default 4 MiB
	DialTimeout       time.Duration // handshake; default 10 s
	AckTimeout        time.Duration // wait for SUBSCRIBE acks; default 10 s
	HTTPClient        *http.Client  // for the handshake; default http.DefaultClient
	// ReadBatch is how long a connection whose socket a read drained
	// waits before reading again, so that the frames arriving meanwhile
	// are read in one go (see batchConn); default DefaultReadBatch,
	// negative: read at once.
	ReadBatch time.Duration
	UserAgent string
	Logger    *slog.Logger // default: discard
}

// Stats are cumulative counters of a Streams (a snapshot).
type Stats struct {
	Frames        int64 // messages read (data, acks, everything)
	KlineEvents   int64 // events delivered, by kind
	TickerEvents  int64
	TickersEvents int64 // !ticker@arr arrays
	BookEvents    int64
	Malformed     int64 // invalid JSON, wrong types, missing fields: dropped
	Unknown       int64 // unknown event types or streams, unmatched acks: dropped
	Oversized     int64 // messages above MaxFrame (connection reset)
	Duplicates    int64 // dropped during a rotation's overlap
	Connects      int64 // connections subscribed (including rotations)
	Reconnects    int64 // connections re-established after a loss
	Rotations     int64 // make-before-break replacements
	StaleResets   int64 // connections reset for silence
	DialErrors    int64 // failed dials or subscriptions
	ControlErrors int64 // {"error":..} replies and ack timeouts
	Connections   int64 // connections currently open (gauge)
}

type counters struct {
	frames, kline, ticker, tickers, book               atomic.Int64
	malformed, unknown, oversized, duplicates          atomic.Int64
	connects, reconnects, rotations, stale, dialErrors atomic.Int64
	controlErrors, connections                         atomic.Int64
}

// Streams maintains the market-stream connections of a fixed set of
// streams. Create it with NewStreams and run it with Run.
type Streams struct {
	cfg     StreamConfig
	log     *slog.Logger
	slots   []*slot
	ids     atomic.Int64
	c       counters
	running atomic.Bool
	connIDs atomic.Uint64
}

// NewStreams validates cfg and returns Streams. Stream names with upper
// case symbols, spaces or characters that would break the URL are
// rejected.
func NewStreams(cfg StreamConfig) (*Streams, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultStreamURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if !strings.Contains(cfg.BaseURL, "://") {
		return nil, fmt.Errorf("binance: stream base URL %q has no scheme", cfg.BaseURL)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.MaxStreamsPerConn <= 0 || cfg.MaxStreamsPerConn > DefaultMaxStreamsPerConn {
		cfg.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if cfg.MaxSubscribeBatch <= 0 || cfg.MaxSubscribeBatch > DefaultMaxSubscribeBatch {
		cfg.MaxSubscribeBatch = DefaultMaxSubscribeBatch
	}
	if cfg.ControlRate <= 0 {
		cfg.ControlRate = DefaultControlRate
	}
	cfg.ControlRate = min(cfg.ControlRate, maxControlRate)
	def(&cfg.PingInterval, DefaultPingInterval)
	def(&cfg.StaleAfter, DefaultStaleAfter)
	def(&cfg.Rotate, DefaultRotate)
	def(&cfg.RotateOverlap, DefaultRotateOverlap)
	def(&cfg.BackoffMin, DefaultBackoffMin)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	def(&cfg.HealthyAfter, DefaultHealthyAfter)
	def(&cfg.DialTimeout, DefaultDialTimeout)
	def(&cfg.AckTimeout, DefaultAckTimeout)
	if cfg.ReadBatch == 0 {
		cfg.ReadBatch = DefaultReadBatch
	}
	cfg.HTTPClient = batchingClient(cfg.HTTPClient, cfg.ReadBatch)
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	if cfg.StaleAfter <= cfg.PingInterval {
		return nil, fmt.Errorf("binance: StaleAfter %v must exceed PingInterval %v (a quiet connection is only kept alive by pongs)", cfg.StaleAfter, cfg.PingInterval)
	}
	if cfg.RotateOverlap >= cfg.Rotate {
		return nil, fmt.Errorf("binance: RotateOverlap %v must be shorter than Rotate %v", cfg.RotateOverlap, cfg.Rotate)
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	s := &Streams{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	byPath := map[string][]string{}
	var paths []string
	seen := map[string]bool{}
	for _, name := range cfg.Streams {
		if err := ValidateStreamName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		p := RoutePath(name)
		if byPath[p] == nil {
			paths = append(paths, p)
		}
		byPath[p] = append(byPath[p], name)
	}
	for _, p := range paths {
		names := byPath[p]
		for i := 0; i < len(names); i += cfg.MaxStreamsPerConn {
			chunk := names[i:min(i+cfg.MaxStreamsPerConn, len(names))]
			sl := &slot{
				s:       s,
				path:    p,
				name:    fmt.Sprintf("%s#%d", p, i/cfg.MaxStreamsPerConn),
				streams: chunk,
				set:     make(map[string]string, len(chunk)),
			}
			for _, n := range chunk {
				sl.set[n] = n
			}
			s.slots = append(s.slots, sl)
		}
	}
	return s, nil
}

// ValidateStreamName reports whether name is a usable stream name:
// "<symbol>@<type>" with a lower-case symbol, or a "!…" all-market name.
func ValidateStreamName(name string) error {
	if !validStreamName(name) || strings.ContainsAny(name, "/?&#%\"\\") {
		return fmt.Errorf("binance: invalid stream name %q", name)
	}
	if name[0] == '!' {
		return nil
	}
	at := strings.IndexByte(name, '@')
	if at <= 0 || at == len(name)-1 {
		return fmt.Errorf("binance: stream name %q: want <symbol>@<type>", name)
	}
	if strings.IndexFunc(name[:at], unicode.IsUpper) >= 0 {
		return fmt.Errorf("binance: stream name %q: symbol must be lower case (upper case is acknowledged and then silent)", name)
	}
	return nil
}

// RoutePath returns the routed base path of a stream: /public for the
// high-frequency book streams (bookTicker, !bookTicker, depth, RPI depth),
// /market for everything else.
func RoutePath(name string) string {
	typ := name
	if at := strings.IndexByte(name, '@'); at >= 0 {
		typ = name[at+1:]
	}
	switch {
	case name == "!bookTicker",
		strings.HasPrefix(typ, "bookTicker"),
		strings.HasPrefix(typ, "depth"),
		strings.HasPrefix(typ, "rpiDepth"):
		return PathPublic
	}
	return PathMarket
}

// Stats returns a snapshot of the counters.
func (s *Streams) Stats() Stats {
	c := &s.c
	return Stats{
		Frames:        c.frames.Load(),
		KlineEvents:   c.kline.Load(),
		TickerEvents:  c.ticker.Load(),
		TickersEvents: c.tickers.Load(),
		BookEvents:    c.book.Load(),
		Malformed:     c.malformed.Load(),
		Unknown:       c.unknown.Load(),
		Oversized:     c.oversized.Load(),
		Duplicates:    c.duplicates.Load(),
		Connects:      c.connects.Load(),
		Reconnects:    c.reconnects.Load(),
		Rotations:     c.rotations.Load(),
		StaleResets:   c.stale.Load(),
		DialErrors:    c.dialErrors.Load(),
		ControlErrors: c.controlErrors.Load(),
		Connections:   c.connections.Load(),
	}
}

// Connections returns the number of connections Run maintains (one per
// path, more when a path has more than MaxStreamsPerConn streams).
func (s *Streams) Connections() int { return len(s.slots) }

// Run connects every slot and keeps it connected until ctx ends; then it
// closes all connections, waits for every goroutine it started and
// returns nil. It returns an error only if called twice.
func (s *Streams) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("binance: Streams.Run called twice")
	}
	var wg sync.WaitGroup
	for _, sl := range s.slots {
		wg.Go(func() { sl.run(ctx) })
	}
	wg.Wait()
	<-ctx.Done() // with no streams there is nothing to wait for but ctx
	return nil
}

// slot is one logical connection: a path and up to MaxStreamsPerConn
// streams. It owns its current connection and, while rotating, the
// replacement.
type slot struct {
	s       *Streams
	path    string
	name    string // path#index, for logs
	streams []string
	set     map[string]string // each of streams, to itself: a frame's stream name without allocating

	mu      sync.Mutex // serialises delivery; guards the fields below
	overlap bool
	seen    map[string]*seenState
}

// seenState tracks what was delivered per stream during an overlap.
type seenState struct {
	e      int64
	conn   uint64
	closed [32]int64 // open times of closed klines delivered (ring; a lagging connection replays them)
	nc     int
}

func (sl *slot) run(ctx context.Context) {
	s := sl.s
	bo := backoff{min: s.cfg.BackoffMin, max: s.cfg.BackoffMax}
	connected := false
	for ctx.Err() == nil {
		wc, err := sl.establish(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.c.dialErrors.Add(1)
			d := bo.next()
			s.log.Warn("binance stream connect failed", "conn", sl.name, "err", err, "retry_in", d)
			if !sleepCtx(ctx, d) {
				return
			}
			continue
		}
		if connected {
			s.c.reconnects.Add(1)
		}
		connected = true
		s.log.Info("binance stream connected", "conn", sl.name, "streams", len(sl.streams))
		if s.cfg.OnConnect != nil {
			s.cfg.OnConnect(sl.path)
		}
		err = sl.serve(ctx, wc, &bo)
		if s.cfg.OnDisconnect != nil {
			s.cfg.OnDisconnect(sl.path, err)
		}
		if ctx.Err() != nil {
			return
		}
		d := bo.next()
		s.log.Warn("binance stream disconnected", "conn", sl.name, "err", err, "retry_in", d)
		if !sleepCtx(ctx, d) {
			return
		}
	}
}

var errRotated = errors.New("rotated")

// serve keeps the slot's connection alive, rotating it when old, until it
// is lost (its error) or ctx ends (ctx's error). It closes what it owns.
func (sl *slot) serve(ctx context.Context, cur *wsConn, bo *backoff) error {
	s := sl.s
	rotate := time.NewTimer(s.cfg.Rotate)
	defer rotate.Stop()
	healthy := time.NewTimer(s.cfg.HealthyAfter)
	defer healthy.Stop()
	// catchUp ends the duplicate filter a while after a rotation: the
	// replacement may lag behind the connection it replaced.
	catchUp := time.NewTimer(time.Hour)
	catchUp.Stop()
	defer catchUp.Stop()
	defer sl.setOverlap(false)
	for {
		select {
		case <-ctx.Done():
			cur.close(ctx.Err())
			return ctx.Err()
		case <-cur.done:
			return cur.err
		case <-healthy.C:
			bo.reset()
		case <-catchUp.C:
			sl.setOverlap(false)
		case <-rotate.C:
			next, gap, err := sl.replace(ctx, cur)
			if err != nil {
				if ctx.Err() != nil {
					cur.close(ctx.Err())
					return ctx.Err()
				}
				s.c.dialErrors.Add(1)
				d := bo.next()
				s.log.Warn("binance stream rotation failed; keeping the old connection", "conn", sl.name, "err", err, "retry_in", d)
				rotate.Reset(d)
				continue
			}
			if gap {
				// The old connection died before the replacement was
				// subscribed: report it as a loss and a reconnect.
				s.c.reconnects.Add(1)
				if s.cfg.OnDisconnect != nil {
					s.cfg.OnDisconnect(sl.path, cur.err)
				}
				if s.cfg.OnConnect != nil {
					s.cfg.OnConnect(sl.path)
				}
			} else {
				s.c.rotations.Add(1)
				s.log.Info("binance stream rotated", "conn", sl.name)
			}
			cur = next
			catchUp.Reset(s.cfg.RotateOverlap)
			rotate.Reset(s.cfg.Rotate)
		}
	}
}

// replace opens and subscribes a replacement for cur, lets both deliver
// for RotateOverlap and closes cur (make-before-break). gap reports that
// cur had died before the replacement was subscribed. On success the
// duplicate filter stays on; serve turns it off after a catch-up window.
func (sl *slot) replace(ctx context.Context, cur *wsConn) (next *wsConn, gap bool, err error) {
	sl.setOverlap(true)
	next, err = sl.establish(ctx)
	if err != nil {
		sl.setOverlap(false)
		return nil, false, err
	}
	select {
	case <-cur.done:
		return next, true, nil
	default:
	}
	t := time.NewTimer(sl.s.cfg.RotateOverlap)
	defer t.Stop()
	select {
	case <-ctx.Done():
		next.close(ctx.Err())
		sl.setOverlap(false)
		return nil, false, ctx.Err()
	case <-next.done:
		sl.setOverlap(false)
		return nil, false, fmt.Errorf("replacement lost during overlap: %w", next.err)
	case <-t.C:
	case <-cur.done:
	}
	cur.close(errRotated)
	return next, false, nil
}

func (sl *slot) setOverlap(on bool) {
	sl.mu.Lock()
	sl.overlap = on
	sl.seen = nil
	sl.mu.Unlock()
}

// establish dials and subscribes one connection of the slot.
func (sl *slot) establish(ctx context.Context) (*wsConn, error) {
	wc, err := dialConn(ctx, sl)
	if err != nil {
		return nil, err
	}
	if err := wc.subscribe(ctx, sl.streams); err != nil {
		wc.close(err)
		return nil, err
	}
	sl.s.c.connects.Add(1)
	return wc, nil
}

// deliver passes ev to OnEvent, serialised per slot. During a rotation's
// overlap both connections deliver, and for RotateOverlap after it the
// replacement may still lag behind what the old one delivered. Meanwhile
// events already delivered by the other connection, and events older than
// the newest delivered on their stream, are dropped (all these streams
// carry snapshots, superseded by the next event), except closed klines,
// which are only dropped as exact duplicates so that no bar's final update
// is lost.
func (sl *slot) deliver(conn uint64, ev exchange.Event) {
	s := sl.s
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.overlap && !sl.admit(conn, ev) {
		s.c.duplicates.Add(1)
		return
	}
	switch ev.Kind {
	case exchange.EventKline:
		s.c.kline.Add(1)
	case exchange.EventTicker:
		s.c.ticker.Add(1)
	case exchange.EventTickers:
		s.c.tickers.Add(1)
	case exchange.EventBookTicker:
		s.c.book.Add(1)
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

func (sl *slot) admit(conn uint64, ev exchange.Event) bool {
	if ev.EventTime <= 0 {
		return true
	}
	if sl.seen == nil {
		sl.seen = map[string]*seenState{}
	}
	st := sl.seen[ev.Stream]
	if st == nil {
		st = &seenState{e: ev.EventTime, conn: conn}
		sl.seen[ev.Stream] = st
		st.noteClosed(ev)
		return true
	}
	if ev.Kind == exchange.EventKline && ev.Kline.Closed {
		for _, t := range st.closed[:min(st.nc, len(st.closed))] {
			if t == ev.Kline.OpenTime {
				return false
			}
		}
		st.noteClosed(ev)
		if ev.EventTime > st.e {
			st.e, st.conn = ev.EventTime, conn
		}
		return true
	}
	if ev.EventTime < st.e || (ev.EventTime == st.e && conn != st.conn) {
		return false
	}
	st.e, st.conn = ev.EventTime, conn
	return true
}

func (st *seenState) noteClosed(ev exchange.Event) {
	if ev.Kind == exchange.EventKline && ev.Kline.Closed {
		st.closed[st.nc%len(st.closed)] = ev.Kline.OpenTime
		st.nc++
	}
}

// backoff is capped exponential backoff with "equal jitter": the n-th
// delay is uniform in [d/2, d] with d = min(max, min·2ⁿ).
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 32 {
		if e := b.min << b.n; e > 0 && e < b.max {
			d = e
			b.n++
		}
	}
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleepCtx sleeps d or until ctx ends; it reports whether ctx is alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
