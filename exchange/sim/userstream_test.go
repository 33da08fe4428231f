package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// restCall sends an API-key request over the network.
func restCall(t *testing.T, ts *httptest.Server, method, target, key string) (int, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, ts.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-MBX-APIKEY", key)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func newListenKey(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	code, b := restCall(t, ts, http.MethodPost, "/fapi/v1/listenKey", tKey)
	var v struct{ ListenKey string }
	if code != 200 || json.Unmarshal(b, &v) != nil || v.ListenKey == "" {
		t.Fatalf("POST listenKey: %d %s", code, b)
	}
	return v.ListenKey
}

// readN reads n frames.
func readN(t *testing.T, c *websocket.Conn, n int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out [][]byte
	for len(out) < n {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %d of %d: %v", len(out)+1, n, err)
		}
		out = append(out, b)
	}
	return out
}

// silent fails if a frame arrives within d.
func silent(t *testing.T, c *websocket.Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, b, err := c.Read(ctx); err == nil {
		t.Errorf("unexpected frame: %.300s", b)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read: %v", err)
	}
}

func waitSubs(t *testing.T, s *Server, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, "subscriptions", func() bool { return s.Stats().Subscriptions == n })
}

// userEv decodes the parts of user events the tests look at.
type userEv struct {
	E    string          `json:"e"`
	Time json.RawMessage `json:"E"` // else "E" would land in e
	O    struct {
		X string `json:"x"`
		S string `json:"X"`
	} `json:"o"`
	A struct {
		M string       `json:"m"`
		B []wsBalance  `json:"B"`
		P []wsPosition `json:"P"`
	} `json:"a"`
}

