package binance

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

const (
	testAPIKey    = "tcKEY-vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
	testAPISecret = "tcSECRET-NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5f"
	testListenKey = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
)

// acctServer is a fake of Binance's account endpoints that checks what
// Binance checks: the API key, the HMAC-SHA256 of the raw query string
// (everything before "&signature="), the timestamp against its own clock
// and recvWindow, and that POSTs carry no body.
type acctServer struct {
	*httptest.Server
	t      *testing.T
	key    string
	secret string
	clock  func() time.Time // the server's clock

	mu       sync.Mutex
	reqs     []recorded
	override map[string]func(w http.ResponseWriter) // path → canned reply
}

type recorded struct {
	method, path, rawQuery, apiKey, contentType string
	body                                        []byte
}

func newAcctServer(t *testing.T) *acctServer {
	s := &acctServer{t: t, key: testAPIKey, secret: testAPISecret, clock: time.Now, override: map[string]func(http.ResponseWriter){}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

func (s *acctServer) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func (s *acctServer) setOverride(path string, f func(http.ResponseWriter)) {
	s.mu.Lock()
	s.override[path] = f
	s.mu.Unlock()
}

func binanceError(w http.ResponseWriter, status int, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"msg":%q}`, code, msg)
}

func (s *acctServer) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-MBX-APIKEY"), r.Header.Get("Content-Type"), body})
	ov := s.override[r.URL.Path]
	s.mu.Unlock()
	if ov != nil {
		ov(w)
		return
	}
	if r.URL.Path == "/fapi/v1/time" {
		fmt.Fprintf(w, `{"serverTime":%d}`, s.clock().UnixMilli())
		return
	}
	if len(body) != 0 {
		binanceError(w, 400, -1102, "body not expected")
		return
	}
	if r.Header.Get("X-MBX-APIKEY") != s.key {
		binanceError(w, 401, -2015, "Invalid API-key, IP, or permissions for action.")
		return
	}
	if r.URL.Path == "/fapi/v1/listenKey" {
		if r.URL.Query().Has("signature") || r.URL.Query().Has("timestamp") {
			s.t.Errorf("listenKey %s signed: %s", r.Method, r.URL.RawQuery)
		}
		switch r.Method {
		case http.MethodPost:
			_, _ = w.Write(readFixture(s.t, "rest_listen_key.json"))
		case http.MethodPut, http.MethodDelete:
			if r.URL.Query().Get("listenKey") != testListenKey {
				binanceError(w, 400, -1125, "This listenKey does not exist.")
				return
			}
			_, _ = w.Write([]byte(`{}`))
		}
		return
	}
	// USER_DATA / TRADE: verify exactly as Binance does.
	raw := r.URL.RawQuery
	i := strings.LastIndex(raw, "&signature=")
	if i < 0 {
		binanceError(w, 400, -1102, "Mandatory parameter 'signature' was not sent.")
		return
	}
	payload, sig := raw[:i], raw[i+len("&signature="):]
	m := hmac.New(sha256.New, []byte(s.secret))
	m.Write([]byte(payload))
	if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(strings.ToLower(sig))) {
		binanceError(w, 400, -1022, "Signature for this request is not valid.")
		return
	}
	q, _ := url.ParseQuery(payload)
	ts, err1 := strconv.ParseInt(q.Get("timestamp"), 10, 64)
	rw, err2 := strconv.ParseInt(q.Get("recvWindow"), 10, 64)
	if err1 != nil || err2 != nil || rw > 60000 {
		binanceError(w, 400, -1102, "bad timestamp or recvWindow")
		return
	}
	now := s.clock().UnixMilli()
	if ts > now+1000 || now-ts > rw {
		binanceError(w, 400, -1021, "Timestamp for this request is outside of the recvWindow.")
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /fapi/v3/account":
		_, _ = w.Write(readFixture(s.t, "rest_account_v3.json"))
	case "GET /fapi/v3/positionRisk":
		_, _ = w.Write(readFixture(s.t, "rest_position_risk_v3.json"))
	case "POST /fapi/v1/order":
		_, _ = w.Write(readFixture(s.t, "rest_order.json"))
	default:
		http.NotFound(w, r)
	}
}

func newAcctClient(srv *acctServer) *REST {
	return NewREST(RESTConfig{BaseURL: srv.URL, APIKey: testAPIKey, APISecret: testAPISecret})
}

func TestSignatureKnownVector(t *testing.T) {
	// Binance's documented HMAC example (API docs, "SIGNED endpoint
	// examples"): the signature covers exactly the query string.
	r := NewREST(RESTConfig{APIKey: "k", APISecret: "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"})
	q := "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
	if got, want := r.sign(q), "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"; got != want {
		t.Errorf("sign = %s, want %s", got, want)
	}
	// signedQuery: sorted params, recvWindow and timestamp, signature last.
	r.now = func() time.Time { return time.UnixMilli(1499827319559) }
	got := r.signedQuery(url.Values{"symbol": {"LTCBTC"}})
	want := "recvWindow=5000&symbol=LTCBTC&timestamp=1499827319559"
	if got != want+"&signature="+r.sign(want) {
		t.Errorf("signedQuery = %s", got)
	}
}

func TestAccountREST(t *testing.T) {
	srv := newAcctServer(t)
	rc := newAcctClient(srv)
	ctx := context.Background()

	var _ exchange.AccountREST = rc
	key, err := rc.CreateListenKey(ctx)
	if err != nil || key != testListenKey {
		t.Fatalf("CreateListenKey = %q, %v", key, err)
	}
	if err := rc.KeepAliveListenKey(ctx, key); err != nil {
		t.Fatalf("KeepAliveListenKey: %v", err)
	}
	if err := rc.CloseListenKey(ctx, key); err != nil {
		t.Fatalf("CloseListenKey: %v", err)
	}
	bs, ps, err := rc.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Asset != "USDT" || bs[1].AvailableBalance != "126.72469206" {
		t.Errorf("balances %+v", bs)
	}
	if d := cmp.Diff(wantPositionsREST, ps); d != "" {
		t.Errorf("positions (-want +got):\n%s", d)
	}
	or, err := rc.PlaceOrder(ctx, OrderRequest{Symbol: "BTCUSDT", Side: "BUY", Type: "LIMIT", Quantity: "0.002",
		Price: "83000.1", PositionSide: "BOTH", ReduceOnly: true, ClientOrderID: "tc-test-1"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantOrderResponse, or); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}

	reqs := srv.requests()
	var methods []string
	for _, r := range reqs {
		methods = append(methods, r.method+" "+r.path)
		if r.apiKey != testAPIKey {
			t.Errorf("%s %s: X-MBX-APIKEY %q", r.method, r.path, r.apiKey)
		}
		if len(r.body) != 0 {
			t.Errorf("%s %s: body %q, want empty (all parameters in the query)", r.method, r.path, r.body)
		}
	}
	want := []string{"POST /fapi/v1/listenKey", "PUT /fapi/v1/listenKey", "DELETE /fapi/v1/listenKey"}
	if d := cmp.Diff(want, methods[:3]); d != "" {
		t.Errorf("listenKey calls (-want +got):\n%s", d)
	}
	if reqs[0].rawQuery != "" || reqs[1].rawQuery != "listenKey="+testListenKey {
		t.Errorf("listenKey queries %q, %q", reqs[0].rawQuery, reqs[1].rawQuery)
	}
	order := reqs[len(reqs)-1]
	q, _ := url.ParseQuery(order.rawQuery)
	for k, v := range map[string]string{"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002",
		"price": "83000.1", "timeInForce": "GTC", "positionSide": "BOTH", "reduceOnly": "true",
		"newClientOrderId": "tc-test-1", "newOrderRespType": "RESULT", "recvWindow": "5000"} {
		if q.Get(k) != v {
			t.Errorf("order %s = %q, want %q", k, q.Get(k), v)
		}
	}
	if order.method != http.MethodPost || order.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("order sent as %s %q", order.method, order.contentType)
	}
	if !strings.Contains(order.rawQuery, "&signature=") || strings.Index(order.rawQuery, "signature=") < strings.Index(order.rawQuery, "timestamp=") {
		t.Errorf("signature not last: %s", order.rawQuery)
	}
	// Weights: listenKey 3×1, account 5 + positionRisk 5, order 0.
	if w := rc.Weight(); w != 13 {
		t.Errorf("Weight = %d, want 13", w)
	}
}

func TestAccountRESTLocalRefusals(t *testing.T) {
	srv := newAcctServer(t)
	ctx := context.Background()
	bare := NewREST(RESTConfig{BaseURL: srv.URL})
	keyOnly := NewREST(RESTConfig{BaseURL: srv.URL, APIKey: testAPIKey})
	if _, err := bare.CreateListenKey(ctx); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("CreateListenKey without key: %v", err)
	}
	if _, _, err := keyOnly.Account(ctx); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("Account without secret: %v", err)
	}
	rc := newAcctClient(srv)
	for _, o := range []OrderRequest{
		{Symbol: "", Side: "BUY", Type: "MARKET", Quantity: "1"},
		{Symbol: "BTCUSDT", Side: "buy", Type: "MARKET", Quantity: "1"},
		{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: "1e"},
		{Symbol: "BTCUSDT", Side: "BUY", Type: "LIMIT", Quantity: "1", Price: "x"},
		{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: "1", PositionSide: "UP"},
		{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: "1", ClientOrderID: "has space"},
	} {
		if _, err := rc.PlaceOrder(ctx, o); err == nil {
			t.Errorf("PlaceOrder(%+v) accepted", o)
		}
	}
	if err := rc.KeepAliveListenKey(ctx, "a&b=c"); err == nil {
		t.Error("bad listenKey accepted")
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestAccountRESTErrorMapping(t *testing.T) {
	srv := newAcctServer(t)
	ctx := context.Background()
	var ae *APIError

	// A wrong secret: the server's HMAC check fails → -1022.
	wrong := NewREST(RESTConfig{BaseURL: srv.URL, APIKey: testAPIKey, APISecret: "not-the-secret"})
	_, _, err := wrong.Account(ctx)
	if !errors.Is(err, ErrBadSignature) || !errors.As(err, &ae) || ae.Code != -1022 || ae.HTTPStatus != 400 {
		t.Errorf("wrong secret: %v", err)
	}
	// A wrong key → -2015.
	badKey := NewREST(RESTConfig{BaseURL: srv.URL, APIKey: "nope", APISecret: testAPISecret})
	if _, err := badKey.CreateListenKey(ctx); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	// An unknown listenKey → -1125, which is exchange.ErrListenKeyNotFound.
	rc := newAcctClient(srv)
	err = rc.KeepAliveListenKey(ctx, "someOtherKey")
	if !errors.Is(err, exchange.ErrListenKeyNotFound) || !errors.As(err, &ae) || ae.Code != -1125 {
		t.Errorf("unknown listenKey: %v", err)
	}

	// The golden error bodies, served as is.
	tests := []struct {
		file   string
		status int
		is     error
		code   int
	}{
		{"rest_error_1022.json", 400, ErrBadSignature, -1022},
		{"rest_error_1021.json", 400, ErrClockSkew, -1021},
		{"rest_error_1125.json", 400, exchange.ErrListenKeyNotFound, -1125},
		{"rest_error_2015.json", 401, ErrUnauthorized, -2015},
	}
	sentinels := []error{ErrBadSignature, ErrClockSkew, exchange.ErrListenKeyNotFound, ErrUnauthorized, ErrRateLimited}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, tt.file)
			for _, p := range []string{"/fapi/v1/listenKey", "/fapi/v3/account", "/fapi/v3/positionRisk"} {
				srv.setOverride(p, func(w http.ResponseWriter) {
					w.WriteHeader(tt.status)
					_, _ = w.Write(body)
				})
			}
			for name, call := range map[string]func() error{
				"keepalive": func() error { return rc.KeepAliveListenKey(ctx, testListenKey) },
				"account":   func() error { _, _, err := rc.Account(ctx); return err },
			} {
				err := call()
				if !errors.Is(err, tt.is) || !errors.As(err, &ae) || ae.Code != tt.code || ae.HTTPStatus != tt.status {
					t.Errorf("%s: %v, want %v", name, err, tt.is)
				}
				for _, s := range sentinels {
					if s != tt.is && errors.Is(err, s) {
						t.Errorf("%s: %v also matches %v", name, err, s)
					}
				}
			}
		})
	}
	if !errors.Is(&APIError{HTTPStatus: 401}, ErrUnauthorized) {
		t.Error("a bare 401 is not ErrUnauthorized")
	}
}

func TestSyncTime(t *testing.T) {
	srv := newAcctServer(t)
	local := time.Date(2026, 10, 7, 12, 0, 0, 0, time.UTC)
	srv.clock = func() time.Time { return local.Add(7 * time.Second) } // Binance is 7 s ahead
	rc := newAcctClient(srv)
	rc.now = func() time.Time { return local }
	ctx := context.Background()

	_, _, err := rc.Account(ctx)
	if !errors.Is(err, ErrClockSkew) {
		t.Fatalf("before SyncTime: %v, want ErrClockSkew", err)
	}
	off, err := rc.SyncTime(ctx)
	if err != nil || off != 7*time.Second || rc.ClockOffset() != 7*time.Second {
		t.Fatalf("SyncTime = %v, %v", off, err)
	}
	if _, _, err := rc.Account(ctx); err != nil {
		t.Fatalf("after SyncTime: %v", err)
	}
	last := srv.requests()[len(srv.requests())-1]
	q, _ := url.ParseQuery(last.rawQuery)
	if q.Get("timestamp") != strconv.FormatInt(local.Add(7*time.Second).UnixMilli(), 10) {
		t.Errorf("timestamp %s, want local+offset", q.Get("timestamp"))
	}

	// Behind by more than recvWindow, and a larger configured window.
	srv.clock = func() time.Time { return local.Add(-8 * time.Second) }
	wide := NewREST(RESTConfig{BaseURL: srv.URL, APIKey: testAPIKey, APISecret: testAPISecret, RecvWindow: 10 * time.Second})
	wide.now = func() time.Time { return local.Add(-18 * time.Second) } // 10 s behind the server: accepted
	if _, err := wide.Balances(ctx); err != nil {
		t.Errorf("recvWindow 10 s: %v", err)
	}
	if huge := NewREST(RESTConfig{RecvWindow: time.Hour}); huge.recvWindow != MaxRecvWindow {
		t.Errorf("recvWindow not capped: %v", huge.recvWindow)
	}
}

// TestSecretsNeverPrinted: neither the secret nor the API key appears in
// fmt output of the config or client (any verb), in slog output, or in
// the errors of failing requests.
func TestSecretsNeverPrinted(t *testing.T) {
	cfg := RESTConfig{BaseURL: "http://127.0.0.1:1", APIKey: testAPIKey, APISecret: testAPISecret, Timeout: 200 * time.Millisecond}
	rc := NewREST(cfg)
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
		fmt.Fprintf(&out, verb+"\n", cfg)
		fmt.Fprintf(&out, verb+"\n", &cfg)
		fmt.Fprintf(&out, verb+"\n", rc)
	}
	fmt.Fprintln(&out, cfg.String(), cfg.GoString(), rc.String(), rc.GoString())
	fmt.Fprintf(&out, "%+v\n", struct{ Cfg RESTConfig }{cfg}) // exported field: Format is used
	js, err := json.Marshal(struct{ Cfg RESTConfig }{cfg})
	if err != nil || !bytes.Contains(js, []byte(redacted)) {
		t.Errorf("json: %s, %v", js, err)
	}
	out.Write(js)
	for _, h := range []slog.Handler{
		slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}),
	} {
		log := slog.New(h)
		log.Info("config", "cfg", cfg, "client", rc)
		log.Debug("config", slog.Any("cfg", &cfg))
	}
	if !strings.Contains(out.String(), keyHint(testAPIKey)) || !strings.Contains(out.String(), redacted) {
		t.Errorf("redacted form missing:\n%s", out.String())
	}

	// Errors: transport failure (the URL with its signature is in
	// *url.Error), HTTP errors from the server, timeouts.
	ctx := context.Background()
	var errs []error
	_, _, err = rc.Account(ctx) // connection refused
	errs = append(errs, err)
	srv := newAcctServer(t)
	srv.secret = "other"
	rc2 := newAcctClient(srv)
	_, _, err = rc2.Account(ctx) // -1022
	errs = append(errs, err)
	_, err = rc2.PlaceOrder(ctx, OrderRequest{Symbol: "BTCUSDT", Side: "BUY", Type: "MARKET", Quantity: "1"})
	errs = append(errs, err)
	block := make(chan struct{})
	defer close(block)
	srv.setOverride("/fapi/v1/listenKey", func(http.ResponseWriter) { <-block })
	rc3 := NewREST(RESTConfig{BaseURL: srv.URL, APIKey: testAPIKey, APISecret: testAPISecret, Timeout: 50 * time.Millisecond})
	errs = append(errs, rc3.KeepAliveListenKey(ctx, testListenKey)) // timeout, listenKey in the URL
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		fmt.Fprintln(&out, err)
		slog.New(slog.NewTextHandler(&out, nil)).Error("request failed", "err", err)
		if strings.Contains(err.Error(), "signature=") || strings.Contains(err.Error(), testListenKey) {
			t.Errorf("query leaked into error: %v", err)
		}
	}
	for _, s := range []string{testAPISecret, testAPIKey, hex.EncodeToString([]byte(testAPISecret))} {
		if strings.Contains(out.String(), s) {
			t.Errorf("credential leaked:\n%s", out.String())
		}
	}
	if !errors.Is(errs[3], context.DeadlineExceeded) {
		t.Errorf("stripping the URL broke errors.Is: %v", errs[3])
	}
}
