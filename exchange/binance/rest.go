package binance

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

// Default REST settings.
const (
	DefaultRESTURL     = "https://fapi.binance.com"
	DefaultRESTTimeout = 10 * time.Second
	DefaultUserAgent   = "tradecache-binance/1"
	defaultMaxBody     = 32 << 20
	maxErrorBody       = 64 << 10
	// MaxKlineLimit is the largest limit /fapi/v1/klines accepts.
	MaxKlineLimit = 1500
	// defaultKlineLimit is what is sent when the caller passes limit <= 0
	// (Binance's own default; sending it explicitly costs 2, omitting 5).
	defaultKlineLimit = 500
	// Cooldowns when a 429/418 carries no usable Retry-After.
	default418Cooldown = 2 * time.Minute
)

// RESTConfig configures a REST client. Zero values take the defaults.
//
// RESTConfig never prints or logs its credentials: String, GoString,
// Format (every fmt verb), LogValue and MarshalJSON show APISecret as
// [REDACTED] and APIKey as a short SHA-256 fingerprint. (fmt cannot call
// methods on unexported struct fields, so do not keep a RESTConfig in an
// unexported field of a value you print.)
type RESTConfig struct {
	BaseURL    string        // default https://fapi.binance.com
	HTTPClient *http.Client  // default http.DefaultClient
	Timeout    time.Duration // per request, including the body; default 10 s
	UserAgent  string        // default "tradecache-binance/1"
	MaxBody    int64         // largest (decompressed) body accepted; default 32 MiB

	// APIKey is sent as X-MBX-APIKEY on the account endpoints (listenKey,
	// account, positions, orders). Public endpoints never send it.
	APIKey string
	// APISecret signs USER_DATA/TRADE requests (HMAC-SHA256). It never
	// leaves the process: only signatures are sent.
	APISecret string
	// RecvWindow is how long after its timestamp a signed request is
	// accepted by Binance; default 5 s, at most 60 s (Binance's maximum),
	// sent in milliseconds.
	RecvWindow time.Duration

	// Budget, when set, is asked before every request and told the weight
	// and the 429/418 of every answer: the REST weight budget of every
	// client sharing the egress IP (package ratelimit's, shared through
	// Redis). With it or without, the client sends nothing during a
	// cooldown it met itself.
	Budget Budget
}

// Budget is a REST weight budget (package ratelimit implements it). The
// client asks it before each request, with the request's weight, and
// tells it what each answer said. The priority of a request, if the
// budget has any, travels on the context.
type Budget interface {
	// Acquire reserves weight for a request about to be sent and returns
	// the window it was counted in, for Observe. An error refuses the
	// request: nothing is sent. A refusal with a RetryAt() time.Time method
	// (and optionally HTTPStatus() int) is returned as an *APIError that
	// matches ErrRateLimited, has NotSent set and wraps it; any other
	// error (the context's) is returned wrapped.
	Acquire(ctx context.Context, weight int) (window int64, err error)
	// Observe reports an answer's X-MBX-USED-WEIGHT-1M: the exchange's
	// count of the IP's weight this minute, for a request counted in
	// window.
	Observe(ctx context.Context, window int64, used int)
	// Cooldown reports a 429 or 418 and how long the exchange asked to
	// wait (Retry-After, else until the next minute for 429 and 2 min for
	// 418).
	Cooldown(ctx context.Context, status int, wait time.Duration)
}

// REST is a client of Binance USDⓈ-M futures REST endpoints: public market
// data and, with credentials, the account endpoints. It is safe for
// concurrent use. Weight and the 429/418 cooldown are shared through
// RESTConfig.Budget when it is set; without one they are per REST value:
// share one per egress IP.
type REST struct {
	base    string
	hc      *http.Client
	timeout time.Duration
	ua      string
	maxBody int64
	now     func() time.Time // tests

	apiKey     string
	secret     []byte
	recvWindow time.Duration
	offsetMs   atomic.Int64 // server clock minus local clock, from SyncTime
	budget     Budget       // nil: the local cooldown only

	mu         sync.Mutex
	minute     int64 // UTC minute (unix/60) that used belongs to
	used       int   // request weight used in that minute, as far as known
	coolUntil  time.Time
	coolStatus int
}

