package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// route is the routed base path a connection came in on. Since the 2026
// split a stream is delivered only on its own route.
type route int

const (
	routeMarket  route = iota + 1 // kline, ticker, !ticker@arr
	routePublic                   // bookTicker, !bookTicker (and legacy /ws, /stream)
	routePrivate                  // user data: listenKeys
)

type streamKind int

const (
	kindKline streamKind = iota + 1
	kindTicker
	kindTickerArr
	kindBook
	kindBookAll
	kindUser // a listenKey's user data
)

// topic is one deliverable stream and its subscribers.
type topic struct {
	name string
	kind streamKind
	rt   route
	sym  *symbol
	iv   interval
	subs map[*client]struct{}
}

// hub holds every connection and the topics they subscribe to. Its lock is
// taken alone: nothing under it blocks (enqueueing never waits).
type hub struct {
	mu      sync.RWMutex
	clients map[*client]struct{}
	topics  map[string]*topic // only deliverable streams with subscribers
}

func (h *hub) init() {
	h.clients = map[*client]struct{}{}
	h.topics = map[string]*topic{}
}

// classify tells whether name is a stream the sim delivers, and on which
// route. Symbols must be lower-case: "BTCUSDT@ticker" is not deliverable.
// A live listenKey is the user data stream of its account.
func (s *Server) classify(name string) (topic, bool) {
	if !strings.ContainsAny(name, "@!") {
		if s.keys.valid(name) {
			return topic{name: name, kind: kindUser, rt: routePrivate}, true
		}
		return topic{}, false
	}
	switch name {
	case "!ticker@arr":
		return topic{name: name, kind: kindTickerArr, rt: routeMarket}, true
	case "!bookTicker":
		return topic{name: name, kind: kindBookAll, rt: routePublic}, true
	}
	symName, rest, ok := strings.Cut(name, "@")
	sy := s.byLower[symName]
	if !ok || sy == nil {
		return topic{}, false
	}
	t := topic{name: name, sym: sy}
	switch {
	case rest == "ticker":
		t.kind, t.rt = kindTicker, routeMarket
	case rest == "bookTicker":
		t.kind, t.rt = kindBook, routePublic
	case strings.HasPrefix(rest, "kline_"):
		iv, ok := intervals[strings.TrimPrefix(rest, "kline_")]
		if !ok {
			return topic{}, false
		}
		t.kind, t.rt, t.iv = kindKline, routeMarket, iv
	default:
		return topic{}, false
	}
	return t, true
}

// subscribe adds names to c's subscriptions. It reports false, changing
// nothing, when that would exceed MaxStreams.
func (s *Server) subscribe(c *client, names []string) bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	var add []string
	seen := map[string]bool{}
	for _, n := range names {
		if _, dup := c.subSet[n]; !dup && !seen[n] {
			seen[n] = true
			add = append(add, n)
		}
	}
	if len(c.subs)+len(add) > s.cfg.MaxStreams {
		return false
	}
	for _, n := range add {
		c.subs = append(c.subs, n)
		c.subSet[n] = struct{}{}
		t, ok := s.classify(n)
		if !ok || t.rt != c.route {
			continue // acknowledged, listed, never delivered
		}
		tp := s.hub.topics[n]
		if tp == nil {
			t.subs = map[*client]struct{}{}
			tp = &t
			s.hub.topics[n] = tp
		}
		tp.subs[c] = struct{}{}
	}
	return true
}

func (s *Server) unsubscribe(c *client, names []string) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	for _, n := range names {
		if _, ok := c.subSet[n]; !ok {
			continue
		}
		delete(c.subSet, n)
		for i, v := range c.subs {
			if v == n {
				c.subs = append(c.subs[:i], c.subs[i+1:]...)
				break
			}
		}
		s.hub.leave(c, n)
	}
}

// leave removes c from topic n; the caller holds mu.
func (h *hub) leave(c *client, n string) {
	if tp := h.topics[n]; tp != nil {
		delete(tp.subs, c)
		if len(tp.subs) == 0 {
			delete(h.topics, n)
		}
	}
}

func (s *Server) addClient(c *client) {
	s.hub.mu.Lock()
	s.hub.clients[c] = struct{}{}
	s.hub.mu.Unlock()
}

func (s *Server) removeClient(c *client) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.clients, c)
	for _, n := range c.subs {
		s.hub.leave(c, n)
	}
}

