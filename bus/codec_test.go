package bus_test

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/exchange"
)

func TestEncodeDecode(t *testing.T) {
	data := map[string]any{"symbol": "BTCUSDT", "close": 64000.5, "closed": true}
	for _, compress := range []bool{false, true} {
		raw, err := bus.Encode("node-a", "live.kline", data, compress)
		if err != nil {
			t.Fatal(err)
		}
		var env bus.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		if env.IsCompressed != compress || string(env.ID) != `"node-a"` || env.Event != "live.kline" {
			t.Errorf("envelope %s", raw)
		}
		ev, err := bus.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		want := bus.Event{Publisher: "node-a", Name: "live.kline", Data: json.RawMessage(`{"close":64000.5,"closed":true,"symbol":"BTCUSDT"}`), Raw: raw}
		if diff := cmp.Diff(want, ev); diff != "" {
			t.Errorf("compress=%v: Decode(Encode) (-want +got):\n%s", compress, diff)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		pub, event string
		data       any
	}{
		"empty event":      {"n", "", 1},
		"NaN":              {"n", "live.x", math.NaN()},
		"unmarshalable":    {"n", "live.x", make(chan int)},
		"invalid raw JSON": {"n", "live.x", json.RawMessage(`{`)},
		"bad UTF-8 event":  {"n", "live.\xff", 1},
		"bad UTF-8 id":     {"\xff", "live.x", 1},
	} {
		if raw, err := bus.Encode(tc.pub, tc.event, tc.data, false); err == nil {
			t.Errorf("%s: Encode = %s, want an error", name, raw)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	gz := func(s string) string { return gzipBase64(t, []byte(s)) }
	ok := []struct {
		in   string
		want bus.Event
	}{
		{`{"id": 4242, "event": "livetrade.info_log", "is_compressed": false, "data": {"message": "hi"}}`,
			bus.Event{Publisher: "4242", Name: "livetrade.info_log", Data: json.RawMessage(`{"message": "hi"}`)}},
		{`{"id": "node-a", "event": "live.kline", "data": [1, 2]}`,
			bus.Event{Publisher: "node-a", Name: "live.kline", Data: json.RawMessage(`[1, 2]`)}},
		{`{"id": null, "event": "ping", "data": null, "timestamp": 1}`,
			bus.Event{Name: "ping", Data: json.RawMessage(`null`)}},
		{`{"event": "live.x", "data": 1}`,
			bus.Event{Name: "live.x", Data: json.RawMessage(`1`)}},
		{`{"id": -1.5e3, "event": "backtest.trades", "is_compressed": true, "data": "` + gz(` [{"a": 1}] `) + `"}`,
			bus.Event{Publisher: "-1.5e3", Name: "backtest.trades", Data: json.RawMessage(`[{"a": 1}]`)}},
	}
	for _, tc := range ok {
		got, err := bus.Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.in, err)
			continue
		}
		tc.want.Raw = []byte(tc.in)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Decode(%s) (-want +got):\n%s", tc.in, diff)
		}
	}

	bad := map[string]string{
		"not JSON":          `hello`,
		"array":             `[1]`,
		"trailing garbage":  `{"event": "x", "data": 1} x`,
		"no event":          `{"id": 1, "data": 1}`,
		"empty event":       `{"id": 1, "event": "", "data": 1}`,
		"event not string":  `{"id": 1, "event": 5, "data": 1}`,
		"no data":           `{"id": 1, "event": "x"}`,
		"NaN data":          `{"id": 1, "event": "x", "data": NaN}`,
		"Infinity data":     `{"id": 1, "event": "x", "data": {"v": Infinity}}`,
		"id object":         `{"id": {}, "event": "x", "data": 1}`,
		"id bool":           `{"id": true, "event": "x", "data": 1}`,
		"compressed flag 1": `{"event": "x", "is_compressed": 1, "data": 1}`,
		"compressed object": `{"event": "x", "is_compressed": true, "data": {}}`,
		"compressed number": `{"event": "x", "is_compressed": true, "data": 5}`,
		"invalid UTF-8":     "{\"event\": \"x\", \"data\": \"\xff\"}",
		"truncated":         `{"event": "x", "data": {"a": `,
	}
	// Well-formed envelopes whose compressed payload cannot be read here
	// are relayed as they are: Opaque, without Data, never malformed.
	opaque := map[string]string{
		"bad base64":         `{"event": "x", "is_compressed": true, "data": "%%%"}`,
		"not gzip":           `{"event": "x", "is_compressed": true, "data": "aGVsbG8="}`,
		"gzip of non-JSON":   `{"event": "x", "is_compressed": true, "data": "` + gz(`{nope`) + `"}`,
		"gzip of bad UTF-8":  `{"event": "x", "is_compressed": true, "data": "` + gz("\"\xff\"") + `"}`,
		"gzip bomb":          `{"event": "x", "is_compressed": true, "data": "` + gz(`"`+strings.Repeat("0", bus.MaxDecompressed)+`"`) + `"}`,
		"empty compressed":   `{"event": "x", "is_compressed": true, "data": ""}`,
		"compressed nothing": `{"event": "x", "is_compressed": true, "data": "` + gz(``) + `"}`,
	}
	for name, in := range opaque {
		ev, err := bus.Decode([]byte(in))
		if err != nil || !ev.Opaque || ev.Data != nil || ev.Name != "x" || string(ev.Raw) != in {
			t.Errorf("%s: Decode = %+v, %v; want an Opaque event relaying the envelope", name, ev, err)
		}
	}
	for name, in := range bad {
		ev, err := bus.Decode([]byte(in))
		if err == nil {
			t.Errorf("%s: Decode = %+v, want an error", name, ev)
		} else if !errors.Is(err, bus.ErrMalformed) {
			t.Errorf("%s: error %v does not wrap ErrMalformed", name, err)
		}
	}
}

