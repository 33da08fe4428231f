package binance

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tradecache/tradecache/exchange"
)

// KlineFrame is a combined-mode kline message decoded in place. Its byte
// slices alias the decoded frame (or, for a frame whose strings carry
// escapes, the KlineFrame's own buffer): they are valid until the frame's
// buffer is reused or the KlineFrame decodes again. Decoding a plain frame
// into a KlineFrame allocates nothing, which is what a stream reader needs
// at hundreds of thousands of frames per second.
type KlineFrame struct {
	Stream    []byte
	EventTime int64

	Symbol, Interval    []byte
	OpenTime, CloseTime int64
	Open, High, Low     []byte
	Close, Volume       []byte
	QuoteVolume         []byte
	TakerBuyBase        []byte
	TakerBuyQuote       []byte
	Trades              int64
	Closed              bool

	buf      []byte // the text of a frame the general decoder handled
	outerSym []byte // the event's own "s", the kline's symbol when it has none
}

// DecodeKlineFrame decodes one message of a combined-mode connection
// holding a kline, {"stream":..,"data":{"e":"kline",..}}, into f. It
// accepts and rejects exactly what DecodeFrame does, with the same errors;
// a well-formed frame of another type is an error wrapping
// ErrUnknownEvent. A plain frame (no escapes in the strings it keeps) is
// decoded without allocating.
func DecodeKlineFrame(b []byte, f *KlineFrame) error {
	if f.decodePlain(b) {
		return nil
	}
	ev, err := DecodeFrame(b)
	if err != nil {
		return err
	}
	if ev.Kind != exchange.EventKline {
		return fmt.Errorf("%w: %q carries no kline", ErrUnknownEvent, ev.Stream)
	}
	f.set(ev)
	return nil
}

// set copies ev into f, in f's own buffer.
func (f *KlineFrame) set(ev exchange.Event) {
	k := &ev.Kline
	f.buf = f.buf[:0]
	put := func(s string) []byte {
		n := len(f.buf)
		f.buf = append(f.buf, s...)
		return f.buf[n:len(f.buf):len(f.buf)]
	}
	// Reserve first so that the slices taken below stay in one array.
	f.buf = append(f.buf, make([]byte, 0, len(ev.Stream)+len(k.Symbol)+len(k.Interval)+len(k.Open)+len(k.High)+len(k.Low)+
		len(k.Close)+len(k.Volume)+len(k.QuoteVolume)+len(k.TakerBuyBase)+len(k.TakerBuyQuote))...)
	f.Stream, f.EventTime = put(ev.Stream), ev.EventTime
	f.Symbol, f.Interval = put(k.Symbol), put(k.Interval)
	f.OpenTime, f.CloseTime = k.OpenTime, k.CloseTime
	f.Open, f.High, f.Low, f.Close = put(k.Open), put(k.High), put(k.Low), put(k.Close)
	f.Volume, f.QuoteVolume = put(k.Volume), put(k.QuoteVolume)
	f.TakerBuyBase, f.TakerBuyQuote = put(k.TakerBuyBase), put(k.TakerBuyQuote)
	f.Trades, f.Closed = k.Trades, k.Closed
}

// Kline returns the kline as an exchange.Kline. Its text fields share one
// allocation.
func (f *KlineFrame) Kline() exchange.Kline {
	return f.kline(nil)
}