func TestUserDataStream(t *testing.T) {
	t.Parallel()
	s, ts := startSim(t, acctCfg())
	s.pinPrice("BTCUSDT", 8500010)
	s.pinPrice("ETHUSDT", 320000)
	if _, err := s.PlaceOrder(tKey, "ETHUSDT", "BUY", "0.5"); err != nil {
		t.Fatal(err)
	}
	key := newListenKey(t, ts)

	raw := dial(t, ts, "/private/ws?listenKey="+key+"&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE", nil)
	comb := dial(t, ts, "/private/stream?listenKey="+key, nil)
	onlyAcct := dial(t, ts, "/private/ws?listenKey="+key+"&events=ACCOUNT_UPDATE", nil)
	pathForm := dial(t, ts, "/private/ws/"+key, nil)
	market := dial(t, ts, "/market/stream?streams="+key, nil) // wrong route: nothing
	waitSubs(t, s, 5)
	// The official Node connector: an empty combined stream, then SUBSCRIBE
	// with the listenKey as the stream name and a hex string id.
	sub := dial(t, ts, "/private/stream?streams=", nil)
	send(t, sub, `{"method":"SUBSCRIBE","params":["`+key+`"],"id":"0123456789abcdef0123456789abcdef"}`)
	if f := answer(t, sub, `"0123456789abcdef0123456789abcdef"`); string(f.Result) != "null" {
		t.Fatalf("SUBSCRIBE: %s", f.raw)
	}

	if _, err := s.PlaceOrder(tKey, "BTCUSDT", "BUY", "0.010"); err != nil {
		t.Fatal(err)
	}
	frames := readN(t, raw, 3)
	var evs []userEv
	for _, b := range frames {
		var ev userEv
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		evs = append(evs, ev)
	}
	if evs[0].E != evOrderUpdate || evs[0].O.X != "NEW" || evs[0].O.S != "NEW" ||
		evs[1].E != evOrderUpdate || evs[1].O.X != "TRADE" || evs[1].O.S != "FILLED" || evs[2].E != evAccountUpdate {
		t.Fatalf("events: %s", frames)
	}
	// NEW carries no commission fields; TRADE has the full set.
	newShape, tradeShape := shape(t, frames[0]), shape(t, golden(t, "ws_order_trade_update.json"))
	delete(tradeShape, ".o.N")
	delete(tradeShape, ".o.n")
	if d := cmp.Diff(tradeShape, newShape); d != "" {
		t.Errorf("NEW shape (-want +got):\n%s", d)
	}
	sameShape(t, "ws_order_trade_update.json", frames[1])
	sameShape(t, "ws_account_update.json", frames[2])
	// A delta: the BTC position only, though ETH is open too. 0.010 at
	// 85000.10: commission 0.3400004, ETH's was 0.5·3200·0.0004 = 0.64.
	wantAcct := []wsPosition{{
		Symbol: "BTCUSDT", Amount: "0.010", EntryPrice: "85000.10", BreakEven: "85034.10004",
		CumRealized: "0.00000000", Unrealized: "0.00000000", MarginType: "cross", IsolatedWallet: "0", PositionSide: "BOTH",
	}}
	if d := cmp.Diff(wantAcct, evs[2].A.P); d != "" {
		t.Errorf("ACCOUNT_UPDATE P (-want +got):\n%s", d)
	}
	wantB := []wsBalance{{Asset: "USDT", WalletBalance: "9999.01999960", CrossWallet: "9999.01999960", BalanceChange: "0"}}
	if d := cmp.Diff(wantB, evs[2].A.B); d != "" || evs[2].A.M != "ORDER" {
		t.Errorf("ACCOUNT_UPDATE m %q B (-want +got):\n%s", evs[2].A.M, d)
	}
	if !strings.Contains(string(frames[1]), `"n":"0.34000040"`) || !strings.Contains(string(frames[1]), `"N":"USDT"`) {
		t.Errorf("TRADE commission: %s", frames[1])
	}

	// The combined forms carry the same payloads under the listenKey.
	for name, c := range map[string]*websocket.Conn{"listenKey=": comb, "SUBSCRIBE": sub} {
		for i, b := range readN(t, c, 3) {
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			if f.Stream != key || string(f.Data) != string(frames[i]) {
				t.Errorf("%s frame %d: %s", name, i, b)
			}
		}
	}
	for i, b := range readN(t, pathForm, 3) {
		if string(b) != string(frames[i]) {
			t.Errorf("/private/ws/<key> frame %d: %s", i, b)
		}
	}
	if got := readN(t, onlyAcct, 1)[0]; string(got) != string(frames[2]) {
		t.Errorf("events=ACCOUNT_UPDATE got %s", got)
	}
	silent(t, onlyAcct, 200*time.Millisecond)
	silent(t, market, 50*time.Millisecond)

	// Another account's orders go to its own key only.
	if _, err := s.PlaceOrder("poor", "ETHUSDT", "BUY", "0.01"); err != nil {
		t.Fatal(err)
	}
	silent(t, raw, 200*time.Millisecond)
}

func TestUnknownListenKeyRefused(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, acctCfg())
	for _, path := range []string{"/private/ws?listenKey=bogus", "/private/stream?listenKey=bogus&events=ACCOUNT_UPDATE"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, wsURL(ts, path), nil)
		cancel()
		if err == nil {
			c.CloseNow()
			t.Errorf("%s: connected", path)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %v %+v", path, err, resp)
		}
	}
	// SUBSCRIBE is acknowledged, as every SUBSCRIBE, and delivers nothing.
	c := dial(t, ts, "/private/stream?streams=", nil)
	send(t, c, `{"method":"SUBSCRIBE","params":["bogus"],"id":1}`)
	if f := answer(t, c, "1"); string(f.Result) != "null" {
		t.Errorf("SUBSCRIBE bogus: %s", f.raw)
	}
}

