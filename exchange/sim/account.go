package sim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

// Account is a simulated futures account, reached by its API key.
type Account struct {
	APIKey    string
	APISecret string
	// Balances are the starting wallet balances by asset, as decimal
	// strings with at most 8 decimals (e.g. "USDT": "10000"), each at
	// most 1,000,000,000. A symbol's margin asset is its quote asset
	// (USDT or USDC): an account without it cannot open positions there.
	Balances map[string]string
}

// The account model. Amounts of money (balances, PnL, commissions,
// notionals, margins) are int64 in units of 10^-8 of the margin asset;
// prices and quantities keep the symbol's integer units, so a notional
// qty·price is exact (pricePrecision + quantityPrecision ≤ 8). Each
// position keeps its cost (the entry notional of what is open): the entry
// price is cost/|amount|, a partial close releases cost·closed/|amount|,
// rounded half away from zero to 10^-8, and realizes the difference with
// the exit notional. Nothing goes through floating point.
const (
	moneyDec = 8
	// commissionBp is the taker commission, in basis points of the
	// notional (0.04 %), charged on every fill in the margin asset.
	commissionBp = 4
	// leverage is every position's (cross) leverage: initial margin is
	// |notional|/leverage.
	leverage = 20
	// maintPerMille is the maintenance margin rate, in per mille of the
	// notional (0.4 %, BTCUSDT's first bracket), for every symbol.
	maintPerMille = 4
	// maxBalance bounds a configured balance (10^9 in money units).
	maxBalance = 1_000_000_000 * 100_000_000

	orderIDBase = 4_000_000_000
	tradeIDBase = 700_000_000
)

var pow10i = func() (v [19]int64) {
	v[0] = 1
	for i := 1; i < len(v); i++ {
		v[i] = v[i-1] * 10
	}
	return v
}()

// account is the state of one Account. Everything in it is guarded by
// Server.acctMu.
type account struct {
	apiKey    string
	secret    []byte
	assets    map[string]*assetBal
	positions map[string]*position // by symbol; kept once traded, even flat
}

type assetBal struct {
	wallet     int64 // money units
	updateTime int64 // real ms
}

// position is the one-way (BOTH) cross position of a symbol.
type position struct {
	sy         *symbol
	amt        int64 // signed, qty units
	cost       int64 // entry notional of |amt|, money units, ≥ 0
	realized   int64 // accumulated realized PnL before fees ("cr")
	updateTime int64 // real ms
}

var assetRE = regexp.MustCompile(`^[A-Z0-9]{2,10}$`)

func newAccounts(cfg []Account, nowMs int64) (map[string]*account, error) {
	out := map[string]*account{}
	for i, a := range cfg {
		if a.APIKey == "" || a.APISecret == "" {
			return nil, fmt.Errorf("sim: account %d: empty API key or secret", i)
		}
		if _, dup := out[a.APIKey]; dup {
			return nil, fmt.Errorf("sim: duplicate API key %q", a.APIKey)
		}
		acct := &account{
			apiKey:    a.APIKey,
			secret:    []byte(a.APISecret),
			assets:    map[string]*assetBal{},
			positions: map[string]*position{},
		}
		for asset, v := range a.Balances {
			if !assetRE.MatchString(asset) {
				return nil, fmt.Errorf("sim: account %q: invalid asset %q", a.APIKey, asset)
			}
			units, err := parseUnits(v, moneyDec)
			if err != nil || units > maxBalance {
				return nil, fmt.Errorf("sim: account %q: invalid %s balance %q (want a decimal from 0 to 1000000000, at most 8 decimals)", a.APIKey, asset, v)
			}
			acct.assets[asset] = &assetBal{wallet: units, updateTime: nowMs}
		}
		out[a.APIKey] = acct
	}
	return out, nil
}

var (
	errSyntax    = errors.New("not a decimal")
	errPrecision = errors.New("too many decimals")
)

