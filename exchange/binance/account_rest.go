package binance

import (
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
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

// Signed-request settings.
const (
	DefaultRecvWindow = 5 * time.Second
	MaxRecvWindow     = 60 * time.Second // Binance refuses more
)

// Request weights (IP) of the account endpoints.
const (
	weightListenKey    = 1
	weightAccountV3    = 5
	weightPositionRisk = 5
	weightOrder        = 0 // orders count against the order limits, not IP weight
)

var _ exchange.AccountREST = (*REST)(nil)

// SyncTime measures the offset between Binance's clock and ours with GET
// /fapi/v1/time (weight 1), assuming the server read its clock half-way
// through the round trip, and applies it to the timestamp of every later
// signed request. It returns the offset (server minus local). Call it at
// start-up, whenever a signed call fails with ErrClockSkew (-1021), and
// periodically if the host clock is not NTP-disciplined; without it the
// local clock is used as is. Its precision is about half the round trip,
// far inside the default 5 s recvWindow.
func (r *REST) SyncTime(ctx context.Context) (time.Duration, error) {
	t0 := r.now()
	st, err := r.ServerTime(ctx)
	if err != nil {
		return 0, err
	}
	t1 := r.now()
	mid := t0.Add(t1.Sub(t0) / 2)
	off := st.Sub(mid).Round(time.Millisecond)
	r.offsetMs.Store(off.Milliseconds())
	return off, nil
}

// ClockOffset returns the offset applied to signed timestamps (server
// minus local, from the last SyncTime; 0 before).
func (r *REST) ClockOffset() time.Duration {
	return time.Duration(r.offsetMs.Load()) * time.Millisecond
}

// timestamp is the signed requests' timestamp: local clock plus offset.
func (r *REST) timestamp() int64 { return r.now().UnixMilli() + r.offsetMs.Load() }

// sign returns the hex HMAC-SHA256 of query under the API secret.
func (r *REST) sign(query string) string {
	m := hmac.New(sha256.New, r.secret)
	_, _ = io.WriteString(m, query)
	return hex.EncodeToString(m.Sum(nil))
}

// signedQuery adds recvWindow and timestamp to q, encodes it and appends
// the signature of exactly that string: "<params>&signature=<hex>".
func (r *REST) signedQuery(q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("recvWindow", strconv.FormatInt(r.recvWindow.Milliseconds(), 10))
	q.Set("timestamp", strconv.FormatInt(r.timestamp(), 10))
	qs := q.Encode()
	return qs + "&signature=" + r.sign(qs)
}

// signed performs a USER_DATA/TRADE request: every parameter, timestamp
// and signature in the query string (also for POST; the body is empty)
// and the API key header.
func (r *REST) signed(ctx context.Context, method, path string, q url.Values, weight int) (response, error) {
	if r.apiKey == "" || len(r.secret) == 0 {
		return response{}, ErrNoCredentials
	}
	return r.do(ctx, method, path, r.signedQuery(q), true, weight)
}

// keyed performs a USER_STREAM request: API key header, no signature.
func (r *REST) keyed(ctx context.Context, method, path string, q url.Values) (response, error) {
	if r.apiKey == "" {
		return response{}, ErrNoCredentials
	}
	return r.do(ctx, method, path, q.Encode(), true, weightListenKey)
}

// CreateListenKey starts a user data stream (POST /fapi/v1/listenKey,
// weight 1, API key only) and returns its key. If the account already has
// an active key, Binance returns that one and extends it by 60 minutes.
func (r *REST) CreateListenKey(ctx context.Context) (string, error) {
	resp, err := r.keyed(ctx, http.MethodPost, "/fapi/v1/listenKey", nil)
	if err != nil {
		return "", err
	}
	key, err := decodeListenKey(resp.body)
	if err != nil {
		return "", fmt.Errorf("binance: listenKey: %w", err)
	}
	return key, nil
}

// KeepAliveListenKey extends key by 60 minutes (PUT /fapi/v1/listenKey,
// weight 1); send it about every 30 minutes. An error matching
// exchange.ErrListenKeyNotFound (-1125) means the key is gone: create a
// new one and reconnect the stream.
func (r *REST) KeepAliveListenKey(ctx context.Context, key string) error {
	q, err := listenKeyQuery(key)
	if err != nil {
		return err
	}
	_, err = r.keyed(ctx, http.MethodPut, "/fapi/v1/listenKey", q)
	return err
}

// CloseListenKey invalidates key (DELETE /fapi/v1/listenKey, weight 1).
func (r *REST) CloseListenKey(ctx context.Context, key string) error {
	q, err := listenKeyQuery(key)
	if err != nil {
		return err
	}
	_, err = r.keyed(ctx, http.MethodDelete, "/fapi/v1/listenKey", q)
	return err
}

func listenKeyQuery(key string) (url.Values, error) {
	if !validListenKey(key) {
		return nil, errors.New("binance: invalid listenKey")
	}
	return url.Values{"listenKey": {key}}, nil
}

// Account returns the balances (GET /fapi/v3/account, weight 5) and the
// non-zero positions (GET /fapi/v3/positionRisk, weight 5), both signed.
// The two requests run concurrently; they are two snapshots, not one
// atomic one (each row carries its updateTime).
func (r *REST) Account(ctx context.Context) ([]exchange.Balance, []exchange.Position, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg        sync.WaitGroup
		positions []exchange.Position
		perr      error
	)
	wg.Go(func() { positions, perr = r.Positions(ctx) })
	balances, berr := r.Balances(ctx)
	if berr != nil {
		cancel() // no use waiting for the other half
	}
	wg.Wait()
	if berr != nil {
		return nil, nil, berr
	}
	if perr != nil {
		return nil, nil, perr
	}
	return balances, positions, nil
}

