package sim

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/tradecache/tradecache/exchange"
)

// Wire payloads, with Binance's field letters in Binance's order.

type wsKline struct {
	OpenTime    int64  `json:"t"`
	CloseTime   int64  `json:"T"`
	Symbol      string `json:"s"`
	Interval    string `json:"i"`
	FirstID     int64  `json:"f"`
	LastID      int64  `json:"L"`
	Open        string `json:"o"`
	Close       string `json:"c"`
	High        string `json:"h"`
	Low         string `json:"l"`
	Volume      string `json:"v"`
	Trades      int64  `json:"n"`
	Closed      bool   `json:"x"`
	QuoteVolume string `json:"q"`
	TakerBase   string `json:"V"`
	TakerQuote  string `json:"Q"`
	Ignore      string `json:"B"`
}

// wsKlineEvent has no ps/st: the kline is the one payload without them.
type wsKlineEvent struct {
	Event  string  `json:"e"`
	Time   int64   `json:"E"`
	Symbol string  `json:"s"`
	K      wsKline `json:"k"`
}

type wsTicker struct {
	Event       string `json:"e"`
	Time        int64  `json:"E"`
	Symbol      string `json:"s"`
	Pair        string `json:"ps"`
	Change      string `json:"p"`
	ChangePct   string `json:"P"`
	WeightedAvg string `json:"w"`
	Last        string `json:"c"`
	LastQty     string `json:"Q"`
	Open        string `json:"o"`
	High        string `json:"h"`
	Low         string `json:"l"`
	Volume      string `json:"v"`
	QuoteVolume string `json:"q"`
	OpenTime    int64  `json:"O"`
	CloseTime   int64  `json:"C"`
	FirstID     int64  `json:"F"`
	LastID      int64  `json:"L"`
	Count       int64  `json:"n"`
	SymbolType  int    `json:"st"`
}

type wsBook struct {
	Event      string `json:"e"`
	UpdateID   int64  `json:"u"`
	Symbol     string `json:"s"`
	Pair       string `json:"ps"`
	Bid        string `json:"b"`
	BidQty     string `json:"B"`
	Ask        string `json:"a"`
	AskQty     string `json:"A"`
	Transact   int64  `json:"T"`
	Time       int64  `json:"E"`
	SymbolType int    `json:"st"`
}

// klineOut is a kline with the trade ids REST does not carry.
type klineOut struct {
	exchange.Kline
	firstID, lastID int64
}

func (sy *symbol) klineAt(iv interval, open, now int64) klineOut {
	b, closed := sy.kline(iv, open, now)
	return sy.klineOf(iv, open, b, closed)
}

// klineOf is bar b of iv opening at open.
func (sy *symbol) klineOf(iv interval, open int64, b bar, closed bool) klineOut {
	return klineOut{
		Kline: exchange.Kline{
			Symbol:        sy.name,
			Interval:      iv.name,
			OpenTime:      open,
			CloseTime:     iv.next(open) - 1,
			Open:          sy.px(b.open),
			High:          sy.px(b.high),
			Low:           sy.px(b.low),
			Close:         sy.px(b.close),
			Volume:        sy.qty(b.vol),
			QuoteVolume:   sy.quoteAmt(b.quote),
			Trades:        b.trades,
			TakerBuyBase:  sy.qty(b.tbVol),
			TakerBuyQuote: sy.quoteAmt(b.tbQuote),
			Closed:        closed,
		},
		firstID: b.firstID,
		lastID:  b.lastID,
	}
}

func (k klineOut) event(eventTime int64) wsKlineEvent {
	return wsKlineEvent{
		Event: "kline", Time: eventTime, Symbol: k.Symbol,
		K: wsKline{
			OpenTime: k.OpenTime, CloseTime: k.CloseTime, Symbol: k.Symbol, Interval: k.Interval,
			FirstID: k.firstID, LastID: k.lastID,
			Open: k.Open, Close: k.Close, High: k.High, Low: k.Low, Volume: k.Volume,
			Trades: k.Trades, Closed: k.Closed, QuoteVolume: k.QuoteVolume,
			TakerBase: k.TakerBuyBase, TakerQuote: k.TakerBuyQuote, Ignore: "0",
		},
	}
}

