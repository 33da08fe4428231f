package binance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tradecache/tradecache/exchange"
)

// Stream payload decoders. Rules shared by all of them:
//   - unknown fields are ignored; keys match exactly (case-sensitive);
//   - integers (E, t, T, n, u, …) are accepted as JSON numbers or strings;
//   - decimals stay text: a string must hold a decimal literal, a JSON
//     number is accepted and kept as its literal text;
//   - a JSON null counts as absent;
//   - every documented field that maps to an exchange.* field is required,
//     and names, times and counts are sanity-checked, so a nil error means
//     the value can be stored as is.

// frameKind classifies a top-level message of a combined-mode connection.
type frameKind int

const (
	frameOther   frameKind = iota // a JSON object that is neither of the below
	frameData                     // {"stream":..,"data":..}
	frameControl                  // {"result":..,"id":..} or {"error":{..},"id":..}
)

type frame struct {
	kind   frameKind
	stream string
	data   []byte
	id     int64
	hasErr bool
	code   int64
	msg    string
}

// parseFrame validates b and classifies it.
func parseFrame(b []byte) (frame, error) {
	var f frame
	if !json.Valid(b) {
		return f, malformed("invalid JSON")
	}
	var hasStream, hasData, hasID bool
	var errObj []byte
	err := members(b, func(key, val []byte) error {
		var err error
		switch string(key) {
		case "stream":
			hasStream = true
			f.stream, err = strVal(val)
		case "data":
			hasData = true
			f.data = val
		case "id":
			if !isNull(val) {
				hasID = true
				f.id, err = intVal(val)
			}
		case "error":
			if !isNull(val) {
				errObj = val
			}
		}
		if err != nil {
			return fieldErr("frame", key, err)
		}
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return f, malformed("frame is not a JSON object")
		}
		return f, asMalformed("frame", err)
	}
	switch {
	case hasStream || hasData:
		if !hasStream || !hasData {
			return f, malformed("envelope without stream or data")
		}
		if !validStreamName(f.stream) {
			return f, malformed("bad stream name %q", f.stream)
		}
		f.kind = frameData
	case hasID:
		f.kind = frameControl
		if errObj != nil {
			f.hasErr = true
			err := members(errObj, func(key, val []byte) error {
				var err error
				switch string(key) {
				case "code":
					f.code, err = intVal(val)
				case "msg":
					f.msg, err = strVal(val)
				}
				if err != nil {
					return fieldErr("error", key, err)
				}
				return nil
			})
			if err != nil {
				return f, asMalformed("error", err)
			}
		}
	}
	return f, nil
}

func asMalformed(obj string, err error) error {
	if isKnown(err) {
		return err
	}
	return malformed("%s: %v", obj, err)
}

func isKnown(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownEvent)
}

// maxStreamNameLen bounds a stream name.
const maxStreamNameLen = 256

// validStreamName checks a stream name taken from the wire.
func validStreamName(s string) bool { return validText(s, maxStreamNameLen) }

// DecodeFrame decodes one message of a combined-mode connection,
// {"stream":"<name>","data":<payload>}, into an Event with Stream set.
// It returns an error wrapping ErrUnknownEvent for a well-formed frame of
// a type it does not decode (including SUBSCRIBE replies and objects that
// are not envelopes) and one wrapping ErrMalformed otherwise.
func DecodeFrame(b []byte) (exchange.Event, error) {
	f, err := parseFrame(b)
	if err != nil {
		return exchange.Event{}, err
	}
	if f.kind != frameData {
		return exchange.Event{}, fmt.Errorf("%w: not a stream envelope", ErrUnknownEvent)
	}
	return decodePayload(f.stream, f.data)
}

// decodePayload decodes the data of an envelope (already validated JSON).
func decodePayload(stream string, data []byte) (exchange.Event, error) {
	ev := exchange.Event{Stream: stream}
	i := skipSpace(data, 0)
	if i >= len(data) {
		return ev, malformed("empty data")
	}
	switch data[i] {
	case '[':
		rows, e, err := decodeTickerArray(data, stream == "!ticker@arr")
		if err != nil {
			return ev, err
		}
		ev.Kind, ev.EventTime, ev.Tickers = exchange.EventTickers, e, rows
	case '{':
		typ, err := eventType(data)
		if err != nil {
			return ev, err
		}
		switch typ {
		case "kline":
			ev.Kline, ev.EventTime, err = decodeKline(data)
			ev.Kind = exchange.EventKline
		case "24hrTicker":
			ev.Ticker, ev.EventTime, err = decodeTicker(data)
			ev.Kind = exchange.EventTicker
		case "bookTicker":
			ev.Book, err = decodeBookTicker(data)
			ev.Kind, ev.EventTime = exchange.EventBookTicker, ev.Book.EventTime
		default:
			return ev, fmt.Errorf("%w: event type %q on %q", ErrUnknownEvent, typ, stream)
		}
		if err != nil {
			return exchange.Event{Stream: stream}, err
		}
	default:
		return ev, malformed("data is neither object nor array")
	}
	return ev, nil
}

