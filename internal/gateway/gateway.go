package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/internal/bearer"
)

// Config configures a Gateway. Zero durations and sizes take the defaults.
type Config struct {
	// Tokens are the accepted tokens (at least one; --ws-token).
	Tokens []string
	// Origins are the Origin host patterns allowed besides the request's
	// own host (coder/websocket AcceptOptions.OriginPatterns, path.Match
	// syntax, e.g. "dashboard.example.com" or "*.example.com"). Empty:
	// same-origin only. Requests without an Origin header (programs) pass.
	Origins []string

	AuthTimeout  time.Duration // first-message auth deadline for browsers; default 5 s
	ClientQueue  int           // messages waiting per client; default 256
	MessageLimit int64         // largest client message in bytes; default 4096
	MaxClients   int           // authenticated connections; default 10000
	MaxPatterns  int           // patterns in a client's subscription set; default 64
	WriteTimeout time.Duration // longest write of one message; default 5 s
	PingInterval time.Duration // server ping period; default 20 s
	IdleTimeout  time.Duration // close after this long without a pong or message; default 60 s
	// MaxPending bounds the connections still authenticating (upgraded
	// without a Bearer header, first message not yet read); default 64.
	// They are counted apart from MaxClients, so sockets that never
	// authenticate cannot lock out clients that do.
	MaxPending int
	// FlushInterval paces writes to a busy client: at most one batch (one
	// system call) per interval, so fan-out costs a write per client per
	// interval rather than per event, at the price of up to one interval of
	// delay. An event after a quiet interval is written at once. Default
	// 20 ms; negative: no pacing.
	FlushInterval time.Duration

	// Coalesce reports whether an event may be coalesced in a slow client's
	// queue, and its stream key: a queued event with the same key is
	// replaced in place by the newer one instead of the client being
	// disconnected. Default: DefaultCoalesce (market data). It is called
	// once per event, from the bus's goroutine, and must be fast.
	Coalesce func(ev bus.Event) (key string, ok bool)

	// SubscribeLinger is how long the gateway stays subscribed to the bus
	// once no client has a non-empty subscription set (default 1 min;
	// negative: subscribed from Run to its end). It subscribes again
	// when a client subscribes. Only for a bus.ReadySubscriber; any other
	// Subscriber is subscribed from Run to its end.
	SubscribeLinger time.Duration
	// SubscribeWait bounds how long a "subscribed" reply waits for the
	// bus to confirm the gateway's subscription (default 2 s): with Redis
	// unreachable the reply goes anyway, and events flow once it is back.
	SubscribeWait time.Duration

	// Logger receives debug lines about disconnects. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.AuthTimeout, 5*time.Second)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.PingInterval, 20*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.FlushInterval, 20*time.Millisecond)
	def(&c.SubscribeLinger, time.Minute)
	def(&c.SubscribeWait, 2*time.Second)
	if c.ClientQueue == 0 {
		c.ClientQueue = 256
	}
	if c.MessageLimit == 0 {
		c.MessageLimit = 4096
	}
	if c.MaxClients == 0 {
		c.MaxClients = 10000
	}
	if c.MaxPending == 0 {
		c.MaxPending = 64
	}
	if c.MaxPatterns == 0 {
		c.MaxPatterns = 64
	}
	if c.Coalesce == nil {
		c.Coalesce = DefaultCoalesce
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.AuthTimeout < 0 || c.WriteTimeout < 0 || c.PingInterval < 0 || c.IdleTimeout < 0 || c.SubscribeWait < 0:
		return c, errors.New("gateway: negative timeout")
	case c.ClientQueue < 0 || c.MaxClients < 0 || c.MaxPending < 0 || c.MaxPatterns < 0:
		return c, errors.New("gateway: negative bound")
	case c.IdleTimeout <= c.PingInterval:
		return c, fmt.Errorf("gateway: IdleTimeout %v must exceed PingInterval %v", c.IdleTimeout, c.PingInterval)
	}
	longest := 0
	for _, t := range c.Tokens {
		longest = max(longest, len(t))
	}
	if need := int64(longest) + 64; c.MessageLimit < need {
		return c, fmt.Errorf("gateway: MessageLimit %d cannot hold an auth message (need %d)", c.MessageLimit, need)
	}
	return c, nil
}

