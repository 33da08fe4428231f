package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tradecache/tradecache/exchange"
)

const (
	tKey    = "simTestKey"
	tSecret = "simTestSecret"
)

// acctCfg has two accounts: tKey with 10000 USDT, "poor" with 50 USDT.
func acctCfg() Config {
	c := fastCfg()
	c.Symbols = []string{"BTCUSDT", "ETHUSDT", "BNBUSDT"}
	c.Accounts = []Account{
		{APIKey: tKey, APISecret: tSecret, Balances: map[string]string{"USDT": "10000", "BNB": "1.5"}},
		{APIKey: "poor", APISecret: "poorSecret", Balances: map[string]string{"USDT": "50"}},
	}
	return c
}

func hmacHex(secret, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return hex.EncodeToString(m.Sum(nil))
}

// signedTarget returns path?params&timestamp=ts&signature=…, signed with
// secret as Binance's connectors sign.
func signedTarget(path string, params url.Values, secret string, ts int64) string {
	q := params.Encode()
	if q != "" {
		q += "&"
	}
	q += "timestamp=" + strconv.FormatInt(ts, 10)
	return path + "?" + q + "&signature=" + hmacHex(secret, q)
}

func nowMs() int64 { return time.Now().UnixMilli() }

// call serves one request in-process with the API key header (none when
// key is empty).
func call(s *Server, method, target, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "192.0.2.9:1"
	if key != "" {
		r.Header.Set("X-MBX-APIKEY", key)
	}
	if method != http.MethodGet {
		r.Header.Set("Content-Type", "application/json") // as the Node connector
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

// signedCall sends a signed request of tKey.
func signedCall(s *Server, method, path string, params url.Values) *httptest.ResponseRecorder {
	return call(s, method, signedTarget(path, params, tSecret, nowMs()), tKey)
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s: %v", w.Body, err)
	}
	return v
}

func wantAPIError(t *testing.T, w *httptest.ResponseRecorder, status, code int) {
	t.Helper()
	var e struct {
		Code int
		Msg  string
	}
	if w.Code != status || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Code != code || e.Msg == "" {
		t.Errorf("got %d %s, want %d code %d", w.Code, w.Body, status, code)
	}
}

func TestSignedRequests(t *testing.T) {
	t.Parallel()
	s := newServer(t, acctCfg())
	const path = "/fapi/v3/account"
	good := func(ts int64, extra url.Values) string { return signedTarget(path, extra, tSecret, ts) }
	rw := func(v string) url.Values { return url.Values{"recvWindow": {v}} }
	for _, tc := range []struct {
		name         string
		target, key  string
		status, code int
	}{
		{"good", good(nowMs(), nil), tKey, 200, 0},
		{"good with recvWindow", good(nowMs(), rw("10000")), tKey, 200, 0},
		{"bad signature", good(nowMs(), nil)[:len(good(nowMs(), nil))-4] + "abcd", tKey, 400, -1022},
		{"signature of another secret", signedTarget(path, nil, "wrong", nowMs()), tKey, 400, -1022},
		{"signature not hex", path + "?timestamp=" + strconv.FormatInt(nowMs(), 10) + "&signature=zz", tKey, 400, -1022},
		{"tampered parameter", strings.Replace(good(nowMs(), rw("5000")), "recvWindow=5000", "recvWindow=6000", 1), tKey, 400, -1022},
		{"missing API key", good(nowMs(), nil), "", 401, -2015},
		{"unknown API key", good(nowMs(), nil), "nobody", 401, -2015},
		{"another account's key", good(nowMs(), nil), "poor", 400, -1022},
		{"timestamp older than recvWindow", good(nowMs()-6000, nil), tKey, 400, -1021},
		{"timestamp within a larger recvWindow", good(nowMs()-6000, rw("60000")), tKey, 200, 0},
		{"timestamp ahead by more than 1 s", good(nowMs()+5000, nil), tKey, 400, -1021},
		{"recvWindow too large", good(nowMs(), rw("60001")), tKey, 400, -1131},
		{"missing timestamp", path + "?signature=" + hmacHex(tSecret, ""), tKey, 400, -1102},
		{"missing signature", path + "?timestamp=" + strconv.FormatInt(nowMs(), 10), tKey, 400, -1102},
		{"timestamp not a number", path + "?timestamp=now&signature=00", tKey, 400, -1100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := call(s, http.MethodGet, tc.target, tc.key)
			//lint:ignore SA1008 the raw key is what goes on the wire
			if w.Header()["X-MBX-USED-WEIGHT-1M"] == nil {
				t.Error("no X-MBX-USED-WEIGHT-1M")
			}
			if tc.status == 200 {
				if w.Code != 200 {
					t.Errorf("status %d: %s", w.Code, w.Body)
				}
				return
			}
			wantAPIError(t, w, tc.status, tc.code)
		})
	}

	// go-binance style: parameters in a form body, signed as query+body,
	// the signature in the query.
	s.pinPrice("BTCUSDT", 8500010)
	body := url.Values{"symbol": {"BTCUSDT"}, "side": {"BUY"}, "type": {"MARKET"}, "quantity": {"0.002"},
		"timestamp": {strconv.FormatInt(nowMs(), 10)}}.Encode()
	r := httptest.NewRequest(http.MethodPost, "/fapi/v1/order?signature="+hmacHex(tSecret, body), strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-MBX-APIKEY", tKey)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if o := decode[Order](t, w); o.Status != "FILLED" || o.ExecutedQty != "0.002" {
		t.Errorf("form-body order: %+v", o)
	}
}

