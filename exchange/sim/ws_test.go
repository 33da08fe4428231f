package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// fastCfg makes every stream tick quickly.
func fastCfg() Config {
	return Config{
		Seed:             11,
		KlineUpdateEvery: 20 * time.Millisecond,
		TickerEvery:      30 * time.Millisecond,
		TickerArrEvery:   30 * time.Millisecond,
		BookTickerEvery:  20 * time.Millisecond,
	}
}

func TestStreamPayloadShapes(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	m := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m/btcusdt@ticker/!ticker@arr", nil)
	p := dial(t, ts, "/public/stream?streams=ethusdt@bookTicker", nil)

	seen := map[string]bool{}
	readUntil(t, m, 5*time.Second, func(f frame) bool {
		if seen[f.Stream] {
			return false
		}
		seen[f.Stream] = true
		switch f.Stream {
		case "btcusdt@kline_1m":
			sameShape(t, "ws_kline.json", f.Data)
			if strings.Contains(string(f.Data), `"st"`) || strings.Contains(string(f.Data), `"ps"`) {
				t.Errorf("kline carries ps/st: %s", f.Data)
			}
		case "btcusdt@ticker":
			sameShape(t, "ws_ticker.json", f.Data)
		case "!ticker@arr":
			var arr []json.RawMessage
			if err := json.Unmarshal(f.Data, &arr); err != nil || len(arr) != 2 {
				t.Fatalf("!ticker@arr: %.300s", f.Data)
			}
			for _, e := range arr {
				sameShape(t, "ws_ticker.json", e)
			}
		default:
			t.Errorf("unexpected stream %q", f.Stream)
		}
		return len(seen) == 3
	})
	f := readUntil(t, p, 5*time.Second, func(f frame) bool { return f.Stream != "" })
	if f.Stream != "ethusdt@bookTicker" {
		t.Fatalf("stream %q", f.Stream)
	}
	sameShape(t, "ws_bookticker.json", f.Data)
	var b wsBook
	if err := json.Unmarshal(f.Data, &b); err != nil {
		t.Fatal(err)
	}
	if b.Symbol != "ETHUSDT" || b.Pair != "ETHUSDT" || b.SymbolType != 1 || units(t, b.Bid) >= units(t, b.Ask) {
		t.Errorf("book %+v", b)
	}
}

type ohlcv struct {
	T, CT                    int64
	O, H, L, C, V, Q, TB, TQ string
	N                        int64
}

// Closed klines streamed at 600× are exactly what REST returns for them,
// and each 1m open time closes once, in order.
func TestStreamedClosesMatchREST(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, Config{Seed: 7, Speed: 600})
	c := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m", nil)
	var closed []ohlcv
	var lastOpen int64
	readUntil(t, c, 10*time.Second, func(f frame) bool {
		var ev wsKlineEvent
		if err := json.Unmarshal(f.Data, &ev); err != nil {
			t.Fatal(err)
		}
		k := ev.K
		if k.OpenTime < lastOpen {
			t.Fatalf("open time went back: %d after %d", k.OpenTime, lastOpen)
		}
		lastOpen = k.OpenTime
		if k.Closed {
			closed = append(closed, ohlcv{k.OpenTime, k.CloseTime, k.Open, k.High, k.Low, k.Close, k.Volume, k.QuoteVolume, k.TakerBase, k.TakerQuote, k.Trades})
		}
		return len(closed) == 6
	})
	for i := 1; i < len(closed); i++ {
		if closed[i].T != closed[i-1].T+minuteMs {
			t.Fatalf("closes not consecutive: %d then %d", closed[i-1].T, closed[i].T)
		}
	}
	var rows [][]any
	getJSON(t, fmt.Sprintf("%s/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=%d&limit=%d", ts.URL, closed[0].T, len(closed)), &rows)
	var rest []ohlcv
	for _, r := range rows {
		rest = append(rest, ohlcv{int64(r[0].(float64)), int64(r[6].(float64)), r[1].(string), r[2].(string), r[3].(string), r[4].(string), r[5].(string), r[7].(string), r[9].(string), r[10].(string), int64(r[8].(float64))})
	}
	if d := cmp.Diff(closed, rest); d != "" {
		t.Errorf("streamed closes vs REST (-ws +rest):\n%s", d)
	}
}

