package storefeed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/exchange"
)

const (
	testToken = "feeder-test-token-0123456789"
	minute    = int64(60_000)
	t0        = int64(1_767_225_600_000) // 2026-01-01 00:00 UTC
)

// fakeNode serves a node's /ws protocol and /api/v1 routes from state the
// test sets: it is the node as the feeder sees it, without Redis behind it
// (the end-to-end tests run real nodes on a real Redis).
type fakeNode struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	klines    map[string][]exchange.Kline // "BTCUSDT 1m" → oldest first
	tickers   map[string]exchange.Ticker24h
	positions []exchange.Position
	balances  map[string]exchange.Balance
	noAccount bool
	apiToken  string // required on HTTP when set
	deaf      bool   // new connections answer no ping
	conns     []*fakeConn

	requests sync.Map // path → *atomic.Int64
}

type fakeConn struct {
	mu sync.Mutex
	c  *websocket.Conn
}

func newFakeNode(t *testing.T) *fakeNode {
	n := &fakeNode{t: t, klines: map[string][]exchange.Kline{}, tickers: map[string]exchange.Ticker24h{}, balances: map[string]exchange.Balance{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", n.ws)
	mux.HandleFunc("GET /api/v1/klines", n.api(n.klinesRoute))
	mux.HandleFunc("GET /api/v1/ticker/24hr", n.api(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		t, ok := n.tickers[r.URL.Query().Get("symbol")]
		n.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"unknown symbol"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(t)
	}))
	mux.HandleFunc("GET /api/v1/positions", n.api(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.noAccount {
			http.Error(w, `{"error":"no exchange account configured"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(append([]exchange.Position{}, n.positions...))
	}))
	mux.HandleFunc("GET /api/v1/balance", n.api(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		b, ok := n.balances[r.URL.Query().Get("asset")]
		switch {
		case n.noAccount:
			http.Error(w, `{"error":"no exchange account configured"}`, http.StatusNotFound)
		case !ok:
			http.Error(w, `{"error":"no such asset"}`, http.StatusNotFound)
		default:
			json.NewEncoder(w).Encode(b)
		}
	}))
	n.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		n.drop()
		n.srv.Close()
	})
	return n
}

func (n *fakeNode) count(path string) int64 {
	v, _ := n.requests.LoadOrStore(path, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (n *fakeNode) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, _ := n.requests.LoadOrStore(r.URL.Path, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		n.mu.Lock()
		tok := n.apiToken
		n.mu.Unlock()
		if tok != "" && r.Header.Get("Authorization") != "Bearer "+tok {
			http.Error(w, `{"error":"api token required"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		h(w, r)
	}
}

func (n *fakeNode) klinesRoute(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	n.mu.Lock()
	ks := n.klines[q.Get("symbol")+" "+q.Get("interval")]
	ks = ks[max(0, len(ks)-limit):]
	rows := make([][]any, len(ks))
	for i, k := range ks {
		rows[i] = []any{k.OpenTime, k.Open, k.High, k.Low, k.Close, k.Volume, k.CloseTime, k.QuoteVolume, k.Trades, k.TakerBuyBase, k.TakerBuyQuote, "0"}
	}
	n.mu.Unlock()
	json.NewEncoder(w).Encode(rows)
}

func (n *fakeNode) ws(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ctx := context.Background()
	_, b, err := c.Read(ctx)
	if err != nil {
		return
	}
	var sub struct {
		Type   string   `json:"type"`
		Events []string `json:"events"`
	}
	if json.Unmarshal(b, &sub) != nil || sub.Type != "subscribe" {
		c.Close(websocket.StatusPolicyViolation, "subscribe first")
		return
	}
	reply, _ := json.Marshal(map[string]any{"type": "subscribed", "events": sub.Events})
	fc := &fakeConn{c: c}
	n.mu.Lock()
	deaf := n.deaf
	n.conns = append(n.conns, fc)
	n.mu.Unlock()
	fc.write(reply)
	if deaf {
		<-r.Context().Done() // reads nothing, so answers no ping
		return
	}
	<-c.CloseRead(ctx).Done()
}

func (fc *fakeConn) write(b []byte) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2e9)
	defer cancel()
	fc.c.Write(ctx, websocket.MessageText, b)
}

// publish sends an event to every connection, as the node relays it.
func (n *fakeNode) publish(name string, data any) {
	n.t.Helper()
	b, err := bus.Encode("fake-node", "live."+name, data, false)
	if err != nil {
		n.t.Fatal(err)
	}
	n.publishRaw(b)
}

func (n *fakeNode) publishRaw(b []byte) {
	n.mu.Lock()
	conns := append([]*fakeConn(nil), n.conns...)
	n.mu.Unlock()
	for _, c := range conns {
		c.write(b)
	}
}

// drop closes every connection, as a node going away does.
func (n *fakeNode) drop() {
	n.mu.Lock()
	conns := n.conns
	n.conns = nil
	n.mu.Unlock()
	for _, c := range conns {
		c.c.CloseNow()
	}
}

// kline makes a 1m-style kline of series key whose close is close.
func kline(symbol, interval string, open int64, tf int64, close float64, trades int64, closed bool) exchange.Kline {
	p := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return exchange.Kline{Symbol: symbol, Interval: interval, OpenTime: open, CloseTime: open + tf - 1,
		Open: p(close - 1), High: p(close + 2), Low: p(close - 2), Close: p(close), Volume: p(float64(trades)),
		QuoteVolume: "0", Trades: trades, TakerBuyBase: "0", TakerBuyQuote: "0", Closed: closed}
}

// setKlines gives the node n 1m klines of symbol from t0, the last forming.
func (n *fakeNode) setKlines(symbol string, count int) {
	var ks []exchange.Kline
	for i := range count {
		ks = append(ks, kline(symbol, "1m", t0+int64(i)*minute, minute, 100+float64(i), 10, i < count-1))
	}
	n.mu.Lock()
	n.klines[symbol+" 1m"] = ks
	n.mu.Unlock()
}

// advance appends count 1m klines to the node's series without publishing
// them (events lost), the last forming.
func (n *fakeNode) advance(symbol string, count int) exchange.Kline {
	n.mu.Lock()
	defer n.mu.Unlock()
	ks := n.klines[symbol+" 1m"]
	last := ks[len(ks)-1]
	ks[len(ks)-1].Closed = true
	for i := 1; i <= count; i++ {
		ks = append(ks, kline(symbol, "1m", last.OpenTime+int64(i)*minute, minute, 100+float64(len(ks)), 10, i < count))
	}
	n.klines[symbol+" 1m"] = ks
	return ks[len(ks)-1]
}

func (n *fakeNode) series(symbol string) []exchange.Kline {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]exchange.Kline(nil), n.klines[symbol+" 1m"]...)
}

func (n *fakeNode) setPositions(ps ...exchange.Position) {
	n.mu.Lock()
	n.positions = ps
	n.mu.Unlock()
}

func (n *fakeNode) setBalance(b exchange.Balance) {
	n.mu.Lock()
	n.balances[b.Asset] = b
	n.mu.Unlock()
}

func (n *fakeNode) setTicker(t exchange.Ticker24h) {
	n.mu.Lock()
	n.tickers[t.Symbol] = t
	n.mu.Unlock()
}

func ticker(symbol string, last float64, at int64) exchange.Ticker24h {
	p := fmt.Sprint(last)
	return exchange.Ticker24h{Symbol: symbol, LastPrice: p, HighPrice: fmt.Sprint(last + 5), LowPrice: fmt.Sprint(last - 5), Volume: "1000", CloseTime: at}
}
