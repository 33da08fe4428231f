package storefeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

var (
	// ErrUnauthorized: the node refused the /ws token or the API token
	// (HTTP 401 or 403). Run returns it: retrying would not help.
	ErrUnauthorized = errors.New("storefeed: the node refused the token")
	// ErrNoAccount: the node has no exchange account (no API keys), so it
	// serves no positions or balances.
	ErrNoAccount = errors.New("storefeed: the node has no exchange account")
)

// HTTPError is an answer of the node other than 200.
type HTTPError struct {
	URL    string
	Status int
	Body   string // the first 512 bytes
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("storefeed: GET %s: %d %s: %s", e.URL, e.Status, http.StatusText(e.Status), e.Body)
}

// MaxKlines is the most klines one request to a node returns (its
// /api/v1/klines limit, Binance's).
const MaxKlines = 1500

// maxBody bounds what the client reads of one answer.
const maxBody = 16 << 20

// Client reads a tradecache node's HTTP API, whose answers have Binance's
// shapes: klines as 12-element rows, the 24hr ticker, positions with
// positionRisk's field names, one asset's balance. It sends the API token,
// when there is one, as "Authorization: Bearer <token>". It is safe for
// concurrent use.
type Client struct {
	base     string
	apiToken string
	hc       *http.Client
	timeout  time.Duration
}

// NewClient returns a client of the node at base ("http://127.0.0.1:8080").
// apiToken may be empty; hc nil means http.DefaultClient. Each request is
// bounded by timeout (10 s when zero) and by the caller's context.
func NewClient(base, apiToken string, hc *http.Client, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("storefeed: node %q: want http://host:port or https://host:port", base)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{base: strings.TrimRight(base, "/"), apiToken: apiToken, hc: hc, timeout: timeout}, nil
}

// Base is the node's base URL.
func (c *Client) Base() string { return c.base }

func (c *Client) get(ctx context.Context, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.apiToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiToken)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("storefeed: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		herr := &HTTPError{URL: u, Status: res.StatusCode, Body: strings.TrimSpace(string(b))}
		if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
			return fmt.Errorf("%w: %w", ErrUnauthorized, herr)
		}
		return herr
	}
	dec := json.NewDecoder(io.LimitReader(res.Body, maxBody))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("storefeed: GET %s: %w", u, err)
	}
	return nil
}

// Klines returns the newest limit (1…MaxKlines) klines of a series the
// node serves, oldest first. The last one is usually the forming kline:
// the rows do not say which are closed, so Closed is false in all of them.
func (c *Client) Klines(ctx context.Context, symbol, interval string, limit int) ([]exchange.Kline, error) {
	if limit < 1 || limit > MaxKlines {
		return nil, fmt.Errorf("storefeed: klines limit %d out of 1..%d", limit, MaxKlines)
	}
	var rows [][]json.RawMessage
	q := url.Values{"symbol": {symbol}, "interval": {interval}, "limit": {strconv.Itoa(limit)}}
	if err := c.get(ctx, "/api/v1/klines", q, &rows); err != nil {
		return nil, err
	}
	out := make([]exchange.Kline, 0, len(rows))
	for i, r := range rows {
		k, err := parseKlineRow(r)
		if err != nil {
			return nil, fmt.Errorf("storefeed: klines %s %s row %d: %w", symbol, interval, i, err)
		}
		k.Symbol, k.Interval = symbol, interval
		out = append(out, k)
	}
	return out, nil
}

// parseKlineRow decodes Binance's kline row: [openTime, open, high, low,
// close, volume, closeTime, quoteVolume, trades, takerBuyBase,
// takerBuyQuote, ignore].
func parseKlineRow(r []json.RawMessage) (exchange.Kline, error) {
	var k exchange.Kline
	if len(r) < 11 {
		return k, fmt.Errorf("%d fields, want 12", len(r))
	}
	ints := []*int64{&k.OpenTime, &k.CloseTime, &k.Trades}
	for i, at := range []int{0, 6, 8} {
		n, err := strconv.ParseInt(string(r[at]), 10, 64)
		if err != nil {
			return k, fmt.Errorf("field %d: %s is not an integer", at, r[at])
		}
		*ints[i] = n
	}
	strs := []*string{&k.Open, &k.High, &k.Low, &k.Close, &k.Volume, &k.QuoteVolume, &k.TakerBuyBase, &k.TakerBuyQuote}
	for i, at := range []int{1, 2, 3, 4, 5, 7, 9, 10} {
		if err := json.Unmarshal(r[at], strs[i]); err != nil {
			return k, fmt.Errorf("field %d: %s is not a decimal string", at, r[at])
		}
		if _, err := strconv.ParseFloat(*strs[i], 64); err != nil {
			return k, fmt.Errorf("field %d: %q is not a number", at, *strs[i])
		}
	}
	return k, nil
}

// Ticker24h returns the node's 24hr ticker of symbol.
func (c *Client) Ticker24h(ctx context.Context, symbol string) (exchange.Ticker24h, error) {
	var t exchange.Ticker24h
	err := c.get(ctx, "/api/v1/ticker/24hr", url.Values{"symbol": {symbol}}, &t)
	return t, err
}

// Positions returns the account's open positions; ErrNoAccount when the
// node has no account.
func (c *Client) Positions(ctx context.Context) ([]exchange.Position, error) {
	var ps []exchange.Position
	err := c.get(ctx, "/api/v1/positions", nil, &ps)
	if he := (*HTTPError)(nil); errors.As(err, &he) && he.Status == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %w", ErrNoAccount, err)
	}
	return ps, err
}

// Balance returns one asset's balance: exchange.ErrNoBalance when the
// account holds no such asset, ErrNoAccount when the node has no account.
func (c *Client) Balance(ctx context.Context, asset string) (exchange.Balance, error) {
	var b exchange.Balance
	err := c.get(ctx, "/api/v1/balance", url.Values{"asset": {asset}}, &b)
	if he := (*HTTPError)(nil); errors.As(err, &he) && he.Status == http.StatusNotFound {
		if strings.Contains(he.Body, "no exchange account") {
			return b, fmt.Errorf("%w: %w", ErrNoAccount, err)
		}
		return b, fmt.Errorf("%w: %w", exchange.ErrNoBalance, err)
	}
	return b, err
}