// At 36000× about 30 bars close between two ticks; each still gets one
// x:true, in order, equal to REST.
func TestStreamedClosesAtHighSpeed(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, Config{Seed: 8, Speed: 36000, KlineUpdateEvery: 50 * time.Millisecond})
	c := dial(t, ts, "/market/ws/ethusdt@kline_1m/ethusdt@kline_5m", nil)
	closes := map[string][]int64{}
	readUntil(t, c, 15*time.Second, func(f frame) bool {
		var ev wsKlineEvent
		if err := json.Unmarshal(f.raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.K.Closed {
			closes[ev.K.Interval] = append(closes[ev.K.Interval], ev.K.OpenTime)
		}
		return len(closes["1m"]) >= 200 && len(closes["5m"]) >= 20
	})
	for iv, step := range map[string]int64{"1m": minuteMs, "5m": 5 * minuteMs} {
		l := closes[iv]
		for i := 1; i < len(l); i++ {
			if l[i] != l[i-1]+step {
				t.Fatalf("%s closes: %d then %d", iv, l[i-1], l[i])
			}
		}
	}
}

func TestSubscriptionLimit(t *testing.T) {
	t.Parallel()
	s, ts := startSim(t, Config{})
	c := dial(t, ts, "/market/stream?streams=", nil)
	for batch := range 6 { // 6 × ≤200 = 1024, like a careful client
		var names []string
		for i := batch * 200; i < min((batch+1)*200, 1024); i++ {
			names = append(names, fmt.Sprintf("s%dusdt@kline_1m", i))
		}
		b, _ := json.Marshal(map[string]any{"method": "SUBSCRIBE", "params": names, "id": batch})
		send(t, c, string(b))
		if f := answer(t, c, strconv.Itoa(batch)); string(f.Result) != "null" {
			t.Fatalf("batch %d: %s", batch, f.raw)
		}
	}
	if n := s.Stats().Subscriptions; n != 1024 {
		t.Errorf("%d subscriptions", n)
	}
	send(t, c, `{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":"over"}`)
	f := answer(t, c, `"over"`)
	if d := cmp.Diff(`{"error":{"code":4,"msg":"Too many subscriptions"},"id":"over"}`, string(f.raw)); d != "" {
		t.Error(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("want close 1008, got %v", err)
	}
}

func TestIncomingRateLimit(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, Config{})
	c := dial(t, ts, "/market/stream", nil)
	for i := range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Write(ctx, websocket.MessageText, []byte(`{"method":"LIST_SUBSCRIPTIONS","id":`+strconv.Itoa(i)+`}`))
		cancel()
		if err != nil {
			break // already closed
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answered := 0
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			answered++
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "Too many requests" {
			t.Fatalf("want close 1008 Too many requests, got %v", err)
		}
		break
	}
	if answered < 1 || answered > 15 {
		t.Errorf("%d of 40 answered", answered)
	}
}

func TestIDsEchoedUnchanged(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, Config{})
	c := dial(t, ts, "/market/stream?streams=", nil)
	for _, id := range []string{
		`"5f1c2a9b0e7d4c3a8b6f0d1e2c3b4a59"`, // the Node connector's kind
		`7`,
		`18446744073709551615`,
		`"a\u003c\"b\\c"`,
	} {
		send(t, c, `{"method":"SUBSCRIBE","params":["btcusdt@kline_1m"],"id":`+id+`}`)
		f := answer(t, c, id)
		if d := cmp.Diff(`{"result":null,"id":`+id+`}`, string(f.raw)); d != "" {
			t.Errorf("id %s: %s", id, d)
		}
	}
}

