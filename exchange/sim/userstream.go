package sim

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// listenKeys are the user data stream keys. An account has at most one
// live key. Their lock is a leaf.
type listenKeys struct {
	mu     sync.Mutex
	byKey  map[string]*listenKey
	byAcct map[*account]*listenKey
}

type listenKey struct {
	key     string
	acct    *account
	expires time.Time // real time
	timer   *time.Timer
}

func (k *listenKeys) init() {
	k.byKey = map[string]*listenKey{}
	k.byAcct = map[*account]*listenKey{}
}

var errNoListenKey = badRequest(-1125, "This listenKey does not exist.")

// valid reports whether key is a live listenKey.
func (k *listenKeys) valid(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	lk := k.byKey[key]
	return lk != nil && time.Now().Before(lk.expires)
}

// active returns a's live key, or "".
func (k *listenKeys) active(a *account) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if lk := k.byAcct[a]; lk != nil && time.Now().Before(lk.expires) {
		return lk.key
	}
	return ""
}

// startListenKey returns a's live key, extended, or a new one.
func (s *Server) startListenKey(a *account) string {
	k := &s.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	ttl := s.cfg.ListenKeyTTL
	if lk := k.byAcct[a]; lk != nil && time.Now().Before(lk.expires) {
		lk.expires = time.Now().Add(ttl)
		lk.timer.Reset(ttl)
		return lk.key
	}
	lk := &listenKey{key: randomID(64), acct: a, expires: time.Now().Add(ttl)}
	lk.timer = time.AfterFunc(ttl, func() { s.expireListenKey(lk, false) })
	k.byKey[lk.key] = lk
	k.byAcct[a] = lk
	return lk.key
}

// keepAliveListenKey extends a's live key; key, when given, must be it.
func (s *Server) keepAliveListenKey(a *account, key string) (string, *apiError) {
	k := &s.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	lk := k.byAcct[a]
	if lk == nil || !time.Now().Before(lk.expires) || (key != "" && key != lk.key) {
		return "", errNoListenKey
	}
	lk.expires = time.Now().Add(s.cfg.ListenKeyTTL)
	lk.timer.Reset(s.cfg.ListenKeyTTL)
	return lk.key, nil
}

// closeListenKey invalidates a's live key (key, when given, must be it).
// Connections on it stop receiving user data; no listenKeyExpired is sent.
func (s *Server) closeListenKey(a *account, key string) *apiError {
	k := &s.keys
	k.mu.Lock()
	lk := k.byAcct[a]
	if lk != nil && key != "" && key != lk.key {
		k.mu.Unlock()
		return errNoListenKey
	}
	if lk != nil {
		k.remove(lk)
	}
	k.mu.Unlock()
	if lk != nil {
		s.dropUserTopic(lk.key, false)
	}
	return nil
}

// remove forgets lk; the caller holds mu.
func (k *listenKeys) remove(lk *listenKey) {
	lk.timer.Stop()
	delete(k.byKey, lk.key)
	if k.byAcct[lk.acct] == lk {
		delete(k.byAcct, lk.acct)
	}
}

// expireListenKey expires lk (now when force is set, else only if its
// time has come: a keepalive may have moved it) and tells every connection
// on it. It reports whether lk expired.
func (s *Server) expireListenKey(lk *listenKey, force bool) bool {
	k := &s.keys
	k.mu.Lock()
	if k.byKey[lk.key] != lk {
		k.mu.Unlock()
		return false // gone already
	}
	if !force {
		if d := time.Until(lk.expires); d > 0 {
			lk.timer.Reset(d) // extended meanwhile
			k.mu.Unlock()
			return false
		}
	}
	k.remove(lk)
	k.mu.Unlock()
	s.dropUserTopic(lk.key, true)
	return true
}

// ExpireListenKey expires a listenKey now, as if its 60 minutes had
// passed: every connection on it receives listenKeyExpired, then no more
// user data; keepalives answer -1125. Unknown keys are ignored.
func (s *Server) ExpireListenKey(key string) { s.expireKey(key) }

func (s *Server) expireKey(key string) bool {
	s.keys.mu.Lock()
	lk := s.keys.byKey[key]
	s.keys.mu.Unlock()
	return lk != nil && s.expireListenKey(lk, true)
}

