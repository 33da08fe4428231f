package binance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tradecache/tradecache/exchange"
)

// userWSServer is a fake of Binance's /private/ws user data endpoint. It
// refuses keys in refuse with 400 {"code":-1125,..} and lets the test
// push frames to each connection.
type userWSServer struct {
	srv    *httptest.Server
	noPong atomic.Bool

	mu     sync.Mutex
	refuse map[string]bool
	conns  []*userSrvConn
	newc   chan *userSrvConn
}

type userSrvConn struct {
	path, key, events string
	c                 *websocket.Conn
	done              chan struct{}
}

func newUserWSServer(t *testing.T) *userWSServer {
	s := &userWSServer{refuse: map[string]bool{}, newc: make(chan *userSrvConn, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(func() {
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.c.CloseNow()
		}
		s.mu.Unlock()
		s.srv.Close()
	})
	return s
}

func (s *userWSServer) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") }

func (s *userWSServer) refuseKey(k string) {
	s.mu.Lock()
	s.refuse[k] = true
	s.mu.Unlock()
}

func (s *userWSServer) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/private/ws" {
		http.NotFound(w, r)
		return
	}
	key := r.URL.Query().Get("listenKey")
	s.mu.Lock()
	refused := s.refuse[key]
	s.mu.Unlock()
	if refused {
		binanceError(w, 400, -1125, "This listenKey does not exist.")
		return
	}
	sc := &userSrvConn{path: r.URL.Path, key: key, events: r.URL.Query().Get("events"), done: make(chan struct{})}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool { return !s.noPong.Load() },
	})
	if err != nil {
		return
	}
	sc.c = c
	s.mu.Lock()
	s.conns = append(s.conns, sc)
	s.mu.Unlock()
	s.newc <- sc
	defer close(sc.done)
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			return
		}
	}
}

func (s *userWSServer) next(t *testing.T) *userSrvConn {
	t.Helper()
	select {
	case sc := <-s.newc:
		return sc
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

func (s *userWSServer) live() []*userSrvConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*userSrvConn
	for _, c := range s.conns {
		select {
		case <-c.done:
		default:
			out = append(out, c)
		}
	}
	return out
}

func (sc *userSrvConn) send(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Errorf("server send: %v", err)
	}
}

// keyCache plays the consumer's cached listenKey: created on demand
// (key01, key02, …), dropped by OnExpired.
type keyCache struct {
	mu    sync.Mutex
	cur   string
	n     int
	calls int
}

func (k *keyCache) get(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.cur == "" {
		k.n++
		k.cur = fmt.Sprintf("key%02d-Zx8Vq3LrT9pWm2Kc7Hs4Nd6Fb1Gy5Ju0", k.n)
	}
	return k.cur, nil
}

func (k *keyCache) invalidate(key string) {
	k.mu.Lock()
	if k.cur == key {
		k.cur = ""
	}
	k.mu.Unlock()
}

func (k *keyCache) callCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

func keyN(n int) string { return fmt.Sprintf("key%02d-Zx8Vq3LrT9pWm2Kc7Hs4Nd6Fb1Gy5Ju0", n) }

// timeline records every callback in order.
type timeline struct {
	mu     sync.Mutex
	lines  []string
	events []exchange.UserEvent
}

func (tl *timeline) add(s string) {
	tl.mu.Lock()
	tl.lines = append(tl.lines, s)
	tl.mu.Unlock()
}

func (tl *timeline) onEvent(ev exchange.UserEvent) {
	tl.mu.Lock()
	tl.events = append(tl.events, ev)
	tl.lines = append(tl.lines, fmt.Sprintf("event %d %d", ev.Kind, ev.EventTime))
	tl.mu.Unlock()
}

func (tl *timeline) snapshot() ([]string, []exchange.UserEvent) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.lines), slices.Clone(tl.events)
}