func TestControlMessages(t *testing.T) {
	t.Parallel()
	cfg := fastCfg()
	cfg.MaxIncoming = 100
	_, ts := startSim(t, cfg)
	c := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m/ethusdt@ticker", nil)
	for _, tc := range []struct{ req, want string }{
		{`{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","BTCUSDT@kline_5m"],"id":1}`, `{"result":null,"id":1}`},
		{`{"method":"UNSUBSCRIBE","params":["ethusdt@ticker","never@subscribed"],"id":2}`, `{"result":null,"id":2}`},
		{`{"method":"LIST_SUBSCRIPTIONS","id":3}`, `{"result":["btcusdt@kline_1m","btcusdt@bookTicker","BTCUSDT@kline_5m"],"id":3}`},
		{`{"method":"GET_PROPERTY","params":["combined"],"id":4}`, `{"result":true,"id":4}`},
		{`{"method":"SET_PROPERTY","params":["colour",true],"id":5}`, `{"error":{"code":0,"msg":"Unknown property"},"id":5}`},
		{`{"method":"SET_PROPERTY","params":["combined","yes"],"id":6}`, `{"error":{"code":1,"msg":"Invalid value type: expected Boolean"},"id":6}`},
		{`{"method":"PING","id":7}`, `{"error":{"code":2,"msg":"Invalid request: unknown variant ` + "`PING`" + `, expected one of ` + methods + `"},"id":7}`},
		{`{"method":"SUBSCRIBE","params":"btcusdt@kline_1m","id":8}`, `{"error":{"code":2,"msg":"Invalid request: params must be an array of stream names"},"id":8}`},
		{`{"method":"SET_PROPERTY","params":["combined",false],"id":9}`, `{"result":null,"id":9}`},
		{`{"method":"GET_PROPERTY","params":["combined"],"id":10}`, `{"result":false,"id":10}`},
	} {
		send(t, c, tc.req)
		var id struct{ ID json.RawMessage }
		_ = json.Unmarshal([]byte(tc.req), &id)
		f := answer(t, c, string(id.ID))
		if d := cmp.Diff(tc.want, string(f.raw)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.req, d)
		}
	}
	// combined is now off: payloads arrive bare.
	f := readUntil(t, c, 5*time.Second, func(f frame) bool { return f.ID == nil })
	if f.Stream != "" || !strings.HasPrefix(string(f.raw), `{"e":"kline"`) {
		t.Errorf("want a bare kline, got %.200s", f.raw)
	}
	send(t, c, `{"method":`)
	f = readUntil(t, c, 5*time.Second, func(f frame) bool { return f.Error != nil })
	if d := cmp.Diff(`{"error":{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"},"id":null}`, string(f.raw)); d != "" {
		t.Error(d)
	}
}

func TestRawMode(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	c := dial(t, ts, "/market/ws/btcusdt@kline_1m/btcusdt@ticker", nil)
	seen := map[string]bool{}
	readUntil(t, c, 5*time.Second, func(f frame) bool {
		// Not a struct: encoding/json would fold "E" onto a field tagged "e".
		var ev map[string]any
		if err := json.Unmarshal(f.raw, &ev); err != nil {
			t.Fatal(err)
		}
		if f.Stream != "" || f.Data != nil {
			t.Fatalf("envelope in raw mode: %.200s", f.raw)
		}
		seen[ev["e"].(string)] = true
		return seen["kline"] && seen["24hrTicker"]
	})
	send(t, c, `{"method":"GET_PROPERTY","params":["combined"],"id":1}`)
	if f := answer(t, c, "1"); string(f.Result) != "false" {
		t.Errorf("combined: %s", f.raw)
	}
}