// kline is Kline with the symbol and interval taken from intern when it
// holds them (a reader's small table of the names it has seen; "" when
// not), so that only the decimals are allocated.
func (f *KlineFrame) kline(intern func([]byte) string) exchange.Kline {
	var sym, iv string
	if intern != nil {
		sym, iv = intern(f.Symbol), intern(f.Interval)
	}
	parts := [...][]byte{f.Symbol, f.Interval, f.Open, f.High, f.Low, f.Close, f.Volume, f.QuoteVolume, f.TakerBuyBase, f.TakerBuyQuote}
	if sym != "" {
		parts[0] = nil
	}
	if iv != "" {
		parts[1] = nil
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, p := range parts {
		sb.Write(p)
	}
	text := sb.String()
	var out [len(parts)]string
	at := 0
	for i, p := range parts {
		out[i] = text[at : at+len(p)]
		at += len(p)
	}
	if sym == "" {
		sym = out[0]
	}
	if iv == "" {
		iv = out[1]
	}
	return exchange.Kline{Symbol: sym, Interval: iv, OpenTime: f.OpenTime, CloseTime: f.CloseTime,
		Open: out[2], High: out[3], Low: out[4], Close: out[5], Volume: out[6], QuoteVolume: out[7],
		TakerBuyBase: out[8], TakerBuyQuote: out[9], Trades: f.Trades, Closed: f.Closed}
}

// decodePlain decodes b in one validating pass when it is a kline
// envelope that the general decoder would accept as is and whose kept
// strings have no escapes. It returns false for anything else (errors
// included), leaving the verdict and its wording to the general decoder.
// Every rule here mirrors parseFrame, decodePayload and decodeKline.
func (f *KlineFrame) decodePlain(b []byte) bool {
	var stream []byte
	var hasStream, hasData, hasSym bool
	var kSeen uint32
	top := objIter{b: b}
	for top.member() {
		switch string(top.key) {
		case "stream":
			if !top.value() {
				return false
			}
			s, ok := plainText(top.val)
			if !ok {
				return false
			}
			stream, hasStream = s, true
		case "data":
			// Walked in place, validating: one pass over the frame.
			if hasData {
				return false // the general decoder keeps the last
			}
			end, ok := f.decodeData(b, top.i, &hasSym, &kSeen)
			if !ok {
				return false
			}
			top.after(end)
			hasData = true
		case "id", "error":
			return false
		default:
			if !top.value() {
				return false
			}
		}
	}
	if top.bad || skipSpace(b, top.end) != len(b) || !hasStream || !hasData || !validTextBytes(stream, maxStreamNameLen) {
		return false
	}
	if kSeen&(1<<2) == 0 && hasSym {
		f.Symbol = f.outerSym
		kSeen |= 1 << 2
	}
	if kSeen != 1<<len(klineFields)-1 {
		return false
	}
	f.Stream = stream
	f.buf = f.buf[:0]
	return validTextBytes(f.Symbol, maxSymbolLen) && validTextBytes(f.Interval, maxSymbolLen) && f.OpenTime >= 0 && f.CloseTime >= f.OpenTime &&
		f.Trades >= 0 && f.EventTime >= 0
}

// decodeData walks the kline event object at b[i:], validating, and
// returns where it ends. hasSym tells whether it had a non-null outer
// "s" (in f.outerSym); kSeen gets the kline fields found.
func (f *KlineFrame) decodeData(b []byte, i int, hasSym *bool, kSeen *uint32) (int, bool) {
	var seen uint32
	ev := objIter{b: b, i: i, depth: 1}
	for ev.member() {
		key := ev.key
		if len(key) == 1 && key[0] == 'k' && ev.i < len(b) && b[ev.i] == '{' {
			if seen&(1<<2) != 0 {
				return 0, false // the general decoder keeps the last
			}
			end, ok := f.decodeK(b, ev.i, kSeen)
			if !ok {
				return 0, false
			}
			ev.after(end)
			seen |= 1 << 2
			continue
		}
		if !ev.value() {
			return 0, false
		}
		val := ev.val
		if len(key) != 1 {
			continue
		}
		if key[0] == 'e' {
			// eventType reads every "e", null included.
			if string(val) != `"kline"` {
				return 0, false
			}
			seen |= 1 << 0
			continue
		}
		if isNull(val) {
			continue
		}
		switch key[0] {
		case 'E':
			if !setInt(&f.EventTime, val) {
				return 0, false
			}
			seen |= 1 << 1
		case 's':
			s, ok := plainText(val)
			if !ok {
				return 0, false
			}
			f.outerSym, *hasSym = s, len(s) > 0
		case 'k':
			return 0, false // neither null nor an object
		}
	}
	if ev.bad || seen != 1<<3-1 {
		return 0, false
	}
	return ev.end, true
}

// decodeK walks the kline object at b[i:], validating, into f, and
// returns where it ends; seen gets the fields found.
func (f *KlineFrame) decodeK(b []byte, i int, seen *uint32) (int, bool) {
	k := objIter{b: b, i: i, depth: 2}
	for k.next() {
		key, val := k.key, k.val
		if len(key) != 1 || isNull(val) {
			continue
		}
		var ok bool
		var bit uint32
		switch key[0] {
		case 't':
			ok, bit = setInt(&f.OpenTime, val), 1<<0
		case 'T':
			ok, bit = setInt(&f.CloseTime, val), 1<<1
		case 's':
			f.Symbol, ok = plainText(val)
			bit = 1 << 2
		case 'i':
			f.Interval, ok = plainText(val)
			bit = 1 << 3
		case 'o':
			f.Open, ok = plainDecimal(val)
			bit = 1 << 4
		case 'h':
			f.High, ok = plainDecimal(val)
			bit = 1 << 5
		case 'l':
			f.Low, ok = plainDecimal(val)
			bit = 1 << 6
		case 'c':
			f.Close, ok = plainDecimal(val)
			bit = 1 << 7
		case 'v':
			f.Volume, ok = plainDecimal(val)
			bit = 1 << 8
		case 'n':
			ok, bit = setInt(&f.Trades, val), 1<<9
		case 'x':
			switch string(val) {
			case "true", `"true"`:
				f.Closed, ok = true, true
			case "false", `"false"`:
				f.Closed, ok = false, true
			}
			bit = 1 << 10
		case 'q':
			f.QuoteVolume, ok = plainDecimal(val)
			bit = 1 << 11
		case 'V':
			f.TakerBuyBase, ok = plainDecimal(val)
			bit = 1 << 12
		case 'Q':
			f.TakerBuyQuote, ok = plainDecimal(val)
			bit = 1 << 13
		default:
			continue
		}
		if !ok {
			return 0, false
		}
		*seen |= bit
	}
	if k.bad {
		return 0, false
	}
	return k.end, true
}

// setInt decodes an integer as intVal does into *dst.
func setInt(dst *int64, v []byte) bool {
	n, err := intVal(v)
	*dst = n
	return err == nil
}

// plainText returns the content of a JSON string without escapes that is
// valid UTF-8 (what strVal returns without allocating), or false.
func plainText(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
		return nil, false
	}
	return in, true
}

// plainDecimal returns what decVal would, without allocating, or false.
func plainDecimal(v []byte) ([]byte, bool) {
	b, quoted, ok := plainString(v)
	if !ok {
		return nil, false
	}
	if !quoted && (len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9'))) {
		return nil, false
	}
	if !validDecimal(b) {
		return nil, false
	}
	return b, true
}

// validTextBytes is validText on bytes, without converting them when
// they are ASCII.
func validTextBytes(b []byte, maxLen int) bool {
	if len(b) == 0 || len(b) > maxLen {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			return validText(string(b), maxLen)
		}
	}
	return true
}