func (tl *timeline) count(prefix string) int {
	lines, _ := tl.snapshot()
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// startUser runs a UserStream against srv until the test ends.
func startUser(t *testing.T, srv *userWSServer, cfg UserStreamConfig) (*UserStream, *keyCache, *timeline, func()) {
	t.Helper()
	kc := &keyCache{}
	tl := &timeline{}
	cfg.BaseURL = srv.url()
	cfg.ListenKey = kc.get
	if on := cfg.OnEvent; on != nil {
		cfg.OnEvent = func(ev exchange.UserEvent) { on(ev); tl.onEvent(ev) }
	} else {
		cfg.OnEvent = tl.onEvent
	}
	cfg.OnConnect = func() { tl.add("connect") }
	cfg.OnDisconnect = func(err error) { tl.add("disconnect") }
	cfg.OnExpired = func(key string) { tl.add("expired " + key); kc.invalidate(key) }
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
	}
	us, err := NewUserStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- us.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return us, kc, tl, stop
}

func accountMsg(e int64) string {
	return fmt.Sprintf(`{"e":"ACCOUNT_UPDATE","E":%d,"T":%d,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"100","cw":"100","bc":"0"}],"P":[{"s":"BTCUSDT","pa":"%d","ep":"1","bep":"1","cr":"0","up":"0","mt":"cross","iw":"0","ps":"BOTH"}]}}`, e, e, e)
}

func TestUserStreamEvents(t *testing.T) {
	srv := newUserWSServer(t)
	us, _, tl, stop := startUser(t, srv, UserStreamConfig{})
	c := srv.next(t)
	if c.key != keyN(1) || c.events != "ORDER_TRADE_UPDATE/ACCOUNT_UPDATE" {
		t.Errorf("connected with key %q events %q", c.key, c.events)
	}
	c.send(t, string(readFixture(t, "ws_account_update.json")))
	c.send(t, `{"e":"ACCOUNT_CONFIG_UPDATE","E":5,"T":5,"ac":{"s":"BTCUSDT","l":25}}`)                    // unknown: tolerated
	c.send(t, `{"e":"ORDER_TRADE_UPDATE","E":1,"T":1,"o":{"s":"BTCUSDT"}}`)                               // malformed: counted
	c.send(t, `not json`)                                                                                 // malformed
	c.send(t, `{"result":null,"id":1}`)                                                                   // control reply: unknown
	c.send(t, `{"stream":"`+keyN(1)+`","data":`+string(readFixture(t, "ws_order_trade_update.json"))+`}`) // envelope
	c.send(t, accountMsg(1791384000000))
	eventually(t, 5*time.Second, func() bool { _, ev := tl.snapshot(); return len(ev) == 3 }, "3 events")

	lines, evs := tl.snapshot()
	if lines[0] != "connect" {
		t.Errorf("first callback %q, want OnConnect before any event", lines[0])
	}
	if evs[0].Kind != exchange.UserAccountUpdate || len(evs[0].Account.Positions) != 3 ||
		evs[1].Kind != exchange.UserOrderUpdate || evs[1].Order.OrderID != 8886774 ||
		evs[2].Account.Positions[0].PositionAmt != "1791384000000" {
		t.Errorf("events %+v", evs)
	}
	st := us.Stats()
	if st.Frames != 7 || st.AccountEvents != 2 || st.OrderEvents != 1 || st.Unknown != 2 || st.Malformed != 2 ||
		st.Connects != 1 || st.Connections != 1 || st.Reconnects != 0 {
		t.Errorf("stats %+v", st)
	}
	stop()
	if st := us.Stats(); st.Connections != 0 {
		t.Errorf("%d connections after Run returned", st.Connections)
	}
	if lines, _ := tl.snapshot(); lines[len(lines)-1] != "disconnect" {
		t.Errorf("last callback %q, want OnDisconnect at shutdown", lines[len(lines)-1])
	}
}