// A stream on the wrong route, in upper case, of an unknown symbol or type
// is acknowledged and delivers nothing, while the right ones flow.
func TestWrongRouteDeliversNothing(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	for _, tc := range []struct {
		path string
		good string
	}{
		{"/market/stream?streams=btcusdt@kline_1m/btcusdt@bookTicker/!bookTicker/BTCUSDT@kline_1m/nosuchusdt@ticker/btcusdt@kline_1s/btcusdt@depth", "btcusdt@kline_1m"},
		{"/public/stream?streams=btcusdt@bookTicker/btcusdt@ticker/!ticker@arr/btcusdt@kline_1m/BTCUSDT@bookTicker", "btcusdt@bookTicker"},
		{"/stream?streams=btcusdt@kline_1m/btcusdt@ticker/btcusdt@bookTicker", "btcusdt@bookTicker"}, // legacy: public only
	} {
		c := dial(t, ts, tc.path, nil)
		n := 0
		readUntil(t, c, 5*time.Second, func(f frame) bool {
			if f.Stream != tc.good {
				t.Fatalf("%s: delivered %q", tc.path, f.Stream)
			}
			n++
			return n == 30 // > 0.5 s: the others would have ticked
		})
	}
	// /private is accepted (for the user data stream to come) but delivers
	// no market data: after a while the first frame is the answer.
	c := dial(t, ts, "/private/stream?streams=btcusdt@bookTicker/btcusdt@kline_1m", nil)
	time.Sleep(200 * time.Millisecond) // several ticks of every stream
	send(t, c, `{"method":"LIST_SUBSCRIPTIONS","id":"p"}`)
	f := readUntil(t, c, 5*time.Second, func(frame) bool { return true })
	if d := cmp.Diff(`{"result":["btcusdt@bookTicker","btcusdt@kline_1m"],"id":"p"}`, string(f.raw)); d != "" {
		t.Error(d)
	}
}

func TestPings(t *testing.T) {
	t.Parallel()
	cfg := fastCfg()
	cfg.PingInterval = 50 * time.Millisecond
	_, ts := startSim(t, cfg)
	var pings atomic.Int32
	c := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m", &websocket.DialOptions{
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	go func() { // control frames are handled while reading
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	waitFor(t, 5*time.Second, "two server pings", func() bool { return pings.Load() >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Errorf("server did not answer our ping: %v", err)
	}
}

// smallBufListener shrinks each accepted socket's send buffer so that a
// client that stops reading backs up quickly.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// A client that stops reading is closed; a fast one keeps receiving.
func TestSlowClientDisconnected(t *testing.T) {
	cfg := fastCfg()
	cfg.KlineUpdateEvery = 5 * time.Millisecond
	cfg.WriteQueue = 64
	cfg.WriteTimeout = time.Second
	s := newServer(t, cfg)
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = smallBufListener{ts.Listener}
	ts.Start()
	runSim(t, s, ts)

	var streams []string
	for _, sym := range []string{"btcusdt", "ethusdt"} {
		for iv := range intervals {
			streams = append(streams, sym+"@kline_"+iv)
		}
	}
	smallRead := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
	slow := dial(t, ts, "/market/stream?streams="+strings.Join(streams, "/"), &websocket.DialOptions{HTTPClient: smallRead})
	_ = slow // never read
	fast := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m", nil)

	got := 0
	readUntil(t, fast, 10*time.Second, func(frame) bool {
		got++
		st := s.Stats()
		return st.SlowDisconnects >= 1 && st.Connections == 1
	})
	if got < 20 {
		t.Errorf("fast client got only %d frames while the slow one backed up", got)
	}
	n := 0
	readUntil(t, fast, 2*time.Second, func(frame) bool { n++; return n == 20 })
}

func TestServeAndStats(t *testing.T) {
	t.Parallel()
	s := newServer(t, fastCfg())
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/market/stream?streams=btcusdt@kline_1m/btcusdt@ticker", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if _, _, err := c.Read(rctx); err != nil {
		t.Fatal(err)
	}
	var st Stats
	waitFor(t, 5*time.Second, "stats", func() bool {
		getJSON(t, base+"/sim/stats", &st)
		return st.MessagesSent >= 1 // counted once written, maybe after we read it
	})
	if st.Connections != 1 || st.Subscriptions != 2 || st.Streams != 2 || st.BytesSent < 1 {
		t.Errorf("stats %+v", st)
	}
	cancel()
	for {
		if _, _, err = c.Read(rctx); err != nil {
			break
		}
	}
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("on shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}