// A payload of exactly MaxDecompressed bytes is accepted.
func TestDecodeAtCap(t *testing.T) {
	t.Parallel()
	payload := `"` + strings.Repeat("0", bus.MaxDecompressed-2) + `"`
	ev, err := bus.Decode([]byte(`{"event": "x", "is_compressed": true, "data": "` + gzipBase64(t, []byte(payload)) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Data) != bus.MaxDecompressed {
		t.Errorf("got %d bytes", len(ev.Data))
	}
}

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		`{"id": 4242, "event": "livetrade.info_log", "is_compressed": false, "data": {"message": "hi"}}`,
		`{"id": "node-a", "event": "live.kline", "data": [1, 2.5, "x", null, true]}`,
		`{"event": "x", "data": null}`,
		`{"event": "x", "is_compressed": true, "data": "H4sIAAAAAAAA/4pWSlSyUjJUqgUEAAD//2x9W8ELAAAA"}`,
		`{"event": "x", "data": NaN}`,
		`not json`,
		"{\"event\": \"\\ud800\", \"data\": \"<&>\"}",
	} {
		f.Add([]byte(s))
	}
	for _, compress := range []bool{false, true} {
		raw, err := bus.Encode("node-a", "live.kline", map[string]any{"o": 1.5, "s": "BTC"}, compress)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
}

// FuzzDecode: Decode never panics; what it accepts is sane, and
// re-encoding it (plain and compressed) decodes to the same event.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := bus.Decode(b)
		if err != nil {
			if !errors.Is(err, bus.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if ev.Name == "" || !bytes.Equal(ev.Raw, b) || ev.Opaque != (ev.Data == nil) || (!ev.Opaque && !json.Valid(ev.Data)) {
			t.Fatalf("Decode accepted %q as %+v", b, ev)
		}
		if ev.Opaque {
			return // relayed as is; nothing to re-encode
		}
		for _, compress := range []bool{false, true} {
			raw, err := bus.Encode(ev.Publisher, ev.Name, ev.Data, compress)
			if err != nil {
				t.Fatalf("Encode of a decoded event %+v: %v", ev, err)
			}
			back, err := bus.Decode(raw)
			if err != nil {
				t.Fatalf("Decode(Encode(%+v)) = %v", ev, err)
			}
			if back.Publisher != ev.Publisher || back.Name != ev.Name {
				t.Fatalf("round trip: %q %q, want %q %q", back.Publisher, back.Name, ev.Publisher, ev.Name)
			}
			if !sameJSON(t, back.Data, ev.Data) {
				t.Fatalf("round trip: data %s, want %s", back.Data, ev.Data)
			}
		}
	})
}

// FuzzRoundTrip: Decode(Encode(x)) == x for any publisher, name and JSON.
func FuzzRoundTrip(f *testing.F) {
	f.Add("node-a", "live.kline", []byte(`{"a": [1, "x"]}`), false)
	f.Add("4242", "backtest.trades", []byte(`"<b>&"`), true)
	f.Fuzz(func(t *testing.T, pub, name string, data []byte, compress bool) {
		raw, err := bus.Encode(pub, name, json.RawMessage(data), compress)
		if err != nil {
			return // empty name, invalid UTF-8 or JSON
		}
		ev, err := bus.Decode(raw)
		if err != nil {
			t.Fatalf("Decode(Encode(%q, %q, %q)) = %v", pub, name, data, err)
		}
		if ev.Publisher != pub || ev.Name != name || !sameJSON(t, ev.Data, data) {
			t.Fatalf("round trip of (%q, %q, %q): %+v", pub, name, data, ev)
		}
	})
}

// sameJSON compares two JSON texts by value (numbers as written).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	parse := func(x []byte) any {
		d := json.NewDecoder(bytes.NewReader(x))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("invalid JSON %q: %v", x, err)
		}
		return v
	}
	return cmp.Equal(parse(a), parse(b))
}

