package gateway

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// transport is what a client needs of its connection: a *websocket.Conn
// plus the hijacked net.Conn beneath it (tests substitute a fake).
type transport interface {
	Read(ctx context.Context) (websocket.MessageType, []byte, error)
	// WaitReadable returns when Read may have something to read (or fail
	// at once): it waits on the socket with a shallow stack, so that an
	// idle connection's reader goroutine is parked with little stack in use
	// and the garbage collector shrinks its stack (8 KiB after handling a
	// message) to the 2 KiB minimum. It may return early.
	WaitReadable()
	Write(ctx context.Context, typ websocket.MessageType, p []byte) error
	Ping(ctx context.Context) error
	Close(code websocket.StatusCode, reason string) error
	// SetWriteDeadline bounds the writes in progress and to come (zero: none).
	SetWriteDeadline(t time.Time) error
	// Abort drops the connection at once (TCP RST), without a close handshake.
	Abort() error
	// DiscardOnClose makes the eventual close an RST that discards unsent
	// data: for a peer that is not reading, so the kernel does not keep an
	// orphaned socket with megabytes queued for it.
	DiscardOnClose()
	// Cork buffers the frames written until Uncork, which sends them with
	// one system call and reports that write's error.
	Cork()
	Uncork() error
}

type wsTransport struct {
	*websocket.Conn
	nc   net.Conn  // the TCP connection
	cork *corkConn // between coder and nc
	br   *bufio.Reader
	// hidden: coder holds bytes the client sent with its upgrade request
	// in a reader of its own until its first read, out of sight of br and
	// of the socket. Only the reader goroutine uses it.
	hidden bool
	onPong func() // a pong arrived (the client's seen)

	// brMu keeps WaitReadable off br while coder's close handshake reads
	// it (Close holds it throughout); coder's own reads take coder's lock.
	brMu    sync.Mutex
	closing bool // guarded by brMu: Close was called

	pongMu sync.Mutex
	pongCh chan struct{} // closed by the next pong; nil when no ping waits
}

// Read reads a message through coder.
func (t *wsTransport) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, b, err := t.Conn.Read(ctx)
	t.hidden = false // coder's first read took them into br
	return typ, b, err
}

// WaitReadable waits until a frame other than a pong can be read: it waits
// for the socket to be readable, then takes the pongs that arrived (the
// answers to our pings) off the buffer itself, so that an idle client's
// reader never parks inside coder's Read, whose stack is several times
// deeper. Anything else (a message, a ping, a close, a part of a frame) is
// left to coder's Read.
func (t *wsTransport) WaitReadable() {
	for !t.hidden {
		t.brMu.Lock()
		buffered := t.br.Buffered()
		t.brMu.Unlock()
		if buffered == 0 {
			waitReadable(t.nc)
		}
		t.brMu.Lock()
		ok := !t.closing && t.skipPong()
		t.brMu.Unlock()
		if !ok {
			return
		}
	}
}

// skipPong fills br once if it is empty, and discards a whole pong frame
// at its head; false when there is none.
func (t *wsTransport) skipPong() bool {
	if t.br.Buffered() == 0 {
		if _, err := t.br.Peek(1); err != nil {
			return false // Read reports it
		}
	}
	b, _ := t.br.Peek(t.br.Buffered())
	// A client's frames are masked: 2-byte header, 4-byte key, payload.
	if len(b) < 2 || b[0] != 0x80|opPong || b[1]&0x80 == 0 {
		return false
	}
	n := int(b[1] & 0x7f)
	if n > 125 || len(b) < 6+n {
		return false
	}
	_, _ = t.br.Discard(6 + n)
	t.gotPong()
	return true
}