// The hand-computed trade: buy 0.010 BTC at 85000.10, sell 0.004 at
// 85100.50, then sell 0.010 at 84900.00 (closing 0.006, opening a 0.004
// short). Commission 0.04 %, leverage 20, maintenance 0.4 %.
func TestMarketOrderArithmetic(t *testing.T) {
	t.Parallel()
	s := newServer(t, acctCfg())
	ignore := cmpopts.IgnoreFields(Order{}, "OrderID", "ClientOrderID", "UpdateTime")

	// 1. Buy 0.010 at 85000.10 by REST: notional 850.001, commission
	// 0.3400004; wallet 10000 − 0.3400004.
	s.pinPrice("BTCUSDT", 8500010)
	w := signedCall(s, http.MethodPost, "/fapi/v1/order", url.Values{
		"symbol": {"BTCUSDT"}, "side": {"BUY"}, "type": {"MARKET"}, "quantity": {"0.010"},
		"newClientOrderId": {"my-order_1"},
	})
	sameShape(t, "rest_order.json", w.Body.Bytes())
	o1 := decode[Order](t, w)
	want := Order{
		CumQty: "0.010", CumQuote: "850.00100", ExecutedQty: "0.010", AvgPrice: "85000.10", OrigQty: "0.010",
		Price: "0", Side: "BUY", PositionSide: "BOTH", Status: "FILLED", StopPrice: "0", Symbol: "BTCUSDT",
		TimeInForce: "GTC", Type: "MARKET", OrigType: "MARKET", WorkingType: "CONTRACT_PRICE",
		PriceMatch: "NONE", SelfTradePreventionMode: "EXPIRE_MAKER",
	}
	if d := cmp.Diff(want, o1, ignore); d != "" {
		t.Errorf("buy (-want +got):\n%s", d)
	}
	if o1.ClientOrderID != "my-order_1" || o1.OrderID == 0 || o1.UpdateTime < nowMs()-5000 {
		t.Errorf("ids/time: %+v", o1)
	}

	// 2. Sell 0.004 at 85100.50 in process: closes 4/10 of the cost
	// (340.0004) for 340.402: realized 0.4016, commission 0.1361608.
	s.pinPrice("BTCUSDT", 8510050)
	o2, err := s.PlaceOrder(tKey, "BTCUSDT", "SELL", "0.004")
	if err != nil {
		t.Fatal(err)
	}
	if o2.OrderID <= o1.OrderID || o2.ClientOrderID == "" || o2.AvgPrice != "85100.50" || o2.CumQuote != "340.40200" {
		t.Errorf("sell: %+v", o2)
	}
	risk := decode[[]restPositionRisk](t, signedCall(s, http.MethodGet, "/fapi/v3/positionRisk", url.Values{"symbol": {"BTCUSDT"}}))
	wantRisk := []restPositionRisk{{
		Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.006", EntryPrice: "85000.10",
		BreakEvenPrice: "85034.10004", MarkPrice: "85100.50000000", UnRealizedProfit: "0.60240000",
		LiquidationPrice: "0", IsolatedMargin: "0.00000000", Notional: "510.60300000", MarginAsset: "USDT",
		IsolatedWallet: "0", InitialMargin: "25.53015000", MaintMargin: "2.04241200",
		PositionInitialMargin: "25.53015000", OpenOrderInitialMargin: "0.00000000", Adl: 1,
		BidNotional: "0", AskNotional: "0",
	}}
	if d := cmp.Diff(wantRisk, risk, cmpopts.IgnoreFields(restPositionRisk{}, "UpdateTime")); d != "" {
		t.Errorf("positionRisk (-want +got):\n%s", d)
	}
	acct := decode[restAccount](t, signedCall(s, http.MethodGet, "/fapi/v3/account", nil))
	usdt := restAsset{
		Asset: "USDT", WalletBalance: "9999.92543880", UnrealizedProfit: "0.60240000",
		MarginBalance: "10000.52783880", MaintMargin: "2.04241200", InitialMargin: "25.53015000",
		PositionInitialMargin: "25.53015000", OpenOrderInitialMargin: "0.00000000",
		CrossWalletBalance: "9999.92543880", CrossUnPnl: "0.60240000",
		AvailableBalance: "9974.99768880", MaxWithdrawAmount: "9974.99768880",
	}
	bnb := restAsset{
		Asset: "BNB", WalletBalance: "1.50000000", UnrealizedProfit: "0.00000000", MarginBalance: "1.50000000",
		MaintMargin: "0.00000000", InitialMargin: "0.00000000", PositionInitialMargin: "0.00000000",
		OpenOrderInitialMargin: "0.00000000", CrossWalletBalance: "1.50000000", CrossUnPnl: "0.00000000",
		AvailableBalance: "1.50000000", MaxWithdrawAmount: "1.50000000",
	}
	noTime := cmpopts.IgnoreFields(restAsset{}, "UpdateTime")
	if d := cmp.Diff([]restAsset{bnb, usdt}, acct.Assets, noTime); d != "" {
		t.Errorf("assets (-want +got):\n%s", d)
	}
	if acct.TotalWalletBalance != "9999.92543880" || acct.AvailableBalance != "9974.99768880" ||
		acct.TotalMarginBalance != "10000.52783880" || acct.TotalUnrealizedProfit != "0.60240000" {
		t.Errorf("totals: %+v", acct)
	}
	wantPos := []restAccountPosition{{
		Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.006", UnrealizedProfit: "0.60240000",
		IsolatedMargin: "0.00000000", Notional: "510.60300000", IsolatedWallet: "0",
		InitialMargin: "25.53015000", MaintMargin: "2.04241200", UpdateTime: risk[0].UpdateTime,
	}}
	if d := cmp.Diff(wantPos, acct.Positions); d != "" {
		t.Errorf("account positions (-want +got):\n%s", d)
	}

	// 3. Sell 0.010 at 84900.00: realizes (84900 − 85000.10)·0.006 =
	// −0.6006 on the whole cost, pays 0.3396, and opens 0.004 short.
	s.pinPrice("BTCUSDT", 8490000)
	if _, err := s.PlaceOrder(tKey, "BTCUSDT", "SELL", "0.01"); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Account(tKey)
	if err != nil {
		t.Fatal(err)
	}
	wantSnap := AccountSnapshot{
		Balances: []exchange.Balance{
			{Asset: "BNB", WalletBalance: "1.50000000", CrossWalletBalance: "1.50000000", AvailableBalance: "1.50000000"},
			// available = 9998.9852388 − 16.98 (initial margin of 339.6 at 20×)
			{Asset: "USDT", WalletBalance: "9998.98523880", CrossWalletBalance: "9998.98523880", AvailableBalance: "9982.00523880"},
		},
		Positions: []exchange.Position{{
			Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "-0.004", EntryPrice: "84900.00",
			BreakEvenPrice: "84866.04", UnrealizedProfit: "0.00000000", MarginType: "cross", IsolatedWallet: "0",
		}},
	}
	noTimes := cmp.Options{
		cmpopts.IgnoreFields(exchange.Balance{}, "UpdateTime"),
		cmpopts.IgnoreFields(exchange.Position{}, "UpdateTime"),
	}
	if d := cmp.Diff(wantSnap, snap, noTimes); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
	risk = decode[[]restPositionRisk](t, signedCall(s, http.MethodGet, "/fapi/v3/positionRisk", nil))
	if len(risk) != 1 || risk[0].Notional != "-339.60000000" || risk[0].MaintMargin != "1.35840000" ||
		risk[0].InitialMargin != "16.98000000" ||
		// (9998.9852388 + 339.6) / (0.004 · 1.004), to 8 decimals
		risk[0].LiquidationPrice != "2574348.91404382" {
		t.Errorf("short positionRisk: %+v", risk)
	}
	// The other account is untouched.
	if snap, _ := s.Account("poor"); len(snap.Positions) != 0 || snap.Balances[0].WalletBalance != "50.00000000" {
		t.Errorf("poor: %+v", snap)
	}
	if _, err := s.Account("nobody"); err == nil {
		t.Error("Account of an unknown key")
	}
}