var _ exchange.MarketREST = (*REST)(nil)

// NewREST returns a REST client.
func NewREST(cfg RESTConfig) *REST {
	r := &REST{
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		hc:      cfg.HTTPClient,
		timeout: cfg.Timeout,
		ua:      cfg.UserAgent,
		maxBody: cfg.MaxBody,
		now:     time.Now,

		apiKey:     cfg.APIKey,
		recvWindow: cfg.RecvWindow,
		budget:     cfg.Budget,
	}
	if cfg.APISecret != "" {
		r.secret = []byte(cfg.APISecret)
	}
	if r.recvWindow <= 0 {
		r.recvWindow = DefaultRecvWindow
	}
	r.recvWindow = min(r.recvWindow, MaxRecvWindow)
	if r.base == "" {
		r.base = DefaultRESTURL
	}
	if r.hc == nil {
		r.hc = http.DefaultClient
	}
	if r.timeout <= 0 {
		r.timeout = DefaultRESTTimeout
	}
	if r.ua == "" {
		r.ua = DefaultUserAgent
	}
	if r.maxBody <= 0 {
		r.maxBody = defaultMaxBody
	}
	return r
}

// Weight returns the request weight used in the current UTC minute: the
// largest of our own count and the last X-MBX-USED-WEIGHT-1M header seen
// (other processes share the IP's budget of 2400/min). It resets at the
// minute boundary, as Binance's counter does.
func (r *REST) Weight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Unix()/60 != r.minute {
		return 0
	}
	return r.used
}

// CooldownUntil returns the end of the current 429/418 cooldown this client
// met, or the zero time when there is none; the client sends nothing
// before it. With a Budget, the budget knows the cooldowns of every client
// sharing it.
func (r *REST) CooldownUntil() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Before(r.coolUntil) {
		return r.coolUntil
	}
	return time.Time{}
}

// KlineWeight is the request weight of /fapi/v1/klines for limit (the
// measured bands: 1–100 → 1, 101–500 → 2, 501–1000 → 5, above → 10).
func KlineWeight(limit int) int {
	switch {
	case limit <= 100:
		return 1
	case limit <= 500:
		return 2
	case limit <= 1000:
		return 5
	}
	return 10
}

// klineIntervals are the intervals USDⓈ-M futures accept (1s is refused).
var klineIntervals = map[string]bool{
	"1m": true, "3m": true, "5m": true, "15m": true, "30m": true,
	"1h": true, "2h": true, "4h": true, "6h": true, "8h": true, "12h": true,
	"1d": true, "3d": true, "1w": true, "1M": true,
}

// Klines returns klines of symbol and interval, oldest first. start and
// end (ms) are optional (0). limit <= 0 means 500; limit is always sent
// (omitting it costs weight 5). A limit above 1500 or an unknown interval
// is refused without a request. The last kline of a most-recent request is
// the open bar: Closed is true only for klines whose CloseTime is before
// the request time (the earlier of our clock and the response's Date).
func (r *REST) Klines(ctx context.Context, symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error) {
	if !validName(symbol) {
		return nil, fmt.Errorf("binance: klines: bad symbol %q", symbol)
	}
	if !klineIntervals[interval] {
		return nil, fmt.Errorf("binance: klines: unknown interval %q", interval)
	}
	if limit <= 0 {
		limit = defaultKlineLimit
	}
	if limit > MaxKlineLimit {
		return nil, fmt.Errorf("binance: klines: limit %d above %d", limit, MaxKlineLimit)
	}
	q := url.Values{}
	q.Set("symbol", symbol)
	q.Set("interval", interval)
	if start > 0 {
		q.Set("startTime", strconv.FormatInt(start, 10))
	}
	if end > 0 {
		q.Set("endTime", strconv.FormatInt(end, 10))
	}
	q.Set("limit", strconv.Itoa(limit))
	resp, err := r.get(ctx, "/fapi/v1/klines", q, KlineWeight(limit))
	if err != nil {
		return nil, err
	}
	ks, err := DecodeKlinesREST(resp.body, symbol, interval, resp.refTime.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("binance: klines: %w", err)
	}
	return ks, nil
}

