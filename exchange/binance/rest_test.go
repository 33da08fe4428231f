package binance

import (
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

// restServer is a tiny fake of the Binance REST API.
type restServer struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	reqs   []*http.Request
	handle func(w http.ResponseWriter, r *http.Request)
}

func newRESTServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *restServer {
	s := &restServer{handle: handle}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.mu.Unlock()
		s.handle(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *restServer) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[len(s.reqs)-1]
}

// writeGzip answers with body, gzipped when the client asked for it.
func writeGzip(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(body)
		_ = zw.Close()
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func TestRESTEndpoints(t *testing.T) {
	fixtures := map[string][]byte{
		"/fapi/v1/klines":       readFixture(t, "rest_klines.json"),
		"/fapi/v1/exchangeInfo": readFixture(t, "rest_exchange_info.json"),
		"/fapi/v1/time":         []byte(`{"serverTime":1791382993519}`),
	}
	srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) {
		body := fixtures[r.URL.Path]
		if r.URL.Path == "/fapi/v1/ticker/24hr" {
			body = readFixture(t, "rest_ticker_24hr_all.json")
			if r.URL.Query().Get("symbol") != "" {
				body = readFixture(t, "rest_ticker_24hr.json")
			}
		}
		if body == nil {
			http.NotFound(w, r)
			return
		}
		writeGzip(w, r, 200, body)
	})
	rc := NewREST(RESTConfig{BaseURL: srv.URL + "/", UserAgent: "test-agent"})
	// The fixture's last bar closes at 1791383039999; the request time
	// decides that it is still open.
	rc.now = func() time.Time { return time.UnixMilli(1791382993519) }
	ctx := context.Background()

	var _ exchange.MarketREST = rc
	ks, err := rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 3 || !ks[0].Closed || !ks[1].Closed || ks[2].Closed {
		t.Errorf("klines Closed = %v %v %v, want true true false", ks[0].Closed, ks[1].Closed, ks[2].Closed)
	}
	r := srv.last()
	if got := r.URL.Query(); got.Get("limit") != "3" || got.Get("symbol") != "BTCUSDT" || got.Get("interval") != "1m" || got.Has("startTime") || got.Has("endTime") {
		t.Errorf("klines query = %v", got)
	}
	if r.Header.Get("Accept-Encoding") != "gzip" || r.Header.Get("User-Agent") != "test-agent" {
		t.Errorf("headers = %v", r.Header)
	}
	if _, err := rc.Klines(ctx, "BTCUSDT", "1h", 100, 200, 0); err != nil {
		t.Fatal(err)
	}
	if got := srv.last().URL.Query(); got.Get("limit") != "500" || got.Get("startTime") != "100" || got.Get("endTime") != "200" {
		t.Errorf("klines query = %v (limit must always be sent)", got)
	}

	tk, err := rc.Ticker24h(ctx, "BTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantTickerBTC, tk); d != "" {
		t.Errorf("Ticker24h (-want +got):\n%s", d)
	}
	all, err := rc.Ticker24hAll(ctx)
	if err != nil || len(all) != 2 || srv.last().URL.RawQuery != "" {
		t.Errorf("Ticker24hAll = %d rows, %v, query %q", len(all), err, srv.last().URL.RawQuery)
	}
	syms, err := rc.Symbols(ctx)
	if err != nil || len(syms) != 2 || syms[1].Symbol != "币安人生USDT" || len(syms[0].Raw) == 0 {
		t.Errorf("Symbols = %+v, %v", syms, err)
	}
	st, err := rc.ServerTime(ctx)
	if err != nil || st.UnixMilli() != 1791382993519 {
		t.Errorf("ServerTime = %v, %v", st, err)
	}
	// Local weight: klines 1 + klines(500) 2 + ticker 1 + all 40 + info 1 + time 1.
	if w := rc.Weight(); w != 46 {
		t.Errorf("Weight = %d, want 46", w)
	}

	// Refused locally, no request.
	before := srv.hits.Load()
	for _, err := range []error{
		func() error { _, err := rc.Klines(ctx, "BTCUSDT", "1s", 0, 0, 10); return err }(),
		func() error { _, err := rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 1501); return err }(),
		func() error { _, err := rc.Klines(ctx, "", "1m", 0, 0, 10); return err }(),
	} {
		if err == nil {
			t.Error("bad klines request accepted")
		}
	}
	if srv.hits.Load() != before {
		t.Error("a locally refused request was sent")
	}
}

