package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// do serves one request in-process; each remote gets its own weight.
func do(s *Server, remote, target string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

func TestRESTShapes(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{Seed: 1})
	for _, tc := range []struct {
		target, golden string
		sub            func(t *testing.T, b []byte) []byte // what to compare
	}{
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=3", "rest_klines.json", nil},
		{"/fapi/v1/ticker/24hr?symbol=BTCUSDT", "rest_ticker_24hr.json", nil},
		{"/fapi/v1/ticker/24hr", "rest_ticker_24hr.json", func(t *testing.T, b []byte) []byte {
			var arr []json.RawMessage
			if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 2 {
				t.Fatalf("want an array of 2 tickers: %.200s (%v)", b, err)
			}
			return arr[1]
		}},
		{"/fapi/v1/exchangeInfo", "rest_exchangeinfo.json", nil},
		{"/fapi/v1/ticker/bookTicker?symbol=BTCUSDT", "rest_book_ticker.json", nil},
		{"/fapi/v1/ticker/bookTicker", "rest_book_ticker.json", func(t *testing.T, b []byte) []byte {
			var arr []json.RawMessage
			if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 2 {
				t.Fatalf("want an array of 2 book tickers: %.200s (%v)", b, err)
			}
			return arr[0]
		}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			w := do(s, "192.0.2.1:1", tc.target)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			b := w.Body.Bytes()
			if tc.sub != nil {
				b = tc.sub(t, b)
			}
			sameShape(t, tc.golden, b)
		})
	}

	var tm struct{ ServerTime int64 }
	w := do(s, "192.0.2.1:1", "/fapi/v1/time")
	if err := json.Unmarshal(w.Body.Bytes(), &tm); err != nil || tm.ServerTime == 0 {
		t.Errorf("time: %s", w.Body)
	}
	if d := cmp.Diff(`{"serverTime":`, w.Body.String()[:len(`{"serverTime":`)]); d != "" {
		t.Error(d)
	}

	// exchangeInfo feeds the shared vocabulary.
	var info struct{ Symbols []exchange.SymbolInfo }
	if err := json.Unmarshal(do(s, "192.0.2.1:1", "/fapi/v1/exchangeInfo").Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	want := []exchange.SymbolInfo{
		{Symbol: "BTCUSDT", Status: "TRADING", BaseAsset: "BTC", QuoteAsset: "USDT"},
		{Symbol: "ETHUSDT", Status: "TRADING", BaseAsset: "ETH", QuoteAsset: "USDT"},
	}
	if d := cmp.Diff(want, info.Symbols); d != "" {
		t.Errorf("symbols (-want +got):\n%s", d)
	}
}

func TestRESTErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{})
	type result struct {
		Status int
		Code   int
		Msg    string
	}
	for i, tc := range []struct {
		target string
		want   result
	}{
		{"/fapi/v1/klines?interval=1m", result{400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}},
		{"/fapi/v1/klines?symbol=BTCUSDT", result{400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."}},
		{"/fapi/v1/klines?symbol=NOPEUSDT&interval=1m", result{400, -1121, "Invalid symbol."}},
		{"/fapi/v1/klines?symbol=btcusdt&interval=1m", result{400, -1121, "Invalid symbol."}},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1s", result{400, -1120, "Invalid interval."}},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501", result{400, -1130, "Data sent for parameter 'limit' is not valid."}},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=0", result{400, -1130, "Data sent for parameter 'limit' is not valid."}},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=x", result{400, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=2&endTime=1", result{400, -1023, "Start time is greater than end time."}},
		{"/fapi/v1/ticker/24hr?symbol=NOPEUSDT", result{400, -1121, "Invalid symbol."}},
		{"/fapi/v1/nope", result{404, -5000, "Path /fapi/v1/nope, Method GET is invalid"}},
	} {
		w := do(s, fmt.Sprintf("192.0.2.%d:1", i), tc.target)
		var got result
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %s", tc.target, w.Body)
		}
		got.Status = w.Code
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.target, d)
		}
	}
}

func TestRESTWeights(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{})
	for i, tc := range []struct {
		target string
		want   int
	}{
		{"/fapi/v1/time", 1},
		{"/fapi/v1/exchangeInfo", 1},
		{"/fapi/v1/ticker/24hr?symbol=BTCUSDT", 1},
		{"/fapi/v1/ticker/24hr", 40},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m", 5},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=100", 1},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=101", 2},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=500", 2},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=501", 5},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1000", 5},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1001", 10},
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501", 10}, // refused, still charged
	} {
		w := do(s, fmt.Sprintf("192.0.2.%d:1", i), tc.target)
		// The header goes on the wire spelled as Binance documents it.
		//lint:ignore SA1008 the raw key is what is being checked
		got := w.Header()["X-MBX-USED-WEIGHT-1M"]
		if d := cmp.Diff([]string{strconv.Itoa(tc.want)}, got); d != "" {
			t.Errorf("%s weight (-want +got):\n%s", tc.target, d)
		}
	}
}

func TestWeight429(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, Config{WeightLimit: 10})
	var resp *http.Response
	var body []byte
	for i := 0; i < 30; i++ { // 10 pass per minute window; at most two windows
		r, err := http.Get(ts.URL + "/fapi/v1/time")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		if r.Header.Get("X-MBX-USED-WEIGHT-1M") == "" {
			t.Fatal("no X-MBX-USED-WEIGHT-1M")
		}
		if r.StatusCode == http.StatusTooManyRequests {
			resp = r
			break
		}
	}
	if resp == nil {
		t.Fatal("never refused")
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if used, _ := strconv.Atoi(resp.Header.Get("X-MBX-USED-WEIGHT-1M")); used != 11 {
		t.Errorf("used weight %d, want 11", used)
	}
	var e struct{ Code int }
	if err := json.Unmarshal(body, &e); err != nil || e.Code != -1003 {
		t.Errorf("body %s", body)
	}
}

func TestWeightWindowIsClockMinute(t *testing.T) {
	t.Parallel()
	var w weightTable
	w.used = map[string]int{}
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	got := []int{
		w.add("a", 5, base.Add(1*time.Second)),
		w.add("a", 5, base.Add(59*time.Second+900*time.Millisecond)),
		w.add("b", 1, base.Add(59*time.Second+950*time.Millisecond)),
		w.add("a", 1, base.Add(60*time.Second)), // new clock minute: reset
		w.add("a", 1, base.Add(119*time.Second)),
	}
	if d := cmp.Diff([]int{5, 10, 1, 1, 2}, got); d != "" {
		t.Error(d)
	}
}

func TestKlinesQuery(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	s := newServer(t, Config{Start: start, History: 10})
	get := func(q string) [][]any {
		t.Helper()
		w := do(s, "192.0.2.1:1", "/fapi/v1/klines?symbol=BTCUSDT&"+q)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", q, w.Code, w.Body)
		}
		var rows [][]any
		if err := json.Unmarshal(w.Body.Bytes(), &rows); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	opens := func(rows [][]any) []int64 {
		var out []int64
		for _, r := range rows {
			out = append(out, int64(r[0].(float64)))
		}
		return out
	}
	m := func(min int) int64 { return time.Date(2026, 3, 1, 12, min, 0, 0, time.UTC).UnixMilli() }
	now := s.Now().UnixMilli()
	for _, tc := range []struct {
		q    string
		want []int64
	}{
		{"interval=1m&limit=3", []int64{m(-2), m(-1), m(0)}},
		{"interval=1m&limit=3&startTime=" + strconv.FormatInt(m(-5)+1, 10), []int64{m(-4), m(-3), m(-2)}},
		{"interval=1m&limit=2&endTime=" + strconv.FormatInt(m(-5)+1, 10), []int64{m(-6), m(-5)}},
		{"interval=1m&startTime=" + strconv.FormatInt(m(-3), 10) + "&endTime=" + strconv.FormatInt(m(-2), 10), []int64{m(-3), m(-2)}},
		{"interval=1m&startTime=0&limit=2", []int64{m(-10), m(-9)}}, // History 10
		{"interval=1m&startTime=" + strconv.FormatInt(now+dayMs, 10), nil},
		{"interval=1h&limit=2", []int64{m(-60), m(0)}},
	} {
		if d := cmp.Diff(tc.want, opens(get(tc.q))); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.q, d)
		}
	}

	// Default limit and the open bar last.
	rows := get("interval=1m")
	if len(rows) != 11 { // 10 of history + the open one, under the default 500
		t.Errorf("%d rows", len(rows))
	}
	last := rows[len(rows)-1]
	if ct := int64(last[6].(float64)); ct < now {
		t.Errorf("last bar closes at %d, before now %d: not the open bar", ct, now)
	}
}

func TestKlineRowsMatchKlines(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newServer(t, Config{Seed: 3, Start: start})
	end := start.Add(-time.Hour).UnixMilli() // closed bars only: time passes between the calls
	ks, err := s.Klines("ETHUSDT", "15m", 0, end, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 5 || !ks[4].Closed {
		t.Fatalf("%+v", ks)
	}
	w := do(s, "192.0.2.1:1", "/fapi/v1/klines?symbol=ETHUSDT&interval=15m&limit=5&endTime="+strconv.FormatInt(end, 10))
	var rows [][]any
	if err := json.Unmarshal(w.Body.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	var fromRows []exchange.Kline
	for _, r := range rows {
		fromRows = append(fromRows, exchange.Kline{
			Symbol: "ETHUSDT", Interval: "15m",
			OpenTime: int64(r[0].(float64)), Open: r[1].(string), High: r[2].(string), Low: r[3].(string),
			Close: r[4].(string), Volume: r[5].(string), CloseTime: int64(r[6].(float64)),
			QuoteVolume: r[7].(string), Trades: int64(r[8].(float64)), TakerBuyBase: r[9].(string),
			TakerBuyQuote: r[10].(string),
		})
	}
	for i := range ks {
		ks[i].Closed = false // not on the REST row
	}
	if d := cmp.Diff(ks, fromRows); d != "" {
		t.Errorf("REST rows vs Klines (-Klines +rows):\n%s", d)
	}
}

// Two runs with the same seed, started a minute and a half apart, answer
// the same: every closed kline they both hold, of every interval, and the
// listing date.
func TestSameSeedSameMarketAcrossRestarts(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 3, 10, 17, 42, 0, time.UTC)
	a := newServer(t, Config{Seed: 7, Start: start})
	b := newServer(t, Config{Seed: 7, Start: start.Add(91500 * time.Millisecond)})
	for _, iv := range []string{"1m", "5m", "1h", "1d"} {
		rows := func(s *Server) map[float64][]any {
			var out [][]any
			if err := json.Unmarshal(do(s, "192.0.2.1:1", "/fapi/v1/klines?symbol=BTCUSDT&limit=1500&interval="+iv).Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			m := map[float64][]any{}
			for _, r := range out[:len(out)-1] { // the last one is open
				m[r[0].(float64)] = r
			}
			return m
		}
		ra, rb := rows(a), rows(b)
		common := 0
		for open, row := range ra {
			if other, ok := rb[open]; ok {
				common++
				if d := cmp.Diff(row, other); d != "" {
					t.Errorf("%s kline %v differs between runs (-first +second):\n%s", iv, open, d)
				}
			}
		}
		if common < 2 {
			t.Errorf("%s: only %d closed klines in common", iv, common)
		}
	}
	onboard := func(s *Server) []int64 {
		var info struct{ Symbols []struct{ OnboardDate int64 } }
		json.Unmarshal(do(s, "192.0.2.1:1", "/fapi/v1/exchangeInfo").Body.Bytes(), &info)
		var out []int64
		for _, sy := range info.Symbols {
			out = append(out, sy.OnboardDate)
		}
		return out
	}
	if d := cmp.Diff(onboard(a), onboard(b)); d != "" {
		t.Errorf("onboardDate differs between runs (-first +second):\n%s", d)
	}
}

// RESTStats counts every weighted request, its weight and path; a REST
// refusal answers 429 or 418 with Retry-After until it ends.
func TestRESTStatsAndRefusal(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{Seed: 1})
	for _, target := range []string{"/fapi/v1/exchangeInfo", "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=600", "/fapi/v1/ticker/24hr", "/fapi/v1/ticker/24hr?symbol=NOPE"} {
		do(s, "192.0.2.1:1", target)
	}
	st := s.RESTStats()
	minute := time.Now().Unix() / 60
	wantWeight := int64(1 + 5 + 40 + 1)
	if st.Requests != 4 || st.Weight != wantWeight || st.RateLimited != 0 || st.WeightByMinute[minute]+st.WeightByMinute[minute-1] != wantWeight {
		t.Errorf("RESTStats = %+v", st)
	}
	if d := cmp.Diff(map[string]int64{"/fapi/v1/exchangeInfo": 1, "/fapi/v1/klines": 1, "/fapi/v1/ticker/24hr": 2}, st.ByPath); d != "" {
		t.Errorf("ByPath (-want +got):\n%s", d)
	}

	for _, status := range []int{429, 418} {
		if err := s.SetRESTRefusal(RESTRefusal{Status: status, RetryAfter: 1500 * time.Millisecond, Duration: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		w := do(s, "192.0.2.1:1", "/fapi/v1/time")
		var e struct{ Code int }
		json.Unmarshal(w.Body.Bytes(), &e)
		//lint:ignore SA1008 the raw key is what goes on the wire
		if w.Code != status || w.Header().Get("Retry-After") != "2" || e.Code != -1003 || len(w.Header()["X-MBX-USED-WEIGHT-1M"]) == 0 {
			t.Errorf("refusal %d: %d %v %s", status, w.Code, w.Header(), w.Body)
		}
		time.Sleep(350 * time.Millisecond)
		if w := do(s, "192.0.2.1:1", "/fapi/v1/time"); w.Code != http.StatusOK {
			t.Errorf("after the refusal %d: %d %s", status, w.Code, w.Body)
		}
	}
	if st := s.RESTStats(); st.RateLimited != 2 || st.Requests != 8 {
		t.Errorf("RESTStats = %+v", st)
	}
	if err := s.SetRESTRefusal(RESTRefusal{Status: 500}); err == nil {
		t.Error("status 500 accepted")
	}

	// The control endpoint: on until ended.
	post := func(target string) int {
		r := httptest.NewRequest(http.MethodPost, target, nil)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w.Code
	}
	if c := post("/sim/ratelimit?status=429&retryAfter=5s"); c != http.StatusOK {
		t.Fatalf("POST /sim/ratelimit: %d", c)
	}
	if w := do(s, "192.0.2.1:1", "/fapi/v1/time"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "5" {
		t.Errorf("refused: %d %v", w.Code, w.Header())
	}
	if c := post("/sim/ratelimit?status=0"); c != http.StatusOK {
		t.Fatalf("POST /sim/ratelimit?status=0: %d", c)
	}
	if w := do(s, "192.0.2.1:1", "/fapi/v1/time"); w.Code != http.StatusOK {
		t.Errorf("after the refusal ended: %d", w.Code)
	}
	if c := post("/sim/ratelimit?status=418&duration=x"); c != http.StatusBadRequest {
		t.Errorf("a bad duration: %d", c)
	}
}

// Random paths cannot grow the REST counters without bound.
func TestRESTStatsBounded(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{Seed: 1})
	for i := range 500 {
		do(s, "192.0.2.1:1", fmt.Sprintf("/fapi/v1/junk%d", i))
	}
	st := s.RESTStats()
	if len(st.ByPath) > maxPathsCounted+1 || st.ByPath["other"] == 0 || st.Requests != 500 {
		t.Errorf("%d paths counted, other %d, requests %d", len(st.ByPath), st.ByPath["other"], st.Requests)
	}
}
