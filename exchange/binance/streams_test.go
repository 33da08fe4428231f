package binance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// wsServer is a fake Binance market-stream server: it accepts combined
// connections on <path>/stream, acknowledges SUBSCRIBE, records control
// messages (SUBSCRIBE and pings) and lets the test push frames.
type wsServer struct {
	t   *testing.T
	srv *httptest.Server

	noPong     atomic.Bool
	noAck      atomic.Bool
	failDials  atomic.Int64 // answer this many handshakes with 503
	errorReply atomic.Bool  // answer SUBSCRIBE with {"error":..}

	mu    sync.Mutex
	conns []*srvConn
	newc  chan *srvConn
}

type srvConn struct {
	path, query string
	c           *websocket.Conn
	done        chan struct{}

	mu       sync.Mutex
	subs     []string
	batches  [][]string
	ids      []json.RawMessage
	control  []time.Time // SUBSCRIBEs and pings, as received
	lastSend time.Time
	acked    bool
}

func newWSServer(t *testing.T) *wsServer {
	s := &wsServer{t: t, newc: make(chan *srvConn, 100)}
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

func (s *wsServer) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") }

func (s *wsServer) handle(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/stream") {
		http.NotFound(w, r)
		return
	}
	if s.failDials.Add(-1) >= 0 {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	sc := &srvConn{path: strings.TrimSuffix(r.URL.Path, "/stream"), query: r.URL.RawQuery, done: make(chan struct{})}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			sc.mu.Lock()
			sc.control = append(sc.control, time.Now())
			sc.mu.Unlock()
			return !s.noPong.Load()
		},
	})
	if err != nil {
		return
	}
	c.SetReadLimit(1 << 20)
	sc.c = c
	s.mu.Lock()
	s.conns = append(s.conns, sc)
	s.mu.Unlock()
	s.newc <- sc
	defer close(sc.done)
	ctx := context.Background()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			Method string          `json:"method"`
			Params []string        `json:"params"`
			ID     json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Method != "SUBSCRIBE" {
			s.t.Errorf("server got %s", b)
			continue
		}
		sc.mu.Lock()
		sc.control = append(sc.control, time.Now())
		sc.subs = append(sc.subs, m.Params...)
		sc.batches = append(sc.batches, m.Params)
		sc.ids = append(sc.ids, m.ID)
		sc.mu.Unlock()
		if s.noAck.Load() {
			continue
		}
		reply := `{"result":null,"id":` + string(m.ID) + `}`
		if s.errorReply.Load() {
			reply = `{"error":{"code":4,"msg":"Too many subscriptions"},"id":` + string(m.ID) + `}`
		}
		sc.mu.Lock()
		err = c.Write(ctx, websocket.MessageText, []byte(reply))
		sc.lastSend, sc.acked = time.Now(), true
		sc.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// next waits for the next accepted connection.
func (s *wsServer) next(t *testing.T) *srvConn {
	t.Helper()
	select {
	case sc := <-s.newc:
		return sc
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

func (s *wsServer) live() []*srvConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*srvConn
	for _, c := range s.conns {
		select {
		case <-c.done:
		default:
			out = append(out, c)
		}
	}
	return out
}

func (sc *srvConn) send(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Errorf("server send: %v", err)
	}
	sc.mu.Lock()
	sc.lastSend = time.Now()
	sc.mu.Unlock()
}

func (sc *srvConn) subscribed() []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return slices.Clone(sc.subs)
}

func (sc *srvConn) waitSubs(t *testing.T, n int) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return len(sc.subscribed()) >= n }, "subscriptions")
}

