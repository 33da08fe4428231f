package binance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tradecache/tradecache/exchange"
)

// PathPrivate is the routed base path of the user data stream.
const PathPrivate = "/private"

// DefaultUserEvents are the event types asked for in the connection URL.
var DefaultUserEvents = []string{EventOrderTradeUpdate, EventAccountUpdate}

// maxSeen bounds the rotation duplicate filter (events delivered by the
// old connection while the new one was held back).
const maxSeen = 4096

var (
	errListenKeyExpired   = errors.New("listenKeyExpired received")
	errReconnectRequested = errors.New("reconnect requested")
	errOldExpired         = errors.New("listenKey expired during rotation")
)

// UserStreamConfig configures a UserStream. Zero values take the defaults
// of StreamConfig, but PingInterval, PongTimeout and BackoffMax, which are
// the user stream's own (DefaultUserPingInterval, DefaultPongTimeout,
// DefaultUserBackoffMax).
type UserStreamConfig struct {
	// BaseURL is the host; "/private/ws?listenKey=<key>&events=<events>"
	// is appended. Default wss://fstream.binance.com.
	BaseURL string
	// Events are the event types asked for (events=a/b); default
	// ORDER_TRADE_UPDATE and ACCOUNT_UPDATE.
	Events []string

	// ListenKey returns the key to connect with. It is called before
	// every connection (first, reconnect, rotation), with a context
	// bounded by DialTimeout; typically it returns a cached key and
	// creates one (REST.CreateListenKey) when there is none. Required.
	ListenKey func(ctx context.Context) (string, error)
	// OnEvent receives every decoded event (ACCOUNT_UPDATE,
	// ORDER_TRADE_UPDATE, and listenKeyExpired before the reconnect). It
	// is called from the reading goroutine, never concurrently, in the
	// order received. It must return quickly: while it runs nothing is
	// read and after StaleAfter the connection is reset as dead.
	OnEvent func(exchange.UserEvent)
	// OnConnect is called after each (re)connection, before any event of
	// that connection is delivered: the consumer re-seeds its state from
	// REST (account snapshot) since events may have been missed. It is
	// not called for a make-before-break rotation, which leaves no gap.
	// The connection's events wait while it runs: keep it short.
	OnConnect func()
	// OnDisconnect is called once after each OnConnect when that
	// connection is lost (ctx's error at shutdown).
	OnDisconnect func(err error)
	// OnExpired is called with the key when a listenKeyExpired arrives on
	// its connection, or when the handshake with it is refused (HTTP 400,
	// 401, 404 or 410, or code -1125): the consumer drops its cached key,
	// so that the next ListenKey call creates a fresh one. The stream then
	// reconnects after a backoff.
	OnExpired func(key string)

	// PingInterval: the client pings this often (default 5 s, shorter
	// than a market stream's: see PongTimeout).
	PingInterval time.Duration
	// PongTimeout: a ping unanswered this long resets the connection
	// (default 5 s; see the package doc, "User data stream").
	PongTimeout   time.Duration
	StaleAfter    time.Duration // no frame of any kind for this long → reset; default 30 s
	Rotate        time.Duration // replace connections this old; default 23h50m
	RotateOverlap time.Duration // old keeps delivering this long after the new is up; default 2 s
	BackoffMin    time.Duration // default 250 ms
	BackoffMax    time.Duration // default 5 s (DefaultUserBackoffMax)
	HealthyAfter  time.Duration // a connection up this long resets the backoff; default 1 min
	MaxFrame      int64         // larger messages are counted and reset the connection; default 4 MiB
	DialTimeout   time.Duration // ListenKey call, and the handshake; default 10 s each
	HTTPClient    *http.Client  // for the handshake; default http.DefaultClient
	UserAgent     string
	Logger        *slog.Logger // default: discard. Keys are logged abbreviated.
}