// topicsOf returns the topics of a kind.
func (s *Server) topicsOf(k streamKind) []*topic {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	var out []*topic
	for _, t := range s.hub.topics {
		if t.kind == k {
			out = append(out, t)
		}
	}
	return out
}

// publish delivers m to the subscribers of t.
func (s *Server) publish(t *topic, m *outMsg, f faultSnap) {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	for c := range t.subs {
		c.deliver(m, f)
	}
}

// closeAll asks every connection to close with code.
func (s *Server) closeAll(code websocket.StatusCode) {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	for c := range s.hub.clients {
		c.requestClose(code, "", false)
	}
}

type closeReq struct {
	code   websocket.StatusCode
	reason string
	flush  bool
}

// client is one WebSocket connection. Its read goroutine handles requests;
// its write goroutine owns the socket's writes; anyone enqueues.
type client struct {
	s     *Server
	conn  *websocket.Conn // nil for in-process test clients
	raw   net.Conn        // the hijacked socket, for aborts
	route route
	q     chan []byte
	// closeReq carries the one close request (capacity 1, sent once).
	closeReq chan closeReq
	closing  atomic.Bool
	combined atomic.Bool
	faultGen atomic.Uint64 // fault generation whose oversized frame it got
	nBad     atomic.Uint64 // malformed frames sent
	wg       sync.WaitGroup

	// Chaos (chaos.go): the connection's number, its stall (until, in
	// unix ns, of the chaos generation stallGen), work for its writer.
	seq        uint64
	stallUntil atomic.Int64
	stallGen   atomic.Uint64
	chaosQ     chan chaosAct

	// events filters user data per listenKey (/private/ws?listenKey=…&
	// events=…); set before the client is shared, then read-only.
	events map[string]map[string]bool

	// guarded by s.hub.mu
	subs   []string
	subSet map[string]struct{}

	// read goroutine only
	tokens float64
	last   time.Time
}

func newClient(s *Server, conn *websocket.Conn, rt route, combined bool) *client {
	c := &client{
		s:        s,
		conn:     conn,
		route:    rt,
		q:        make(chan []byte, s.cfg.WriteQueue),
		closeReq: make(chan closeReq, 1),
		subSet:   map[string]struct{}{},
		seq:      s.fault.conns.Add(1),
		chaosQ:   make(chan chaosAct, 1),
	}
	c.combined.Store(combined)
	return c
}

// enqueue queues a frame without waiting. A full queue closes the
// connection (1008): one slow client never holds up the others.
func (c *client) enqueue(b []byte) bool {
	if c.closing.Load() {
		return false
	}
	select {
	case c.q <- b:
		return true
	default:
		if c.requestClose(websocket.StatusPolicyViolation, "Slow consumer", false) {
			c.s.slowDrops.Add(1)
		}
		return false
	}
}

// requestClose asks the writer to close the connection, after writing what
// is queued when flush is set. Only the first request counts.
func (c *client) requestClose(code websocket.StatusCode, reason string, flush bool) bool {
	if !c.closing.CompareAndSwap(false, true) {
		return false
	}
	c.closeReq <- closeReq{code, reason, flush}
	if c.raw != nil {
		// A peer that does not read cannot take a close frame either:
		// abort the socket if the close has not finished by then.
		time.AfterFunc(closeGrace, func() { _ = c.raw.Close() })
	}
	return true
}

// closeGrace bounds a requested close (flush, close frame, handshake).
const closeGrace = 2 * time.Second

// hijackTap records the socket websocket.Accept hijacks.
type hijackTap struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackTap) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, rw, err
}

// deliver queues m, disturbed as the fault says.
func (c *client) deliver(m *outMsg, f faultSnap) {
	comb := c.combined.Load()
	switch f.mode {
	case FaultStall:
	case FaultUnknown:
		c.enqueue(m.frame(comb, variantExtraFields))
		c.enqueue(m.frame(comb, variantUnknownEvent))
	case FaultMalformed:
		c.enqueue(m.frame(comb, variantPlain))
		c.enqueue(malformed(m, comb, c.nBad.Add(1)))
	default:
		c.enqueue(m.frame(comb, variantPlain))
	}
}

// reply queues a control answer; a stalled server answers nothing.
func (c *client) reply(b []byte) {
	if f := c.s.fault.snapshot(); f.mode == FaultStall || c.stalled(f) {
		return
	}
	c.enqueue(b)
}