// Gateway relays bus events to WebSocket clients. Create it with New, run
// it with Run, and serve it at GET /ws. The package comment describes the
// protocol and policies.
type Gateway struct {
	sub    bus.Subscriber
	cfg    Config
	tokens bearer.Tokens
	tick   time.Duration // sweeper period

	// mu guards the registry: clients, snap writes, state and Run's cancel.
	// Never held while doing I/O or while taking a client's mu.
	mu      sync.Mutex
	clients map[*client]struct{}
	state   int // stateNew → stateRunning → stateStopped
	cancel  context.CancelFunc
	runDone chan struct{} // closed when Run returns

	// The bus subscription's state (subscription.go), under mu.
	lazy      bool          // subscribed only while a client listens
	listeners int           // clients whose subscription set is not empty
	ready     chan struct{} // closed while the subscription is in place; nil: not subscribed
	readyUp   bool          // ready is closed
	gen       uint64        // subscriptions ended, for their late reports
	subWake   chan struct{} // cap 1: listeners changed, for subscribeLoop
	quit      chan struct{} // closed when Run stops: replies no longer wait for the bus

	// snap is the registry as an immutable slice, rebuilt on every
	// register/unregister, so the fan-out and the sweeper iterate clients
	// without holding mu.
	snap atomic.Pointer[[]*client]

	corkPool *sync.Pool // write batch buffers, shared by all connections

	// handlers counts admitted connections until their goroutines are
	// done (upgrade refused, or serveClient returned); Run waits for them.
	handlers sync.WaitGroup
	conns    atomic.Int64 // admitted authenticated connections, for MaxClients
	pending  atomic.Int64 // admitted connections still authenticating, for MaxPending

	st counters
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// New returns a Gateway relaying sub's events. It starts nothing: Run does.
func New(sub bus.Subscriber, cfg Config) (*Gateway, error) {
	if sub == nil {
		return nil, errors.New("gateway: nil Subscriber")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(cfg.Tokens) == 0 {
		return nil, errors.New("gateway: at least one token is required")
	}
	ts, err := bearer.New(cfg.Tokens)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		sub:      sub,
		cfg:      cfg,
		tokens:   ts,
		tick:     min(max(cfg.PingInterval/4, 5*time.Millisecond), time.Second),
		clients:  make(map[*client]struct{}),
		runDone:  make(chan struct{}),
		corkPool: newCorkPool(),
		subWake:  make(chan struct{}, 1),
		quit:     make(chan struct{}),
	}
	if _, ok := sub.(bus.ReadySubscriber); ok {
		// Not lazy: subscribed from Run, "subscribed" replies waiting for
		// its confirmation all the same.
		if g.lazy = cfg.SubscribeLinger >= 0; !g.lazy {
			g.ready = make(chan struct{})
		}
	}
	g.snap.Store(new([]*client))
	return g, nil
}

// Run owns the gateway's subscription to the bus (held while a client
// listens, see SubscribeLinger) and its sweeper (pings, idle timeouts)
// until ctx ends or Close is called. Then it closes every client with 1001
// (going away), waits for all connection handlers to return, and returns
// nil; or the Subscriber's error if it failed first. Run may be called
// once.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.mu.Lock()
	if g.state != stateNew {
		g.mu.Unlock()
		return errors.New("gateway: Run called twice, or after Close")
	}
	g.state, g.cancel = stateRunning, cancel
	g.mu.Unlock()
	defer close(g.runDone)

	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		g.sweepLoop(ctx)
	}()

	err := g.subscribeLoop(ctx)
	cancel()
	close(g.quit)
	<-sweepDone

	g.mu.Lock()
	g.state = stateStopped
	g.mu.Unlock()
	for _, c := range *g.snap.Load() {
		c.closeWith(websocket.StatusGoingAway, "server shutting down", nil)
	}
	g.handlers.Wait()
	return err
}

// Close stops Run (as if its ctx ended) and waits for it to return. A
// Gateway never run is just marked stopped.
func (g *Gateway) Close() error {
	g.mu.Lock()
	state, cancel := g.state, g.cancel
	if state == stateNew {
		g.state = stateStopped
	}
	g.mu.Unlock()
	if cancel == nil {
		return nil // never run
	}
	cancel()
	<-g.runDone
	return nil
}

