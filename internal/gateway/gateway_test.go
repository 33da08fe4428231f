package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/bus"
)

const testToken = "test-token-0123456789abcdef"

// fakeSub is the in-test bus: Subscribe hands over the callback, push calls
// it (from the test's goroutine only, as the contract's one goroutine).
type fakeSub struct {
	ready chan struct{}
	fn    func(bus.Event)
}

func newFakeSub() *fakeSub { return &fakeSub{ready: make(chan struct{})} }

func (s *fakeSub) Subscribe(ctx context.Context, fn func(bus.Event)) error {
	s.fn = fn
	close(s.ready)
	<-ctx.Done()
	return nil
}

func (s *fakeSub) push(ev bus.Event) {
	<-s.ready
	s.fn(ev)
}

// event builds an event and its envelope the way the bus does.
func event(name string, data any) bus.Event {
	d, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	raw, err := json.Marshal(bus.Envelope{ID: json.RawMessage(`"node-1"`), Event: name, Data: d})
	if err != nil {
		panic(err)
	}
	return bus.Event{Publisher: "node-1", Name: name, Data: d, Raw: raw}
}

type env struct {
	t    *testing.T
	g    *Gateway
	sub  *fakeSub
	srv  *httptest.Server
	url  string
	stop func() error // cancels Run and returns its error
}

// start runs a gateway on the in-test bus, subscribed, until the test ends.
func start(t *testing.T, cfg Config) *env {
	t.Helper()
	sub := newFakeSub()
	e := startOn(t, sub, cfg)
	<-sub.ready
	e.sub = sub
	return e
}

// startOn runs a gateway relaying sub until the test ends; Run's error,
// if any, fails the test.
func startOn(t *testing.T, sub bus.Subscriber, cfg Config) *env {
	t.Helper()
	if cfg.Tokens == nil {
		cfg.Tokens = []string{testToken}
	}
	g, err := New(sub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	srv := httptest.NewServer(g)
	var once sync.Once
	var rerr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case rerr = <-runErr:
			case <-time.After(20 * time.Second):
				rerr = errors.New("Run did not return")
			}
		})
		return rerr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return &env{t: t, g: g, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", stop: stop}
}

func (e *env) dial(hdr http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{HTTPHeader: hdr})
	if c != nil {
		e.t.Cleanup(func() { _ = c.CloseNow() })
		c.SetReadLimit(1 << 20)
	}
	return c, resp, err
}

func bearerHdr(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// program dials with a valid Bearer token.
func (e *env) program() *websocket.Conn {
	e.t.Helper()
	c, _, err := e.dial(bearerHdr(testToken))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// subscribe sends a subscribe and returns the reply.
func subscribe(t *testing.T, c *websocket.Conn, patterns ...string) string {
	t.Helper()
	b, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: patterns})
	send(t, c, string(b))
	return recv(t, c)
}

// closeStatus reads until the connection ends and returns its close status
// and how many data messages came first.
func closeStatus(t *testing.T, c *websocket.Conn, within time.Duration) (websocket.StatusCode, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	n := 0
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason, n
			}
			if ctx.Err() != nil {
				t.Fatalf("connection still open after %v", within)
			}
			return -1, err.Error(), n
		}
		n++
	}
}

// eventually polls cond every few ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBearerAuth(t *testing.T) {
	e := start(t, Config{})
	c := e.program()
	if got, want := subscribe(t, c, "live.kline"), `{"type":"subscribed","events":["live.kline"]}`; got != want {
		t.Fatalf("reply %s, want %s", got, want)
	}
	ev := event("live.kline", map[string]any{"s": "BTCUSDT", "i": "1m", "c": "100.5"})
	e.sub.push(ev)
	if got := recv(t, c); got != string(ev.Raw) {
		t.Fatalf("got %s, want the envelope as published %s", got, ev.Raw)
	}
}

func TestUpgradeRefused(t *testing.T) {
	e := start(t, Config{})
	for _, tc := range []struct {
		name string
		hdr  http.Header
		want int
	}{
		{"wrong bearer", bearerHdr("wrong"), http.StatusUnauthorized},
		{"token prefix", bearerHdr(testToken[:10]), http.StatusUnauthorized},
		{"basic scheme", http.Header{"Authorization": {"Basic " + testToken}}, http.StatusUnauthorized},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, http.StatusUnauthorized},
		{"foreign origin", http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"foreign origin with token", http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + testToken}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := e.dial(tc.hdr)
			if err == nil {
				t.Fatal("upgrade accepted")
			}
			if c != nil || resp == nil || resp.StatusCode != tc.want {
				t.Fatalf("resp %v, want status %d", resp, tc.want)
			}
		})
	}
	if got := e.g.Stats().AuthFailures; got != 4 {
		t.Errorf("AuthFailures = %d, want 4", got)
	}
}