// parseUnits parses a non-negative decimal ("12", "0.010") into units of
// 10^-dec. Non-zero digits beyond dec are errPrecision.
func parseUnits(v string, dec int) (int64, error) {
	intPart, frac, hasDot := strings.Cut(v, ".")
	if intPart == "" || (hasDot && frac == "") || !digits(intPart) || !digits(frac) {
		return 0, errSyntax
	}
	if len(frac) > dec {
		if strings.TrimRight(frac[dec:], "0") != "" {
			return 0, errPrecision
		}
		frac = frac[:dec]
	}
	frac += strings.Repeat("0", dec-len(frac))
	all := strings.TrimLeft(intPart+frac, "0")
	if all == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(all, 10, 64)
	if err != nil {
		return 0, errSyntax
	}
	return n, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Exact arithmetic helpers.

var bigOne = big.NewInt(1)

// divRound returns n/d rounded half away from zero.
func divRound(n, d *big.Int) int64 {
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	r.Abs(r).Lsh(r, 1)
	if r.Cmp(new(big.Int).Abs(d)) >= 0 {
		if n.Sign()*d.Sign() < 0 {
			q.Sub(q, bigOne)
		} else {
			q.Add(q, bigOne)
		}
	}
	return q.Int64()
}

// mulDiv returns the product of num divided by the product of den,
// rounded half away from zero.
func mulDiv(num []int64, den ...int64) int64 {
	n, d := big.NewInt(1), big.NewInt(1)
	for _, v := range num {
		n.Mul(n, big.NewInt(v))
	}
	for _, v := range den {
		d.Mul(d, big.NewInt(v))
	}
	return divRound(n, d)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int64) int64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// notional is qty·price in money units (both in the symbol's units).
func (sy *symbol) notional(qtyU, pxU int64) int64 {
	return qtyU * pxU * pow10i[moneyDec-sy.spec.pp-sy.spec.qp]
}

func fmtMoney(v int64) string { return fmtUnits(v, moneyDec) }

// fmtPrice8 formats a price in units of 10^-8, without trailing zeros
// beyond minDec decimals.
func fmtPrice8(v int64, minDec int) string {
	s := fmtUnits(v, moneyDec)
	dot := strings.IndexByte(s, '.')
	end := len(s)
	for end > dot+1+minDec && s[end-1] == '0' {
		end--
	}
	if end == dot+1 {
		end = dot
	}
	return s[:end]
}

// posView is a position valued at a mark price.
type posView struct {
	position
	mark     int64 // price units
	up       int64 // unrealized PnL
	notional int64 // signed amt·mark
	im, mm   int64 // initial and maintenance margin
}

func viewPosition(p *position, mark int64) posView {
	v := posView{position: *p, mark: mark}
	if p.amt != 0 {
		n := p.sy.notional(abs(p.amt), mark)
		v.notional = sign(p.amt) * n
		v.up = sign(p.amt) * (n - p.cost)
		v.im = mulDiv([]int64{n}, leverage)
		v.mm = mulDiv([]int64{n, maintPerMille}, 1000)
	}
	return v
}

func (v posView) entry() string {
	if v.amt == 0 {
		return fmtPrice8(0, v.sy.spec.pp)
	}
	return fmtPrice8(mulDiv([]int64{v.cost, pow10i[v.sy.spec.qp]}, abs(v.amt)), v.sy.spec.pp)
}

// breakEven is the entry price moved by one taker commission: the exit
// price at which a close pays its commission back.
func (v posView) breakEven() string {
	if v.amt == 0 {
		return fmtPrice8(0, v.sy.spec.pp)
	}
	b := mulDiv([]int64{v.cost, pow10i[v.sy.spec.qp], 10000 + sign(v.amt)*commissionBp}, abs(v.amt), 10000)
	return fmtPrice8(b, v.sy.spec.pp)
}

func (v posView) markPrice() string {
	return fmtMoney(v.mark * pow10i[moneyDec-v.sy.spec.pp])
}

// liquidation is the mark price at which the account's margin balance in
// the position's asset would equal its maintenance margin, the other
// positions staying at their marks (cross margin, one-way); "0" when
// there is none.
func (v posView) liquidation(a assetView) string {
	if v.amt == 0 {
		return "0"
	}
	// With the others fixed: wallet + upOthers − mmOthers + s·(Q·LP − cost)
	// = Q·LP·mmr, so Q·LP·(s − mmr) = mmOthers − upOthers − wallet + s·cost.
	s := sign(v.amt)
	rest := a.wallet + (a.up - v.up) - (a.mm - v.mm)
	num := s*v.cost - rest // money units
	den := s*1000 - maintPerMille
	// In 10^-8 units, with Q = |amt|·10^-qp and mmr = maintPerMille/1000:
	// LP = num·10^qp·1000 / (|amt|·den).
	lp := mulDiv([]int64{num, pow10i[v.sy.spec.qp], 1000}, abs(v.amt), den)
	if lp <= 0 {
		return "0"
	}
	return fmtMoney(lp)
}

// assetView is an asset of an account, valued at the marks.
type assetView struct {
	name       string
	wallet     int64
	up, im, mm int64
	updateTime int64
}

func (a assetView) margin() int64    { return a.wallet + a.up }
func (a assetView) available() int64 { return max(a.margin()-a.im, 0) }
func (a assetView) maxWithdraw() int64 {
	return max(min(a.wallet, a.available()), 0)
}

// acctView is an account valued at the marks.
type acctView struct {
	assets    []assetView // by name
	byAsset   map[string]int
	positions []posView // every traded symbol, in listing order
}

// price is the trade and mark price of sy at sim time simMs: the last
// trade price of the market model, unless a test pinned it.
func (s *Server) price(sy *symbol, simMs int64) int64 {
	s.pinMu.Lock()
	p, ok := s.pinned[sy.name]
	s.pinMu.Unlock()
	if ok {
		return p
	}
	return sy.lastPrice(simMs)
}

// pinPrice fixes the fill and mark price of a symbol (tests only).
func (s *Server) pinPrice(symbol string, px int64) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	if s.pinned == nil {
		s.pinned = map[string]int64{}
	}
	s.pinned[symbol] = px
}