// UserStats are cumulative counters of a UserStream (a snapshot).
type UserStats struct {
	Frames        int64 // messages read
	AccountEvents int64 // events delivered, by kind
	OrderEvents   int64
	ExpiredEvents int64 // listenKeyExpired delivered
	Malformed     int64 // dropped: invalid JSON, wrong types, missing fields
	Unknown       int64 // dropped: other event types, control replies
	Oversized     int64 // messages above MaxFrame (connection reset)
	Duplicates    int64 // dropped after a rotation (already delivered by the old connection)
	Connects      int64 // connections established (including rotations)
	Reconnects    int64 // connections re-established after a loss
	Rotations     int64 // make-before-break replacements
	Expirations   int64 // OnExpired calls (listenKeyExpired, or key refused at connect)
	StaleResets   int64 // connections reset for silence
	PongTimeouts  int64 // connections reset because a ping went unanswered (PongTimeout)
	DialErrors    int64 // failed ListenKey calls and handshakes
	Connections   int64 // connections currently open (gauge)
}

type userCounters struct {
	frames, account, order, expired                     atomic.Int64
	malformed, unknown, oversized, duplicates           atomic.Int64
	connects, reconnects, rotations, expirations, stale atomic.Int64
	pongTimeouts                                        atomic.Int64
	dialErrors, connections                             atomic.Int64
}

// UserStream keeps one user data stream connection alive. Create it with
// NewUserStream and run it with Run.
type UserStream struct {
	cfg     UserStreamConfig
	log     *slog.Logger
	events  string
	c       userCounters
	running atomic.Bool
	connIDs atomic.Uint64
	seed    maphash.Seed
	kick    chan struct{}

	mu        sync.Mutex // serialises delivery; guards the fields below
	active    uint64     // the connection whose events are delivered
	recording bool       // rotation overlap: remember what is delivered
	seen      map[uint64]struct{}
}