// allow takes one token of the incoming-message bucket.
func (c *client) allow() bool {
	n := float64(c.s.cfg.MaxIncoming)
	now := time.Now()
	if c.last.IsZero() {
		c.tokens = n
	} else {
		c.tokens = min(n, c.tokens+now.Sub(c.last).Seconds()*n)
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// serveWS upgrades a stream connection and serves it until it ends.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, rt route, combined bool, initial []string, events map[string]map[string]bool) {
	f := s.fault.snapshot()
	if f.mode == FaultDrop {
		writeErr(w, http.StatusServiceUnavailable, -1001, "Internal error; unable to process your request. Please try again.")
		return
	}
	// The initial subscriptions are in place before the handshake answer:
	// once a client sees the connection open, nothing published is missed
	// (an order placed right after connecting has its user data delivered).
	// Until Accept returns the client is in topics only, not in the client
	// set, so faults and closes leave it alone; what is published meanwhile
	// waits in its queue.
	c := newClient(s, nil, rt, combined)
	c.events = events
	subscribed := len(initial) == 0 || s.subscribe(c, initial)
	tap := &hijackTap{ResponseWriter: w}
	conn, err := websocket.Accept(tap, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // browsers on any origin, like Binance
		CompressionMode:    websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			// Runs on the read goroutine.
			if !c.allow() {
				c.requestClose(websocket.StatusPolicyViolation, "Too many requests", true)
				return false
			}
			f := s.fault.snapshot()
			return f.mode != FaultStall && !c.stalled(f)
		},
	})
	if err != nil {
		s.removeClient(c)
		return // Accept has answered
	}
	conn.SetReadLimit(1 << 20)
	// Publishers may already hold c (under the hub lock): set its socket
	// under the lock.
	s.hub.mu.Lock()
	c.conn, c.raw = conn, tap.conn
	s.hub.clients[c] = struct{}{}
	s.hub.mu.Unlock()
	defer s.removeClient(c)
	if !subscribed {
		c.requestClose(websocket.StatusPolicyViolation, "Invalid request", false)
	}
	// A fault set while this connection was being accepted applies too.
	switch f = s.fault.snapshot(); f.mode {
	case FaultDrop:
		_ = conn.CloseNow()
		return
	case FaultOversized:
		s.hub.mu.RLock()
		stream := c.firstSub()
		s.hub.mu.RUnlock()
		c.sendOversized(f.gen, stream)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.wg.Go(func() {
		defer cancel()
		c.writeLoop(ctx)
	})
	c.readLoop(ctx)
	cancel()
	c.wg.Wait()
}

func (c *client) readLoop(ctx context.Context) {
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			return
		}
		if c.closing.Load() {
			continue // closing: read on so the close handshake completes
		}
		if !c.allow() {
			c.requestClose(websocket.StatusPolicyViolation, "Too many requests", true)
			continue
		}
		c.handle(data)
	}
}

func (c *client) writeLoop(ctx context.Context) {
	cfg := &c.s.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	life := time.NewTimer(cfg.ConnLifetime)
	defer life.Stop()
	var pinging atomic.Bool
	for {
		select {
		case <-ctx.Done():
			_ = c.conn.CloseNow()
			return
		case b := <-c.q:
			if !c.write(ctx, b) {
				_ = c.conn.CloseNow()
				return
			}
		case a := <-c.chaosQ:
			if !c.chaosFlood(ctx, a) {
				_ = c.conn.CloseNow()
				return
			}
		case <-ping.C:
			if f := c.s.fault.snapshot(); f.mode == FaultStall || c.stalled(f) || !pinging.CompareAndSwap(false, true) {
				continue
			}
			c.wg.Go(func() {
				defer pinging.Store(false)
				pctx, cancel := context.WithTimeout(ctx, cfg.PongTimeout)
				defer cancel()
				if err := c.conn.Ping(pctx); err != nil && ctx.Err() == nil {
					_ = c.conn.CloseNow() // no pong in time
				}
			})
		case req := <-c.closeReq:
			for req.flush {
				select {
				case b := <-c.q:
					if !c.write(ctx, b) {
						_ = c.conn.CloseNow()
						return
					}
				default:
					req.flush = false
				}
			}
			_ = c.conn.Close(req.code, req.reason)
			return
		case <-life.C:
			_ = c.conn.Close(websocket.StatusGoingAway, "connection lifetime exceeded")
			return
		}
	}
}