// restRow is the 12-element array of GET /fapi/v1/klines.
func (k klineOut) restRow() []any {
	return []any{k.OpenTime, k.Open, k.High, k.Low, k.Close, k.Volume, k.CloseTime,
		k.QuoteVolume, k.Trades, k.TakerBuyBase, k.TakerBuyQuote, "0"}
}

// ticker24h is the rolling 24 h statistics at now.
func (sy *symbol) ticker24h(now int64) exchange.Ticker24h {
	b := sy.rolling24h(now)
	wavg := b.close
	if b.vol > 0 {
		wavg = b.quote / b.vol
	}
	return exchange.Ticker24h{
		Symbol:             sy.name,
		PriceChange:        sy.px(b.close - b.open),
		PriceChangePercent: fmtUnits((b.close-b.open)*100_000/b.open, 3),
		WeightedAvgPrice:   sy.px(wavg),
		LastPrice:          sy.px(b.close),
		LastQty:            sy.qty(sy.lastQty(now)),
		OpenPrice:          sy.px(b.open),
		HighPrice:          sy.px(b.high),
		LowPrice:           sy.px(b.low),
		Volume:             sy.qty(b.vol),
		QuoteVolume:        sy.quoteAmt(b.quote),
		OpenTime:           now - dayMs,
		CloseTime:          now,
		FirstID:            b.firstID,
		LastID:             b.lastID,
		Count:              b.trades,
	}
}

func tickerEvent(t exchange.Ticker24h, now int64) wsTicker {
	return wsTicker{
		Event: "24hrTicker", Time: now, Symbol: t.Symbol, Pair: t.Symbol,
		Change: t.PriceChange, ChangePct: t.PriceChangePercent, WeightedAvg: t.WeightedAvgPrice,
		Last: t.LastPrice, LastQty: t.LastQty, Open: t.OpenPrice, High: t.HighPrice, Low: t.LowPrice,
		Volume: t.Volume, QuoteVolume: t.QuoteVolume, OpenTime: t.OpenTime, CloseTime: t.CloseTime,
		FirstID: t.FirstID, LastID: t.LastID, Count: t.Count, SymbolType: 1,
	}
}

func (sy *symbol) bookEvent(now int64) wsBook {
	bid, bq, ask, aq := sy.book(now)
	return wsBook{
		Event: "bookTicker", UpdateID: now*100 + int64(sy.idx%100), Symbol: sy.name, Pair: sy.name,
		Bid: sy.px(bid), BidQty: sy.qty(bq), Ask: sy.px(ask), AskQty: sy.qty(aq),
		Transact: now - 1, Time: now, SymbolType: 1,
	}
}

// outMsg is one stream message, encoded lazily per variant and mode. It is
// used by one goroutine (Run's).
type outMsg struct {
	stream string
	symbol string
	time   int64
	data   []byte
	cache  [variants][2][]byte
}

const (
	variantPlain        = iota
	variantExtraFields  // unknown fault: the payload with unknown fields added
	variantUnknownEvent // unknown fault: an event of an unknown type
	variants
)

func newMsg(stream, symbol string, t int64, payload any) *outMsg {
	data, err := json.Marshal(payload)
	if err != nil {
		panic(err) // our own types: cannot happen
	}
	return &outMsg{stream: stream, symbol: symbol, time: t, data: data}
}

func envelope(stream string, data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + len(stream) + 24)
	b.WriteString(`{"stream":`)
	name, _ := json.Marshal(stream)
	b.Write(name)
	b.WriteString(`,"data":`)
	b.Write(data)
	b.WriteByte('}')
	return b.Bytes()
}