// NewUserStream validates cfg and returns a UserStream.
func NewUserStream(cfg UserStreamConfig) (*UserStream, error) {
	if cfg.ListenKey == nil {
		return nil, errors.New("binance: UserStreamConfig.ListenKey is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultStreamURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if !strings.Contains(cfg.BaseURL, "://") || strings.ContainsAny(cfg.BaseURL, "?#") {
		return nil, fmt.Errorf("binance: user stream base URL %q: want scheme://host[/path]", cfg.BaseURL)
	}
	if len(cfg.Events) == 0 {
		cfg.Events = DefaultUserEvents
	}
	for _, e := range cfg.Events {
		if e == "" || strings.IndexFunc(e, func(r rune) bool {
			return !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) >= 0 {
			return nil, fmt.Errorf("binance: invalid user event name %q", e)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.PingInterval, DefaultUserPingInterval)
	def(&cfg.PongTimeout, DefaultPongTimeout)
	def(&cfg.StaleAfter, DefaultStaleAfter)
	def(&cfg.Rotate, DefaultRotate)
	def(&cfg.RotateOverlap, DefaultRotateOverlap)
	def(&cfg.BackoffMin, DefaultBackoffMin)
	def(&cfg.BackoffMax, DefaultUserBackoffMax)
	def(&cfg.HealthyAfter, DefaultHealthyAfter)
	def(&cfg.DialTimeout, DefaultDialTimeout)
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffMin)
	if cfg.StaleAfter <= cfg.PingInterval {
		return nil, fmt.Errorf("binance: StaleAfter %v must exceed PingInterval %v", cfg.StaleAfter, cfg.PingInterval)
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
	us := &UserStream{
		cfg:    cfg,
		log:    cfg.Logger,
		events: strings.Join(cfg.Events, "/"),
		seed:   maphash.MakeSeed(),
		kick:   make(chan struct{}, 1),
	}
	if us.log == nil {
		us.log = slog.New(slog.DiscardHandler)
	}
	return us, nil
}

// Stats returns a snapshot of the counters.
func (us *UserStream) Stats() UserStats {
	c := &us.c
	return UserStats{
		Frames:        c.frames.Load(),
		AccountEvents: c.account.Load(),
		OrderEvents:   c.order.Load(),
		ExpiredEvents: c.expired.Load(),
		Malformed:     c.malformed.Load(),
		Unknown:       c.unknown.Load(),
		Oversized:     c.oversized.Load(),
		Duplicates:    c.duplicates.Load(),
		Connects:      c.connects.Load(),
		Reconnects:    c.reconnects.Load(),
		Rotations:     c.rotations.Load(),
		Expirations:   c.expirations.Load(),
		StaleResets:   c.stale.Load(),
		PongTimeouts:  c.pongTimeouts.Load(),
		DialErrors:    c.dialErrors.Load(),
		Connections:   c.connections.Load(),
	}
}

// Reconnect drops the current connection; Run reconnects (after the
// usual backoff) with a key from a new ListenKey call. Use it when the
// key is known to be gone by other means, e.g. a keepalive answered
// -1125, since Binance may keep the old connection open and silent. It
// does not block; it is a no-op while no connection is up.
func (us *UserStream) Reconnect() {
	select {
	case us.kick <- struct{}{}:
	default:
	}
}

// streamURL is the connection URL for key.
func (us *UserStream) streamURL(key string) string {
	return us.cfg.BaseURL + PathPrivate + "/ws?listenKey=" + url.QueryEscape(key) + "&events=" + us.events
}

// Run keeps a connection up until ctx ends; then it closes it, waits for
// every goroutine it started and returns nil. It returns an error only if
// called twice.
func (us *UserStream) Run(ctx context.Context) error {
	if !us.running.CompareAndSwap(false, true) {
		return errors.New("binance: UserStream.Run called twice")
	}
	bo := backoff{min: us.cfg.BackoffMin, max: us.cfg.BackoffMax}
	connected := false
	for ctx.Err() == nil {
		select { // a Reconnect while down is moot: this dial gets a new key
		case <-us.kick:
		default:
		}
		wc, err := us.establish(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			us.c.dialErrors.Add(1)
			us.noteRefused(err)
			d := bo.next()
			us.log.Warn("binance user stream connect failed", "err", err, "retry_in", d)
			if !sleepCtx(ctx, d) {
				break
			}
			continue
		}
		if connected {
			us.c.reconnects.Add(1)
		}
		connected = true
		us.activate(wc)
		us.log.Info("binance user stream connected", "key", abbrevKey(wc.key))
		if us.cfg.OnConnect != nil {
			us.cfg.OnConnect()
		}
		wc.open()
		last, err := us.serve(ctx, wc, &bo)
		if us.cfg.OnDisconnect != nil {
			us.cfg.OnDisconnect(err)
		}
		if last.expired.Load() {
			us.expire(last.key)
		}
		if ctx.Err() != nil {
			break
		}
		d := bo.next()
		us.log.Warn("binance user stream disconnected", "key", abbrevKey(last.key), "err", err, "retry_in", d)
		if !sleepCtx(ctx, d) {
			break
		}
	}
	return nil
}

// serve keeps cur alive, rotating it when old, until the connection in
// use is lost, a Reconnect is asked for or ctx ends. It returns the last
// connection (closed) and why it ended.
func (us *UserStream) serve(ctx context.Context, cur *userConn, bo *backoff) (*userConn, error) {
	rotate := time.NewTimer(us.cfg.Rotate)
	defer rotate.Stop()
	healthy := time.NewTimer(us.cfg.HealthyAfter)
	defer healthy.Stop()
	catchUp := time.NewTimer(time.Hour)
	catchUp.Stop()
	defer catchUp.Stop()
	for {
		select {
		case <-ctx.Done():
			cur.close(ctx.Err())
			return cur, ctx.Err()
		case <-cur.done:
			return cur, cur.err
		case <-us.kick:
			cur.close(errReconnectRequested)
			return cur, cur.err
		case <-healthy.C:
			bo.reset()
		case <-catchUp.C:
			us.endFilter()
		case <-rotate.C:
			next, gap, err := us.replace(ctx, cur)
			if err != nil {
				if ctx.Err() != nil {
					cur.close(ctx.Err())
					return cur, ctx.Err()
				}
				if errors.Is(err, errOldExpired) {
					<-cur.done
					return cur, cur.err
				}
				us.c.dialErrors.Add(1)
				us.noteRefused(err)
				d := bo.next()
				us.log.Warn("binance user stream rotation failed; keeping the old connection", "err", err, "retry_in", d)
				rotate.Reset(d)
				continue
			}
			if gap {
				// The old connection died before the new one was up.
				us.c.reconnects.Add(1)
				if us.cfg.OnDisconnect != nil {
					us.cfg.OnDisconnect(cur.err)
				}
				if us.cfg.OnConnect != nil {
					us.cfg.OnConnect()
				}
				next.open()
			} else {
				us.c.rotations.Add(1)
				us.log.Info("binance user stream rotated", "key", abbrevKey(next.key))
			}
			cur = next
			catchUp.Reset(us.cfg.RotateOverlap)
			rotate.Reset(us.cfg.Rotate)
		}
	}
}

// replace connects a replacement for cur while cur keeps delivering. The
// replacement is held back (not read) until cur is closed; then it
// delivers from where it was connected, minus what cur already delivered
// (the duplicate filter, ended by serve after RotateOverlap). gap reports
// that cur was already dead when the replacement came up, or had a ping
// unanswered (its server may have dropped events): the caller reports a
// reconnect and opens it.
func (us *UserStream) replace(ctx context.Context, cur *userConn) (next *userConn, gap bool, err error) {
	us.setRecording(true)
	next, err = us.establish(ctx)
	if err != nil {
		us.setRecording(false)
		return nil, false, err
	}
	expired := func() bool {
		if cur.expired.Load() {
			next.close(errOldExpired)
			us.setRecording(false)
			return true
		}
		return false
	}
	select {
	case <-cur.done:
		if expired() {
			return nil, false, errOldExpired
		}
		us.activate(next)
		return next, true, nil
	default:
	}
	t := time.NewTimer(us.cfg.RotateOverlap)
	defer t.Stop()
	select {
	case <-ctx.Done():
		next.close(ctx.Err())
		us.setRecording(false)
		return nil, false, ctx.Err()
	case <-next.done:
		us.setRecording(false)
		return nil, false, fmt.Errorf("replacement lost during overlap: %w", next.err)
	case <-t.C:
	case <-cur.done:
		if expired() {
			return nil, false, errOldExpired
		}
	}
	cur.close(errRotated)
	if cur.expired.Load() { // expired while being closed
		next.close(errOldExpired)
		us.setRecording(false)
		return nil, false, errOldExpired
	}
	us.switchTo(next)
	if errors.Is(cur.err, errNoPong) || cur.ping.outstanding() {
		// The old connection had stopped answering: what its server
		// dropped meanwhile, the replacement, connected later, does not
		// carry. A loss, then (the caller opens next after OnConnect).
		return next, true, nil
	}
	next.open()
	return next, false, nil
}

// establish obtains a key and connects with it.
func (us *UserStream) establish(ctx context.Context) (*userConn, error) {
	kctx, cancel := context.WithTimeout(ctx, us.cfg.DialTimeout)
	key, err := us.cfg.ListenKey(kctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("binance: user stream: ListenKey: %w", err)
	}
	if !validListenKey(key) {
		return nil, errors.New("binance: user stream: ListenKey returned an invalid key")
	}
	wc, err := us.dial(ctx, key)
	if err != nil {
		return nil, err
	}
	us.c.connects.Add(1)
	return wc, nil
}

func (us *UserStream) noteRefused(err error) {
	var kr *keyRefusedError
	if errors.As(err, &kr) {
		us.expire(kr.key)
	}
}

func (us *UserStream) expire(key string) {
	us.c.expirations.Add(1)
	us.log.Warn("binance user stream listenKey expired", "key", abbrevKey(key))
	if us.cfg.OnExpired != nil {
		us.cfg.OnExpired(key)
	}
}

func (us *UserStream) activate(wc *userConn) {
	us.mu.Lock()
	us.active, us.recording, us.seen = wc.id, false, nil
	us.mu.Unlock()
}

func (us *UserStream) switchTo(wc *userConn) {
	us.mu.Lock()
	us.active, us.recording = wc.id, false
	us.mu.Unlock()
}

func (us *UserStream) setRecording(on bool) {
	us.mu.Lock()
	us.recording, us.seen = on, nil
	if on {
		us.seen = map[uint64]struct{}{}
	}
	us.mu.Unlock()
}

func (us *UserStream) endFilter() {
	us.mu.Lock()
	if !us.recording {
		us.seen = nil
	}
	us.mu.Unlock()
}

// deliver passes ev (payload hash h) to OnEvent, serialised. During a
// rotation's overlap it remembers what the old connection delivered;
// after the switch the new connection's copies of those are dropped.
func (us *UserStream) deliver(wc *userConn, h uint64, ev exchange.UserEvent) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if wc.id != us.active { // not reachable by design; never deliver twice
		us.c.duplicates.Add(1)
		return
	}
	switch {
	case us.recording:
		if len(us.seen) < maxSeen {
			us.seen[h] = struct{}{}
		}
	case us.seen != nil:
		if _, dup := us.seen[h]; dup {
			delete(us.seen, h)
			us.c.duplicates.Add(1)
			return
		}
	}
	switch ev.Kind {
	case exchange.UserAccountUpdate:
		us.c.account.Add(1)
	case exchange.UserOrderUpdate:
		us.c.order.Add(1)
	case exchange.UserListenKeyExpired:
		us.c.expired.Add(1)
	}
	if us.cfg.OnEvent != nil {
		us.cfg.OnEvent(ev)
	}
}

// userConn is one user data stream connection. Its reading goroutine
// waits until open (held back during OnConnect and a rotation's overlap),
// then starts a pinger and a staleness watchdog; done is closed when all
// have exited.
type userConn struct {
	us   *UserStream
	id   uint64
	key  string
	c    *websocket.Conn
	last atomic.Int64

	ready     chan struct{}
	readyOnce sync.Once
	expired   atomic.Bool // a listenKeyExpired arrived
	handling  atomic.Bool // the reader is in handle (OnEvent included)
	ping      *pinger

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error // why it ended; written once, read after done
}

// keyRefusedError is a handshake refused because of the key.
type keyRefusedError struct {
	key    string
	status int
	err    error
}

func (e *keyRefusedError) Error() string {
	return fmt.Sprintf("binance: user stream: listenKey %s refused (HTTP %d): %v", abbrevKey(e.key), e.status, e.err)
}

func (e *keyRefusedError) Unwrap() error { return e.err }

func (us *UserStream) dial(ctx context.Context, key string) (*userConn, error) {
	wc := &userConn{
		us:    us,
		id:    us.connIDs.Add(1),
		key:   key,
		ready: make(chan struct{}),
		done:  make(chan struct{}),
	}
	dctx, cancel := context.WithTimeout(ctx, us.cfg.DialTimeout)
	defer cancel()
	h := http.Header{}
	h.Set("User-Agent", us.cfg.UserAgent)
	c, resp, err := websocket.Dial(dctx, us.streamURL(key), &websocket.DialOptions{
		HTTPClient: us.cfg.HTTPClient,
		HTTPHeader: h,
		OnPingReceived: func(context.Context, []byte) bool {
			wc.touch()
			return true
		},
		OnPongReceived: func(context.Context, []byte) { wc.touch() },
	})
	if err != nil {
		err = scrubKey(err, key)
		if resp != nil && keyRefused(resp) {
			return nil, &keyRefusedError{key: key, status: resp.StatusCode, err: err}
		}
		return nil, fmt.Errorf("binance: user stream: %w", err)
	}
	c.SetReadLimit(us.cfg.MaxFrame)
	wc.c = c
	wc.ping = &pinger{c: c, interval: us.cfg.PingInterval, timeout: us.cfg.PongTimeout, last: wc.lastFrame, busy: wc.handling.Load}
	wc.touch()
	cctx, ccancel := context.WithCancel(ctx)
	wc.cancel = ccancel
	us.c.connections.Add(1)
	go wc.run(cctx)
	return wc, nil
}

// keyRefused tells whether a failed handshake's response blames the key.
func keyRefused(resp *http.Response) bool {
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if code, _, ok := decodeAPIError(b); ok && code == -1125 {
			return true
		}
	}
	switch resp.StatusCode {
	case 400, 401, 404, 410:
		return true
	}
	return false
}

func (wc *userConn) touch() { wc.last.Store(time.Now().UnixNano()) }

func (wc *userConn) lastFrame() time.Time { return time.Unix(0, wc.last.Load()) }

func (wc *userConn) open() { wc.readyOnce.Do(func() { close(wc.ready) }) }

func (wc *userConn) fail(err error) {
	wc.once.Do(func() { wc.err = err })
	wc.cancel()
	_ = wc.c.CloseNow()
}

func (wc *userConn) close(reason error) {
	wc.fail(reason)
	<-wc.done
}

func (wc *userConn) run(ctx context.Context) {
	us := wc.us
	defer close(wc.done)
	defer us.c.connections.Add(-1)
	select {
	case <-wc.ready:
	case <-ctx.Done():
		wc.fail(ctx.Err())
		return
	}
	wc.touch() // time held back is not silence
	var helpers sync.WaitGroup
	helpers.Go(func() {
		// A pong overdue resets the connection: what the server
		// published while it did not answer may be lost, and the
		// reconnection re-seeds (OnConnect).
		if err := wc.ping.run(ctx); err != nil {
			us.c.pongTimeouts.Add(1)
			us.log.Warn("binance user stream: ping unanswered; resetting (events may have been lost meanwhile)", "timeout", us.cfg.PongTimeout)
			wc.fail(fmt.Errorf("binance: user stream: %w", err))
		}
	})
	helpers.Go(func() {
		if err := watchStale(ctx, wc.lastFrame, us.cfg.StaleAfter); err != nil {
			us.c.stale.Add(1)
			us.log.Warn("binance user stream stale; resetting", "silent_for", time.Since(wc.lastFrame()).Round(time.Millisecond))
			wc.fail(err)
		}
	})
	err := wc.readLoop(ctx)
	wc.fail(err)
	helpers.Wait()
}

func (wc *userConn) readLoop(ctx context.Context) error {
	us := wc.us
	var buf bytes.Buffer
	for {
		_, r, err := wc.c.Reader(ctx)
		if err != nil {
			return err
		}
		wc.touch()
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				us.c.oversized.Add(1)
				return fmt.Errorf("%w (%d bytes): %v", errOversized, us.cfg.MaxFrame, err)
			}
			return err
		}
		wc.touch()
		us.c.frames.Add(1)
		wc.handling.Store(true)
		expired := wc.handle(buf.Bytes())
		wc.handling.Store(false)
		if expired {
			wc.expired.Store(true)
			return errListenKeyExpired
		}
		if buf.Cap() > 1<<20 {
			buf = bytes.Buffer{}
		}
	}
}