// viewLocked values a at sim time simMs; the caller holds acctMu.
func (s *Server) viewLocked(a *account, simMs int64) acctView {
	v := acctView{byAsset: map[string]int{}}
	names := make([]string, 0, len(a.assets))
	for n := range a.assets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v.byAsset[n] = len(v.assets)
		v.assets = append(v.assets, assetView{name: n, wallet: a.assets[n].wallet, updateTime: a.assets[n].updateTime})
	}
	for _, sy := range s.syms {
		p := a.positions[sy.name]
		if p == nil {
			continue
		}
		pv := viewPosition(p, s.price(sy, simMs))
		v.positions = append(v.positions, pv)
		if i, ok := v.byAsset[sy.quote]; ok {
			av := &v.assets[i]
			av.up += pv.up
			av.im += pv.im
			av.mm += pv.mm
		}
	}
	return v
}

func (v acctView) asset(name string) assetView {
	if i, ok := v.byAsset[name]; ok {
		return v.assets[i]
	}
	return assetView{name: name}
}

// Orders.

// Order is the answer to POST /fapi/v1/order: a MARKET order, filled.
type Order struct {
	ClientOrderID           string `json:"clientOrderId"`
	CumQty                  string `json:"cumQty"`
	CumQuote                string `json:"cumQuote"`
	ExecutedQty             string `json:"executedQty"`
	OrderID                 int64  `json:"orderId"`
	AvgPrice                string `json:"avgPrice"`
	OrigQty                 string `json:"origQty"`
	Price                   string `json:"price"`
	ReduceOnly              bool   `json:"reduceOnly"`
	Side                    string `json:"side"`
	PositionSide            string `json:"positionSide"`
	Status                  string `json:"status"`
	StopPrice               string `json:"stopPrice"`
	ClosePosition           bool   `json:"closePosition"`
	Symbol                  string `json:"symbol"`
	TimeInForce             string `json:"timeInForce"`
	Type                    string `json:"type"`
	OrigType                string `json:"origType"`
	UpdateTime              int64  `json:"updateTime"`
	WorkingType             string `json:"workingType"`
	PriceProtect            bool   `json:"priceProtect"`
	PriceMatch              string `json:"priceMatch"`
	SelfTradePreventionMode string `json:"selfTradePreventionMode"`
	GoodTillDate            int64  `json:"goodTillDate"`
}

// fill is what one filled order did, for its events.
type fill struct {
	order      Order
	sy         *symbol
	qty, price int64
	commission int64
	realized   int64
	tradeID    int64
	at         int64 // real ms
}

var (
	clientIDRE = regexp.MustCompile(`^[\.A-Z\:/a-z0-9_-]{1,36}$`)

	// Order types Binance knows but the sim does not fill.
	unsimulatedTypes = map[string]bool{
		"LIMIT": true, "STOP": true, "STOP_MARKET": true, "TAKE_PROFIT": true,
		"TAKE_PROFIT_MARKET": true, "TRAILING_STOP_MARKET": true,
	}
)

// orderReq is a validated new-order request.
type orderReq struct {
	sy         *symbol
	side       int64 // +1 BUY, −1 SELL
	sideName   string
	qty        int64
	reduceOnly bool
	clientID   string
}