type wsListenKeyExpired struct {
	Event     string `json:"e"`
	Time      string `json:"E"` // a string, as Binance sends it here
	ListenKey string `json:"listenKey"`
}

// dropUserTopic stops delivering key's user data, after sending
// listenKeyExpired to every connection on it when expired is set.
func (s *Server) dropUserTopic(key string, expired bool) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	tp := s.hub.topics[key]
	if tp == nil || tp.kind != kindUser {
		return
	}
	if expired {
		now := time.Now().UnixMilli()
		m := newMsg(key, "", now, wsListenKeyExpired{
			Event: "listenKeyExpired", Time: strconv.FormatInt(now, 10), ListenKey: key,
		})
		f := s.fault.snapshot()
		for c := range tp.subs {
			c.deliver(m, f)
		}
	}
	delete(s.hub.topics, key)
}

// User data payloads, with Binance's field letters in Binance's order.

type wsOrderUpdate struct {
	Event    string  `json:"e"`
	Time     int64   `json:"E"`
	Transact int64   `json:"T"`
	Order    wsOrder `json:"o"`
}

type wsOrder struct {
	Symbol          string `json:"s"`
	ClientOrderID   string `json:"c"`
	Side            string `json:"S"`
	Type            string `json:"o"`
	TimeInForce     string `json:"f"`
	OrigQty         string `json:"q"`
	Price           string `json:"p"`
	AvgPrice        string `json:"ap"`
	StopPrice       string `json:"sp"`
	ExecType        string `json:"x"`
	Status          string `json:"X"`
	OrderID         int64  `json:"i"`
	LastQty         string `json:"l"`
	CumQty          string `json:"z"`
	LastPrice       string `json:"L"`
	CommissionAsset string `json:"N,omitempty"` // not pushed without commission
	Commission      string `json:"n,omitempty"`
	TradeTime       int64  `json:"T"`
	TradeID         int64  `json:"t"`
	BidNotional     string `json:"b"`
	AskNotional     string `json:"a"`
	Maker           bool   `json:"m"`
	ReduceOnly      bool   `json:"R"`
	WorkingType     string `json:"wt"`
	OrigType        string `json:"ot"`
	PositionSide    string `json:"ps"`
	ClosePosition   bool   `json:"cp"`
	RealizedProfit  string `json:"rp"`
	PriceProtect    bool   `json:"pP"`
	SI              int64  `json:"si"`
	SS              int64  `json:"ss"`
	STPMode         string `json:"V"`
	PriceMatch      string `json:"pm"`
	GoodTillDate    int64  `json:"gtd"`
}

type wsAccountUpdate struct {
	Event    string        `json:"e"`
	Time     int64         `json:"E"`
	Transact int64         `json:"T"`
	Account  wsAccountData `json:"a"`
}

type wsAccountData struct {
	Reason    string       `json:"m"`
	Balances  []wsBalance  `json:"B"`
	Positions []wsPosition `json:"P"`
}

type wsBalance struct {
	Asset         string `json:"a"`
	WalletBalance string `json:"wb"`
	CrossWallet   string `json:"cw"`
	BalanceChange string `json:"bc"`
}

type wsPosition struct {
	Symbol         string `json:"s"`
	Amount         string `json:"pa"`
	EntryPrice     string `json:"ep"`
	BreakEven      string `json:"bep"`
	CumRealized    string `json:"cr"`
	Unrealized     string `json:"up"`
	MarginType     string `json:"mt"`
	IsolatedWallet string `json:"iw"`
	PositionSide   string `json:"ps"`
}

const (
	evOrderUpdate   = "ORDER_TRADE_UPDATE"
	evAccountUpdate = "ACCOUNT_UPDATE"
)