// ServeHTTP upgrades GET /ws. Before the upgrade: a wrong Bearer token is
// 401; MaxClients reached, MaxPending reached for a request without a
// Bearer header, or a gateway not running is 503; a disallowed Origin is
// 403. After the upgrade it returns at once; the connection is served by
// the gateway's goroutines until it closes or Run ends.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	authed := false
	switch g.tokens.Request(r) {
	case bearer.Invalid:
		g.st.authFailures.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="tradecache"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	case bearer.OK:
		authed = true
	}
	sl, status := g.admit(authed)
	if status != 0 {
		g.st.rejected.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, http.StatusText(status), status)
		return
	}

	c := g.newClient()
	hw := &hijackWriter{ResponseWriter: w, pool: g.corkPool}
	tr := &wsTransport{onPong: c.seen}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		OriginPatterns: g.cfg.Origins,
		OnPongReceived: func(context.Context, []byte) { tr.gotPong() },
	})
	if err != nil {
		sl.release()
		return // Accept has answered: 403 for an Origin, 4xx for a bad handshake.
	}
	conn.SetReadLimit(g.cfg.MessageLimit)
	tr.Conn, tr.nc, tr.cork, tr.br, tr.hidden = conn, hw.nc, hw.cork, hw.br, hw.leftover
	c.tr = tr
	// Serve from a goroutine of our own and return: net/http then drops
	// its connection state (request, 8 KiB of buffers, a deep stack), which
	// would otherwise be most of an idle connection's memory. Run waits for
	// the client's goroutines (admit/release).
	go g.serveClient(c, sl)
}

// slot is an admitted connection's place in the gateway's bounds: pending
// (counted against MaxPending) until it authenticates, then a client
// (counted against MaxClients). Only its connection's reader goroutine
// uses it.
type slot struct {
	g       *Gateway
	pending bool
}

// admit counts a connection against MaxClients, or MaxPending when it is
// not authenticated yet, and makes Run wait for it. status is non-zero
// when the connection is refused; a pending one is also refused when
// MaxClients is reached, since it could not become a client.
func (g *Gateway) admit(authed bool) (*slot, int) {
	g.mu.Lock()
	if g.state != stateRunning {
		g.mu.Unlock()
		return nil, http.StatusServiceUnavailable
	}
	// Add under mu while running: Run's Wait starts only after state left
	// stateRunning, so no Add can race with it.
	g.handlers.Add(1)
	g.mu.Unlock()
	s := &slot{g: g, pending: !authed}
	if authed {
		if !g.take(&g.conns, g.cfg.MaxClients) {
			g.handlers.Done()
			return nil, http.StatusServiceUnavailable
		}
		return s, 0
	}
	if g.conns.Load() >= int64(g.cfg.MaxClients) || !g.take(&g.pending, g.cfg.MaxPending) {
		g.handlers.Done()
		return nil, http.StatusServiceUnavailable
	}
	return s, 0
}

// take counts one more in n unless that exceeds limit.
func (g *Gateway) take(n *atomic.Int64, limit int) bool {
	if n.Add(1) > int64(limit) {
		n.Add(-1)
		return false
	}
	return true
}

// promote turns a pending slot into a client's, once its connection has
// authenticated; false when MaxClients is reached meanwhile.
func (s *slot) promote() bool {
	if !s.pending {
		return true
	}
	if !s.g.take(&s.g.conns, s.g.cfg.MaxClients) {
		return false
	}
	s.g.pending.Add(-1)
	s.pending = false
	return true
}

// release gives the slot back when the connection's goroutines are done.
func (s *slot) release() {
	if s.pending {
		s.g.pending.Add(-1)
	} else {
		s.g.conns.Add(-1)
	}
	s.g.handlers.Done()
}

// register adds c to the registry; false if the gateway is stopping.
func (g *Gateway) register(c *client) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateRunning {
		return false
	}
	g.clients[c] = struct{}{}
	g.rebuildLocked()
	return true
}

func (g *Gateway) unregister(c *client) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.clients[c]; !ok {
		return
	}
	delete(g.clients, c)
	g.rebuildLocked()
}

func (g *Gateway) rebuildLocked() {
	s := make([]*client, 0, len(g.clients))
	for c := range g.clients {
		s = append(s, c)
	}
	g.snap.Store(&s)
}