func TestRESTWeightHeader(t *testing.T) {
	var header atomic.Int64
	srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-MBX-USED-WEIGHT-1M", strconv.FormatInt(header.Load(), 10))
		writeGzip(w, r, 200, []byte(`{"serverTime":1}`))
	})
	rc := NewREST(RESTConfig{BaseURL: srv.URL})
	now := time.Date(2026, 10, 7, 12, 0, 10, 0, time.UTC)
	rc.now = func() time.Time { return now }
	ctx := context.Background()

	header.Store(123) // other processes on the IP used 122
	if _, err := rc.ServerTime(ctx); err != nil {
		t.Fatal(err)
	}
	if w := rc.Weight(); w != 123 {
		t.Fatalf("Weight = %d, want 123 (raised to the header)", w)
	}
	header.Store(5) // a lower header never lowers the count within a minute
	if _, err := rc.ServerTime(ctx); err != nil {
		t.Fatal(err)
	}
	if w := rc.Weight(); w != 124 {
		t.Fatalf("Weight = %d, want 124", w)
	}
	now = now.Add(time.Minute) // the counter resets on the UTC minute
	if w := rc.Weight(); w != 0 {
		t.Fatalf("Weight after the minute = %d, want 0", w)
	}
	header.Store(7)
	if _, err := rc.ServerTime(ctx); err != nil {
		t.Fatal(err)
	}
	if w := rc.Weight(); w != 7 {
		t.Fatalf("Weight = %d, want 7", w)
	}
}

func TestRESTRateLimitCooldown(t *testing.T) {
	for _, status := range []int{429, 418} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "30")
				writeGzip(w, r, status, []byte(`{"code":-1003,"msg":"Too many requests; current limit is 2400 request weight per 1 MINUTE."}`))
			})
			rc := NewREST(RESTConfig{BaseURL: srv.URL})
			now := time.Date(2026, 10, 7, 12, 0, 10, 0, time.UTC)
			rc.now = func() time.Time { return now }
			ctx := context.Background()

			_, err := rc.Ticker24h(ctx, "BTCUSDT")
			var ae *APIError
			if !errors.As(err, &ae) || !errors.Is(err, ErrRateLimited) {
				t.Fatalf("err = %v, want *APIError matching ErrRateLimited", err)
			}
			if ae.HTTPStatus != status || ae.Code != -1003 || ae.NotSent || !ae.RetryAt.Equal(now.Add(30*time.Second)) {
				t.Errorf("APIError = %+v", ae)
			}
			// During the cooldown: fail fast, nothing sent, same retry time.
			now = now.Add(10 * time.Second)
			start := time.Now()
			_, err = rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 10)
			if !errors.As(err, &ae) || !errors.Is(err, ErrRateLimited) || !ae.NotSent || !ae.RetryAt.Equal(now.Add(20*time.Second)) {
				t.Fatalf("during cooldown: %v (%+v)", err, ae)
			}
			if time.Since(start) > time.Second || srv.hits.Load() != 1 {
				t.Errorf("cooldown request took %v, server hits %d (want 1)", time.Since(start), srv.hits.Load())
			}
			if got := rc.CooldownUntil(); !got.Equal(now.Add(20 * time.Second)) {
				t.Errorf("CooldownUntil = %v", got)
			}
			// After it: requests go out again.
			now = now.Add(21 * time.Second)
			_, _ = rc.Ticker24h(ctx, "BTCUSDT")
			if srv.hits.Load() != 2 {
				t.Errorf("after cooldown: hits %d, want 2", srv.hits.Load())
			}
		})
	}
}

func TestRESTRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 10, 7, 12, 0, 10, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"120":                           2 * time.Minute,
		"0":                             0,
		"Wed, 07 Oct 2026 12:01:10 GMT": time.Minute,
	} {
		if got, ok := retryAfter(in, now); !ok || got != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(in, now); ok {
			t.Errorf("retryAfter(%q) accepted", in)
		}
	}
	// A 429 without Retry-After cools down until the next UTC minute.
	srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) })
	rc := NewREST(RESTConfig{BaseURL: srv.URL})
	rc.now = func() time.Time { return now }
	_, err := rc.ServerTime(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || !ae.RetryAt.Equal(now.Truncate(time.Minute).Add(time.Minute)) {
		t.Errorf("429 without Retry-After: %v", err)
	}
}

func TestRESTAPIError(t *testing.T) {
	srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fapi/v1/time" {
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
			return
		}
		writeGzip(w, r, 400, readFixture(t, "rest_error.json"))
	})
	rc := NewREST(RESTConfig{BaseURL: srv.URL})
	_, err := rc.Ticker24h(context.Background(), "NOPEUSDT")
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if d := cmp.Diff(&APIError{HTTPStatus: 400, Code: -1121, Msg: "Invalid symbol."}, ae); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if errors.Is(err, ErrRateLimited) || !rc.CooldownUntil().IsZero() {
		t.Error("a 400 started a cooldown")
	}
	_, err = rc.ServerTime(context.Background())
	if !errors.As(err, &ae) || ae.HTTPStatus != 502 || ae.Code != 0 || ae.Msg != "<html>bad gateway</html>" {
		t.Errorf("502: %v", err)
	}
}