func TestPositionRiskOnlyNonZero(t *testing.T) {
	t.Parallel()
	s := newServer(t, acctCfg())
	s.pinPrice("BTCUSDT", 8500000)
	s.pinPrice("ETHUSDT", 320000)
	for _, o := range [][3]string{{"BTCUSDT", "BUY", "0.01"}, {"ETHUSDT", "SELL", "0.1"}, {"BTCUSDT", "SELL", "0.01"}} {
		if _, err := s.PlaceOrder(tKey, o[0], o[1], o[2]); err != nil {
			t.Fatal(o, err)
		}
	}
	all := signedCall(s, http.MethodGet, "/fapi/v3/positionRisk", nil)
	sameShape(t, "rest_position_risk.json", all.Body.Bytes())
	rows := decode[[]restPositionRisk](t, all)
	if len(rows) != 1 || rows[0].Symbol != "ETHUSDT" || rows[0].PositionAmt != "-0.100" || rows[0].EntryPrice != "3200.00" {
		t.Errorf("non-zero positions: %+v", rows)
	}
	acct := signedCall(s, http.MethodGet, "/fapi/v3/account", nil)
	sameShape(t, "rest_account.json", acct.Body.Bytes())
	if a := decode[restAccount](t, acct); len(a.Positions) != 1 || a.Positions[0].Symbol != "ETHUSDT" {
		t.Errorf("account positions: %+v", a.Positions)
	}

	// With symbol=, the flat position (traded or never) is shown.
	for _, sym := range []string{"BTCUSDT", "BNBUSDT"} {
		rows := decode[[]restPositionRisk](t, signedCall(s, http.MethodGet, "/fapi/v3/positionRisk", url.Values{"symbol": {sym}}))
		if len(rows) != 1 || rows[0].Symbol != sym || units(t, rows[0].PositionAmt) != 0 ||
			units(t, rows[0].EntryPrice) != 0 || rows[0].UnRealizedProfit != "0.00000000" || rows[0].Notional != "0.00000000" {
			t.Errorf("%s: %+v", sym, rows)
		}
	}
	wantAPIError(t, signedCall(s, http.MethodGet, "/fapi/v3/positionRisk", url.Values{"symbol": {"NOPEUSDT"}}), 400, -1121)
}