func TestUserStreamListenKeyExpired(t *testing.T) {
	srv := newUserWSServer(t)
	us, kc, tl, _ := startUser(t, srv, UserStreamConfig{})
	c1 := srv.next(t)
	c1.send(t, accountMsg(10))
	c1.send(t, strings.Replace(string(readFixture(t, "ws_listen_key_expired.json")), expiredKey, keyN(1), 1)) // E as a string
	c2 := srv.next(t)
	if c2.key != keyN(2) {
		t.Fatalf("reconnected with %q, want the new key %q", c2.key, keyN(2))
	}
	c2.send(t, accountMsg(20))
	eventually(t, 5*time.Second, func() bool { _, ev := tl.snapshot(); return len(ev) == 3 }, "events")

	lines, evs := tl.snapshot()
	want := []string{
		"connect",
		fmt.Sprintf("event %d 10", exchange.UserAccountUpdate),
		fmt.Sprintf("event %d 1736996475556", exchange.UserListenKeyExpired),
		"disconnect",
		"expired " + keyN(1),
		"connect",
		fmt.Sprintf("event %d 20", exchange.UserAccountUpdate),
	}
	if !slices.Equal(lines, want) {
		t.Errorf("callbacks\n got %q\nwant %q", lines, want)
	}
	if evs[1].ListenKey != keyN(1) {
		t.Errorf("expired event key %q", evs[1].ListenKey)
	}
	select {
	case <-c1.done:
	case <-time.After(5 * time.Second):
		t.Error("the expired connection was not closed")
	}
	st := us.Stats()
	if st.Expirations != 1 || st.ExpiredEvents != 1 || st.Reconnects != 1 || st.Connects != 2 || kc.callCount() != 2 {
		t.Errorf("stats %+v, ListenKey calls %d", st, kc.callCount())
	}
}

func TestUserStreamRefusedKey(t *testing.T) {
	srv := newUserWSServer(t)
	srv.refuseKey(keyN(1)) // the cached key is already dead: the handshake is refused
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	us, _, tl, stop := startUser(t, srv, UserStreamConfig{Logger: log})
	c := srv.next(t)
	if c.key != keyN(2) {
		t.Fatalf("connected with %q, want %q", c.key, keyN(2))
	}
	c.send(t, `{"e":"listenKeyExpired","E":1,"listenKey":"`+keyN(2)+`"}`)
	c.send(t, `{"e":"listenKeyExpired","E":"x"}`) // never read: the first one ends the connection
	c2 := srv.next(t)
	if c2.key != keyN(3) {
		t.Fatalf("connected with %q, want %q", c2.key, keyN(3))
	}
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 2 }, "second OnConnect")
	stop()
	lines, _ := tl.snapshot()
	if lines[0] != "expired "+keyN(1) || lines[1] != "connect" {
		t.Errorf("callbacks %q", lines)
	}
	st := us.Stats()
	if st.Expirations != 2 || st.DialErrors != 1 || st.Connects != 2 {
		t.Errorf("stats %+v", st)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, k := range []string{keyN(1), keyN(2), keyN(3)} {
		if strings.Contains(out, k) {
			t.Errorf("listenKey %s in logs:\n%s", k, out)
		}
	}
	if !strings.Contains(out, "refused (HTTP 400)") {
		t.Errorf("refusal not logged:\n%s", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestUserStreamUndecodableExpiryStillReconnects(t *testing.T) {
	srv := newUserWSServer(t)
	us, _, tl, _ := startUser(t, srv, UserStreamConfig{})
	c1 := srv.next(t)
	c1.send(t, `{"e":"listenKeyExpired","E":"soon"}`) // malformed, but an expiry all the same
	if c2 := srv.next(t); c2.key != keyN(2) {
		t.Errorf("reconnected with %q", c2.key)
	}
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 2 }, "reconnect")
	if st := us.Stats(); st.Malformed != 1 || st.Expirations != 1 || st.ExpiredEvents != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestUserStreamServerDrop(t *testing.T) {
	srv := newUserWSServer(t)
	us, kc, tl, _ := startUser(t, srv, UserStreamConfig{})
	c1 := srv.next(t)
	c1.send(t, accountMsg(1))
	eventually(t, 5*time.Second, func() bool { _, ev := tl.snapshot(); return len(ev) == 1 }, "event")
	_ = c1.c.CloseNow()
	c2 := srv.next(t)
	if c2.key != keyN(1) {
		t.Errorf("reconnected with %q, want the cached key", c2.key)
	}
	c2.send(t, accountMsg(2))
	eventually(t, 5*time.Second, func() bool { _, ev := tl.snapshot(); return len(ev) == 2 }, "event after reconnect")
	lines, _ := tl.snapshot()
	want := []string{"connect", fmt.Sprintf("event %d 1", exchange.UserAccountUpdate), "disconnect", "connect", fmt.Sprintf("event %d 2", exchange.UserAccountUpdate)}
	if !slices.Equal(lines, want) {
		t.Errorf("callbacks %q", lines)
	}
	if st := us.Stats(); st.Reconnects != 1 || st.Expirations != 0 || kc.callCount() != 2 {
		t.Errorf("stats %+v", st)
	}

	// Reconnect drops the connection; the next one asks for a key again.
	us.Reconnect()
	c3 := srv.next(t)
	select {
	case <-c2.done:
	case <-time.After(5 * time.Second):
		t.Error("Reconnect did not close the connection")
	}
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 3 }, "OnConnect after Reconnect")
	if c3.key != keyN(1) || kc.callCount() != 3 {
		t.Errorf("after Reconnect: key %q, %d ListenKey calls", c3.key, kc.callCount())
	}
}