// publish is the Subscriber's callback: it fans ev out to the matching
// clients' queues. It never blocks on a client: each enqueue takes that
// client's mutex for a few instructions, and a client whose queue is full
// is coalesced or disconnected, not waited for.
func (g *Gateway) publish(ev bus.Event) {
	clients := *g.snap.Load()
	if len(clients) == 0 {
		return
	}
	var m *message // built on the first match: one per event, shared by all clients
	for _, c := range clients {
		s := c.subs.Load()
		if s == nil || !s.match(ev.Name) {
			continue
		}
		if m == nil {
			m = g.newMessage(ev)
		}
		c.enqueue(m)
	}
}

func (g *Gateway) newMessage(ev bus.Event) *message {
	m := &message{}
	if len(ev.Raw) > 0 {
		// One copy per event: the bus may reuse its buffer once fn returns,
		// and clients hold the bytes until written.
		m.raw = append([]byte(nil), ev.Raw...)
	} else {
		m.raw = envelope(ev)
	}
	m.key, m.coalesce = g.cfg.Coalesce(ev)
	return m
}

// envelope rebuilds the wire envelope of an event that arrived without Raw.
func envelope(ev bus.Event) []byte {
	id, _ := json.Marshal(ev.Publisher)
	data := ev.Data
	if !json.Valid(data) {
		data = json.RawMessage("null")
	}
	b, _ := json.Marshal(bus.Envelope{ID: id, Event: ev.Name, Data: data})
	return b
}

// sweepLoop pings clients and closes idle ones, every g.tick.
func (g *Gateway) sweepLoop(ctx context.Context) {
	t := time.NewTicker(g.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.sweep(now)
		}
	}
}

func (g *Gateway) sweep(now time.Time) {
	for _, c := range *g.snap.Load() {
		if !c.authed.Load() {
			continue // the auth timer bounds these
		}
		if now.Sub(time.Unix(0, c.lastSeen.Load())) > g.cfg.IdleTimeout {
			if c.closeWith(websocket.StatusPolicyViolation, reasonIdle, &g.st.idle) {
				g.cfg.Logger.Debug("gateway: idle client closed", "client", c.id)
			}
			continue
		}
		if now.Sub(c.lastPing) >= g.cfg.PingInterval && !c.pinging.Load() {
			c.lastPing = now
			c.ping(g.cfg.PingInterval)
		}
	}
}

// hijackWriter records the connection coder/websocket hijacks, so that a
// client can get TCP write deadlines (no per-message timer or context) and
// be aborted when a close handshake cannot complete; and it slides a
// corkConn under coder's writes.
type hijackWriter struct {
	http.ResponseWriter
	pool *sync.Pool
	nc   net.Conn
	cork *corkConn
	br   *bufio.Reader // the reader handed to coder
	// leftover: the client sent bytes after its upgrade request, which
	// coder keeps aside until its first read.
	leftover bool
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nc, brw, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	// net/http clears the deadlines of its Server (ReadTimeout,
	// WriteTimeout) when it hands over a connection; so do we, whatever
	// served the request: a WebSocket lives longer than any request, and
	// the client sets its own write deadlines.
	if err := nc.SetDeadline(time.Time{}); err != nil {
		_ = nc.Close()
		return nil, nil, err
	}
	h.nc, h.cork = nc, &corkConn{Conn: nc, pool: h.pool}
	// Smaller buffers than net/http's 4 KiB each: the writes are batched by
	// the cork anyway, and client messages are small. This is most of the
	// heap of an idle connection. Bytes the client sent right after its
	// handshake are carried over (kept in the original reader if many).
	r := brw.Reader
	h.leftover = r.Buffered() > 0
	if n := r.Buffered(); n <= connBufSize {
		b, _ := r.Peek(n)
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), h.cork), connBufSize)
		// Pull those bytes into r's buffer: coder resets r's source to the
		// connection after taking what r has buffered.
		_, _ = r.Peek(n)
	}
	h.br = r
	return h.cork, bufio.NewReadWriter(r, bufio.NewWriterSize(h.cork, coderWriteBufSize)), nil
}

// connBufSize sizes a connection's read buffer.
const connBufSize = 512

// coderWriteBufSize sizes coder's write buffer. Messages bypass it
// (corkConn.appendText); only coder's control frames (pong, close: at
// most 127 bytes) pass through it, each flushed whole in one write, which
// corkConn relies on to keep frames apart.
const coderWriteBufSize = 256

func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }
