package sim

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

// routes builds the HTTP surface: REST under /fapi (public, API-key and
// signed), streams under a route prefix, controls under /sim.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	one := func(*http.Request) int { return 1 }
	mux.HandleFunc("GET /fapi/v1/ping", s.weighted(one, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, struct{}{})
	}))
	mux.HandleFunc("GET /fapi/v1/time", s.weighted(one, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int64{"serverTime": s.nowMs()})
	}))
	mux.HandleFunc("GET /fapi/v1/exchangeInfo", s.weighted(one, s.handleExchangeInfo))
	mux.HandleFunc("GET /fapi/v1/klines", s.weighted(klinesWeight, s.handleKlines))
	mux.HandleFunc("GET /fapi/v1/ticker/24hr", s.weighted(func(r *http.Request) int {
		if r.URL.Query().Get("symbol") != "" {
			return 1
		}
		return 40
	}, s.handleTicker24h))
	mux.HandleFunc("GET /fapi/v1/ticker/bookTicker", s.weighted(func(r *http.Request) int {
		if r.URL.Query().Get("symbol") != "" {
			return 2
		}
		return 5
	}, s.handleBookTicker))
	s.accountRoutes(mux)
	mux.HandleFunc("/fapi/", s.weighted(one, func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, -5000, fmt.Sprintf("Path %s, Method %s is invalid", r.URL.Path, r.Method))
	}))

	// Streams. Legacy /ws and /stream (retired 2026-04-23) behave as
	// measured since: public-route data only.
	for _, p := range []struct {
		prefix string
		rt     route
	}{{"/market", routeMarket}, {"/public", routePublic}, {"/private", routePrivate}, {"", routePublic}} {
		rt, prefix := p.rt, p.prefix
		mux.HandleFunc(prefix+"/stream", func(w http.ResponseWriter, r *http.Request) {
			if rt == routePrivate {
				s.servePrivate(w, r, true)
				return
			}
			s.serveWS(w, r, rt, true, splitStreams(r.URL.Query().Get("streams")), nil)
		})
		mux.HandleFunc(prefix+"/ws", func(w http.ResponseWriter, r *http.Request) {
			if rt == routePrivate {
				s.servePrivate(w, r, false)
				return
			}
			s.serveWS(w, r, rt, false, nil, nil)
		})
		mux.HandleFunc(prefix+"/ws/", func(w http.ResponseWriter, r *http.Request) {
			s.serveWS(w, r, rt, false, splitStreams(strings.TrimPrefix(r.URL.Path, prefix+"/ws/")), nil)
		})
	}

	// Test and demo controls; no weight.
	mux.HandleFunc("POST /sim/fault", s.handleFault)
	mux.HandleFunc("GET /sim/fault", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"mode": string(s.fault.snapshot().mode)})
	})
	mux.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /sim/rest", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.RESTStats())
	})
	mux.HandleFunc("POST /sim/ratelimit", s.handleRESTRefusal)
	s.chaosRoutes(mux)
	mux.HandleFunc("POST /sim/listenkey/expire", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("listenKey")
		if !s.expireKey(key) {
			writeAPIError(w, errNoListenKey)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"listenKey": key, "expired": true})
	})
	return mux
}

func splitStreams(v string) []string {
	var out []string
	for n := range strings.SplitSeq(v, "/") {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

type apiError struct {
	status int
	Code   int    `json:"code"`
	Msg    string `json:"msg"`
}

func (e *apiError) Error() string { return fmt.Sprintf("binance error %d: %s", e.Code, e.Msg) }

func badRequest(code int, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, Code: code, Msg: msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":-1000,"msg":"An unknown error occurred while processing the request."}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, apiError{Code: code, Msg: msg})
}

func writeAPIError(w http.ResponseWriter, e *apiError) { writeErr(w, e.status, e.Code, e.Msg) }

// weightTable counts REST weight per client IP in the current UTC minute of
// the real wall clock (Binance resets on the clock minute, not sliding).
type weightTable struct {
	mu     sync.Mutex
	minute int64
	used   map[string]int
}

func (t *weightTable) add(ip string, n int, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := now.Unix() / 60; m != t.minute {
		t.minute = m
		clear(t.used)
	}
	t.used[ip] += n
	return t.used[ip]
}

func clientIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// weighted charges a request's weight (failed requests too), counts it in
// RESTStats, sets X-MBX-USED-WEIGHT-1M and refuses with 429 over
// WeightLimit, or as a SetRESTRefusal says.
func (s *Server) weighted(weight func(*http.Request) int, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ip, now, n := clientIP(r), time.Now(), weight(r)
		used := s.weights.add(ip, n, now)
		s.rest.count(r.URL.Path, n, now)
		w.Header()["X-MBX-USED-WEIGHT-1M"] = []string{strconv.Itoa(used)}
		if ref, ok := s.refusal.active(now); ok {
			s.refuse(w, ip, ref.Status, ref.RetryAfter, now)
			return
		}
		if used > s.cfg.WeightLimit {
			s.refuse(w, ip, http.StatusTooManyRequests, time.Duration(60-now.Unix()%60)*time.Second, now)
			return
		}
		h(w, r)
	}
}

// klinesWeight follows the measured bands: 1..100 → 1, ..500 → 2,
// ..1000 → 5, above → 10; no limit at all costs 5.
func klinesWeight(r *http.Request) int {
	v := r.URL.Query().Get("limit")
	n, err := strconv.Atoi(v)
	switch {
	case v == "" || err != nil:
		return 5
	case n <= 100:
		return 1
	case n <= 500:
		return 2
	case n <= 1000:
		return 5
	}
	return 10
}

func mandatory(name string) *apiError {
	return badRequest(-1102, fmt.Sprintf("Mandatory parameter '%s' was not sent, was empty/null, or malformed.", name))
}

func intParam(q url.Values, name string) (v int64, ok bool, e *apiError) {
	raw := q.Get(name)
	if raw == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v < 0 {
		return 0, false, badRequest(-1100, fmt.Sprintf("Illegal characters found in parameter '%s'; legal range is '^[0-9]{1,20}$'.", name))
	}
	return v, true, nil
}

func (s *Server) handleKlines(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sym, ivName := q.Get("symbol"), q.Get("interval")
	if sym == "" {
		writeAPIError(w, mandatory("symbol"))
		return
	}
	if ivName == "" {
		writeAPIError(w, mandatory("interval"))
		return
	}
	limit, hasLimit, e := intParam(q, "limit")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if !hasLimit {
		limit = 500
	}
	start, hasStart, e := intParam(q, "startTime")
	if e == nil {
		var end int64
		var hasEnd bool
		end, hasEnd, e = intParam(q, "endTime")
		if e == nil {
			var ks []klineOut
			ks, e = s.klines(sym, ivName, start, hasStart, end, hasEnd, int(limit))
			if e == nil {
				rows := make([][]any, len(ks))
				for i, k := range ks {
					rows[i] = k.restRow()
				}
				writeJSON(w, http.StatusOK, rows)
				return
			}
		}
	}
	writeAPIError(w, e)
}

// klines answers a kline query as GET /fapi/v1/klines does.
func (s *Server) klines(symName, ivName string, start int64, hasStart bool, end int64, hasEnd bool, limit int) ([]klineOut, *apiError) {
	sy := s.byName[symName]
	if sy == nil {
		return nil, badRequest(-1121, "Invalid symbol.")
	}
	iv, ok := intervals[ivName]
	if !ok {
		return nil, badRequest(-1120, "Invalid interval.")
	}
	if limit < 1 || limit > 1500 {
		return nil, badRequest(-1130, "Data sent for parameter 'limit' is not valid.")
	}
	if hasStart && hasEnd && start > end {
		return nil, badRequest(-1023, "Start time is greater than end time.")
	}
	now := s.nowMs()
	latest := iv.open(now)
	var first int64
	switch {
	case hasStart:
		if first = iv.open(start); first < start {
			first = iv.next(first)
		}
	case hasEnd:
		first = iv.back(min(iv.open(end), latest), limit-1)
	default:
		first = iv.back(latest, limit-1)
	}
	first = max(first, s.earliest(iv))
	out := []klineOut{}
	for o := first; len(out) < limit && o <= latest && (!hasEnd || o <= end); o = iv.next(o) {
		out = append(out, sy.klineAt(iv, o, now))
	}
	return out, nil
}

// earliest is the first bar of iv that exists: History bars before the bar
// containing Start, and not before the listing.
func (s *Server) earliest(iv interval) int64 {
	return max(iv.open(s.listMs), iv.back(iv.open(s.startMs), s.cfg.History))
}

// Klines returns klines as GET /fapi/v1/klines would (start and end in ms,
// 0 for none; limit 0 for the default 500), for in-process use such as
// comparing a client's view with the source of truth.
func (s *Server) Klines(symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error) {
	if limit == 0 {
		limit = 500
	}
	ks, e := s.klines(symbol, interval, start, start > 0, end, end > 0, limit)
	if e != nil {
		return nil, e
	}
	out := make([]exchange.Kline, len(ks))
	for i, k := range ks {
		out[i] = k.Kline
	}
	return out, nil
}

func (s *Server) handleTicker24h(w http.ResponseWriter, r *http.Request) {
	now := s.nowMs()
	if name := r.URL.Query().Get("symbol"); name != "" {
		sy := s.byName[name]
		if sy == nil {
			writeErr(w, http.StatusBadRequest, -1121, "Invalid symbol.")
			return
		}
		writeJSON(w, http.StatusOK, sy.ticker24h(now))
		return
	}
	out := make([]exchange.Ticker24h, 0, len(s.syms))
	for _, sy := range s.syms {
		out = append(out, sy.ticker24h(now))
	}
	writeJSON(w, http.StatusOK, out)
}

// restBook is GET /fapi/v1/ticker/bookTicker's answer for one symbol: the
// stream's book ticker under REST's names, time being the transaction time.
type restBook struct {
	LastUpdateID int64  `json:"lastUpdateId"`
	Symbol       string `json:"symbol"`
	BidPrice     string `json:"bidPrice"`
	BidQty       string `json:"bidQty"`
	AskPrice     string `json:"askPrice"`
	AskQty       string `json:"askQty"`
	Time         int64  `json:"time"`
}

func (sy *symbol) restBook(now int64) restBook {
	b := sy.bookEvent(now)
	return restBook{LastUpdateID: b.UpdateID, Symbol: b.Symbol, BidPrice: b.Bid, BidQty: b.BidQty,
		AskPrice: b.Ask, AskQty: b.AskQty, Time: b.Transact}
}

// handleBookTicker answers one symbol's best bid and ask, or every
// symbol's (an array) without the symbol parameter, as the stream has them
// at this instant.
func (s *Server) handleBookTicker(w http.ResponseWriter, r *http.Request) {
	now := s.nowMs()
	if name := r.URL.Query().Get("symbol"); name != "" {
		sy := s.byName[name]
		if sy == nil {
			writeErr(w, http.StatusBadRequest, -1121, "Invalid symbol.")
			return
		}
		writeJSON(w, http.StatusOK, sy.restBook(now))
		return
	}
	out := make([]restBook, 0, len(s.syms))
	for _, sy := range s.syms {
		out = append(out, sy.restBook(now))
	}
	writeJSON(w, http.StatusOK, out)
}

type rateLimit struct {
	RateLimitType string `json:"rateLimitType"`
	Interval      string `json:"interval"`
	IntervalNum   int    `json:"intervalNum"`
	Limit         int    `json:"limit"`
}

type assetInfo struct {
	Asset             string  `json:"asset"`
	MarginAvailable   bool    `json:"marginAvailable"`
	AutoAssetExchange *string `json:"autoAssetExchange"`
}

type symbolInfo struct {
	Symbol                string           `json:"symbol"`
	Pair                  string           `json:"pair"`
	ContractType          string           `json:"contractType"`
	DeliveryDate          int64            `json:"deliveryDate"`
	OnboardDate           int64            `json:"onboardDate"`
	Status                string           `json:"status"`
	MaintMarginPercent    string           `json:"maintMarginPercent"`
	RequiredMarginPercent string           `json:"requiredMarginPercent"`
	BaseAsset             string           `json:"baseAsset"`
	QuoteAsset            string           `json:"quoteAsset"`
	MarginAsset           string           `json:"marginAsset"`
	PricePrecision        int              `json:"pricePrecision"`
	QuantityPrecision     int              `json:"quantityPrecision"`
	BaseAssetPrecision    int              `json:"baseAssetPrecision"`
	QuotePrecision        int              `json:"quotePrecision"`
	UnderlyingType        string           `json:"underlyingType"`
	UnderlyingSubType     []string         `json:"underlyingSubType"`
	TriggerProtect        string           `json:"triggerProtect"`
	LiquidationFee        string           `json:"liquidationFee"`
	MarketTakeBound       string           `json:"marketTakeBound"`
	MaxMoveOrderLimit     int              `json:"maxMoveOrderLimit"`
	Filters               []map[string]any `json:"filters"`
	OrderTypes            []string         `json:"orderTypes"`
	TimeInForce           []string         `json:"timeInForce"`
}

var subTypes = map[string]string{"BTC": "PoW", "DOGE": "Meme", "BNB": "CEX", "XRP": "Payment"}

func (sy *symbol) info(listed int64) symbolInfo {
	sp := sy.spec
	subType, ok := subTypes[sy.base]
	if !ok {
		subType = "Layer-1"
	}
	tick := sy.px(sp.tickU)
	step := sy.qty(1)
	minPrice := max(int64(sp.price*pow10[sp.pp]/100)/sp.tickU*sp.tickU, sp.tickU)
	maxPrice := int64(sp.price*pow10[sp.pp]*20) / sp.tickU * sp.tickU
	return symbolInfo{
		Symbol: sy.name, Pair: sy.name, ContractType: "PERPETUAL",
		DeliveryDate: 4133404800000, OnboardDate: listed, Status: "TRADING",
		MaintMarginPercent: "2.5000", RequiredMarginPercent: "5.0000",
		BaseAsset: sy.base, QuoteAsset: sy.quote, MarginAsset: sy.quote,
		PricePrecision: sp.pp, QuantityPrecision: sp.qp, BaseAssetPrecision: 8, QuotePrecision: 8,
		UnderlyingType: "COIN", UnderlyingSubType: []string{subType},
		TriggerProtect: "0.0500", LiquidationFee: "0.012500", MarketTakeBound: "0.05", MaxMoveOrderLimit: 10000,
		Filters: []map[string]any{
			{"filterType": "PRICE_FILTER", "minPrice": sy.px(minPrice), "maxPrice": sy.px(maxPrice), "tickSize": tick},
			{"filterType": "LOT_SIZE", "minQty": step, "maxQty": sp.maxQty, "stepSize": step},
			{"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": sp.maxMktQty, "stepSize": step},
			{"filterType": "MAX_NUM_ORDERS", "limit": 200},
			{"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
			{"filterType": "MIN_NOTIONAL", "notional": sp.minNotional},
			{"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
		},
		OrderTypes:  []string{"LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"},
		TimeInForce: []string{"GTC", "IOC", "FOK", "GTX", "GTD"},
	}
}

func (s *Server) handleExchangeInfo(w http.ResponseWriter, _ *http.Request) {
	str := func(v string) *string { return &v }
	assets := []assetInfo{}
	seen := map[string]bool{}
	for _, sy := range s.syms {
		if !seen[sy.quote] {
			seen[sy.quote] = true
			assets = append(assets, assetInfo{Asset: sy.quote, MarginAvailable: true, AutoAssetExchange: str("-10000")})
		}
	}
	for _, a := range []string{"BTC", "ETH", "BNB"} {
		assets = append(assets, assetInfo{Asset: a, MarginAvailable: true, AutoAssetExchange: nil})
	}
	syms := make([]symbolInfo, len(s.syms))
	for i, sy := range s.syms {
		syms[i] = sy.info(s.listMs)
	}
	writeJSON(w, http.StatusOK, struct {
		Timezone        string       `json:"timezone"`
		ServerTime      int64        `json:"serverTime"`
		FuturesType     string       `json:"futuresType"`
		RateLimits      []rateLimit  `json:"rateLimits"`
		ExchangeFilters []any        `json:"exchangeFilters"`
		Assets          []assetInfo  `json:"assets"`
		Symbols         []symbolInfo `json:"symbols"`
	}{
		Timezone:    "UTC",
		ServerTime:  s.nowMs(),
		FuturesType: "U_MARGINED",
		RateLimits: []rateLimit{
			{"REQUEST_WEIGHT", "MINUTE", 1, s.cfg.WeightLimit},
			{"ORDERS", "MINUTE", 1, 1200},
			{"ORDERS", "SECOND", 10, 300},
		},
		ExchangeFilters: []any{},
		Assets:          assets,
		Symbols:         syms,
	})
}

func (s *Server) handleFault(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mode, err := ParseFaultMode(q.Get("mode"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, -1102, err.Error())
		return
	}
	var d time.Duration
	if v := q.Get("duration"); v != "" {
		if d, err = time.ParseDuration(v); err != nil || d < 0 {
			writeErr(w, http.StatusBadRequest, -1102, fmt.Sprintf("sim: invalid duration %q", v))
			return
		}
	}
	f, err := s.faultFromQuery(q, mode, d)
	if err != nil {
		writeErr(w, http.StatusBadRequest, -1102, err.Error())
		return
	}
	if err := s.SetFault(f); err != nil {
		writeErr(w, http.StatusBadRequest, -1102, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"mode": mode, "durationMs": d.Milliseconds()})
}