func TestUserStreamStale(t *testing.T) {
	srv := newUserWSServer(t)
	srv.noPong.Store(true)
	us, _, tl, _ := startUser(t, srv, UserStreamConfig{PingInterval: 50 * time.Millisecond, StaleAfter: 300 * time.Millisecond})
	c1 := srv.next(t)
	select {
	case <-c1.done:
	case <-time.After(5 * time.Second):
		t.Fatal("silent connection not reset")
	}
	srv.next(t)
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 2 }, "reconnect")
	if st := us.Stats(); st.StaleResets < 1 || st.Reconnects < 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestUserStreamUnansweredPing: a server that stops answering pings, long
// before the connection would be stale, may also have stopped delivering;
// the connection is reset after PongTimeout and the reconnection calls
// OnConnect (the consumer re-seeds what was lost).
func TestUserStreamUnansweredPing(t *testing.T) {
	srv := newUserWSServer(t)
	us, _, tl, _ := startUser(t, srv, UserStreamConfig{PingInterval: 100 * time.Millisecond, PongTimeout: time.Second, StaleAfter: time.Minute})
	c1 := srv.next(t)
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 1 }, "first connect")
	// Answered pings keep it: several intervals pass without a reset.
	time.Sleep(time.Second)
	if st := us.Stats(); st.PongTimeouts != 0 || st.Reconnects != 0 {
		t.Fatalf("reset while pongs were answered: %+v", st)
	}
	srv.noPong.Store(true)
	select {
	case <-c1.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection whose pings go unanswered was not reset (StaleAfter is a minute)")
	}
	srv.noPong.Store(false)
	srv.next(t)
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 2 }, "OnConnect after the reset")
	if st := us.Stats(); st.PongTimeouts < 1 || st.StaleResets != 0 {
		t.Errorf("stats %+v: want a pong timeout, no stale reset", st)
	}
}

// TestUserStreamSlowHandlerIsNotAStall: pongs wait unread while OnEvent
// runs longer than PongTimeout; that delay is the client's own, and the
// connection is kept.
func TestUserStreamSlowHandlerIsNotAStall(t *testing.T) {
	srv := newUserWSServer(t)
	slow := func(exchange.UserEvent) { time.Sleep(600 * time.Millisecond) }
	us, _, tl, _ := startUser(t, srv, UserStreamConfig{PingInterval: 50 * time.Millisecond, PongTimeout: 200 * time.Millisecond, StaleAfter: time.Minute, OnEvent: slow})
	c1 := srv.next(t)
	for i := int64(1); i <= 3; i++ {
		c1.send(t, accountMsg(i))
	}
	eventually(t, 10*time.Second, func() bool { _, evs := tl.snapshot(); return len(evs) == 3 }, "three events handled")
	if st := us.Stats(); st.PongTimeouts != 0 || st.Reconnects != 0 || tl.count("connect") != 1 {
		t.Errorf("a slow handler reset the connection: %+v", st)
	}
}

