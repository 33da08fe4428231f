package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Security types of the /fapi account endpoints.
const (
	secAPIKey = iota + 1 // X-MBX-APIKEY only (USER_STREAM)
	secSigned            // X-MBX-APIKEY, timestamp and HMAC signature (USER_DATA, TRADE)
)

// Signed requests. As Binance's connectors send them, parameters may be in
// the query string or in a form body (or both); the signature is the hex
// HMAC-SHA256, keyed by the API secret, of the query string followed by
// the body, each without the signature parameter. Timestamps are checked
// against the REAL wall clock, not the sim clock (which runs at Speed from
// Start): a client must not offset its timestamps by GET /fapi/v1/time
// when the sim runs fast or from another Start.
const (
	defaultRecvWindow = 5000
	maxRecvWindow     = 60000
)

func (s *Server) accountRoutes(mux *http.ServeMux) {
	w := func(n int) func(*http.Request) int { return func(*http.Request) int { return n } }
	mux.HandleFunc("GET /fapi/v3/account", s.weighted(w(5), s.withAccount(secSigned, s.handleAccount)))
	mux.HandleFunc("GET /fapi/v3/positionRisk", s.weighted(w(5), s.withAccount(secSigned, s.handlePositionRisk)))
	// New orders cost no IP weight (they count against order limits,
	// which the sim does not enforce).
	mux.HandleFunc("POST /fapi/v1/order", s.weighted(w(0), s.withAccount(secSigned, s.handleNewOrder)))
	mux.HandleFunc("POST /fapi/v1/listenKey", s.weighted(w(1), s.withAccount(secAPIKey,
		func(w http.ResponseWriter, a *account, _ url.Values) {
			writeJSON(w, http.StatusOK, map[string]string{"listenKey": s.startListenKey(a)})
		})))
	mux.HandleFunc("PUT /fapi/v1/listenKey", s.weighted(w(1), s.withAccount(secAPIKey,
		func(w http.ResponseWriter, a *account, p url.Values) {
			key, e := s.keepAliveListenKey(a, p.Get("listenKey"))
			if e != nil {
				writeAPIError(w, e)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"listenKey": key})
		})))
	mux.HandleFunc("DELETE /fapi/v1/listenKey", s.weighted(w(1), s.withAccount(secAPIKey,
		func(w http.ResponseWriter, a *account, p url.Values) {
			if e := s.closeListenKey(a, p.Get("listenKey")); e != nil {
				writeAPIError(w, e)
				return
			}
			writeJSON(w, http.StatusOK, struct{}{})
		})))
}

// withAccount authenticates a request, then serves it for its account
// with its parameters.
func (s *Server) withAccount(sec int, h func(http.ResponseWriter, *account, url.Values)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, p, e := s.authenticate(r, sec)
		if e != nil {
			writeAPIError(w, e)
			return
		}
		h(w, a, p)
	}
}

// authenticate checks, in order: the API key (401 -2015), the mandatory
// timestamp and signature (-1102), recvWindow (-1131 above 60000), the
// signature (-1022), then the timestamp against the real clock (-1021:
// more than 1 s ahead, or older than recvWindow).
func (s *Server) authenticate(r *http.Request, sec int) (*account, url.Values, *apiError) {
	a, e := s.accountFor(r.Header.Get("X-MBX-APIKEY"))
	if e != nil {
		return nil, nil, e
	}
	body := formBody(r)
	params, _ := url.ParseQuery(r.URL.RawQuery)
	if body != "" {
		bv, _ := url.ParseQuery(body)
		for k, v := range bv {
			params[k] = append(params[k], v...)
		}
	}
	if sec != secSigned {
		return a, params, nil
	}
	ts, ok, e := intParam(params, "timestamp")
	if e != nil {
		return nil, nil, e
	}
	if !ok {
		return nil, nil, mandatory("timestamp")
	}
	sig := params.Get("signature")
	if sig == "" {
		return nil, nil, mandatory("signature")
	}
	window := int64(defaultRecvWindow)
	if v, ok, e := intParam(params, "recvWindow"); e != nil {
		return nil, nil, e
	} else if ok {
		window = v
	}
	if window > maxRecvWindow {
		return nil, nil, badRequest(-1131, "recvWindow must be less than 60000")
	}
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(withoutParam(r.URL.RawQuery, "signature") + withoutParam(body, "signature")))
	if got, err := hex.DecodeString(sig); err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return nil, nil, badRequest(-1022, "Signature for this request is not valid.")
	}
	now := time.Now().UnixMilli()
	if ts >= now+1000 {
		return nil, nil, badRequest(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
	}
	if now-ts > window {
		return nil, nil, badRequest(-1021, "Timestamp for this request is outside of the recvWindow.")
	}
	return a, params, nil
}