// Ticker24h returns the 24-hour ticker of one symbol (weight 1).
func (r *REST) Ticker24h(ctx context.Context, symbol string) (exchange.Ticker24h, error) {
	if !validName(symbol) {
		return exchange.Ticker24h{}, fmt.Errorf("binance: ticker: bad symbol %q", symbol)
	}
	q := url.Values{}
	q.Set("symbol", symbol)
	resp, err := r.get(ctx, "/fapi/v1/ticker/24hr", q, 1)
	if err != nil {
		return exchange.Ticker24h{}, err
	}
	t, err := decodeTickerREST(resp.body)
	if err != nil {
		return exchange.Ticker24h{}, fmt.Errorf("binance: ticker: %w", err)
	}
	return t, nil
}

// Ticker24hAll returns the 24-hour tickers of all TRADING symbols. It
// costs weight 40: prefer the !ticker@arr stream and use this to warm up.
func (r *REST) Ticker24hAll(ctx context.Context) ([]exchange.Ticker24h, error) {
	resp, err := r.get(ctx, "/fapi/v1/ticker/24hr", nil, 40)
	if err != nil {
		return nil, err
	}
	ts, err := decodeTickersREST(resp.body)
	if err != nil {
		return nil, fmt.Errorf("binance: tickers: %w", err)
	}
	return ts, nil
}

// Symbols returns exchangeInfo's symbols (weight 1; ~1.15 MB, 51 KB
// gzipped). Each SymbolInfo's Raw is that symbol's JSON as sent.
func (r *REST) Symbols(ctx context.Context) ([]exchange.SymbolInfo, error) {
	resp, err := r.get(ctx, "/fapi/v1/exchangeInfo", nil, 1)
	if err != nil {
		return nil, err
	}
	if err := validJSON(resp.body); err != nil {
		return nil, fmt.Errorf("binance: exchangeInfo: %w", err)
	}
	s, err := decodeExchangeInfo(resp.body)
	if err != nil {
		return nil, fmt.Errorf("binance: exchangeInfo: %w", err)
	}
	return s, nil
}

// ServerTime returns Binance's clock (GET /fapi/v1/time, weight 1).
func (r *REST) ServerTime(ctx context.Context) (time.Time, error) {
	resp, err := r.get(ctx, "/fapi/v1/time", nil, 1)
	if err != nil {
		return time.Time{}, err
	}
	if err := validJSON(resp.body); err != nil {
		return time.Time{}, fmt.Errorf("binance: time: %w", err)
	}
	ms, err := decodeServerTime(resp.body)
	if err != nil {
		return time.Time{}, fmt.Errorf("binance: time: %w", err)
	}
	return time.UnixMilli(ms), nil
}

type response struct {
	body    []byte
	refTime time.Time // min(request time, response Date)
}

// get performs one public GET. weight is our estimate of its cost, counted
// before it is sent (a failed request costs weight too).
func (r *REST) get(ctx context.Context, path string, q url.Values, weight int) (response, error) {
	return r.do(ctx, http.MethodGet, path, q.Encode(), false, weight)
}