// eventType returns the "e" member of the object b.
func eventType(b []byte) (string, error) {
	var typ string
	var found bool
	err := members(b, func(key, val []byte) error {
		if string(key) != "e" {
			return nil
		}
		s, err := strVal(val)
		if err != nil {
			return fieldErr("event", key, err)
		}
		typ, found = s, true
		return nil
	})
	if err != nil {
		return "", asMalformed("event", err)
	}
	if !found || typ == "" {
		return "", malformed(`event without "e"`)
	}
	return typ, nil
}

// checkType is used by the typed decoders for the "e" member.
func checkType(val []byte, want string) error {
	s, err := strVal(val)
	if err != nil {
		return err
	}
	if s != want {
		return fmt.Errorf("%w: event type %q, want %q", ErrUnknownEvent, s, want)
	}
	return nil
}

// required reports the first missing field of a decoder's bit set.
func required(obj string, seen, want uint32, names []string) error {
	if seen&want == want {
		return nil
	}
	for i, n := range names {
		if want&(1<<i) != 0 && seen&(1<<i) == 0 {
			return malformed("%s field %q: %v", obj, n, errMissing)
		}
	}
	return malformed("%s: %v", obj, errMissing)
}

func validJSON(b []byte) error {
	if !json.Valid(b) {
		return malformed("invalid JSON")
	}
	return nil
}

var klineEventFields = []string{"e", "E", "k"}
var klineFields = []string{"t", "T", "s", "i", "o", "h", "l", "c", "v", "n", "x", "q", "V", "Q"}

// DecodeKline decodes a raw kline payload
// {"e":"kline","E":..,"s":..,"k":{..}} and returns the kline and E.
func DecodeKline(b []byte) (exchange.Kline, int64, error) {
	if err := validJSON(b); err != nil {
		return exchange.Kline{}, 0, err
	}
	return decodeKline(b)
}