// formBody returns a url-encoded request body ("" for none or JSON: the
// official connectors send Content-Type: application/json and no body).
func formBody(r *http.Request) string {
	if r.Body == nil {
		return ""
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "" && ct != "application/x-www-form-urlencoded" {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	return string(b)
}

// withoutParam removes name=… from a raw query string, leaving the rest
// byte for byte.
func withoutParam(raw, name string) string {
	if !strings.Contains(raw, name+"=") {
		return raw
	}
	var kept []string
	for part := range strings.SplitSeq(raw, "&") {
		if k, _, _ := strings.Cut(part, "="); k != name {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "&")
}

func (s *Server) handleNewOrder(w http.ResponseWriter, a *account, p url.Values) {
	o, e := s.newOrder(a, p)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

// GET /fapi/v3/account.

type restAccount struct {
	TotalInitialMargin          string                `json:"totalInitialMargin"`
	TotalMaintMargin            string                `json:"totalMaintMargin"`
	TotalWalletBalance          string                `json:"totalWalletBalance"`
	TotalUnrealizedProfit       string                `json:"totalUnrealizedProfit"`
	TotalMarginBalance          string                `json:"totalMarginBalance"`
	TotalPositionInitialMargin  string                `json:"totalPositionInitialMargin"`
	TotalOpenOrderInitialMargin string                `json:"totalOpenOrderInitialMargin"`
	TotalCrossWalletBalance     string                `json:"totalCrossWalletBalance"`
	TotalCrossUnPnl             string                `json:"totalCrossUnPnl"`
	AvailableBalance            string                `json:"availableBalance"`
	MaxWithdrawAmount           string                `json:"maxWithdrawAmount"`
	Assets                      []restAsset           `json:"assets"`
	Positions                   []restAccountPosition `json:"positions"`
}

type restAsset struct {
	Asset                  string `json:"asset"`
	WalletBalance          string `json:"walletBalance"`
	UnrealizedProfit       string `json:"unrealizedProfit"`
	MarginBalance          string `json:"marginBalance"`
	MaintMargin            string `json:"maintMargin"`
	InitialMargin          string `json:"initialMargin"`
	PositionInitialMargin  string `json:"positionInitialMargin"`
	OpenOrderInitialMargin string `json:"openOrderInitialMargin"`
	CrossWalletBalance     string `json:"crossWalletBalance"`
	CrossUnPnl             string `json:"crossUnPnl"`
	AvailableBalance       string `json:"availableBalance"`
	MaxWithdrawAmount      string `json:"maxWithdrawAmount"`
	UpdateTime             int64  `json:"updateTime"`
}

type restAccountPosition struct {
	Symbol           string `json:"symbol"`
	PositionSide     string `json:"positionSide"`
	PositionAmt      string `json:"positionAmt"`
	UnrealizedProfit string `json:"unrealizedProfit"`
	IsolatedMargin   string `json:"isolatedMargin"`
	Notional         string `json:"notional"`
	IsolatedWallet   string `json:"isolatedWallet"`
	InitialMargin    string `json:"initialMargin"`
	MaintMargin      string `json:"maintMargin"`
	UpdateTime       int64  `json:"updateTime"`
}

func (av assetView) rest() restAsset {
	return restAsset{
		Asset: av.name, WalletBalance: fmtMoney(av.wallet), UnrealizedProfit: fmtMoney(av.up),
		MarginBalance: fmtMoney(av.margin()), MaintMargin: fmtMoney(av.mm), InitialMargin: fmtMoney(av.im),
		PositionInitialMargin: fmtMoney(av.im), OpenOrderInitialMargin: fmtMoney(0),
		CrossWalletBalance: fmtMoney(av.wallet), CrossUnPnl: fmtMoney(av.up),
		AvailableBalance: fmtMoney(av.available()), MaxWithdrawAmount: fmtMoney(av.maxWithdraw()),
		UpdateTime: av.updateTime,
	}
}

// handleAccount answers GET /fapi/v3/account as in single-asset mode: the
// totals are those of USDT; assets lists every asset of the account;
// positions only the non-zero ones.
func (s *Server) handleAccount(w http.ResponseWriter, a *account, _ url.Values) {
	s.acctMu.Lock()
	v := s.viewLocked(a, s.nowMs())
	s.acctMu.Unlock()
	u := v.asset("USDT")
	out := restAccount{
		TotalInitialMargin: fmtMoney(u.im), TotalMaintMargin: fmtMoney(u.mm),
		TotalWalletBalance: fmtMoney(u.wallet), TotalUnrealizedProfit: fmtMoney(u.up),
		TotalMarginBalance: fmtMoney(u.margin()), TotalPositionInitialMargin: fmtMoney(u.im),
		TotalOpenOrderInitialMargin: fmtMoney(0), TotalCrossWalletBalance: fmtMoney(u.wallet),
		TotalCrossUnPnl: fmtMoney(u.up), AvailableBalance: fmtMoney(u.available()),
		MaxWithdrawAmount: fmtMoney(u.maxWithdraw()),
		Assets:            []restAsset{}, Positions: []restAccountPosition{},
	}
	for _, av := range v.assets {
		out.Assets = append(out.Assets, av.rest())
	}
	for _, pv := range v.positions {
		if pv.amt == 0 {
			continue
		}
		out.Positions = append(out.Positions, restAccountPosition{
			Symbol: pv.sy.name, PositionSide: "BOTH", PositionAmt: pv.sy.qty(pv.amt),
			UnrealizedProfit: fmtMoney(pv.up), IsolatedMargin: fmtMoney(0), Notional: fmtMoney(pv.notional),
			IsolatedWallet: "0", InitialMargin: fmtMoney(pv.im), MaintMargin: fmtMoney(pv.mm),
			UpdateTime: pv.updateTime,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /fapi/v3/positionRisk.

type restPositionRisk struct {
	Symbol                 string `json:"symbol"`
	PositionSide           string `json:"positionSide"`
	PositionAmt            string `json:"positionAmt"`
	EntryPrice             string `json:"entryPrice"`
	BreakEvenPrice         string `json:"breakEvenPrice"`
	MarkPrice              string `json:"markPrice"`
	UnRealizedProfit       string `json:"unRealizedProfit"`
	LiquidationPrice       string `json:"liquidationPrice"`
	IsolatedMargin         string `json:"isolatedMargin"`
	Notional               string `json:"notional"`
	MarginAsset            string `json:"marginAsset"`
	IsolatedWallet         string `json:"isolatedWallet"`
	InitialMargin          string `json:"initialMargin"`
	MaintMargin            string `json:"maintMargin"`
	PositionInitialMargin  string `json:"positionInitialMargin"`
	OpenOrderInitialMargin string `json:"openOrderInitialMargin"`
	Adl                    int    `json:"adl"`
	BidNotional            string `json:"bidNotional"`
	AskNotional            string `json:"askNotional"`
	UpdateTime             int64  `json:"updateTime"`
}

// handlePositionRisk lists the non-zero positions, or with symbol= that
// symbol's position, flat or not.
func (s *Server) handlePositionRisk(w http.ResponseWriter, a *account, p url.Values) {
	name := p.Get("symbol")
	var only *symbol
	if name != "" {
		if only = s.byName[name]; only == nil {
			writeAPIError(w, badRequest(-1121, "Invalid symbol."))
			return
		}
	}
	s.acctMu.Lock()
	simNow := s.nowMs()
	v := s.viewLocked(a, simNow)
	var flat posView
	if only != nil && a.positions[only.name] == nil {
		flat = viewPosition(&position{sy: only}, s.price(only, simNow))
	}
	s.acctMu.Unlock()
	out := []restPositionRisk{}
	add := func(pv posView) {
		adl := 0
		if pv.amt != 0 {
			adl = 1
		}
		out = append(out, restPositionRisk{
			Symbol: pv.sy.name, PositionSide: "BOTH", PositionAmt: pv.sy.qty(pv.amt),
			EntryPrice: pv.entry(), BreakEvenPrice: pv.breakEven(), MarkPrice: pv.markPrice(),
			UnRealizedProfit: fmtMoney(pv.up), LiquidationPrice: pv.liquidation(v.asset(pv.sy.quote)),
			IsolatedMargin: fmtMoney(0), Notional: fmtMoney(pv.notional), MarginAsset: pv.sy.quote,
			IsolatedWallet: "0", InitialMargin: fmtMoney(pv.im), MaintMargin: fmtMoney(pv.mm),
			PositionInitialMargin: fmtMoney(pv.im), OpenOrderInitialMargin: fmtMoney(0), Adl: adl,
			BidNotional: "0", AskNotional: "0", UpdateTime: pv.updateTime,
		})
	}
	if flat.sy != nil {
		add(flat)
	}
	for _, pv := range v.positions {
		if (only == nil && pv.amt != 0) || (only != nil && pv.sy == only) {
			add(pv)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