// Ping sends a ping and waits for a pong (any pong: the client is alive),
// whether WaitReadable or coder's Read (OnPongReceived) takes it. The
// ping frame goes through the cork, after any frame being written.
func (t *wsTransport) Ping(ctx context.Context) error {
	ch := make(chan struct{})
	t.pongMu.Lock()
	t.pongCh = ch
	t.pongMu.Unlock()
	if err := t.cork.writeControl(opPing, nil); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gotPong notes a pong: the client is seen, and a ping waiting is answered.
func (t *wsTransport) gotPong() {
	if t.onPong != nil {
		t.onPong()
	}
	t.pongMu.Lock()
	if t.pongCh != nil {
		close(t.pongCh)
		t.pongCh = nil
	}
	t.pongMu.Unlock()
}

func (t *wsTransport) Cork()         { t.cork.Cork() }
func (t *wsTransport) Uncork() error { return t.cork.Uncork() }

// Write sends a text message as one frame straight into the cork buffer
// (corkConn.appendText), bypassing coder's per-message write path; other
// messages go through coder.
func (t *wsTransport) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if typ == websocket.MessageText {
		return t.cork.appendText(p)
	}
	return t.Conn.Write(ctx, typ, p)
}

// Close runs the close handshake; no data frame is sent after it, and
// WaitReadable keeps off the reader meanwhile.
func (t *wsTransport) Close(code websocket.StatusCode, reason string) error {
	t.cork.closeData()
	t.brMu.Lock()
	defer t.brMu.Unlock()
	t.closing = true
	return t.Conn.Close(code, reason)
}

func (t *wsTransport) SetWriteDeadline(d time.Time) error { return t.nc.SetWriteDeadline(d) }

func (t *wsTransport) Abort() error {
	t.DiscardOnClose()
	return t.nc.Close()
}

func (t *wsTransport) DiscardOnClose() {
	if tc, ok := t.nc.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
}

// message is one frame to send. An event's message is built once and
// shared by every client it goes to; the queue holds pointers.
type message struct {
	raw      []byte
	key      string // stream key, when coalesce
	coalesce bool
}

// client is one WebSocket connection.
//
// Goroutines: the reader (auth, then client messages), the writer while
// there is something to write, a pinger while a ping waits for its pong,
// and a closer while the close handshake runs. The reader waits for the
// others before it returns.
type client struct {
	g  *Gateway
	id uint64
	tr transport // set before register, never changed

	// mu guards pending, writing and dead. Held by the fan-out (enqueue),
	// the writer (to take pending) and closers, each for a few
	// instructions, never across I/O. Gateway.mu is never held with it.
	mu      sync.Mutex
	pending []*message // waiting to be written; len ≤ cfg.ClientQueue
	writing bool       // a writer goroutine runs
	dead    bool       // closing: no more enqueues, pings or goroutines

	// The running writer's; handed from one writer to the next under mu.
	lastFlush   time.Time // when the last batch went out
	deadlineSet time.Time // when the TCP write deadline was last set; zero: none

	wake   chan struct{}  // cap 1: pending became non-empty while a writer runs
	quit   chan struct{}  // closed when closing starts: the writer stops
	closed chan struct{}  // closed when the close handshake is over
	wg     sync.WaitGroup // writer, pinger, closer; Add only under mu while !dead

	subs      atomic.Pointer[matcher] // nil: no subscription; written by the reader only
	listening bool                    // counted in Gateway.listeners; under Gateway.mu
	authed    atomic.Bool
	lastSeen  atomic.Int64 // unix ns of the last pong or message
	pinging   atomic.Bool
	lastPing  time.Time // the sweeper's goroutine only
}

func (g *Gateway) newClient() *client {
	c := &client{
		g:        g,
		id:       g.st.nextID.Add(1),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		closed:   make(chan struct{}),
		lastPing: time.Now(),
	}
	c.seen()
	return c
}

func (c *client) seen() { c.lastSeen.Store(time.Now().UnixNano()) }