// write writes one frame; a stalled server (or connection) writes nothing.
func (c *client) write(ctx context.Context, b []byte) bool {
	if f := c.s.fault.snapshot(); f.mode == FaultStall || c.stalled(f) {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	if err := c.conn.Write(wctx, websocket.MessageText, b); err != nil {
		if wctx.Err() != nil && ctx.Err() == nil && c.closing.CompareAndSwap(false, true) {
			c.s.slowDrops.Add(1)
		}
		return false
	}
	c.s.msgsSent.Add(1)
	c.s.bytesSent.Add(int64(len(b)))
	return true
}

// Control messages (JSON), as Binance answers them.

func resultMsg(result, id []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"result":`)
	b.Write(result)
	b.WriteString(`,"id":`)
	b.Write(id)
	b.WriteByte('}')
	return b.Bytes()
}

func errorMsg(code int, msg string, id []byte) []byte {
	m, _ := json.Marshal(msg)
	var b bytes.Buffer
	b.WriteString(`{"error":{"code":`)
	b.WriteString(strconv.Itoa(code))
	b.WriteString(`,"msg":`)
	b.Write(m)
	b.WriteString(`},"id":`)
	b.Write(id)
	b.WriteByte('}')
	return b.Bytes()
}

var null = []byte("null")

// validID reports whether raw is an id Binance echoes: an unsigned
// integer, a string, or null.
func validID(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"':
		return true
	case 'n':
		return string(raw) == "null"
	}
	for _, ch := range raw {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

const methods = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"

func (c *client) handle(data []byte) {
	if !json.Valid(data) {
		c.reply(errorMsg(3, "Invalid JSON: expected value at line 1 column 1", null))
		return
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(data, &req); err != nil {
		c.reply(errorMsg(2, "Invalid request: expected a JSON object", null))
		return
	}
	id, ok := req["id"]
	if !ok {
		id = null
	}
	if !validID(id) {
		c.reply(errorMsg(2, "Invalid request: request ID must be an unsigned integer or a string", null))
		return
	}
	var method string
	if raw, ok := req["method"]; !ok || json.Unmarshal(raw, &method) != nil {
		c.reply(errorMsg(2, "Invalid request: missing field `method`", id))
		return
	}
	params := req["params"]
	s := c.s
	switch method {
	case "SUBSCRIBE", "UNSUBSCRIBE":
		var names []string
		if json.Unmarshal(params, &names) != nil {
			c.reply(errorMsg(2, "Invalid request: params must be an array of stream names", id))
			return
		}
		if method == "UNSUBSCRIBE" {
			s.unsubscribe(c, names)
		} else if !s.subscribe(c, names) {
			c.reply(errorMsg(4, "Too many subscriptions", id))
			c.requestClose(websocket.StatusPolicyViolation, "Invalid request", true)
			return
		}
		c.reply(resultMsg(null, id))
	case "LIST_SUBSCRIPTIONS":
		s.hub.mu.RLock()
		list, _ := json.Marshal(append([]string{}, c.subs...))
		s.hub.mu.RUnlock()
		c.reply(resultMsg(list, id))
	case "SET_PROPERTY", "GET_PROPERTY":
		var ps []json.RawMessage
		if json.Unmarshal(params, &ps) != nil || len(ps) == 0 {
			c.reply(errorMsg(2, "Invalid request: missing params", id))
			return
		}
		var name string
		if json.Unmarshal(ps[0], &name) != nil {
			c.reply(errorMsg(2, "Invalid request: property name must be a string", id))
			return
		}
		if name != "combined" {
			c.reply(errorMsg(0, "Unknown property", id))
			return
		}
		if method == "GET_PROPERTY" {
			c.reply(resultMsg([]byte(strconv.FormatBool(c.combined.Load())), id))
			return
		}
		var v bool
		if len(ps) != 2 || json.Unmarshal(ps[1], &v) != nil {
			c.reply(errorMsg(1, "Invalid value type: expected Boolean", id))
			return
		}
		c.combined.Store(v)
		c.reply(resultMsg(null, id))
	default:
		c.reply(errorMsg(2, "Invalid request: unknown variant `"+method+"`, expected one of "+methods, id))
	}
}