func TestListenKeyExpiry(t *testing.T) {
	t.Parallel()
	cfg := acctCfg()
	cfg.ListenKeyTTL = 300 * time.Millisecond
	s, ts := startSim(t, cfg)
	s.pinPrice("BTCUSDT", 8500000)
	key := newListenKey(t, ts)
	raw := dial(t, ts, "/private/ws?listenKey="+key, nil)
	comb := dial(t, ts, "/private/stream?streams=", nil)
	send(t, comb, `{"method":"SUBSCRIBE","params":["`+key+`"],"id":7}`)
	answer(t, comb, "7")
	waitSubs(t, s, 2)

	b := readN(t, raw, 1)[0]
	sameShape(t, "ws_listen_key_expired.json", b)
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if e, ok := ev["E"].(string); !ok || ev["e"] != "listenKeyExpired" || ev["listenKey"] != key || len(e) != 13 {
		t.Errorf("expired event: %s", b)
	}
	var f frame
	if err := json.Unmarshal(readN(t, comb, 1)[0], &f); err != nil || f.Stream != key || string(f.Data) != string(b) {
		t.Errorf("combined expiry: %+v %v", f, err)
	}
	if _, err := s.PlaceOrder(tKey, "BTCUSDT", "BUY", "0.01"); err != nil {
		t.Fatal(err)
	}
	silent(t, raw, 300*time.Millisecond)
	silent(t, comb, 50*time.Millisecond)
	if code, body := restCall(t, ts, http.MethodPut, "/fapi/v1/listenKey?listenKey="+key, tKey); code != 400 || !strings.Contains(string(body), "-1125") {
		t.Errorf("keepalive after expiry: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, resp, err := websocket.Dial(ctx, wsURL(ts, "/private/ws?listenKey="+key), nil); err == nil {
		c.CloseNow()
		t.Error("connected with an expired key")
	} else if resp == nil || resp.StatusCode != 400 {
		t.Errorf("expired key: %v", err)
	}
}

func TestExpireListenKeyHooks(t *testing.T) {
	t.Parallel()
	s, ts := startSim(t, acctCfg())
	for _, expire := range []func(key string){
		s.ExpireListenKey,
		func(key string) {
			resp, err := http.Post(ts.URL+"/sim/listenkey/expire?listenKey="+key, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("POST /sim/listenkey/expire: %s", resp.Status)
			}
		},
	} {
		key := newListenKey(t, ts)
		c := dial(t, ts, "/private/ws?listenKey="+key, nil)
		waitSubs(t, s, 1)
		expire(key)
		if b := readN(t, c, 1)[0]; !strings.Contains(string(b), `"e":"listenKeyExpired"`) {
			t.Errorf("got %s", b)
		}
		if s.keys.valid(key) {
			t.Error("key still valid")
		}
		c.CloseNow()
		waitSubs(t, s, 0)
	}
	resp, err := http.Post(ts.URL+"/sim/listenkey/expire?listenKey=bogus", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("expire bogus: %s", resp.Status)
	}
	s.ExpireListenKey("bogus") // ignored
}

// DELETE stops the stream without listenKeyExpired.
func TestListenKeyDeleteStopsStream(t *testing.T) {
	t.Parallel()
	s, ts := startSim(t, acctCfg())
	s.pinPrice("BTCUSDT", 8500000)
	key := newListenKey(t, ts)
	c := dial(t, ts, "/private/ws?listenKey="+key, nil)
	waitSubs(t, s, 1)
	if code, body := restCall(t, ts, http.MethodDelete, "/fapi/v1/listenKey?listenKey="+key, tKey); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if _, err := s.PlaceOrder(tKey, "BTCUSDT", "BUY", "0.01"); err != nil {
		t.Fatal(err)
	}
	silent(t, c, 300*time.Millisecond)
}

// Subscriptions are in place before the handshake answer: an order placed
// the moment the connection opens reaches it.
func TestOrderRightAfterConnect(t *testing.T) {
	t.Parallel()
	s, ts := startSim(t, acctCfg())
	s.pinPrice("BTCUSDT", 8500000)
	key := newListenKey(t, ts)
	for i := range 20 {
		path := "/private/ws?listenKey=" + key
		if i%2 == 1 {
			path = "/private/stream?listenKey=" + key
		}
		c := dial(t, ts, path, nil)
		side := []string{"BUY", "SELL"}[i%2]
		if _, err := s.PlaceOrder(tKey, "BTCUSDT", side, "0.01"); err != nil {
			t.Fatal(err)
		}
		if b := readN(t, c, 3)[2]; !strings.Contains(string(b), `"e":"ACCOUNT_UPDATE"`) {
			t.Fatalf("round %d: %s", i, b)
		}
		c.CloseNow()
	}
}