func TestOrigins(t *testing.T) {
	e := start(t, Config{Origins: []string{"dash.example", "*.trusted.example"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // a program: no Origin
		{e.srv.URL, true},
		{"http://dash.example", true},
		{"https://a.trusted.example", true},
		{"http://evil.example", false},
		{"http://dash.example.evil", false},
	} {
		hdr := bearerHdr(testToken)
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		_, _, err := e.dial(hdr)
		if (err == nil) != tc.ok {
			t.Errorf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
	}
}

func TestMessageAuth(t *testing.T) {
	e := start(t, Config{})
	c, _, err := e.dial(http.Header{"Origin": {e.srv.URL}}) // a browser: same origin, no header auth
	if err != nil {
		t.Fatal(err)
	}
	send(t, c, `{"type":"auth","token":"`+testToken+`"}`)
	if got, want := subscribe(t, c, "live.*"), `{"type":"subscribed","events":["live.*"]}`; got != want {
		t.Fatalf("reply %s, want %s", got, want)
	}
	ev := event("live.info_log", map[string]any{"message": "hello"})
	e.sub.push(ev)
	if got := recv(t, c); got != string(ev.Raw) {
		t.Fatalf("got %s, want %s", got, ev.Raw)
	}
}

func TestMessageAuthRefused(t *testing.T) {
	e := start(t, Config{})
	for _, tc := range []struct {
		name, first, reason string
	}{
		{"wrong token", `{"type":"auth","token":"nope"}`, "invalid token"},
		{"empty token", `{"type":"auth","token":""}`, "invalid token"},
		{"subscribe first", `{"type":"subscribe","events":["*"]}`, "authentication required"},
		{"not JSON", `hello`, "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := e.dial(nil)
			if err != nil {
				t.Fatal(err)
			}
			send(t, c, tc.first)
			code, reason, n := closeStatus(t, c, 5*time.Second)
			if code != websocket.StatusPolicyViolation || reason != tc.reason || n != 0 {
				t.Fatalf("closed %d %q after %d messages, want 1008 %q after 0", code, reason, n, tc.reason)
			}
		})
	}
	if got := e.g.Stats().AuthFailures; got != 4 {
		t.Errorf("AuthFailures = %d, want 4", got)
	}
}

func TestAuthTimeout(t *testing.T) {
	e := start(t, Config{AuthTimeout: 150 * time.Millisecond})
	watcher := e.program() // shows the events did flow meanwhile
	subscribe(t, watcher, "*")
	c, _, err := e.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, reason, n := closeStatus(t, c, 5*time.Second)
		if code != websocket.StatusPolicyViolation || reason != "authentication timeout" || n != 0 {
			t.Errorf("closed %d %q after %d messages, want 1008 after 0", code, reason, n)
		}
	}()
	go func() {
		for {
			_, _, err := watcher.Read(context.Background())
			if err != nil {
				return
			}
			got.Add(1)
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			if got.Load() == 0 {
				t.Fatal("no event flowed while the client was authenticating")
			}
			if n := e.g.Stats().AuthFailures; n != 1 {
				t.Errorf("AuthFailures = %d, want 1", n)
			}
			return
		case <-time.After(5 * time.Millisecond):
			e.sub.push(event("live.info_log", i))
		}
	}
}

// readUntil collects event names until the envelope of event "end".
func readUntil(t *testing.T, c *websocket.Conn) []string {
	t.Helper()
	var names []string
	for {
		var env bus.Envelope
		if err := json.Unmarshal([]byte(recv(t, c)), &env); err != nil {
			t.Fatal(err)
		}
		if env.Event == "end" {
			return names
		}
		names = append(names, env.Event)
	}
}

func TestSubscriptions(t *testing.T) {
	e := start(t, Config{})
	published := []string{"live.kline", "live.ticker", "live.info_log", "backtest.kline", "livetrade.orders", "live", "x"}
	for _, tc := range []struct {
		name        string
		subscribe   []string
		unsubscribe []string
		reply       string // to the last message
		want        []string
	}{
		{"exact", []string{"live.kline"}, nil, `["end","live.kline"]`, []string{"live.kline"}},
		{"prefix", []string{"live.*"}, nil, `["end","live.*"]`, []string{"live.kline", "live.ticker", "live.info_log"}},
		{"prefix without dot", []string{"live*"}, nil, `["end","live*"]`, []string{"live.kline", "live.ticker", "live.info_log", "livetrade.orders", "live"}},
		{"all", []string{"*"}, nil, `["*","end"]`, published},
		{"several, overlapping", []string{"live.kline", "live.*", "backtest.*", "live.kline"}, nil, `["backtest.*","end","live.*","live.kline"]`, []string{"live.kline", "live.ticker", "live.info_log", "backtest.kline"}},
		{"unsubscribe", []string{"live.*", "x"}, []string{"live.*"}, `["end","x"]`, []string{"x"}},
		{"unsubscribe pattern, not names", []string{"live.*"}, []string{"live.kline"}, `["end","live.*"]`, []string{"live.kline", "live.ticker", "live.info_log"}},
		{"none", nil, nil, `["end"]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.program()
			reply := subscribe(t, c, append(tc.subscribe, "end")...)
			if tc.unsubscribe != nil {
				b, _ := json.Marshal(clientMessage{Type: typeUnsubscribe, Events: tc.unsubscribe})
				send(t, c, string(b))
				reply = recv(t, c)
			}
			if want := `{"type":"subscribed","events":` + tc.reply + `}`; reply != want {
				t.Errorf("reply %s, want %s", reply, want)
			}
			for _, n := range published {
				e.sub.push(event(n, nil))
			}
			e.sub.push(event("end", nil))
			if diff := cmp.Diff(tc.want, readUntil(t, c)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadMessagesAnswered(t *testing.T) {
	e := start(t, Config{})
	c := e.program()
	many, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: strings.Split(strings.Repeat("a,", 65)[:129], ",")})
	long, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: []string{strings.Repeat("a", 129)}})
	for _, tc := range []struct {
		name, msg, want string
		binary          bool
	}{
		{"invalid JSON", `{"type":`, "invalid JSON", false},
		{"not an object", `[1,2]`, "invalid JSON", false},
		{"unknown type", `{"type":"hello"}`, "unknown message type", false},
		{"no type", `{"events":["*"]}`, "unknown message type", false},
		{"events not a list", `{"type":"subscribe","events":"*"}`, "invalid JSON", false},
		{"too many patterns", string(many), "too many patterns", false},
		{"pattern too long", string(long), "pattern too long", false},
		{"star inside", `{"type":"subscribe","events":["a*b"]}`, errBadPattern.Error(), false},
		{"empty pattern", `{"type":"subscribe","events":[""]}`, errBadPattern.Error(), false},
		{"space", `{"type":"subscribe","events":["a b"]}`, errBadPattern.Error(), false},
		{"auth again", `{"type":"auth","token":"` + testToken + `"}`, "already authenticated", false},
		{"binary", `{"type":"subscribe","events":["*"]}`, "binary messages are not supported", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Write(ctx, typ, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			var got serverMessage
			if err := json.Unmarshal([]byte(recv(t, c)), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(serverMessage{Type: "error", Error: tc.want}, got); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
	// Still open and working, with nothing subscribed by the bad messages.
	if got, want := subscribe(t, c, "x"), `{"type":"subscribed","events":["x"]}`; got != want {
		t.Fatalf("reply %s, want %s", got, want)
	}
}

func TestSubscriptionSetBounded(t *testing.T) {
	e := start(t, Config{MaxPatterns: 3})
	c := e.program()
	subscribe(t, c, "a", "b")
	if got, want := subscribe(t, c, "c", "d"), `{"type":"error","error":"too many patterns"}`; got != want {
		t.Fatalf("reply %s, want %s", got, want)
	}
	if got, want := subscribe(t, c, "a", "c"), `{"type":"subscribed","events":["a","b","c"]}`; got != want {
		t.Fatalf("reply %s, want %s", got, want)
	}
}

func TestOversizedMessageCloses(t *testing.T) {
	e := start(t, Config{})
	for _, authed := range []bool{true, false} {
		var c *websocket.Conn
		if authed {
			c = e.program()
		} else {
			var err error
			if c, _, err = e.dial(nil); err != nil {
				t.Fatal(err)
			}
		}
		send(t, c, `{"type":"subscribe","events":["`+strings.Repeat("a", 5000)+`"]}`)
		if code, _, _ := closeStatus(t, c, 5*time.Second); code != websocket.StatusMessageTooBig {
			t.Errorf("authed=%v: closed with %d, want 1009", authed, code)
		}
	}
}

// timedEvent carries its publish time, for latency.
func timedEvent(name string, seq int, pad int) bus.Event {
	return event(name, map[string]any{"seq": seq, "t": time.Now().UnixNano(), "pad": strings.Repeat("x", pad)})
}

func eventTime(t *testing.T, b []byte) (seq int, sent time.Time) {
	var env struct {
		Data struct {
			Seq int   `json:"seq"`
			T   int64 `json:"t"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Error(err)
	}
	return env.Data.Seq, time.Unix(0, env.Data.T)
}

// dialSmallBuffer dials with a small TCP receive buffer, so a client that
// stops reading backs the server up after a few hundred KiB, not MiBs.
func (e *env) dialSmallBuffer() *websocket.Conn {
	e.t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err == nil {
			_ = nc.(*net.TCPConn).SetReadBuffer(256 << 10)
		}
		return nc, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{HTTPHeader: bearerHdr(testToken), HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(1 << 20)
	return c
}

// A client that stops reading is disconnected in bounded time; the other
// client keeps receiving every log event with low latency meanwhile.
func TestSlowClientDisconnected(t *testing.T) {
	e := start(t, Config{ClientQueue: 128, WriteTimeout: time.Second})
	slow := e.dialSmallBuffer()
	subscribe(t, slow, "*")
	fast := e.program()
	subscribe(t, fast, "*")

	var maxLat atomic.Int64
	var got atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for want := 0; ; want++ {
			_, b, err := fast.Read(context.Background())
			if err != nil {
				return
			}
			seq, sent := eventTime(t, b)
			if seq != want {
				t.Errorf("fast client: seq %d, want %d", seq, want)
				return
			}
			lat := int64(time.Since(sent))
			for old := maxLat.Load(); lat > old && !maxLat.CompareAndSwap(old, lat); old = maxLat.Load() {
			}
			got.Add(1)
		}
	}()

	began := time.Now()
	seq := 0
	for e.g.Stats().SlowDisconnects == 0 {
		if time.Since(began) > 10*time.Second {
			t.Fatal("slow client not disconnected within 10 s")
		}
		e.sub.push(timedEvent("live.info_log", seq, 8<<10))
		seq++
		time.Sleep(500 * time.Microsecond)
	}
	t.Logf("slow client disconnected after %v, %d events of 8 KiB", time.Since(began).Round(time.Millisecond), seq)
	// A few more for the fast client, then check it got them all, in time.
	for range 20 {
		e.sub.push(timedEvent("live.info_log", seq, 8<<10))
		seq++
	}
	eventually(t, 5*time.Second, "fast client receives every event", func() bool { return got.Load() == int64(seq) })
	if lat := time.Duration(maxLat.Load()); lat > time.Second {
		t.Errorf("fast client's worst latency %v while the other stalled", lat)
	} else {
		t.Logf("fast client's worst latency %v", lat)
	}
	eventually(t, 5*time.Second, "slow client unregistered", func() bool { return e.g.Stats().Clients == 1 })
	if st := e.g.Stats(); st.SlowDisconnects != 1 {
		t.Errorf("stats %+v, want 1 slow disconnect", st)
	}
	// The stalled client, reading again, finds its connection gone.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for n := 0; ; n++ {
		if _, _, err := slow.Read(ctx); err != nil {
			t.Logf("slow client: %d messages, then %v", n, err)
			if ctx.Err() != nil {
				t.Fatal("slow client still connected")
			}
			break
		}
	}
}

// A slow client subscribed to market data gets its queue coalesced: it
// stays connected and ends up with the latest value of each stream.
func TestMarketDataCoalesced(t *testing.T) {
	e := start(t, Config{ClientQueue: 16, WriteTimeout: 30 * time.Second})
	slow := e.dialSmallBuffer()
	subscribe(t, slow, "live.kline", "end")

	kline := func(sym string, seq int) bus.Event {
		return event("live.kline", map[string]any{"s": sym, "i": "1m", "t": 1700000000000, "seq": seq, "pad": strings.Repeat("x", 8<<10)})
	}
	syms := []string{"BTCUSDT", "ETHUSDT"}
	seq := 0
	eventually(t, 10*time.Second, "queue coalesced", func() bool {
		for _, s := range syms {
			e.sub.push(kline(s, seq))
			seq++
		}
		return e.g.Stats().Dropped > 100
	})
	last := map[string]int{}
	for _, s := range syms {
		e.sub.push(kline(s, seq))
		last[s] = seq
		seq++
	}
	e.sub.push(event("end", nil))

	got := map[string]int{}
	n := 0
	for {
		_, b, err := slow.Read(context.Background())
		if err != nil {
			t.Fatalf("slow client disconnected: %v", err)
		}
		var env struct {
			Event string
			Data  struct {
				S   string
				Seq int
			}
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if env.Event == "end" {
			break
		}
		if prev, ok := got[env.Data.S]; ok && env.Data.Seq <= prev {
			t.Fatalf("%s: seq %d after %d", env.Data.S, env.Data.Seq, prev)
		}
		got[env.Data.S] = env.Data.Seq
		n++
	}
	if diff := cmp.Diff(last, got); diff != "" {
		t.Errorf("last value per stream (-want +got):\n%s", diff)
	}
	st := e.g.Stats()
	t.Logf("published %d klines, received %d, coalesced %d", seq, n, st.Dropped)
	if st.SlowDisconnects != 0 || uint64(n)+st.Dropped != uint64(seq) {
		t.Errorf("stats %+v: want no disconnect and received+dropped = %d", st, seq)
	}
}

func TestMaxClients(t *testing.T) {
	e := start(t, Config{MaxClients: 2})
	a, b := e.program(), e.program()
	_ = b
	_, resp, err := e.dial(bearerHdr(testToken))
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third client: err %v resp %v, want 503", err, resp)
	}
	_ = a.Close(websocket.StatusNormalClosure, "")
	eventually(t, 5*time.Second, "a slot frees", func() bool {
		_, _, err := e.dial(bearerHdr(testToken))
		return err == nil
	})
	eventually(t, 5*time.Second, "2 clients registered", func() bool { return e.g.Stats().Clients == 2 })
	if st := e.g.Stats(); st.Rejected < 1 {
		t.Errorf("stats %+v", st)
	}
}

// Sockets that never authenticate are bounded apart from the clients: a
// flood of them beyond MaxPending is refused with 503 at the upgrade, and
// neither locks out a client with a valid token nor keeps it from events.
func TestPendingBounded(t *testing.T) {
	const maxPending = 4
	e := start(t, Config{MaxClients: 3, MaxPending: maxPending, AuthTimeout: time.Minute})
	refused := 0
	for range maxPending + 10 {
		_, resp, err := e.dial(nil) // upgrades, never authenticates
		switch {
		case err == nil:
		case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("dial: %v", err)
		}
	}
	if refused != 10 {
		t.Fatalf("%d unauthenticated upgrades refused, want 10", refused)
	}
	if st := e.g.Stats(); st.Pending != maxPending || st.Rejected != 10 {
		t.Fatalf("stats %+v, want %d pending and 10 rejected", st, maxPending)
	}

	c := e.program()
	subscribe(t, c, "live.*")
	ev := event("live.info_log", map[string]any{"message": "hello"})
	e.sub.push(ev)
	if got := recv(t, c); got != string(ev.Raw) {
		t.Fatalf("got %s, want %s", got, ev.Raw)
	}

	// MaxClients bounds the authenticated: two more programs fit, the
	// next is refused, and so is a pending socket (it could never join).
	e.program()
	e.program()
	if _, resp, err := e.dial(bearerHdr(testToken)); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("program beyond MaxClients: err %v resp %v, want 503", err, resp)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	eventually(t, 5*time.Second, "a client slot frees", func() bool { return e.g.Stats().Clients == 2+maxPending })
}

// A pending socket that authenticates leaves MaxPending for MaxClients,
// so the next browser can connect; one that authenticates when MaxClients
// is reached is closed with 1013.
func TestPendingPromoted(t *testing.T) {
	e := start(t, Config{MaxClients: 1, MaxPending: 1})
	browser := func() (*websocket.Conn, error) {
		c, _, err := e.dial(nil)
		return c, err
	}
	a, err := browser()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := browser(); err == nil {
		t.Fatal("second pending socket accepted beyond MaxPending 1")
	}
	send(t, a, `{"type":"auth","token":"`+testToken+`"}`)
	subscribe(t, a, "live.*")
	if st := e.g.Stats(); st.Pending != 0 {
		t.Fatalf("stats %+v: the authenticated socket is still pending", st)
	}
	// MaxClients is reached: a pending socket cannot be admitted at all.
	if _, err := browser(); err == nil {
		t.Fatal("pending socket accepted with MaxClients reached")
	}
	_ = a.Close(websocket.StatusNormalClosure, "")
	eventually(t, 5*time.Second, "the client leaves", func() bool { return e.g.Stats().Clients == 0 })

	// Two pending sockets cannot race past MaxClients: the second to
	// authenticate is closed with 1013.
	e2 := start(t, Config{MaxClients: 1, MaxPending: 2})
	b, _, err := e2.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := e2.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, b, `{"type":"auth","token":"`+testToken+`"}`)
	subscribe(t, b, "live.*")
	send(t, c, `{"type":"auth","token":"`+testToken+`"}`)
	if code, reason, _ := closeStatus(t, c, 5*time.Second); code != websocket.StatusTryAgainLater {
		t.Fatalf("second to authenticate closed with %d %q, want 1013", code, reason)
	}
}

// A /ws connection outlives the HTTP server's read and write timeouts,
// which bound requests, not WebSockets: pings, events and replies still
// flow long after them.
func TestOutlivesServerTimeouts(t *testing.T) {
	g, err := New(newFakeSub(), Config{Tokens: []string{testToken}, PingInterval: 50 * time.Millisecond, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sub := g.sub.(*fakeSub)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-sub.ready
	srv := httptest.NewUnstartedServer(g)
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	c, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: bearerHdr(testToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	msgs := make(chan string, 16)
	go func() {
		defer close(msgs)
		for {
			_, b, err := c.Read(context.Background()) // answers pings while pending
			if err != nil {
				return
			}
			msgs <- string(b)
		}
	}()
	b, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: []string{"live.*"}})
	if err := c.Write(dctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	if m := <-msgs; !strings.Contains(m, "subscribed") {
		t.Fatalf("reply %s", m)
	}
	time.Sleep(10 * srv.Config.WriteTimeout) // pings go out meanwhile
	ev := event("live.info_log", map[string]any{"message": "later"})
	sub.push(ev)
	select {
	case m, ok := <-msgs:
		if !ok || m != string(ev.Raw) {
			t.Fatalf("after the server's timeouts: got %q (open %v), want the event", m, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after the server's timeouts")
	}
	if err := c.Write(dctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write after the server's timeouts: %v", err)
	}
	if m := <-msgs; !strings.Contains(m, "subscribed") {
		t.Fatalf("reply %s", m)
	}
	if st := g.Stats(); st.SlowDisconnects+st.IdleDisconnects != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		e := start(t, Config{})
		var conns []*websocket.Conn
		for range 3 {
			c := e.program()
			subscribe(t, c, "*")
			conns = append(conns, c)
		}
		pending, _, err := e.dial(nil) // still authenticating
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, pending)
		eventually(t, 5*time.Second, "4 clients registered", func() bool { return e.g.Stats().Clients == 4 })
		e.sub.push(event("live.info_log", 1))

		statuses := make(chan websocket.StatusCode, len(conns))
		for _, c := range conns {
			go func() {
				code, _, _ := closeStatus(t, c, 10*time.Second)
				statuses <- code
			}()
		}
		if err := e.stop(); err != nil {
			t.Fatal(err)
		}
		for range conns {
			if code := <-statuses; code != websocket.StatusGoingAway {
				t.Errorf("closed with %d, want 1001", code)
			}
		}
		if n := e.g.Stats().Clients; n != 0 {
			t.Errorf("%d clients after Run returned", n)
		}
		// After Run: refused.
		if _, resp, err := e.dial(bearerHdr(testToken)); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("dial after shutdown: %v %v, want 503", err, resp)
		}
		e.srv.Close()
		for _, c := range conns {
			_ = c.CloseNow()
		}
	}()
	http.DefaultClient.CloseIdleConnections()
	eventually(t, 10*time.Second, "goroutines return to their count before the test", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestCloseWithoutRun(t *testing.T) {
	g, err := New(newFakeSub(), Config{Tokens: []string{testToken}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err == nil {
		t.Fatal("Run after Close succeeded")
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/ws", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
}

func TestCloseStopsRun(t *testing.T) {
	sub := newFakeSub()
	g, err := New(sub, Config{Tokens: []string{testToken}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- g.Run(context.Background()) }()
	<-sub.ready
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

type failingSub struct{}

func (failingSub) Subscribe(context.Context, func(bus.Event)) error { return errors.New("boom") }

func TestRunReportsSubscribeError(t *testing.T) {
	g, err := New(failingSub{}, Config{Tokens: []string{testToken}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Run: %v, want the subscriber's error", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no tokens", Config{}},
		{"empty token", Config{Tokens: []string{""}}},
		{"idle below ping", Config{Tokens: []string{"t"}, PingInterval: time.Minute, IdleTimeout: time.Second}},
		{"negative", Config{Tokens: []string{"t"}, ClientQueue: -1}},
		{"limit below token", Config{Tokens: []string{strings.Repeat("t", 100)}, MessageLimit: 128}},
	} {
		if _, err := New(newFakeSub(), tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := New(nil, Config{Tokens: []string{"t"}}); err == nil {
		t.Error("nil subscriber accepted")
	}
}

func TestEventWithoutRaw(t *testing.T) {
	e := start(t, Config{})
	c := e.program()
	subscribe(t, c, "*")
	e.sub.push(bus.Event{Publisher: "123", Name: "live.x", Data: json.RawMessage(`{"a":1}`)})
	if got, want := recv(t, c), `{"id":"123","event":"live.x","is_compressed":false,"data":{"a":1}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestCollector(t *testing.T) {
	e := start(t, Config{})
	c := e.program()
	subscribe(t, c, "*")
	e.sub.push(event("live.x", 1))
	recv(t, c)
	eventually(t, 5*time.Second, "writes counted", func() bool { return e.g.Stats().Sent == 2 })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.g.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	want := map[string]float64{
		"tradecache_gateway_clients":                1,
		"tradecache_gateway_pending_clients":        0,
		"tradecache_gateway_messages_sent_total":    2, // the reply and the event
		"tradecache_gateway_messages_dropped_total": 0,
		"tradecache_gateway_slow_disconnects_total": 0,
		"tradecache_gateway_idle_disconnects_total": 0,
		"tradecache_gateway_auth_failures_total":    0,
		"tradecache_gateway_rejected_total":         0,
		// A gateway's Subscriber that cannot say when it is subscribed
		// (the test's) is subscribed from Run, not counted.
		"tradecache_gateway_bus_subscribed":          0,
		"tradecache_gateway_bus_subscriptions_total": 0,
		"tradecache_gateway_bus_wait_timeouts_total": 0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestPingKeepsAlive(t *testing.T) {
	e := start(t, Config{PingInterval: 50 * time.Millisecond, IdleTimeout: 500 * time.Millisecond, WriteTimeout: time.Second})
	alive := e.program()
	go func() {
		// coder answers pings while a Read is pending.
		for {
			if _, _, err := alive.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	_ = e.program() // never reads, so never answers a ping
	eventually(t, 5*time.Second, "silent client closed as idle", func() bool { return e.g.Stats().IdleDisconnects == 1 })
	time.Sleep(time.Second) // twice IdleTimeout more for the live one
	if st := e.g.Stats(); st.IdleDisconnects != 1 {
		t.Fatalf("stats %+v: the reading client was closed too", st)
	}
}

func TestGenerateToken(t *testing.T) {
	tok, err := GenerateToken()
	if err != nil || len(tok) != 43 {
		t.Fatalf("token %q, %v", tok, err)
	}
}

func TestDefaultCoalesce(t *testing.T) {
	ev := func(name, pub, data string) bus.Event {
		return bus.Event{Name: name, Publisher: pub, Data: json.RawMessage(data)}
	}
	for _, tc := range []struct {
		a, b bus.Event
		ok   bool // a is coalescable
		same bool // a and b share a key
	}{
		{ev("live.kline", "n1", `{"s":"BTCUSDT","i":"1m","t":1,"c":"1"}`), ev("live.kline", "n1", `{"s":"BTCUSDT","i":"1m","t":1,"c":"2"}`), true, true},
		{ev("live.kline", "n1", `{"s":"BTCUSDT","i":"1m","t":1}`), ev("live.kline", "n1", `{"s":"BTCUSDT","i":"1m","t":2}`), true, false},
		{ev("live.kline", "n1", `{"s":"BTCUSDT","i":"1m"}`), ev("live.kline", "n1", `{"s":"BTCUSDT","i":"5m"}`), true, false},
		{ev("live.kline", "n1", `{"s":"BTCUSDT","i":"1m"}`), ev("live.kline", "n2", `{"s":"BTCUSDT","i":"1m"}`), true, false},
		{ev("live.ticker", "n1", `{"symbol":"BTCUSDT","lastPrice":"1"}`), ev("live.ticker", "n1", `{"symbol":"BTCUSDT","lastPrice":"2"}`), true, true},
		{ev("live.book_ticker", "n1", `{"symbol":"BTCUSDT"}`), ev("live.book_ticker", "n1", `{"symbol":"ETHUSDT"}`), true, false},
		{ev("live.tickers", "n1", `[{"symbol":"A"}]`), ev("live.tickers", "n1", `[{"symbol":"B"}]`), true, true},
		{ev("live.ticker", "n1", `{"symbol":"BTCUSDT"}`), ev("live.book_ticker", "n1", `{"symbol":"BTCUSDT"}`), true, false},
		{ev("live.info_log", "n1", `{}`), ev("live.info_log", "n1", `{}`), false, false},
		{ev("live.orders", "n1", `{}`), ev("live.orders", "n1", `{}`), false, false},
		{ev("live.klines_extra", "n1", `{}`), ev("live.klines_extra", "n1", `{}`), false, false},
		// An Opaque market event (a payload the bus could not read) names no
		// stream: never coalesced.
		{bus.Event{Name: "livetrade.kline", Publisher: "4242", Opaque: true}, bus.Event{Name: "livetrade.kline", Publisher: "4242", Opaque: true}, false, false},
	} {
		ka, oka := DefaultCoalesce(tc.a)
		kb, _ := DefaultCoalesce(tc.b)
		if oka != tc.ok || (tc.ok && (ka == kb) != tc.same) {
			t.Errorf("%s %s / %s: ok=%v same=%v, want %v %v", tc.a.Name, tc.a.Data, tc.b.Data, oka, ka == kb, tc.ok, tc.same)
		}
	}
}

func TestMatcher(t *testing.T) {
	m, _ := (*matcher)(nil).subscribe([]string{"live.kline", "backtest.*", "x*"}, 64)
	var got []string
	for _, n := range []string{"live.kline", "live.klines", "backtest.", "backtest.metrics", "backtes", "x", "xy", "y"} {
		if m.match(n) {
			got = append(got, n)
		}
	}
	if diff := cmp.Diff([]string{"live.kline", "backtest.", "backtest.metrics", "x", "xy"}, got); diff != "" {
		t.Error(diff)
	}
}

func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"auth","token":"abc"}`,
		`{"type":"subscribe","events":["live.kline","live.*","*"]}`,
		`{"type":"unsubscribe","events":[]}`,
		`{"type":"subscribe","events":["a*b"]}`,
		`{"type":"subscribe","events":"x"}`,
		`{"type":"x"}`, `null`, `[]`, `{"TYPE":"subscribe","Events":["\u00e9"]}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseClientMessage(b, 8)
		if err != nil {
			if !strings.HasPrefix(string(errorReply(err)), `{"type":"error","error":"`) {
				t.Fatalf("reply %s", errorReply(err))
			}
			return
		}
		switch m.Type {
		case typeAuth:
			if m.Events != nil {
				t.Fatal("auth with events")
			}
		case typeSubscribe, typeUnsubscribe:
			if len(m.Events) > 8 || m.Token != "" {
				t.Fatalf("%+v", m)
			}
			for _, p := range m.Events {
				if checkPattern(p) != nil || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
					t.Fatalf("invalid pattern %q accepted", p)
				}
			}
			next, ok := (*matcher)(nil).subscribe(m.Events, 8)
			if !ok {
				t.Fatal("set of ≤ 8 patterns refused")
			}
			for _, p := range m.Events {
				if !next.match(strings.TrimSuffix(p, "*")) {
					t.Fatalf("pattern %q does not match its own name", p)
				}
			}
		default:
			t.Fatalf("type %q accepted", m.Type)
		}
		// What was accepted survives a round trip unchanged.
		b2, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseClientMessage(b2, 8)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b2, err)
		}
		if diff := cmp.Diff(m, m2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// clientFrame is a masked text frame, as a client sends it.
func clientFrame(payload string) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	b = append(b, key[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

// Frames a client sends in the same packet as its handshake are buffered by
// net/http before the upgrade; they must not be lost.
func TestFramesPipelinedWithHandshake(t *testing.T) {
	e := start(t, Config{})
	long := strings.Repeat("p", 120)
	for _, tc := range []struct {
		name     string
		patterns []string
	}{
		{"small", []string{"x"}},
		{"more than the small read buffer", []string{long + "1", long + "2", long + "3", long + "4", long + "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", e.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			sub, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: tc.patterns})
			req := "GET /ws HTTP/1.1\r\nHost: " + e.srv.Listener.Addr().String() +
				"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
			msg := append([]byte(req), clientFrame(`{"type":"auth","token":"`+testToken+`"}`)...)
			msg = append(msg, clientFrame(string(sub))...)
			if _, err := nc.Write(msg); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			hdr := make([]byte, 2)
			if _, err := io.ReadFull(br, hdr); err != nil {
				t.Fatal(err)
			}
			n := int(hdr[1] & 0x7f)
			if n == 126 {
				ext := make([]byte, 2)
				if _, err := io.ReadFull(br, ext); err != nil {
					t.Fatal(err)
				}
				n = int(ext[0])<<8 | int(ext[1])
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(br, payload); err != nil {
				t.Fatal(err)
			}
			if want := string(subscribedReply(newMatcher(tc.patterns))); hdr[0] != 0x81 || string(payload) != want {
				t.Fatalf("frame %x %s, want text %s", hdr[0], payload, want)
			}
		})
	}
}

// A client that answers pings but sends nothing else stays connected: its
// pongs are taken off the socket while the reader waits (WaitReadable),
// not inside coder's Read, and a message after them is still read.
func TestPongsWhileWaiting(t *testing.T) {
	e := start(t, Config{PingInterval: 50 * time.Millisecond, IdleTimeout: 400 * time.Millisecond})
	nc, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + e.srv.Listener.Addr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + testToken + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	pong := func(payload []byte) []byte { // masked, as a client sends it
		f := append([]byte{0x8a, 0x80 | byte(len(payload))}, 9, 8, 7, 6)
		for i, b := range payload {
			f = append(f, b^[]byte{9, 8, 7, 6}[i%4])
		}
		return f
	}
	pings := 0
	deadline := time.Now().Add(3 * 400 * time.Millisecond)
	for time.Now().Before(deadline) {
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatalf("after %d pings: %v", pings, err)
		}
		payload := make([]byte, hdr[1]&0x7f)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if hdr[0] != 0x89 {
			t.Fatalf("frame %#x %q, want a ping", hdr[0], payload)
		}
		pings++
		if _, err := nc.Write(pong(payload)); err != nil {
			t.Fatal(err)
		}
	}
	if pings < 5 {
		t.Fatalf("%d pings in 1.2 s at a 50 ms interval", pings)
	}
	if st := e.g.Stats(); st.IdleDisconnects != 0 || st.Clients != 1 {
		t.Fatalf("stats %+v: the answering client was closed", st)
	}
	// A pong and a message in one packet: the pong is taken, the message read.
	sub, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: []string{"x"}})
	if _, err := nc.Write(append(pong(nil), clientFrame(string(sub))...)); err != nil {
		t.Fatal(err)
	}
	want := string(subscribedReply(newMatcher([]string{"x"})))
	for {
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, hdr[1]&0x7f)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if hdr[0] == 0x89 {
			_, _ = nc.Write(pong(payload))
			continue
		}
		if hdr[0] != 0x81 || string(payload) != want {
			t.Fatalf("frame %#x %s, want text %s", hdr[0], payload, want)
		}
		break
	}
}