func parseOrder(s *Server, p url.Values) (orderReq, *apiError) {
	var o orderReq
	name := p.Get("symbol")
	if name == "" {
		return o, mandatory("symbol")
	}
	if o.sy = s.byName[name]; o.sy == nil {
		return o, badRequest(-1121, "Invalid symbol.")
	}
	switch o.sideName = p.Get("side"); o.sideName {
	case "BUY":
		o.side = 1
	case "SELL":
		o.side = -1
	case "":
		return o, mandatory("side")
	default:
		return o, badRequest(-1117, "Invalid side.")
	}
	switch t := p.Get("type"); {
	case t == "MARKET":
	case t == "":
		return o, mandatory("type")
	case unsimulatedTypes[t]:
		return o, badRequest(-1020, "This operation is not supported. (sim: only MARKET orders are simulated, not "+t+")")
	default:
		return o, badRequest(-1116, "Invalid orderType.")
	}
	switch ps := p.Get("positionSide"); ps {
	case "", "BOTH":
	case "LONG", "SHORT":
		return o, badRequest(-4061, "Order's position side does not match user's setting.")
	default:
		return o, badRequest(-4060, "Invalid position side.")
	}
	switch ro := strings.ToLower(p.Get("reduceOnly")); ro {
	case "", "false":
	case "true":
		o.reduceOnly = true
	default:
		return o, badRequest(-1130, "Data sent for parameter 'reduceOnly' is not valid.")
	}
	for _, extra := range []string{"price", "stopPrice", "closePosition"} {
		if p.Has(extra) {
			return o, badRequest(-1106, fmt.Sprintf("Parameter '%s' sent when not required.", extra))
		}
	}
	switch rt := p.Get("newOrderRespType"); rt {
	case "", "ACK", "RESULT":
	default:
		return o, badRequest(-1136, "Invalid newOrderRespType.")
	}
	q := p.Get("quantity")
	if q == "" {
		return o, mandatory("quantity")
	}
	qty, err := parseUnits(q, o.sy.spec.qp)
	switch {
	case errors.Is(err, errPrecision):
		return o, badRequest(-1111, "Precision is over the maximum defined for this asset.")
	case err != nil:
		return o, badRequest(-1100, "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
	case qty == 0:
		return o, badRequest(-4003, "Quantity less than zero.")
	}
	if maxQ, _ := parseUnits(o.sy.spec.maxMktQty, o.sy.spec.qp); qty > maxQ {
		return o, badRequest(-4005, "Quantity greater than max quantity.")
	}
	o.qty = qty
	if o.clientID = p.Get("newClientOrderId"); o.clientID != "" && !clientIDRE.MatchString(o.clientID) {
		return o, badRequest(-4015, "Client order id is not valid.")
	}
	return o, nil
}

// newOrder validates and fills a MARKET order for a at the current price;
// REST and PlaceOrder both come here. It pushes the order's user events.
func (s *Server) newOrder(a *account, p url.Values) (Order, *apiError) {
	req, e := parseOrder(s, p)
	if e != nil {
		return Order{}, e
	}
	sy := req.sy
	minNotional, _ := parseUnits(sy.spec.minNotional, moneyDec)

	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	simNow, now := s.nowMs(), time.Now().UnixMilli()
	px := s.price(sy, simNow)
	old := position{sy: sy}
	if p := a.positions[sy.name]; p != nil {
		old = *p
	}
	held := abs(old.amt)
	reducing := old.amt != 0 && sign(old.amt) != req.side
	if req.reduceOnly && (!reducing || req.qty > held) {
		return Order{}, badRequest(-2022, "ReduceOnly Order is rejected.")
	}
	notional := sy.notional(req.qty, px)
	if !req.reduceOnly && notional < minNotional {
		return Order{}, badRequest(-4164, "Order's notional must be no smaller than "+sy.spec.minNotional+" (unless you choose reduce only)")
	}
	commission := mulDiv([]int64{notional, commissionBp}, 10000)

	next := old
	var realized int64
	if !reducing {
		next.amt += req.side * req.qty
		next.cost += notional
	} else {
		closed := min(req.qty, held)
		closedCost := old.cost
		if closed < held {
			closedCost = mulDiv([]int64{old.cost, closed}, held)
		}
		realized = sign(old.amt) * (sy.notional(closed, px) - closedCost)
		next.amt += req.side * req.qty
		next.cost -= closedCost
		if req.qty > held { // flipped: the rest opens at px
			next.cost = sy.notional(req.qty-held, px)
		}
		next.realized += realized
	}
	next.updateTime = now

	bal, hadBal := a.assets[sy.quote]
	if !hadBal {
		bal = &assetBal{}
	}
	prevPos, hadPos := a.positions[sy.name]
	oldBal := *bal
	opens := abs(next.amt) > held || sign(next.amt) == -sign(old.amt)
	// Apply, then check the margin of an order that opens exposure.
	a.positions[sy.name] = &next
	a.assets[sy.quote] = bal
	bal.wallet += realized - commission
	bal.updateTime = now
	if opens {
		if av := s.viewLocked(a, simNow).asset(sy.quote); av.margin()-av.im < 0 {
			*bal = oldBal
			if !hadBal {
				delete(a.assets, sy.quote)
			}
			if hadPos {
				a.positions[sy.name] = prevPos
			} else {
				delete(a.positions, sy.name)
			}
			return Order{}, badRequest(-2019, "Margin is insufficient.")
		}
	}

	id := orderIDBase + s.orderSeq.Add(1)
	clientID := req.clientID
	if clientID == "" {
		clientID = randomID(22)
	}
	f := fill{
		sy: sy, qty: req.qty, price: px, commission: commission, realized: realized,
		tradeID: tradeIDBase + s.tradeSeq.Add(1), at: now,
		order: Order{
			ClientOrderID: clientID,
			CumQty:        sy.qty(req.qty), CumQuote: sy.quoteAmt(req.qty * px), ExecutedQty: sy.qty(req.qty),
			OrderID: id, AvgPrice: sy.px(px), OrigQty: sy.qty(req.qty), Price: "0",
			ReduceOnly: req.reduceOnly, Side: req.sideName, PositionSide: "BOTH", Status: "FILLED",
			StopPrice: "0", Symbol: sy.name, TimeInForce: "GTC", Type: "MARKET", OrigType: "MARKET",
			UpdateTime: now, WorkingType: "CONTRACT_PRICE", PriceMatch: "NONE",
			SelfTradePreventionMode: "EXPIRE_MAKER",
		},
	}
	s.pushFill(a, f, viewPosition(&next, px), *bal)
	return f.order, nil
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomID returns n random alphanumerics (Binance-like listenKeys and
// generated client order ids).
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// accountFor returns the account of an API key.
func (s *Server) accountFor(apiKey string) (*account, *apiError) {
	if a := s.accounts[apiKey]; a != nil && apiKey != "" {
		return a, nil
	}
	return nil, &apiError{status: 401, Code: -2015, Msg: "Invalid API-key, IP, or permissions for action."}
}

// PlaceOrder places a MARKET order for the account of apiKey, as POST
// /fapi/v1/order with symbol, side (BUY or SELL), type=MARKET and quantity
// (a decimal string) would, user data events included. Errors are
// Binance's (code and message).
func (s *Server) PlaceOrder(apiKey, symbol, side, qty string) (Order, error) {
	a, e := s.accountFor(apiKey)
	if e != nil {
		return Order{}, e
	}
	o, e := s.newOrder(a, url.Values{"symbol": {symbol}, "side": {side}, "type": {"MARKET"}, "quantity": {qty}})
	if e != nil {
		return Order{}, e
	}
	return o, nil
}

// AccountSnapshot is an account as GET /fapi/v3/account and
// /fapi/v3/positionRisk show it now (same strings), in the shared
// vocabulary: every asset, and the non-zero positions valued at the
// current price.
type AccountSnapshot struct {
	Balances  []exchange.Balance
	Positions []exchange.Position
}

// Account returns a snapshot of the account of apiKey.
func (s *Server) Account(apiKey string) (AccountSnapshot, error) {
	a, e := s.accountFor(apiKey)
	if e != nil {
		return AccountSnapshot{}, e
	}
	s.acctMu.Lock()
	v := s.viewLocked(a, s.nowMs())
	s.acctMu.Unlock()
	var out AccountSnapshot
	for _, av := range v.assets {
		out.Balances = append(out.Balances, exchange.Balance{
			Asset: av.name, WalletBalance: fmtMoney(av.wallet), CrossWalletBalance: fmtMoney(av.wallet),
			AvailableBalance: fmtMoney(av.available()), UpdateTime: av.updateTime,
		})
	}
	for _, pv := range v.positions {
		if pv.amt == 0 {
			continue
		}
		out.Positions = append(out.Positions, exchange.Position{
			Symbol: pv.sy.name, PositionSide: "BOTH", PositionAmt: pv.sy.qty(pv.amt),
			EntryPrice: pv.entry(), BreakEvenPrice: pv.breakEven(), UnrealizedProfit: fmtMoney(pv.up),
			MarginType: "cross", IsolatedWallet: "0", UpdateTime: pv.updateTime,
		})
	}
	return out, nil
}

// accountState is the account side of the server.
type accountState struct {
	accounts map[string]*account // by API key; fixed at New
	// acctMu guards every account. Lock order: acctMu, then hub.mu, then
	// keys.mu; pinMu is a leaf.
	acctMu   sync.Mutex
	keys     listenKeys
	pinMu    sync.Mutex
	pinned   map[string]int64
	orderSeq atomic.Int64
	tradeSeq atomic.Int64
}