func (m *outMsg) frame(combined bool, variant int) []byte {
	ci := 0
	if combined {
		ci = 1
	}
	if f := m.cache[variant][ci]; f != nil {
		return f
	}
	data := m.data
	switch variant {
	case variantExtraFields:
		// Unknown fields in front of the first object's fields.
		if i := bytes.IndexByte(data, '{'); i >= 0 {
			extra := `"zUnknown":"sim","zNested":{"a":[1,2.5,null],"b":true},`
			data = append(append(append([]byte{}, data[:i+1]...), extra...), data[i+1:]...)
		}
	case variantUnknownEvent:
		data = []byte(`{"e":"simUnknownEvent","E":` + strconv.FormatInt(m.time, 10) +
			`,"s":"` + m.symbol + `","zPayload":{"k":[1,2,3],"x":"?"}}`)
	}
	f := data
	if combined {
		f = envelope(m.stream, data)
	}
	m.cache[variant][ci] = f
	return f
}

// malformed returns the n-th malformed frame following m: truncated JSON,
// wrong field types, not JSON at all, and the wrong JSON type in turn.
func malformed(m *outMsg, combined bool, n uint64) []byte {
	var data []byte
	switch n % 4 {
	case 1:
		f := m.frame(combined, variantPlain)
		return append([]byte{}, f[:len(f)/2]...)
	case 2:
		data = []byte(`{"e":42,"E":"` + strconv.FormatInt(m.time, 10) + `","s":false,"k":[],"ps":{},"u":"1","x":"yes"}`)
	case 3:
		return []byte(`<html><body>502 Bad Gateway</body></html>`)
	default:
		data = []byte(`"unexpected string payload"`)
	}
	if combined {
		return envelope(m.stream, data)
	}
	return data
}

// The market clock. Each tick runs on Run's goroutine.

// tickKlines publishes, for every subscribed kline stream, the final state
// (x:true) of each bar that closed in (prev, now], in order, then the open
// bar at now. Every bar closes in exactly one tick, so every subscriber
// sees each close once however fast the clock runs. It returns now.
func (s *Server) tickKlines(prev int64) int64 {
	now := s.nowMs()
	f := s.fault.snapshot()
	if f.mode == FaultStall {
		return now
	}
	for _, t := range s.topicsOf(kindKline) {
		iv, sy := t.iv, t.sym
		o := iv.open(prev)
		for n := iv.next(o); n <= now; o, n = n, iv.next(n) {
			k := sy.klineAt(iv, o, now)
			s.publish(t, newMsg(t.name, sy.name, n, k.event(n)), f)
		}
		k := sy.klineAt(iv, o, now)
		s.publish(t, newMsg(t.name, sy.name, now, k.event(now)), f)
	}
	return now
}

func (s *Server) tickTickers() {
	now := s.nowMs()
	f := s.fault.snapshot()
	if f.mode == FaultStall {
		return
	}
	for _, t := range s.topicsOf(kindTicker) {
		ev := tickerEvent(t.sym.ticker24h(now), now)
		s.publish(t, newMsg(t.name, t.sym.name, now, ev), f)
	}
}

func (s *Server) tickTickerArr() {
	now := s.nowMs()
	f := s.fault.snapshot()
	ts := s.topicsOf(kindTickerArr)
	if f.mode == FaultStall || len(ts) == 0 {
		return
	}
	arr := make([]wsTicker, 0, len(s.syms))
	for _, sy := range s.syms {
		arr = append(arr, tickerEvent(sy.ticker24h(now), now))
	}
	m := newMsg(ts[0].name, "", now, arr)
	for _, t := range ts {
		s.publish(t, m, f)
	}
}

func (s *Server) tickBook() {
	now := s.nowMs()
	f := s.fault.snapshot()
	if f.mode == FaultStall {
		return
	}
	books := map[*symbol]wsBook{}
	get := func(sy *symbol) wsBook {
		b, ok := books[sy]
		if !ok {
			b = sy.bookEvent(now)
			books[sy] = b
		}
		return b
	}
	for _, t := range s.topicsOf(kindBook) {
		s.publish(t, newMsg(t.name, t.sym.name, now, get(t.sym)), f)
	}
	for _, t := range s.topicsOf(kindBookAll) {
		for _, sy := range s.syms {
			s.publish(t, newMsg(t.name, sy.name, now, get(sy)), f)
		}
	}
}