// Balances returns the assets of GET /fapi/v3/account (signed, weight 5).
func (r *REST) Balances(ctx context.Context) ([]exchange.Balance, error) {
	resp, err := r.signed(ctx, http.MethodGet, "/fapi/v3/account", nil, weightAccountV3)
	if err != nil {
		return nil, err
	}
	bs, err := decodeAccountAssets(resp.body)
	if err != nil {
		return nil, fmt.Errorf("binance: account: %w", err)
	}
	return bs, nil
}

// Positions returns the non-zero positions of GET /fapi/v3/positionRisk
// (signed, weight 5). MarginType is taken from marginType when present,
// else derived: "isolated" when isolatedWallet or isolatedMargin is
// non-zero, "cross" otherwise (v3 dropped marginType).
func (r *REST) Positions(ctx context.Context) ([]exchange.Position, error) {
	resp, err := r.signed(ctx, http.MethodGet, "/fapi/v3/positionRisk", nil, weightPositionRisk)
	if err != nil {
		return nil, err
	}
	ps, err := decodePositionRisk(resp.body)
	if err != nil {
		return nil, fmt.Errorf("binance: positionRisk: %w", err)
	}
	return ps, nil
}

// OrderRequest is a new order (POST /fapi/v1/order). Decimals are text,
// sent as given.
type OrderRequest struct {
	Symbol        string // e.g. BTCUSDT
	Side          string // BUY | SELL
	Type          string // LIMIT, MARKET, STOP, …
	Quantity      string
	Price         string // LIMIT-type orders
	TimeInForce   string // default GTC when Price is set
	PositionSide  string // BOTH (default) | LONG | SHORT (hedge mode)
	ReduceOnly    bool   // not allowed in hedge mode
	ClientOrderID string // newClientOrderId; Binance assigns one when empty
}

// OrderResponse is the reply to a new order (newOrderRespType=RESULT).
type OrderResponse struct {
	OrderID       int64
	ClientOrderID string
	Symbol        string
	Side          string
	PositionSide  string
	Type          string
	TimeInForce   string
	Status        string
	Price         string
	AvgPrice      string
	OrigQty       string
	ExecutedQty   string
	CumQuote      string
	ReduceOnly    bool
	UpdateTime    int64
}

var clientOrderIDRE = regexp.MustCompile(`^[.A-Z:/a-z0-9_-]{1,36}$`)