// pushFill sends a fill's user data to the connections on a's live key:
// ORDER_TRADE_UPDATE NEW, ORDER_TRADE_UPDATE TRADE/FILLED, then
// ACCOUNT_UPDATE with the margin asset and the one position that changed.
// The caller holds acctMu, which keeps an account's events in order.
func (s *Server) pushFill(a *account, f fill, pv posView, bal assetBal) {
	key := s.keys.active(a)
	if key == "" {
		return
	}
	sy, o := f.sy, f.order
	base := wsOrder{
		Symbol: sy.name, ClientOrderID: o.ClientOrderID, Side: o.Side, Type: o.Type,
		TimeInForce: o.TimeInForce, OrigQty: o.OrigQty, Price: "0", AvgPrice: "0", StopPrice: "0",
		ExecType: "NEW", Status: "NEW", OrderID: o.OrderID, LastQty: "0", CumQty: "0", LastPrice: "0",
		TradeTime: f.at, BidNotional: "0", AskNotional: "0", ReduceOnly: o.ReduceOnly,
		WorkingType: o.WorkingType, OrigType: o.OrigType, PositionSide: o.PositionSide,
		RealizedProfit: "0", STPMode: o.SelfTradePreventionMode, PriceMatch: o.PriceMatch,
	}
	trade := base
	trade.AvgPrice, trade.ExecType, trade.Status = sy.px(f.price), "TRADE", "FILLED"
	trade.LastQty, trade.CumQty, trade.LastPrice = o.ExecutedQty, o.ExecutedQty, sy.px(f.price)
	trade.CommissionAsset, trade.Commission = sy.quote, fmtMoney(f.commission)
	trade.TradeID, trade.RealizedProfit = f.tradeID, fmtMoney(f.realized)
	acct := wsAccountUpdate{
		Event: evAccountUpdate, Time: f.at, Transact: f.at,
		Account: wsAccountData{
			Reason: "ORDER",
			Balances: []wsBalance{{
				Asset: sy.quote, WalletBalance: fmtMoney(bal.wallet), CrossWallet: fmtMoney(bal.wallet), BalanceChange: "0",
			}},
			Positions: []wsPosition{{
				Symbol: sy.name, Amount: sy.qty(pv.amt), EntryPrice: pv.entry(), BreakEven: pv.breakEven(),
				CumRealized: fmtMoney(pv.realized), Unrealized: fmtMoney(pv.up), MarginType: "cross",
				IsolatedWallet: "0", PositionSide: "BOTH",
			}},
		},
	}
	s.publishUser(key, evOrderUpdate, f.at, wsOrderUpdate{Event: evOrderUpdate, Time: f.at, Transact: f.at, Order: base})
	s.publishUser(key, evOrderUpdate, f.at, wsOrderUpdate{Event: evOrderUpdate, Time: f.at, Transact: f.at, Order: trade})
	s.publishUser(key, evAccountUpdate, f.at, acct)
}

// publishUser delivers one user event to the connections on key that
// want its type.
func (s *Server) publishUser(key, event string, t int64, payload any) {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	tp := s.hub.topics[key]
	if tp == nil || tp.kind != kindUser {
		return
	}
	m := newMsg(key, "", t, payload)
	f := s.fault.snapshot()
	for c := range tp.subs {
		if c.wants(key, event) {
			c.deliver(m, f)
		}
	}
}

// wants reports whether c takes event on key: the events= filter it
// connected with, if any.
func (c *client) wants(key, event string) bool {
	set, ok := c.events[key]
	return !ok || set[event]
}

// servePrivate serves /private/ws and /private/stream: listenKey=<k>
// (repeatable) subscribes to that user data stream, each with the event
// types of the events= at the same position (ORDER_TRADE_UPDATE/
// ACCOUNT_UPDATE; all when absent); an unknown or expired key is refused
// with HTTP 400 -1125 before the upgrade. streams= (combined only) and
// SUBSCRIBE with a listenKey as the stream name work too.
func (s *Server) servePrivate(w http.ResponseWriter, r *http.Request, combined bool) {
	q := r.URL.Query()
	var initial []string
	if combined {
		initial = splitStreams(q.Get("streams"))
	}
	keys, evs := q["listenKey"], q["events"]
	var events map[string]map[string]bool
	for i, key := range keys {
		if !s.keys.valid(key) {
			writeAPIError(w, errNoListenKey)
			return
		}
		initial = append(initial, key)
		if i < len(evs) && evs[i] != "" {
			if events == nil {
				events = map[string]map[string]bool{}
			}
			set := map[string]bool{}
			for _, e := range strings.FieldsFunc(evs[i], func(r rune) bool { return r == '/' || r == ',' }) {
				set[e] = true
			}
			events[key] = set
		}
	}
	s.serveWS(w, r, routePrivate, combined, initial, events)
}