// TestUserStreamRotationAfterUnansweredPing: a connection replaced while
// a ping of its waits unanswered may have lost events its replacement does
// not carry: the rotation is reported as a loss (OnConnect again), not as
// seamless.
func TestUserStreamRotationAfterUnansweredPing(t *testing.T) {
	srv := newUserWSServer(t)
	srv.noPong.Store(true)
	us, _, tl, _ := startUser(t, srv, UserStreamConfig{Rotate: 400 * time.Millisecond, RotateOverlap: 50 * time.Millisecond, PingInterval: 50 * time.Millisecond, PongTimeout: time.Minute, StaleAfter: 2 * time.Minute})
	srv.next(t)
	srv.next(t) // the replacement
	eventually(t, 5*time.Second, func() bool { return tl.count("connect") == 2 }, "OnConnect after a rotation away from a silent connection")
	if st := us.Stats(); st.Reconnects < 1 || st.PongTimeouts != 0 {
		t.Errorf("stats %+v: want the rotation counted as a reconnect", st)
	}
}

// TestUserStreamRotation: a broadcaster pushes ACCOUNT_UPDATEs numbered
// 1, 2, 3… to every live connection. Across make-before-break rotations
// every event is delivered exactly once and in order, and OnConnect is
// called once.
func TestUserStreamRotation(t *testing.T) {
	srv := newUserWSServer(t)
	us, kc, tl, stop := startUser(t, srv, UserStreamConfig{Rotate: 250 * time.Millisecond, RotateOverlap: 60 * time.Millisecond})
	srv.next(t)
	bctx, bcancel := context.WithCancel(context.Background())
	var bwg sync.WaitGroup
	bwg.Go(func() {
		for i := int64(1); bctx.Err() == nil; i++ {
			for _, sc := range srv.live() {
				wctx, cancel := context.WithTimeout(bctx, time.Second)
				_ = sc.c.Write(wctx, websocket.MessageText, []byte(accountMsg(i)))
				cancel()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	eventually(t, 10*time.Second, func() bool { return us.Stats().Rotations >= 3 }, "3 rotations")
	bcancel()
	bwg.Wait()
	stop()

	lines, evs := tl.snapshot()
	if n := tl.count("connect"); n != 1 {
		t.Errorf("OnConnect %d times; a rotation is not a reconnect: %q", n, lines[:min(len(lines), 5)])
	}
	if len(evs) < 20 {
		t.Fatalf("only %d events", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].EventTime != evs[i-1].EventTime+1 {
			t.Fatalf("event %d after %d: duplicate, gap or reorder", evs[i].EventTime, evs[i-1].EventTime)
		}
	}
	st := us.Stats()
	if st.Duplicates == 0 || st.Reconnects != 0 || st.Connections != 0 || kc.callCount() != int(st.Connects) {
		t.Errorf("stats %+v, ListenKey calls %d", st, kc.callCount())
	}
}

func TestNewUserStreamValidation(t *testing.T) {
	key := func(context.Context) (string, error) { return "k", nil }
	for name, cfg := range map[string]UserStreamConfig{
		"no ListenKey":  {},
		"no scheme":     {ListenKey: key, BaseURL: "fstream.binance.com"},
		"query in base": {ListenKey: key, BaseURL: "wss://x/?a=b"},
		"bad event":     {ListenKey: key, Events: []string{"ACCOUNT_UPDATE&x=1"}},
		"stale <= ping": {ListenKey: key, StaleAfter: time.Second, PingInterval: 2 * time.Second},
		"overlap":       {ListenKey: key, Rotate: time.Second, RotateOverlap: 2 * time.Second},
	} {
		if _, err := NewUserStream(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	us, err := NewUserStream(UserStreamConfig{ListenKey: key, Events: []string{"ACCOUNT_UPDATE"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := us.streamURL("abc"); got != "wss://fstream.binance.com/private/ws?listenKey=abc&events=ACCOUNT_UPDATE" {
		t.Errorf("URL %s", got)
	}
	// The user stream's own defaults: a stall found by a ping within
	// seconds, a reconnection never more than 5 s away.
	if c := us.cfg; c.PingInterval != 5*time.Second || c.PongTimeout != 5*time.Second || c.BackoffMax != 5*time.Second || c.StaleAfter != 30*time.Second {
		t.Errorf("defaults: ping %v, pong timeout %v, backoff max %v, stale after %v", c.PingInterval, c.PongTimeout, c.BackoffMax, c.StaleAfter)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := us.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := us.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}
