package gateway

import (
	"encoding/json"
	"strings"

	"github.com/tradecache/tradecache/bus"
)

// marketSuffixes are the event names (after "<mode>.") of market data:
// a newer value makes an older one of the same stream useless.
var marketSuffixes = [...]string{".kline", ".ticker", ".book_ticker", ".tickers"}

// DefaultCoalesce is the default Config.Coalesce. Market data events —
// names ending in .kline, .ticker, .book_ticker or .tickers — coalesce by
// stream: event name, publisher, and the symbol ("s" or "symbol"), interval
// ("i" or "interval") and kline open time ("t") found at the top level of
// Data. The open time keeps a candle's final (closed) value from being
// replaced by the first update of the next candle. Every other event
// (logs, account, orders…) is not coalescable.
func DefaultCoalesce(ev bus.Event) (key string, ok bool) {
	market := false
	for _, s := range marketSuffixes {
		if strings.HasSuffix(ev.Name, s) {
			market = true
			break
		}
	}
	// An Opaque event's payload cannot be read, so its stream (symbol,
	// interval) is unknown: it is never replaced by another.
	if !market || ev.Opaque {
		return "", false
	}
	var p struct {
		S        string          `json:"s"`
		Symbol   string          `json:"symbol"`
		I        string          `json:"i"`
		Interval string          `json:"interval"`
		T        json.RawMessage `json:"t"`
	}
	// Data that is not an object (the whole-market tickers are an array)
	// leaves p empty: one stream per event name and publisher.
	_ = json.Unmarshal(ev.Data, &p)
	var b strings.Builder
	b.Grow(len(ev.Name) + len(ev.Publisher) + len(p.S) + len(p.Symbol) + len(p.I) + len(p.Interval) + len(p.T) + 6)
	for _, s := range [...]string{ev.Name, ev.Publisher, p.S, p.Symbol, p.I, p.Interval} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.Write(p.T)
	return b.String(), true
}