// do performs one request with rawQuery (already encoded, possibly
// signed) in the URL and no body; withKey adds the X-MBX-APIKEY header.
// Transport errors never carry the URL's query (signature, listenKey).
func (r *REST) do(ctx context.Context, method, path, rawQuery string, withKey bool, weight int) (response, error) {
	now := r.now()
	window, err := r.admit(ctx, now, weight)
	if err != nil {
		return response{}, r.notSent(method, path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	u := r.base + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return response{}, fmt.Errorf("binance: %s %s: %w", method, path, stripQuery(err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", r.ua)
	if withKey {
		req.Header.Set("X-MBX-APIKEY", r.apiKey)
	}
	if method != http.MethodGet {
		// Every parameter is in the query string; the body is empty.
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := r.hc.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("binance: %s %s: %w", method, path, stripQuery(err))
	}
	defer res.Body.Close()
	r.observeWeight(ctx, res.Header, window)

	ref := now
	if d, err := http.ParseTime(res.Header.Get("Date")); err == nil && d.Before(ref) {
		ref = d
	}

	limit := r.maxBody
	if res.StatusCode/100 != 2 {
		limit = maxErrorBody
	}
	body, err := readBody(res, limit)
	if res.StatusCode/100 != 2 {
		return response{}, r.statusError(ctx, res, body)
	}
	if err != nil {
		return response{}, fmt.Errorf("binance: %s %s: %w", method, path, err)
	}
	return response{body: body, refTime: ref}, nil
}

// admit asks the budget for weight, refuses requests during the client's
// own cooldown whatever the budget answered (a budget that knows of it
// refuses first, and counts the refusal), and counts the weight. It
// returns the budget's window.
func (r *REST) admit(ctx context.Context, now time.Time, weight int) (int64, error) {
	var window int64
	if r.budget != nil {
		w, err := r.budget.Acquire(ctx, weight)
		if err != nil {
			return 0, err
		}
		window = w
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Before(r.coolUntil) {
		return 0, &APIError{
			HTTPStatus: r.coolStatus,
			Msg:        "rate limited: cooldown",
			RetryAt:    r.coolUntil,
			NotSent:    true,
		}
	}
	r.rollMinute(now)
	r.used += weight
	return window, nil
}

// notSent is the error of a request refused before it was sent.
func (r *REST) notSent(method, path string, err error) error {
	if _, ok := errors.AsType[*APIError](err); ok {
		return err
	}
	var ra interface{ RetryAt() time.Time }
	if !errors.As(err, &ra) {
		return fmt.Errorf("binance: %s %s: not sent: %w", method, path, err)
	}
	e := &APIError{HTTPStatus: http.StatusTooManyRequests, Msg: "rate limited: " + err.Error(), RetryAt: ra.RetryAt(), NotSent: true, Err: err}
	var hs interface{ HTTPStatus() int }
	if errors.As(err, &hs) && hs.HTTPStatus() != 0 {
		e.HTTPStatus = hs.HTTPStatus()
	}
	return e
}

func (r *REST) rollMinute(now time.Time) {
	if m := now.Unix() / 60; m != r.minute {
		r.minute, r.used = m, 0
	}
}

// observeWeight raises the local count to X-MBX-USED-WEIGHT-1M and tells
// the budget.
func (r *REST) observeWeight(ctx context.Context, h http.Header, window int64) {
	v := h.Get("X-Mbx-Used-Weight-1m")
	if v == "" {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return
	}
	r.mu.Lock()
	r.rollMinute(r.now())
	r.used = max(r.used, n)
	r.mu.Unlock()
	if r.budget != nil {
		r.budget.Observe(ctx, window, n)
	}
}

// statusError builds the *APIError of a non-2xx response and starts the
// cooldown for 429/418 (the budget's too).
func (r *REST) statusError(ctx context.Context, res *http.Response, body []byte) error {
	e := &APIError{HTTPStatus: res.StatusCode}
	if code, msg, ok := decodeAPIError(body); ok {
		e.Code, e.Msg = int(code), msg
	} else {
		e.Msg = strings.TrimSpace(string(body[:min(len(body), 200)]))
	}
	if res.StatusCode == 429 || res.StatusCode == 418 {
		now := r.now()
		wait, ok := retryAfter(res.Header.Get("Retry-After"), now)
		if !ok {
			if res.StatusCode == 418 {
				wait = default418Cooldown
			} else {
				// The weight counter resets on the UTC minute.
				wait = now.Truncate(time.Minute).Add(time.Minute).Sub(now)
			}
		}
		until := now.Add(wait)
		r.mu.Lock()
		if until.After(r.coolUntil) {
			r.coolUntil, r.coolStatus = until, res.StatusCode
		}
		until = r.coolUntil
		r.mu.Unlock()
		e.RetryAt = until
		if r.budget != nil {
			r.budget.Cooldown(ctx, res.StatusCode, wait)
		}
	}
	return e
}

// retryAfter parses Retry-After: delta seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, 7*24*3600)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

var errBodyTooLarge = errors.New("response body too large")

// readBody reads at most limit (decompressed) bytes of the body.
func readBody(res *http.Response, limit int64) ([]byte, error) {
	var rd io.Reader = res.Body
	if strings.EqualFold(strings.TrimSpace(res.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		rd = zr
	}
	b, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return b, err
	}
	if int64(len(b)) > limit {
		return b[:limit], errBodyTooLarge
	}
	return b, nil
}