func TestOrderRejections(t *testing.T) {
	t.Parallel()
	s := newServer(t, acctCfg())
	s.pinPrice("BTCUSDT", 8500000)
	mkt := func(kv ...string) url.Values {
		v := url.Values{"symbol": {"BTCUSDT"}, "side": {"BUY"}, "type": {"MARKET"}, "quantity": {"0.01"}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		params url.Values
		code   int
	}{
		{"no symbol", mkt("symbol", ""), -1102},
		{"unknown symbol", mkt("symbol", "NOPEUSDT"), -1121},
		{"no side", mkt("side", ""), -1102},
		{"bad side", mkt("side", "LONG"), -1117},
		{"no type", mkt("type", ""), -1102},
		{"LIMIT not simulated", mkt("type", "LIMIT", "price", "80000", "timeInForce", "GTC"), -1020},
		{"unknown type", mkt("type", "ICEBERG"), -1116},
		{"no quantity", mkt("quantity", ""), -1102},
		{"quantity zero", mkt("quantity", "0.000"), -4003},
		{"quantity not a number", mkt("quantity", "1e-2"), -1100},
		{"quantity too precise", mkt("quantity", "0.0101"), -1111},
		{"quantity above market max", mkt("quantity", "121"), -4005},
		{"below min notional", mkt("quantity", "0.001"), -4164},
		{"margin insufficient", mkt("quantity", "3"), -2019},
		{"hedge-mode position side", mkt("positionSide", "LONG"), -4061},
		{"bad position side", mkt("positionSide", "UP"), -4060},
		{"reduceOnly with no position", mkt("reduceOnly", "true"), -2022},
		{"bad reduceOnly", mkt("reduceOnly", "yes"), -1130},
		{"price with MARKET", mkt("price", "85000"), -1106},
		{"client id too long", mkt("newClientOrderId", strings.Repeat("x", 37)), -4015},
		{"bad newOrderRespType", mkt("newOrderRespType", "FULL"), -1136},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantAPIError(t, signedCall(s, http.MethodPost, "/fapi/v1/order", tc.params), 400, tc.code)
		})
	}
	// Nothing of the above moved the account.
	if snap, _ := s.Account(tKey); len(snap.Positions) != 0 || snap.Balances[1].WalletBalance != "10000.00000000" {
		t.Errorf("rejections changed the account: %+v", snap)
	}
	// A rejected first order for an asset the account lacks leaves no trace.
	s.pinPrice("ETHUSDT", 320000)
	if _, err := s.PlaceOrder("poor", "ETHUSDT", "BUY", "1"); !isCode(err, -2019) {
		t.Errorf("poor 1 ETH: %v", err)
	}
	if snap, _ := s.Account("poor"); len(snap.Positions) != 0 || len(snap.Balances) != 1 {
		t.Errorf("poor after rejection: %+v", snap)
	}

	// reduceOnly: may reduce or close, not increase, flip or exceed.
	if _, err := s.PlaceOrder(tKey, "BTCUSDT", "BUY", "0.01"); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, signedCall(s, http.MethodPost, "/fapi/v1/order", mkt("reduceOnly", "true")), 400, -2022)
	wantAPIError(t, signedCall(s, http.MethodPost, "/fapi/v1/order", mkt("side", "SELL", "quantity", "0.011", "reduceOnly", "true")), 400, -2022)
	// Below min notional is fine when reduce-only.
	if o := decode[Order](t, signedCall(s, http.MethodPost, "/fapi/v1/order", mkt("side", "SELL", "quantity", "0.001", "reduceOnly", "true"))); !o.ReduceOnly {
		t.Errorf("reduce-only: %+v", o)
	}
	if _, err := s.PlaceOrder("nobody", "BTCUSDT", "BUY", "0.01"); !isCode(err, -2015) {
		t.Errorf("unknown key: %v", err)
	}
}