// What Jesse's Python processes send decodes: gzip (and zlib) holding the
// NaN and Infinity literals Python's json writes, read as null.
func TestDecodePythonPayloads(t *testing.T) {
	t.Parallel()
	zl := func(s string) string {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return base64.StdEncoding.EncodeToString(b.Bytes())
	}
	payload := `{"pnl": NaN, "max": Infinity, "min": -Infinity, "note": "NaN stays in strings \" NaN", "v": [1, NaN]}`
	want := `{"pnl": null, "max": null, "min": null, "note": "NaN stays in strings \" NaN", "v": [1, null]}`
	for name, data := range map[string]string{"gzip": gzipBase64(t, []byte(payload)), "zlib": zl(payload)} {
		ev, err := bus.Decode([]byte(`{"id": 4242, "event": "livetrade.trades", "is_compressed": true, "data": "` + data + `"}`))
		if err != nil || ev.Opaque {
			t.Fatalf("%s: %+v, %v", name, ev, err)
		}
		if !sameJSON(t, ev.Data, []byte(want)) {
			t.Errorf("%s: data %s, want %s", name, ev.Data, want)
		}
	}
}

// oracleEnvelope is what encoding/json makes of the envelope Encode
// builds by hand.
func oracleEnvelope(t testing.TB, publisher, event string, data any, compress bool) []byte {
	t.Helper()
	id, _ := json.Marshal(publisher)
	plain, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	env := bus.Envelope{ID: id, Event: event, Data: plain}
	if compress {
		raw, err := bus.Encode(publisher, event, data, true)
		if err != nil {
			t.Fatal(err)
		}
		var got bus.Envelope
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		env.IsCompressed, env.Data = true, got.Data // gzip's bytes are Encode's own
	}
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Encode writes the envelope, and the payloads that encode themselves
// (exchange's AppendJSON), byte for byte as encoding/json would.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	k := exchange.Kline{Symbol: "BTC<USDT>&\u2028", Interval: "1m", OpenTime: 1700000000000, Open: "1.5", High: "2", Low: "1e-9", Close: "<1e21>", Volume: "3", Closed: true}
	var nilKline *exchange.Kline
	for name, data := range map[string]any{
		"kline":       &k,
		"ticker":      &exchange.Ticker24h{Symbol: "ETHUSDT", LastPrice: "3000.25"},
		"book ticker": &exchange.BookTicker{Symbol: "ETHUSDT", BidPrice: "1", AskPrice: "2"},
		"nil kline":   nilKline,
		"kline value": k,
		"map":         map[string]any{"a": "<b>", "n": 1.5},
		"raw":         json.RawMessage(` { "x" : [1, 2] } `),
		"string":      "plain",
		"nil":         nil,
	} {
		for _, compress := range []bool{false, true} {
			got, err := bus.Encode("node-<1>", "live.kline", data, compress)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want := oracleEnvelope(t, "node-<1>", "live.kline", data, compress); !bytes.Equal(got, want) {
				t.Errorf("%s compress=%v:\n got %s\nwant %s", name, compress, got, want)
			}
			// The payload, compressed or not, is encoding/json's.
			plain, _ := json.Marshal(data)
			if ev, err := bus.Decode(got); err != nil || !bytes.Equal(ev.Data, plain) {
				t.Errorf("%s compress=%v: Decode = %s, %v; want data %s", name, compress, ev.Data, err, plain)
			}
		}
	}
}

func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	f.Add("node-a", "live.kline", "BTCUSDT", "1m", int64(1700000000000), "64000.5", true)
	f.Add("\u2028", "live.<x>", "a\"b\\c", "", int64(-1), "\xff&", false)
	f.Fuzz(func(t *testing.T, pub, event, sym, iv string, open int64, price string, closed bool) {
		if event == "" {
			return
		}
		k := &exchange.Kline{Symbol: sym, Interval: iv, OpenTime: open, Open: price, Close: price, Closed: closed}
		got, err := bus.Encode(pub, event, k, false)
		if !utf8.ValidString(pub) || !utf8.ValidString(event) {
			if err == nil {
				t.Errorf("Encode took a name or publisher that is not UTF-8: %q %q", pub, event)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := oracleEnvelope(t, pub, event, k, false); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkEncodeKline is a leader's cost per kline event: the envelope of
// an exchange.Kline.
func BenchmarkEncodeKline(b *testing.B) {
	k := &exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: 1700000000000, CloseTime: 1700000059999, Open: "64000.10", High: "64010.00",
		Low: "63990.50", Close: "64005.20", Volume: "123.456", QuoteVolume: "7901234.5", Trades: 1234, TakerBuyBase: "60.1", TakerBuyQuote: "3846000.1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Encode("node-a", "live.kline", k, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeKline is every node's cost per kline event received on
// the channel: Decode of its envelope.
func BenchmarkDecodeKline(b *testing.B) {
	k := &exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: 1700000000000, CloseTime: 1700000059999, Open: "64000.10", High: "64010.00",
		Low: "63990.50", Close: "64005.20", Volume: "123.456", QuoteVolume: "7901234.5", Trades: 1234, TakerBuyBase: "60.1", TakerBuyQuote: "3846000.1"}
	raw, err := bus.Encode("node-a", "live.kline", k, false)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