// serveClient runs a connected client until it is closed, then releases
// sl. Its goroutine is the first reader; reading goes on in goroutines of
// its own, one at a time (readClient). A client admitted pending becomes
// a client of MaxClients once it authenticates; if MaxClients is reached
// by then, it is closed with 1013.
func (g *Gateway) serveClient(c *client, sl *slot) {
	if !g.register(c) {
		c.closeWith(websocket.StatusGoingAway, "server shutting down", nil)
		<-c.closed
		c.wg.Wait()
		sl.release()
		return
	}
	if (!sl.pending || c.authenticate()) && c.promote(sl) {
		c.seen()
		c.authed.Store(true)
		go g.readClient(c, sl)
		return
	}
	g.endClient(c, sl)
}

// readClient reads and answers one client message, then hands the reading
// on to a new goroutine and returns; when the connection fails it ends the
// client. Handling a message (coder's Read, a JSON decode) grows a
// goroutine's stack to 8 KiB, which the garbage collector can halve but
// not bring back to 2 KiB while the goroutine waits (it must be using under
// a quarter of it, counting the runtime's reserve): a fresh goroutine
// waiting in WaitReadable stays at 2 KiB, a third of an idle connection's
// memory less. A message costs a goroutine start (about a microsecond);
// clients send few.
func (g *Gateway) readClient(c *client, sl *slot) {
	if c.readOne() {
		go g.readClient(c, sl)
		return
	}
	g.endClient(c, sl)
}

// endClient closes c (if it is not already closing), waits for its other
// goroutines (writer, pinger, closer), unregisters it and releases sl.
func (g *Gateway) endClient(c *client, sl *slot) {
	c.closeWith(websocket.StatusNormalClosure, "", nil)
	<-c.closed
	c.wg.Wait()
	g.listen(c, false)
	g.unregister(c)
	sl.release()
}

// authenticate reads the first message, which must be a valid auth, within
// AuthTimeout. On failure the client is being closed with 1008.
func (c *client) authenticate() bool {
	g := c.g
	timer := time.AfterFunc(g.cfg.AuthTimeout, func() {
		c.closeWith(websocket.StatusPolicyViolation, "authentication timeout", &g.st.authFailures)
	})
	typ, b, err := c.tr.Read(context.Background())
	if !timer.Stop() || err != nil {
		return false // timed out, or the connection failed
	}
	reason := "authentication required"
	if typ == websocket.MessageText {
		m, err := parseClientMessage(b, g.cfg.MaxPatterns)
		if err == nil && m.Type == typeAuth {
			if g.tokens.Valid(m.Token) {
				return true
			}
			reason = "invalid token"
		}
	}
	c.closeWith(websocket.StatusPolicyViolation, reason, &g.st.authFailures)
	return false
}

// promote moves an authenticated client from MaxPending to MaxClients; on
// failure the client is being closed with 1013 (try again later).
func (c *client) promote(sl *slot) bool {
	if sl.promote() {
		return true
	}
	c.closeWith(websocket.StatusTryAgainLater, "too many clients", &c.g.st.rejected)
	return false
}

// readOne waits for a client message and answers it; false when the
// connection failed. A message over MessageLimit makes Read fail (coder
// closes with 1009).
func (c *client) readOne() bool {
	c.tr.WaitReadable()
	typ, b, err := c.tr.Read(context.Background())
	if err != nil {
		return false
	}
	c.seen()
	if typ != websocket.MessageText {
		c.enqueue(&message{raw: errorReply(errBinary)})
		return true
	}
	c.enqueue(&message{raw: c.handle(b)})
	return true
}

// handle applies one client message and returns the reply. The new set is
// stored, and the gateway's bus subscription confirmed (awaitBus), before
// the reply is queued, so once a client reads "subscribed" every later
// event of the set reaches it (a few may precede the reply).
func (c *client) handle(b []byte) []byte {
	m, err := parseClientMessage(b, c.g.cfg.MaxPatterns)
	if err != nil {
		return errorReply(err)
	}
	switch m.Type {
	case typeAuth:
		return errorReply(errAlreadyAuthed)
	case typeSubscribe:
		next, ok := c.subs.Load().subscribe(m.Events, c.g.cfg.MaxPatterns)
		if !ok {
			return errorReply(errTooManyPatterns)
		}
		c.subs.Store(next)
		c.g.awaitBus(c.g.listen(c, len(next.list()) > 0))
		return subscribedReply(next)
	default: // typeUnsubscribe
		next := c.subs.Load().unsubscribe(m.Events)
		c.subs.Store(next)
		c.g.awaitBus(c.g.listen(c, len(next.list()) > 0))
		return subscribedReply(next)
	}
}