func isCode(err error, code int) bool {
	var e *apiError
	return errors.As(err, &e) && e.Code == code
}

func TestListenKeyREST(t *testing.T) {
	t.Parallel()
	s := newServer(t, acctCfg())
	post := func(key string) string {
		return decode[map[string]string](t, call(s, http.MethodPost, "/fapi/v1/listenKey", key))["listenKey"]
	}
	k1 := post(tKey)
	if len(k1) != 64 {
		t.Fatalf("listenKey %q", k1)
	}
	if k2 := post(tKey); k2 != k1 {
		t.Errorf("second POST gave %q, want the active %q", k2, k1)
	}
	if kp := post("poor"); kp == k1 {
		t.Error("two accounts share a listenKey")
	}
	wantAPIError(t, call(s, http.MethodPost, "/fapi/v1/listenKey", ""), 401, -2015)
	wantAPIError(t, call(s, http.MethodPost, "/fapi/v1/listenKey", "nobody"), 401, -2015)

	// Keepalive with or without the key (connectors differ).
	for _, target := range []string{"/fapi/v1/listenKey", "/fapi/v1/listenKey?listenKey=" + k1} {
		if got := decode[map[string]string](t, call(s, http.MethodPut, target, tKey))["listenKey"]; got != k1 {
			t.Errorf("PUT %s: %q", target, got)
		}
	}
	wantAPIError(t, call(s, http.MethodPut, "/fapi/v1/listenKey?listenKey=bogus", tKey), 400, -1125)

	if w := call(s, http.MethodDelete, "/fapi/v1/listenKey?listenKey="+k1, tKey); w.Code != 200 || w.Body.String() != "{}" {
		t.Errorf("DELETE: %d %s", w.Code, w.Body)
	}
	wantAPIError(t, call(s, http.MethodPut, "/fapi/v1/listenKey?listenKey="+k1, tKey), 400, -1125)
	wantAPIError(t, call(s, http.MethodPut, "/fapi/v1/listenKey", tKey), 400, -1125)
	if k3 := post(tKey); k3 == k1 || len(k3) != 64 {
		t.Errorf("POST after DELETE: %q", k3)
	}
}