// PlaceOrder sends a new order (POST /fapi/v1/order, signed; it counts
// against the order-rate limits, not IP weight). Meant for tests and
// tools: it is not retried, and a transport error or 5xx leaves the
// outcome unknown (query the order by ClientOrderID).
func (r *REST) PlaceOrder(ctx context.Context, o OrderRequest) (OrderResponse, error) {
	switch {
	case !validName(o.Symbol):
		return OrderResponse{}, fmt.Errorf("binance: order: bad symbol %q", o.Symbol)
	case o.Side != "BUY" && o.Side != "SELL":
		return OrderResponse{}, fmt.Errorf("binance: order: bad side %q", o.Side)
	case !validName(o.Type):
		return OrderResponse{}, fmt.Errorf("binance: order: bad type %q", o.Type)
	case !validDecimal([]byte(o.Quantity)):
		return OrderResponse{}, fmt.Errorf("binance: order: bad quantity %q", o.Quantity)
	case o.Price != "" && !validDecimal([]byte(o.Price)):
		return OrderResponse{}, fmt.Errorf("binance: order: bad price %q", o.Price)
	case o.PositionSide != "" && o.PositionSide != "BOTH" && o.PositionSide != "LONG" && o.PositionSide != "SHORT":
		return OrderResponse{}, fmt.Errorf("binance: order: bad positionSide %q", o.PositionSide)
	case o.ClientOrderID != "" && !clientOrderIDRE.MatchString(o.ClientOrderID):
		return OrderResponse{}, fmt.Errorf("binance: order: bad clientOrderId %q", o.ClientOrderID)
	case o.TimeInForce != "" && !validName(o.TimeInForce):
		return OrderResponse{}, fmt.Errorf("binance: order: bad timeInForce %q", o.TimeInForce)
	}
	q := url.Values{}
	q.Set("symbol", o.Symbol)
	q.Set("side", o.Side)
	q.Set("type", o.Type)
	q.Set("quantity", o.Quantity)
	if o.Price != "" {
		q.Set("price", o.Price)
		if o.TimeInForce == "" {
			o.TimeInForce = "GTC"
		}
	}
	if o.TimeInForce != "" {
		q.Set("timeInForce", o.TimeInForce)
	}
	if o.PositionSide != "" {
		q.Set("positionSide", o.PositionSide)
	}
	if o.ReduceOnly {
		q.Set("reduceOnly", "true")
	}
	if o.ClientOrderID != "" {
		q.Set("newClientOrderId", o.ClientOrderID)
	}
	q.Set("newOrderRespType", "RESULT")
	resp, err := r.signed(ctx, http.MethodPost, "/fapi/v1/order", q, weightOrder)
	if err != nil {
		return OrderResponse{}, err
	}
	or, err := decodeOrderResponse(resp.body)
	if err != nil {
		return OrderResponse{}, fmt.Errorf("binance: order: %w", err)
	}
	return or, nil
}

// stripQuery removes the query string (signature, listenKey) from the
// URL of a *url.Error in err, so that transport errors can be logged.
func stripQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if i := strings.IndexByte(ue.URL, '?'); i >= 0 {
			ue.URL = ue.URL[:i] + "?[query removed]"
		}
	}
	return err
}

// Redaction. Credentials are printed as:
//   - APISecret: [REDACTED] (or "" when unset);
//   - APIKey: sha256:<first 8 hex digits> (or "" when unset), enough to
//     tell which key is configured.
const redacted = "[REDACTED]"

func secretHint(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

func keyHint(k string) string {
	if k == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// String describes c with its credentials redacted.
func (c RESTConfig) String() string {
	return fmt.Sprintf("binance.RESTConfig{BaseURL:%q Timeout:%v UserAgent:%q MaxBody:%d RecvWindow:%v APIKey:%q APISecret:%q}",
		c.BaseURL, c.Timeout, c.UserAgent, c.MaxBody, c.RecvWindow, keyHint(c.APIKey), secretHint(c.APISecret))
}

// GoString is String: %#v must not print the secret either.
func (c RESTConfig) GoString() string { return c.String() }

// Format prints String for every verb (%v, %+v, %#v, %s, %d, %x…), so
// that no verb falls through to the raw fields.
func (c RESTConfig) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue is the slog form of c, credentials redacted.
func (c RESTConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.Duration("timeout", c.Timeout),
		slog.String("user_agent", c.UserAgent),
		slog.Int64("max_body", c.MaxBody),
		slog.Duration("recv_window", c.RecvWindow),
		slog.String("api_key", keyHint(c.APIKey)),
		slog.String("api_secret", secretHint(c.APISecret)),
	)
}

// MarshalJSON writes c with its credentials redacted (and without
// HTTPClient), so that reflective loggers and config dumps cannot leak
// them either. A RESTConfig is not meant to round-trip through JSON.
func (c RESTConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		BaseURL    string
		Timeout    time.Duration
		UserAgent  string
		MaxBody    int64
		RecvWindow time.Duration
		APIKey     string
		APISecret  string
	}{c.BaseURL, c.Timeout, c.UserAgent, c.MaxBody, c.RecvWindow, keyHint(c.APIKey), secretHint(c.APISecret)})
}

// String describes r with its credentials redacted.
func (r *REST) String() string {
	return fmt.Sprintf("binance.REST{base:%q apiKey:%q apiSecret:%q recvWindow:%v}",
		r.base, keyHint(r.apiKey), secretHint(string(r.secret)), r.recvWindow)
}

// GoString is String.
func (r *REST) GoString() string { return r.String() }

// Format prints String for every verb.
func (r *REST) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue is the slog form of r, credentials redacted.
func (r *REST) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", r.base),
		slog.String("api_key", keyHint(r.apiKey)),
		slog.String("api_secret", secretHint(string(r.secret))),
	)
}