// enqueue queues m for the writer without blocking. When the queue is
// full, a coalescable m replaces the queued message of its stream; any
// other overflow disconnects the client as a slow consumer.
func (c *client) enqueue(m *message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	if len(c.pending) < c.g.cfg.ClientQueue {
		c.pending = append(c.pending, m)
		if len(c.pending) == 1 {
			if !c.writing {
				c.writing = true
				c.wg.Add(1)
				go c.writeLoop()
			} else {
				select {
				case c.wake <- struct{}{}:
				default:
				}
			}
		}
		return
	}
	if m.coalesce {
		for i := len(c.pending) - 1; i >= 0; i-- {
			if p := c.pending[i]; p.coalesce && p.key == m.key {
				c.pending[i] = m
				c.g.st.dropped.Add(1)
				return
			}
		}
	}
	if c.compactLocked() {
		c.pending = append(c.pending, m)
		return
	}
	c.g.cfg.Logger.Debug("gateway: slow consumer disconnected", "client", c.id, "reason", "queue full")
	c.closeLocked(websocket.StatusPolicyViolation, reasonSlow, &c.g.st.slow)
}

// compactLocked drops every queued market event that a newer one of the
// same stream supersedes, keeping the newest in its place; it reports
// whether that freed room. Afterwards the queue holds at most one event
// per stream, so only more streams plus other events than ClientQueue can
// overflow it. It runs only when the queue is full.
func (c *client) compactLocked() bool {
	var newer map[string]struct{}
	kept := len(c.pending)
	for i := len(c.pending) - 1; i >= 0; i-- {
		p := c.pending[i]
		if p.coalesce {
			if newer == nil {
				newer = make(map[string]struct{})
			}
			if _, ok := newer[p.key]; ok {
				continue // superseded
			}
			newer[p.key] = struct{}{}
		}
		kept--
		c.pending[kept] = p
	}
	if kept == 0 {
		return false
	}
	n := copy(c.pending, c.pending[kept:])
	clear(c.pending[n:])
	c.pending = c.pending[:n]
	c.g.st.dropped.Add(uint64(kept))
	return true
}

// writerLinger is how long a writer with nothing to write waits for more
// before it exits. An idle connection has no writer goroutine (its stack
// would be a third of the connection's memory); enqueue starts one.
const writerLinger = 2 * time.Second

// writeLoop writes queued messages until the queue stays empty for
// writerLinger or the client closes. It takes the whole queue at once and
// writes it without holding mu, as one system call (corked). Under load it
// paces itself to one batch per FlushInterval, so a client gets several
// events per write instead of one write per event; the first event after a
// quiet FlushInterval goes out at once.
func (c *client) writeLoop() {
	defer c.wg.Done()
	var (
		spare []*message // the previous batch's array, reused as the next queue
		timer *time.Timer
		every = c.g.cfg.FlushInterval
	)
	// sleep waits d; false if the client closed meanwhile.
	sleep := func(d time.Duration, wake <-chan struct{}) bool {
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		defer timer.Stop()
		select {
		case <-c.quit:
			return false
		case <-wake:
		case <-timer.C:
		}
		return true
	}
	for {
		if d := every - time.Since(c.lastFlush); d > 0 && !sleep(d, nil) {
			return
		}
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			return
		}
		batch := c.pending
		if len(batch) == 0 {
			c.mu.Unlock()
			if !c.deadlineSet.IsZero() {
				// Quiet: pings and close frames must not meet a stale deadline.
				_ = c.tr.SetWriteDeadline(time.Time{})
				c.deadlineSet = time.Time{}
			}
			if !sleep(writerLinger, c.wake) {
				return
			}
			c.mu.Lock()
			if len(c.pending) == 0 {
				c.writing = false // enqueue starts a new writer
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			continue
		}
		c.pending = spare
		c.mu.Unlock()
		if !c.writeBatch(batch) {
			return
		}
		c.lastFlush = time.Now()
		clear(batch) // drop references for the GC
		spare = batch[:0]
	}
}