// The 60-minute lifetime on the fake clock: keepalives extend it, its end
// pushes listenKeyExpired (E a string) once, then nothing.
func TestListenKeyLifetimeSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, acctCfg())
		s.pinPrice("BTCUSDT", 8500000)
		key := decode[map[string]string](t, call(s, http.MethodPost, "/fapi/v1/listenKey", tKey))["listenKey"]
		c := newClient(s, nil, routePrivate, false)
		s.addClient(c)
		if !s.subscribe(c, []string{key}) {
			t.Fatal("subscribe refused")
		}
		time.Sleep(59 * time.Minute)
		if w := call(s, http.MethodPut, "/fapi/v1/listenKey", tKey); w.Code != 200 {
			t.Fatalf("keepalive: %s", w.Body)
		}
		time.Sleep(59 * time.Minute)
		if _, err := s.PlaceOrder(tKey, "BTCUSDT", "BUY", "0.01"); err != nil {
			t.Fatal(err)
		}
		if n := len(c.q); n != 3 {
			t.Fatalf("%d events after the order, want NEW, TRADE, ACCOUNT_UPDATE", n)
		}
		for range 3 {
			<-c.q
		}
		time.Sleep(time.Minute - time.Millisecond)
		if len(c.q) != 0 {
			t.Fatalf("event before expiry: %s", <-c.q)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if len(c.q) != 1 {
			t.Fatalf("%d frames at expiry, want 1", len(c.q))
		}
		b := <-c.q
		sameShape(t, "ws_listen_key_expired.json", b)
		want := `{"e":"listenKeyExpired","E":"` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `","listenKey":"` + key + `"}`
		if string(b) != want {
			t.Errorf("got  %s\nwant %s", b, want)
		}
		if _, err := s.PlaceOrder(tKey, "BTCUSDT", "BUY", "0.01"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if len(c.q) != 0 {
			t.Errorf("user data after expiry: %s", <-c.q)
		}
		wantAPIError(t, call(s, http.MethodPut, "/fapi/v1/listenKey", tKey), 400, -1125)
		if k2 := decode[map[string]string](t, call(s, http.MethodPost, "/fapi/v1/listenKey", tKey))["listenKey"]; k2 == key {
			t.Error("POST after expiry returned the expired key")
		}
	})
}

func TestParseUnits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		dec  int
		want int64
		err  error
	}{
		{"0", 3, 0, nil}, {"0.010", 3, 10, nil}, {"12", 2, 1200, nil}, {"0.0100", 3, 10, nil},
		{"007.5", 1, 75, nil}, {"0.0101", 3, 0, errPrecision}, {"1.", 3, 0, errSyntax}, {".5", 3, 0, errSyntax},
		{"-1", 3, 0, errSyntax}, {"1e3", 3, 0, errSyntax}, {"", 3, 0, errSyntax},
		{"99999999999999999999", 0, 0, errSyntax},
	} {
		got, err := parseUnits(tc.in, tc.dec)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("parseUnits(%q, %d) = %d, %v; want %d, %v", tc.in, tc.dec, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		v    int64
		min  int
		want string
	}{{8500010000000, 2, "85000.10"}, {8503410004000, 2, "85034.10004"}, {0, 2, "0.00"}, {0, 0, "0"}, {-12345678, 0, "-0.12345678"}} {
		if got := fmtPrice8(tc.v, tc.min); got != tc.want {
			t.Errorf("fmtPrice8(%d, %d) = %q, want %q", tc.v, tc.min, got, tc.want)
		}
	}
}

func TestNewValidatesAccounts(t *testing.T) {
	t.Parallel()
	for _, accts := range [][]Account{
		{{APIKey: "", APISecret: "s"}},
		{{APIKey: "k", APISecret: ""}},
		{{APIKey: "k", APISecret: "s"}, {APIKey: "k", APISecret: "t"}},
		{{APIKey: "k", APISecret: "s", Balances: map[string]string{"usdt": "1"}}},
		{{APIKey: "k", APISecret: "s", Balances: map[string]string{"USDT": "-1"}}},
		{{APIKey: "k", APISecret: "s", Balances: map[string]string{"USDT": "0.000000001"}}},
		{{APIKey: "k", APISecret: "s", Balances: map[string]string{"USDT": "1000000000.01"}}},
	} {
		if _, err := New(Config{Accounts: accts}); err == nil {
			t.Errorf("New accepted %+v", accts)
		}
	}
}