func decodeKline(b []byte) (exchange.Kline, int64, error) {
	var (
		k         exchange.Kline
		eventTime int64
		outerSym  string
		kraw      []byte
		seen      uint32
	)
	err := members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "e":
			err, bit = checkType(val, "kline"), 1<<0
		case "E":
			eventTime, err = intVal(val)
			bit = 1 << 1
		case "s":
			outerSym, err = strVal(val)
		case "k":
			kraw, bit = val, 1<<2
		}
		if err != nil {
			if isKnown(err) {
				return err
			}
			return fieldErr("kline event", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return exchange.Kline{}, 0, asMalformed("kline event", err)
	}
	if err := required("kline event", seen, 1<<len(klineEventFields)-1, klineEventFields); err != nil {
		return exchange.Kline{}, 0, err
	}
	seen = 0
	err = members(kraw, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "t":
			k.OpenTime, err = intVal(val)
			bit = 1 << 0
		case "T":
			k.CloseTime, err = intVal(val)
			bit = 1 << 1
		case "s":
			k.Symbol, err = strVal(val)
			bit = 1 << 2
		case "i":
			k.Interval, err = strVal(val)
			bit = 1 << 3
		case "o":
			k.Open, err = decVal(val)
			bit = 1 << 4
		case "h":
			k.High, err = decVal(val)
			bit = 1 << 5
		case "l":
			k.Low, err = decVal(val)
			bit = 1 << 6
		case "c":
			k.Close, err = decVal(val)
			bit = 1 << 7
		case "v":
			k.Volume, err = decVal(val)
			bit = 1 << 8
		case "n":
			k.Trades, err = intVal(val)
			bit = 1 << 9
		case "x":
			k.Closed, err = boolVal(val)
			bit = 1 << 10
		case "q":
			k.QuoteVolume, err = decVal(val)
			bit = 1 << 11
		case "V":
			k.TakerBuyBase, err = decVal(val)
			bit = 1 << 12
		case "Q":
			k.TakerBuyQuote, err = decVal(val)
			bit = 1 << 13
		}
		if err != nil {
			return fieldErr("kline", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return exchange.Kline{}, 0, asMalformed("kline", err)
	}
	if seen&(1<<2) == 0 && outerSym != "" {
		k.Symbol = outerSym
		seen |= 1 << 2
	}
	if err := required("kline", seen, 1<<len(klineFields)-1, klineFields); err != nil {
		return exchange.Kline{}, 0, err
	}
	if err := checkKline(&k); err != nil {
		return exchange.Kline{}, 0, err
	}
	if eventTime < 0 {
		return exchange.Kline{}, 0, malformed("kline event time %d", eventTime)
	}
	return k, eventTime, nil
}

func checkKline(k *exchange.Kline) error {
	switch {
	case !validName(k.Symbol):
		return malformed("kline symbol %q", k.Symbol)
	case !validName(k.Interval):
		return malformed("kline interval %q", k.Interval)
	case k.OpenTime < 0 || k.CloseTime < k.OpenTime:
		return malformed("kline times %d..%d", k.OpenTime, k.CloseTime)
	case k.Trades < 0:
		return malformed("kline trades %d", k.Trades)
	}
	return nil
}

var tickerFields = []string{"e", "E", "s", "p", "P", "w", "c", "Q", "o", "h", "l", "v", "q", "O", "C", "F", "L", "n"}

// DecodeTicker decodes a raw 24hrTicker payload and returns the ticker and E.
func DecodeTicker(b []byte) (exchange.Ticker24h, int64, error) {
	if err := validJSON(b); err != nil {
		return exchange.Ticker24h{}, 0, err
	}
	return decodeTicker(b)
}

func decodeTicker(b []byte) (exchange.Ticker24h, int64, error) {
	t, e, _, err := decodeTickerRow(b)
	return t, e, err
}

// decodeTickerRow also returns "st" (0 when absent).
func decodeTickerRow(b []byte) (exchange.Ticker24h, int64, int64, error) {
	var (
		t         exchange.Ticker24h
		eventTime int64
		st        int64
		seen      uint32
	)
	err := members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "e":
			err, bit = checkType(val, "24hrTicker"), 1<<0
		case "E":
			eventTime, err = intVal(val)
			bit = 1 << 1
		case "s":
			t.Symbol, err = strVal(val)
			bit = 1 << 2
		case "p":
			t.PriceChange, err = decVal(val)
			bit = 1 << 3
		case "P":
			t.PriceChangePercent, err = decVal(val)
			bit = 1 << 4
		case "w":
			t.WeightedAvgPrice, err = decVal(val)
			bit = 1 << 5
		case "c":
			t.LastPrice, err = decVal(val)
			bit = 1 << 6
		case "Q":
			t.LastQty, err = decVal(val)
			bit = 1 << 7
		case "o":
			t.OpenPrice, err = decVal(val)
			bit = 1 << 8
		case "h":
			t.HighPrice, err = decVal(val)
			bit = 1 << 9
		case "l":
			t.LowPrice, err = decVal(val)
			bit = 1 << 10
		case "v":
			t.Volume, err = decVal(val)
			bit = 1 << 11
		case "q":
			t.QuoteVolume, err = decVal(val)
			bit = 1 << 12
		case "O":
			t.OpenTime, err = intVal(val)
			bit = 1 << 13
		case "C":
			t.CloseTime, err = intVal(val)
			bit = 1 << 14
		case "F":
			t.FirstID, err = intVal(val)
			bit = 1 << 15
		case "L":
			t.LastID, err = intVal(val)
			bit = 1 << 16
		case "n":
			t.Count, err = intVal(val)
			bit = 1 << 17
		case "st":
			st, err = intVal(val)
		}
		if err != nil {
			if isKnown(err) {
				return err
			}
			return fieldErr("24hrTicker", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return exchange.Ticker24h{}, 0, 0, asMalformed("24hrTicker", err)
	}
	if err := required("24hrTicker", seen, 1<<len(tickerFields)-1, tickerFields); err != nil {
		return exchange.Ticker24h{}, 0, 0, err
	}
	if err := checkTicker(&t); err != nil {
		return exchange.Ticker24h{}, 0, 0, err
	}
	if eventTime < 0 {
		return exchange.Ticker24h{}, 0, 0, malformed("24hrTicker event time %d", eventTime)
	}
	return t, eventTime, st, nil
}

func checkTicker(t *exchange.Ticker24h) error {
	switch {
	case !validName(t.Symbol):
		return malformed("ticker symbol %q", t.Symbol)
	case t.OpenTime < 0 || t.CloseTime < t.OpenTime:
		return malformed("ticker times %d..%d", t.OpenTime, t.CloseTime)
	case t.Count < 0:
		return malformed("ticker count %d", t.Count)
	}
	return nil
}

// DecodeTickerArray decodes a raw !ticker@arr payload: a JSON array of
// 24hrTicker objects. Rows of other markets (a "st" field other than 1:
// COIN-M rows such as BTCUSD_PERP, which Binance mixes into USDⓈ-M
// array streams since the CM migration) are skipped, since their volume
// fields have COIN-M meaning. The returned event time is the largest E of
// the rows kept. An empty array is a valid (empty) result.
func DecodeTickerArray(b []byte) ([]exchange.Ticker24h, int64, error) {
	if err := validJSON(b); err != nil {
		return nil, 0, err
	}
	return decodeTickerArray(b, true)
}

// decodeTickerArray: emptyOK tells whether an empty array is a ticker
// array (the stream name says so) or of unknown type.
func decodeTickerArray(b []byte, emptyOK bool) ([]exchange.Ticker24h, int64, error) {
	rows := []exchange.Ticker24h{}
	var maxE int64
	n := 0
	err := elements(b, func(val []byte) error {
		if n == 0 {
			// The first row decides what the array is.
			typ, err := eventType(val)
			if err != nil {
				return err
			}
			if typ != "24hrTicker" {
				return fmt.Errorf("%w: array of %q", ErrUnknownEvent, typ)
			}
		}
		n++
		t, e, st, err := decodeTickerRow(val)
		if err != nil {
			if isUnknown(err) {
				return malformed("mixed event types in array")
			}
			return err
		}
		if st != 0 && st != 1 {
			return nil
		}
		rows = append(rows, t)
		maxE = max(maxE, e)
		return nil
	})
	if err != nil {
		if err == errNotArray {
			return nil, 0, malformed("not an array")
		}
		return nil, 0, asMalformed("array", err)
	}
	if n == 0 && !emptyOK {
		return nil, 0, fmt.Errorf("%w: empty array", ErrUnknownEvent)
	}
	return rows, maxE, nil
}

func isUnknown(err error) bool { return errors.Is(err, ErrUnknownEvent) }

var bookFields = []string{"e", "E", "T", "u", "s", "b", "B", "a", "A"}

// DecodeBookTicker decodes a raw bookTicker payload.
func DecodeBookTicker(b []byte) (exchange.BookTicker, error) {
	if err := validJSON(b); err != nil {
		return exchange.BookTicker{}, err
	}
	return decodeBookTicker(b)
}

func decodeBookTicker(b []byte) (exchange.BookTicker, error) {
	var bt exchange.BookTicker
	var seen uint32
	err := members(b, func(key, val []byte) error {
		if isNull(val) {
			return nil
		}
		var err error
		var bit uint32
		switch string(key) {
		case "e":
			err, bit = checkType(val, "bookTicker"), 1<<0
		case "E":
			bt.EventTime, err = intVal(val)
			bit = 1 << 1
		case "T":
			bt.TransactTime, err = intVal(val)
			bit = 1 << 2
		case "u":
			bt.UpdateID, err = intVal(val)
			bit = 1 << 3
		case "s":
			bt.Symbol, err = strVal(val)
			bit = 1 << 4
		case "b":
			bt.BidPrice, err = decVal(val)
			bit = 1 << 5
		case "B":
			bt.BidQty, err = decVal(val)
			bit = 1 << 6
		case "a":
			bt.AskPrice, err = decVal(val)
			bit = 1 << 7
		case "A":
			bt.AskQty, err = decVal(val)
			bit = 1 << 8
		}
		if err != nil {
			if isKnown(err) {
				return err
			}
			return fieldErr("bookTicker", key, err)
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return exchange.BookTicker{}, asMalformed("bookTicker", err)
	}
	if err := required("bookTicker", seen, 1<<len(bookFields)-1, bookFields); err != nil {
		return exchange.BookTicker{}, err
	}
	switch {
	case !validName(bt.Symbol):
		return exchange.BookTicker{}, malformed("bookTicker symbol %q", bt.Symbol)
	case bt.EventTime < 0 || bt.TransactTime < 0 || bt.UpdateID < 0:
		return exchange.BookTicker{}, malformed("bookTicker negative time or id")
	}
	return bt, nil
}