// maxInWindow is the largest number of control messages in any window.
func (sc *srvConn) maxInWindow(w time.Duration) int {
	sc.mu.Lock()
	ts := slices.Clone(sc.control)
	sc.mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best := 0
	for i := range ts {
		j := i
		for j < len(ts) && ts[j].Sub(ts[i]) < w {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

func eventually(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder collects callbacks.
type recorder struct {
	mu          sync.Mutex
	events      []exchange.Event
	connects    []string
	disconnects []error
}

func (r *recorder) onEvent(ev exchange.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) onConnect(path string) {
	r.mu.Lock()
	r.connects = append(r.connects, path)
	r.mu.Unlock()
}

func (r *recorder) onDisconnect(path string, err error) {
	r.mu.Lock()
	r.disconnects = append(r.disconnects, err)
	r.mu.Unlock()
}

func (r *recorder) snapshot() (ev []exchange.Event, conn []string, disc []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), slices.Clone(r.connects), slices.Clone(r.disconnects)
}

// start runs Streams against srv until the test ends.
func start(t *testing.T, srv *wsServer, cfg StreamConfig) (*Streams, *recorder, func()) {
	t.Helper()
	rec := &recorder{}
	cfg.BaseURL = srv.url()
	cfg.OnEvent, cfg.OnConnect, cfg.OnDisconnect = rec.onEvent, rec.onConnect, rec.onDisconnect
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 50*time.Millisecond
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 2 * time.Second
	}
	s, err := NewStreams(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
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
	return s, rec, stop
}

func klineMsg(stream, sym string, openTime, e int64, closed bool) string {
	return fmt.Sprintf(`{"stream":%q,"data":{"e":"kline","E":%d,"s":%q,"k":{"t":%d,"T":%d,"s":%q,"i":"1m","f":1,"L":2,"o":"1.0","c":"1.1","h":"1.2","l":"0.9","v":"10","n":2,"x":%v,"q":"11","V":"5","Q":"5.5","B":"0"}}}`,
		stream, e, sym, openTime, openTime+59999, sym, closed)
}

func bookMsg(stream, sym string, e int64) string {
	return fmt.Sprintf(`{"stream":%q,"data":{"e":"bookTicker","u":%d,"s":%q,"ps":%q,"b":"1.0","B":"2","a":"1.1","A":"3","T":%d,"E":%d,"st":1}}`,
		stream, e, sym, sym, e, e)
}

func TestNewStreamsValidationAndRouting(t *testing.T) {
	for _, bad := range []string{"BTCUSDT@kline_1m", "btcUSDT@bookTicker", "", "btcusdt", "@kline_1m", "btcusdt@", "btc usdt@kline_1m", "btcusdt@kline_1m/ethusdt@kline_1m", "a@b?c"} {
		if _, err := NewStreams(StreamConfig{Streams: []string{bad}}); err == nil {
			t.Errorf("NewStreams accepted %q", bad)
		}
	}
	for name, want := range map[string]string{
		"btcusdt@kline_1m": PathMarket, "btcusdt@kline_1M": PathMarket, "!ticker@arr": PathMarket,
		"btcusdt@ticker": PathMarket, "btcusdt@markPrice@1s": PathMarket, "!contractInfo": PathMarket,
		"btcusdt@bookTicker": PathPublic, "!bookTicker": PathPublic, "btcusdt@depth20@100ms": PathPublic,
		"btcusdt@depth": PathPublic, "btcusdt@rpiDepth@500ms": PathPublic, "币安人生usdt@kline_1m": PathMarket,
	} {
		if err := ValidateStreamName(name); err != nil {
			t.Errorf("ValidateStreamName(%q) = %v", name, err)
		}
		if got := RoutePath(name); got != want {
			t.Errorf("RoutePath(%q) = %s, want %s", name, got, want)
		}
	}
	names := []string{"btcusdt@bookTicker", "btcusdt@kline_1m", "btcusdt@kline_1m"}
	for i := range 2100 {
		names = append(names, fmt.Sprintf("s%04dusdt@kline_1m", i))
	}
	s, err := NewStreams(StreamConfig{Streams: names, MaxStreamsPerConn: 5000, ControlRate: 50})
	if err != nil {
		t.Fatal(err)
	}
	// 2101 market streams (duplicate dropped) → 1024+1024+53; 1 public.
	var sizes []int
	for _, sl := range s.slots {
		sizes = append(sizes, len(sl.streams))
	}
	if !slices.Equal(sizes, []int{1, 1024, 1024, 53}) || s.Connections() != 4 {
		t.Errorf("slot sizes %v", sizes)
	}
	if s.cfg.ControlRate != 10 || s.cfg.MaxSubscribeBatch != 200 {
		t.Errorf("limits not clamped: %+v", s.cfg)
	}
}

func TestStreamsSubscribePacedBatches(t *testing.T) {
	srv := newWSServer(t)
	var names []string
	for i := range 450 {
		names = append(names, fmt.Sprintf("s%03dusdt@kline_1m", i))
	}
	names = append(names, "!ticker@arr", "btcusdt@bookTicker", "ethusdt@bookTicker")
	s, rec, _ := start(t, srv, StreamConfig{Streams: names})

	conns := map[string]*srvConn{}
	for range 2 {
		sc := srv.next(t)
		conns[sc.path] = sc
	}
	m, p := conns[PathMarket], conns[PathPublic]
	if m == nil || p == nil {
		t.Fatalf("paths: %v", conns)
	}
	m.waitSubs(t, 451)
	p.waitSubs(t, 2)
	eventually(t, 5*time.Second, func() bool { _, c, _ := rec.snapshot(); return len(c) == 2 }, "OnConnect")

	for _, sc := range []*srvConn{m, p} {
		if sc.query != "streams=" {
			t.Errorf("%s query %q, want combined mode with an empty list", sc.path, sc.query)
		}
		sc.mu.Lock()
		seen := map[string]bool{}
		for i, b := range sc.batches {
			if len(b) > 200 {
				t.Errorf("%s batch of %d", sc.path, len(b))
			}
			var id int64
			if err := json.Unmarshal(sc.ids[i], &id); err != nil || seen[string(sc.ids[i])] {
				t.Errorf("id %s is not a unique integer", sc.ids[i])
			}
			seen[string(sc.ids[i])] = true
		}
		if sc.path == PathMarket && len(sc.batches) != 3 {
			t.Errorf("market batches %d, want 3", len(sc.batches))
		}
		for i := 1; i < len(sc.control); i++ {
			if gap := sc.control[i].Sub(sc.control[i-1]); gap < 150*time.Millisecond {
				t.Errorf("control messages %v apart (pace 5/s)", gap)
			}
		}
		sc.mu.Unlock()
		if n := sc.maxInWindow(time.Second); n > 10 {
			t.Errorf("%s: %d control messages within 1 s", sc.path, n)
		}
	}
	want := slices.Clone(names[:451])
	got := m.subscribed()
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("market subscriptions differ")
	}
	if got := p.subscribed(); !slices.Equal(got, []string{"btcusdt@bookTicker", "ethusdt@bookTicker"}) {
		t.Errorf("public subscriptions %v", got)
	}

	m.send(t, klineMsg("s001usdt@kline_1m", "S001USDT", 60000, 1, false))
	p.send(t, bookMsg("ethusdt@bookTicker", "ETHUSDT", 7))
	eventually(t, 5*time.Second, func() bool { ev, _, _ := rec.snapshot(); return len(ev) == 2 }, "events")
	st := s.Stats()
	if st.KlineEvents != 1 || st.BookEvents != 1 || st.Connects != 2 || st.Connections != 2 || st.Reconnects != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestStreamsSplitOver1024(t *testing.T) {
	srv := newWSServer(t)
	var names []string
	for i := range 1100 {
		names = append(names, fmt.Sprintf("s%04dusdt@kline_1m", i))
	}
	s, rec, _ := start(t, srv, StreamConfig{Streams: names, ControlRate: 10})
	a, b := srv.next(t), srv.next(t)
	eventually(t, 10*time.Second, func() bool { _, c, _ := rec.snapshot(); return len(c) == 2 }, "both connected")
	sizes := []int{len(a.subscribed()), len(b.subscribed())}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{76, 1024}) || a.path != PathMarket || b.path != PathMarket {
		t.Errorf("split %v on %s, %s", sizes, a.path, b.path)
	}
	all := append(a.subscribed(), b.subscribed()...)
	slices.Sort(all)
	if len(slices.Compact(all)) != 1100 {
		t.Error("streams lost or duplicated across connections")
	}
	for _, sc := range []*srvConn{a, b} {
		if n := sc.maxInWindow(time.Second); n > 10 {
			t.Errorf("%d control messages within 1 s", n)
		}
	}
	if st := s.Stats(); st.Connections != 2 {
		t.Errorf("connections %d", st.Connections)
	}
}

func TestStreamsReconnectResubscribe(t *testing.T) {
	srv := newWSServer(t)
	srv.failDials.Store(2) // the first two handshakes fail: backoff, retry
	names := []string{"btcusdt@kline_1m", "ethusdt@kline_1m", "!ticker@arr"}
	s, rec, stop := start(t, srv, StreamConfig{Streams: names})

	c1 := srv.next(t)
	c1.waitSubs(t, 3)
	eventually(t, 5*time.Second, func() bool { _, c, _ := rec.snapshot(); return len(c) == 1 }, "OnConnect")
	c1.send(t, klineMsg("btcusdt@kline_1m", "BTCUSDT", 60000, 10, false))
	eventually(t, 5*time.Second, func() bool { ev, _, _ := rec.snapshot(); return len(ev) == 1 }, "first event")
	_ = c1.c.CloseNow() // the server drops the connection

	c2 := srv.next(t)
	c2.waitSubs(t, 3)
	if got, want := c2.subscribed(), c1.subscribed(); !slices.Equal(got, want) {
		t.Errorf("resubscribed %v, want %v", got, want)
	}
	eventually(t, 5*time.Second, func() bool { _, c, _ := rec.snapshot(); return len(c) == 2 }, "OnConnect after reconnect")
	c2.send(t, klineMsg("ethusdt@kline_1m", "ETHUSDT", 60000, 11, true))
	eventually(t, 5*time.Second, func() bool { ev, _, _ := rec.snapshot(); return len(ev) == 2 }, "event after reconnect")

	st := s.Stats()
	if st.Reconnects != 1 || st.Connects != 2 || st.DialErrors != 2 {
		t.Errorf("stats %+v", st)
	}
	stop()
	ev, conns, discs := rec.snapshot()
	if len(conns) != 2 || len(discs) != 2 || !errors.Is(discs[1], context.Canceled) {
		t.Errorf("OnConnect %v, OnDisconnect %v", conns, discs)
	}
	if ev[1].Kline.Symbol != "ETHUSDT" || !ev[1].Kline.Closed {
		t.Errorf("event %+v", ev[1])
	}
}

func TestStreamsStaleReset(t *testing.T) {
	srv := newWSServer(t)
	srv.noPong.Store(true) // alive TCP, dead server: no pongs, no data
	const staleAfter = 300 * time.Millisecond
	s, _, _ := start(t, srv, StreamConfig{Streams: []string{"btcusdt@kline_1m"}, StaleAfter: staleAfter, PingInterval: 50 * time.Millisecond})
	c1 := srv.next(t)
	c1.waitSubs(t, 1)
	select {
	case <-c1.done:
	case <-time.After(5 * time.Second):
		t.Fatal("stale connection not reset")
	}
	c1.mu.Lock()
	silent := time.Since(c1.lastSend)
	pings := len(c1.control) - 1
	c1.mu.Unlock()
	if silent < staleAfter-50*time.Millisecond || silent > staleAfter+600*time.Millisecond {
		t.Errorf("reset after %v of silence, want about %v", silent, staleAfter)
	}
	if pings < 1 { // unanswered pings are no sign of life
		t.Errorf("client sent %d pings", pings)
	}
	srv.next(t).waitSubs(t, 1) // and it reconnects
	if st := s.Stats(); st.StaleResets < 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestStreamsPings(t *testing.T) {
	srv := newWSServer(t)
	s, _, _ := start(t, srv, StreamConfig{Streams: []string{"btcusdt@kline_1m"}, PingInterval: 120 * time.Millisecond, StaleAfter: 300 * time.Millisecond})
	c1 := srv.next(t)
	c1.waitSubs(t, 1)
	// The server pings (Binance: every 3 min); the client answers pongs.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c1.c.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("server ping not answered: %v", err)
		}
	}
	// Client pings keep a quiet but alive connection open past StaleAfter.
	time.Sleep(800 * time.Millisecond)
	c1.mu.Lock()
	pings := len(c1.control) - 1
	c1.mu.Unlock()
	if pings < 4 {
		t.Errorf("client sent %d pings in 800 ms at 120 ms", pings)
	}
	if n := c1.maxInWindow(time.Second); n > 10 {
		t.Errorf("%d control messages within 1 s", n)
	}
	select {
	case <-c1.done:
		t.Fatal("a quiet connection that answers pings was reset")
	default:
	}
	if st := s.Stats(); st.StaleResets != 0 || st.Reconnects != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestStreamsBadFramesDropped(t *testing.T) {
	srv := newWSServer(t)
	names := []string{"btcusdt@kline_1m", "btcusdt@ticker", "btcusdt@markPrice"}
	s, rec, _ := start(t, srv, StreamConfig{Streams: append(names, "btcusdt@bookTicker"), MaxFrame: 4096})
	var m, p *srvConn
	for range 2 {
		if sc := srv.next(t); sc.path == PathMarket {
			m = sc
		} else {
			p = sc
		}
	}
	m.waitSubs(t, 3)
	p.waitSubs(t, 1)
	ticker := string(readFixture(t, "ws_ticker.json"))

	m.send(t, klineMsg("btcusdt@kline_1m", "BTCUSDT", 60000, 1, false))                                              // good
	m.send(t, `{"stream":"btcusdt@kline_1m","data":{"e":"kline"`)                                                    // invalid JSON
	m.send(t, strings.Replace(klineMsg("btcusdt@kline_1m", "BTCUSDT", 60000, 2, false), `"o":"1.0"`, `"o":true`, 1)) // wrong type
	m.send(t, `{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":3,"s":"BTCUSDT","p":"1"}}`)           // unknown type
	m.send(t, klineMsg("ethusdt@kline_1m", "ETHUSDT", 60000, 4, false))                                              // unknown stream
	m.send(t, `{"result":null,"id":987654}`)                                                                         // unmatched reply
	m.send(t, ticker)                                                                                                // good
	p.send(t, bookMsg("btcusdt@bookTicker", "BTCUSDT", 5))                                                           // good, other conn
	eventually(t, 5*time.Second, func() bool { ev, _, _ := rec.snapshot(); return len(ev) == 3 }, "good events")
	m.send(t, `{"stream":"btcusdt@kline_1m","data":{"e":"kline","pad":"`+strings.Repeat("x", 5000)+`"}}`) // oversized: reset

	m2 := srv.next(t)
	m2.waitSubs(t, 3)
	m2.send(t, klineMsg("btcusdt@kline_1m", "BTCUSDT", 120000, 6, true))
	eventually(t, 5*time.Second, func() bool { ev, _, _ := rec.snapshot(); return len(ev) == 4 }, "event after oversized reset")

	ev, _, _ := rec.snapshot()
	var kinds []exchange.EventKind
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []exchange.EventKind{exchange.EventKline, exchange.EventKline, exchange.EventTicker, exchange.EventBookTicker}) {
		t.Errorf("kinds %v", kinds)
	}
	st := s.Stats()
	if st.Malformed != 2 || st.Unknown != 3 || st.Oversized != 1 || st.Reconnects != 1 || st.KlineEvents != 2 || st.TickerEvents != 1 || st.BookEvents != 1 {
		t.Errorf("stats %+v", st)
	}
	select {
	case <-p.done:
		t.Error("the public connection was reset too")
	default:
	}
}

func TestStreamsSubscribeErrors(t *testing.T) {
	t.Run("error reply is counted, not fatal", func(t *testing.T) {
		srv := newWSServer(t)
		srv.errorReply.Store(true)
		s, rec, _ := start(t, srv, StreamConfig{Streams: []string{"btcusdt@kline_1m"}})
		srv.next(t).waitSubs(t, 1)
		eventually(t, 5*time.Second, func() bool { _, c, _ := rec.snapshot(); return len(c) == 1 }, "OnConnect")
		if st := s.Stats(); st.ControlErrors != 1 || st.Reconnects != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("missing ack reconnects", func(t *testing.T) {
		srv := newWSServer(t)
		srv.noAck.Store(true)
		s, rec, _ := start(t, srv, StreamConfig{Streams: []string{"btcusdt@kline_1m"}, AckTimeout: 100 * time.Millisecond})
		srv.next(t).waitSubs(t, 1)
		srv.next(t).waitSubs(t, 1)
		if st := s.Stats(); st.DialErrors < 1 || st.ControlErrors < 1 {
			t.Errorf("stats %+v", st)
		}
		if _, c, _ := rec.snapshot(); len(c) != 0 {
			t.Errorf("OnConnect without acks: %v", c)
		}
	})
}

// TestStreamsRotation: make-before-break. A broadcaster pushes, to every
// subscribed connection, an open update and then the closed kline of bar
// i. Across rotations nothing is lost, nothing is delivered twice, open
// updates never go back in time, and OnConnect fires only once.
func TestStreamsRotation(t *testing.T) {
	srv := newWSServer(t)
	const stream = "btcusdt@kline_1m"
	s, rec, stop := start(t, srv, StreamConfig{Streams: []string{stream}, Rotate: 250 * time.Millisecond, RotateOverlap: 60 * time.Millisecond})

	bctx, bcancel := context.WithCancel(context.Background())
	var bwg sync.WaitGroup
	bwg.Go(func() {
		for i := int64(1); bctx.Err() == nil; i++ {
			for _, sc := range srv.live() {
				sc.mu.Lock()
				ok := sc.acked
				sc.mu.Unlock()
				if !ok {
					continue
				}
				wctx, cancel := context.WithTimeout(bctx, time.Second)
				_ = sc.c.Write(wctx, websocket.MessageText, []byte(klineMsg(stream, "BTCUSDT", i*60000, 2*i, false)))
				_ = sc.c.Write(wctx, websocket.MessageText, []byte(klineMsg(stream, "BTCUSDT", i*60000, 2*i+1, true)))
				cancel()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	eventually(t, 10*time.Second, func() bool { return s.Stats().Rotations >= 3 }, "3 rotations")
	bcancel()
	bwg.Wait()
	stop()

	ev, conns, discs := rec.snapshot()
	if len(conns) != 1 || len(discs) != 1 {
		t.Errorf("OnConnect %d times, OnDisconnect %d times; rotation must not look like a reconnect", len(conns), len(discs))
	}
	var closed []int64
	var lastOpenE int64
	for _, e := range ev {
		if e.Kline.Closed {
			closed = append(closed, e.Kline.OpenTime/60000)
			continue
		}
		if e.EventTime <= lastOpenE {
			t.Fatalf("open update E %d after %d", e.EventTime, lastOpenE)
		}
		lastOpenE = e.EventTime
	}
	sorted := slices.Clone(closed)
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] != sorted[i-1]+1 {
			t.Fatalf("closed bars %d then %d: duplicate or gap", sorted[i-1], sorted[i])
		}
	}
	st := s.Stats()
	if st.Duplicates == 0 || st.Reconnects != 0 || len(closed) < 10 {
		t.Errorf("stats %+v, %d closed bars", st, len(closed))
	}
	if st.Connections != 0 {
		t.Errorf("%d connections open after Run returned", st.Connections)
	}
}

func TestStreamsRunTwice(t *testing.T) {
	srv := newWSServer(t)
	s, _, _ := start(t, srv, StreamConfig{Streams: []string{"btcusdt@kline_1m"}})
	srv.next(t)
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}

func TestStreamsNoStreamsRunsUntilCancel(t *testing.T) {
	s, err := NewStreams(StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Run(ctx); err != nil || time.Since(start) < 40*time.Millisecond {
		t.Errorf("Run = %v after %v", err, time.Since(start))
	}
	if _, err := NewStreams(StreamConfig{StaleAfter: time.Second, PingInterval: 2 * time.Second}); err == nil {
		t.Error("StaleAfter <= PingInterval accepted")
	}
}