// writeBatch writes batch as one system call (more past corkMax bytes)
// under a TCP write deadline of WriteTimeout. The deadline is renewed when
// an eighth of it has passed (every write gets at least 7/8 of
// WriteTimeout), checked before each system call the batch can make (at
// the start, every corkMax bytes, and at the end), and cleared when the
// writer goes quiet: neither setting it nor reading the clock per message
// is free. A deadline hit is a slow consumer.
func (c *client) writeBatch(batch []*message) bool {
	wt := c.g.cfg.WriteTimeout
	renew := func() {
		if now := time.Now(); now.Sub(c.deadlineSet) > wt/8 {
			c.deadlineSet = now
			_ = c.tr.SetWriteDeadline(now.Add(wt))
		}
	}
	c.tr.Cork()
	var err error
	renew()
	buffered := 0
	for _, m := range batch {
		if buffered += len(m.raw) + 10; buffered > corkMax {
			renew() // this frame may flush the buffer
			buffered = len(m.raw) + 10
		}
		if err = c.tr.Write(context.Background(), websocket.MessageText, m.raw); err != nil {
			break
		}
	}
	renew()
	if uerr := c.tr.Uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if c.closeWith(websocket.StatusPolicyViolation, reasonSlow, &c.g.st.slow) {
				c.g.cfg.Logger.Debug("gateway: slow consumer disconnected", "client", c.id, "reason", "write timeout")
			}
		} else {
			c.closeWith(websocket.StatusInternalError, "write failed", nil)
		}
		return false
	}
	c.g.st.sent.Add(uint64(len(batch)))
	return true
}

// ping sends a ping from a goroutine of its own, which lives until the
// pong or timeout. The pong itself is noted by the transport (seen).
func (c *client) ping(timeout time.Duration) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	c.pinging.Store(true)
	go func() {
		defer c.wg.Done()
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = c.tr.Ping(ctx)
	}()
}

// closeWith starts closing the client with code and reason, once; it
// reports whether this call did, and then adds 1 to count (if not nil)
// before the peer can see the close. It never blocks: the handshake runs
// in a closer goroutine.
func (c *client) closeWith(code websocket.StatusCode, reason string, count *atomic.Uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked(code, reason, count)
}

// closeLocked is closeWith with mu held. The close of a peer that does not
// read (slow, idle) discards what is still queued in the kernel for it.
func (c *client) closeLocked(code websocket.StatusCode, reason string, count *atomic.Uint64) bool {
	if c.dead {
		return false
	}
	if count != nil {
		count.Add(1)
	}
	c.dead = true
	c.pending = nil
	close(c.quit)
	c.wg.Add(1)
	go c.closeConn(code, reason, reason == reasonSlow || reason == reasonIdle)
	return true
}

const (
	reasonSlow = "slow consumer"
	reasonIdle = "idle timeout"
)

// closeConn runs the close handshake. coder's Close may wait 5 s to write
// the close frame (behind a stuck write) and 5 s more for the peer's; a
// peer that does not complete it within WriteTimeout gets an RST instead.
func (c *client) closeConn(code websocket.StatusCode, reason string, discard bool) {
	defer c.wg.Done()
	defer close(c.closed)
	if discard {
		c.tr.DiscardOnClose()
	}
	abort := time.AfterFunc(c.g.cfg.WriteTimeout, func() { _ = c.tr.Abort() })
	defer abort.Stop()
	_ = c.tr.Close(code, reason)
}