// handle processes one message; it reports whether the key expired.
func (wc *userConn) handle(b []byte) (expired bool) {
	us := wc.us
	data, ev, err := decodeUserMessage(b)
	if err != nil {
		if isUnknown(err) {
			wc.drop(&us.c.unknown, "unknown event", b, err)
			return false
		}
		wc.drop(&us.c.malformed, "malformed", b, err)
		// An expiry that fails to decode still ends the stream: staying
		// on a dead key would be silent forever.
		if data != nil {
			if typ, err := eventType(data); err == nil && typ == EventListenKeyExpired {
				return true
			}
		}
		return false
	}
	us.deliver(wc, maphash.Bytes(us.seed, data), ev)
	if ev.Kind == exchange.UserListenKeyExpired {
		if ev.ListenKey != "" && ev.ListenKey != wc.key {
			us.log.Warn("binance user stream: listenKeyExpired names another key", "key", abbrevKey(wc.key), "expired", abbrevKey(ev.ListenKey))
		}
		return true
	}
	return false
}

func (wc *userConn) drop(n *atomic.Int64, what string, b []byte, err error) {
	n.Add(1)
	log := wc.us.log
	if log.Enabled(context.Background(), slog.LevelDebug) {
		// User frames carry no credentials; the listenKey only appears in
		// listenKeyExpired and envelopes, so scrub it anyway.
		scrub := func(s string) string { return strings.ReplaceAll(s, wc.key, abbrevKey(wc.key)) }
		frame := scrub(string(b))
		frame = frame[:min(len(frame), 256)]
		log.Debug("binance user stream frame dropped", "why", what, "err", scrub(fmt.Sprint(err)), "frame", frame)
	}
}

// abbrevKey shortens a listenKey for logs and errors.
func abbrevKey(k string) string {
	if len(k) <= 8 {
		return "…"
	}
	return k[:4] + "…"
}

// scrubbedError hides a listenKey from a dial error's text. Unwrap skips
// the layers whose text contains the URL.
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.cause }

func scrubKey(err error, key string) error {
	err = stripQuery(err)
	msg := err.Error()
	if key == "" || !strings.Contains(msg, key) {
		return err
	}
	var cause error
	var ue *url.Error
	if errors.As(err, &ue) && !strings.Contains(ue.Err.Error(), key) {
		cause = ue.Err
	}
	return &scrubbedError{msg: strings.ReplaceAll(msg, key, abbrevKey(key)), cause: cause}
}