func TestRESTTimeoutAndBodyLimit(t *testing.T) {
	release := make(chan struct{})
	srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fapi/v1/exchangeInfo" {
			writeGzip(w, r, 200, []byte(`{"symbols":[`+strings.Repeat(`{"symbol":"AUSDT","status":"TRADING"},`, 100)+`{"symbol":"B","status":"X"}]}`))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	rc := NewREST(RESTConfig{BaseURL: srv.URL, Timeout: 50 * time.Millisecond, MaxBody: 1000})
	start := time.Now()
	_, err := rc.ServerTime(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(start))
	}
	if _, err := rc.Symbols(context.Background()); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
}

// fakeBudget records what a client tells its budget.
type fakeBudget struct {
	mu        sync.Mutex
	refuse    error
	acquired  []int
	observed  [][2]int64 // window, used
	cooldowns []string
}

func (b *fakeBudget) Acquire(_ context.Context, weight int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refuse != nil {
		return 0, b.refuse
	}
	b.acquired = append(b.acquired, weight)
	return 7, nil
}

func (b *fakeBudget) Observe(_ context.Context, window int64, used int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.observed = append(b.observed, [2]int64{window, int64(used)})
}

func (b *fakeBudget) Cooldown(_ context.Context, status int, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cooldowns = append(b.cooldowns, strconv.Itoa(status)+" "+wait.String())
}

type budgetRefusal struct{ at time.Time }

func (e budgetRefusal) Error() string        { return "budget spent" }
func (e budgetRefusal) RetryAt() time.Time   { return e.at }
func (e budgetRefusal) HTTPStatus() int      { return 418 }
func (e budgetRefusal) Is(target error) bool { return target == errSentinel }

var errSentinel = errors.New("sentinel")

// With a Budget the client asks it for each request's weight, tells it the
// header and the 429s, and turns its refusals into *APIError without
// sending anything; during a cooldown the client met it sends nothing,
// whatever the budget says.
func TestRESTBudget(t *testing.T) {
	status := 200
	srv := newRESTServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-MBX-USED-WEIGHT-1M", "42")
		if status != 200 {
			w.Header().Set("Retry-After", "9")
		}
		writeGzip(w, r, status, []byte(`[]`))
	})
	b := &fakeBudget{}
	rc := NewREST(RESTConfig{BaseURL: srv.URL, Budget: b})
	now := time.Now()
	rc.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 1000); err != nil {
		t.Fatal(err)
	}
	status = 429
	if _, err := rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 50); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("429: %v", err)
	}
	// A budget that lets a request through during the client's own
	// cooldown does not make the client send it.
	status = 200
	hits := srv.hits.Load()
	_, err := rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 50)
	if ae, ok := errors.AsType[*APIError](err); !ok || !errors.Is(err, ErrRateLimited) || !ae.NotSent || ae.HTTPStatus != 429 || !ae.RetryAt.Equal(now.Add(9*time.Second)) {
		t.Fatalf("during the client's cooldown, the budget granting: %v (%+v)", err, ae)
	}
	if srv.hits.Load() != hits {
		t.Error("a request was sent during the client's cooldown")
	}
	now = now.Add(10 * time.Second)
	if _, err := rc.Klines(ctx, "BTCUSDT", "1m", 0, 0, 50); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	b.mu.Lock()
	got := []any{b.acquired, b.observed, b.cooldowns}
	b.mu.Unlock()
	want := []any{[]int{5, 1, 1, 1}, [][2]int64{{7, 42}, {7, 42}, {7, 42}}, []string{"429 9s"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("budget calls (-want +got):\n%s", d)
	}

	at := time.Now().Add(time.Minute).Truncate(time.Second)
	b.refuse = budgetRefusal{at}
	hits = srv.hits.Load()
	_, err = rc.Ticker24h(ctx, "BTCUSDT")
	ae, ok := errors.AsType[*APIError](err)
	if !ok || !errors.Is(err, ErrRateLimited) || !errors.Is(err, errSentinel) || !ae.NotSent || ae.HTTPStatus != 418 || !ae.RetryAt.Equal(at) {
		t.Fatalf("refused: %v (%+v)", err, ae)
	}
	if srv.hits.Load() != hits {
		t.Error("a refused request was sent")
	}
	b.refuse = context.Canceled
	if _, err := rc.Ticker24h(ctx, "BTCUSDT"); !errors.Is(err, context.Canceled) || errors.Is(err, ErrRateLimited) {
		t.Errorf("a cancelled Acquire: %v", err)
	}
}
