package binance

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

// DecodeKlineFrame gives what DecodeFrame gives, for every way of writing
// a kline frame, whether its plain path or the general one decodes it.
func TestDecodeKlineFrameVariants(t *testing.T) {
	variants := append(frameVariants(),
		frameVariant{"fixture", string(readFixture(t, "ws_kline.json")), exchange.Event{Kind: exchange.EventKline, Stream: "btcusdt@kline_1m", EventTime: 1791382993250, Kline: wantKlineWS}},
		frameVariant{"escaped symbol", strings.Replace(klineEnv, `"s":"BTCUSDT","i"`, `"s":"BTC\u0055SDT","i"`, 1),
			exchange.Event{Kind: exchange.EventKline, Stream: "btcusdt@kline_1m", EventTime: 1791382993250, Kline: wantKlineWS}},
	)
	var f KlineFrame
	for _, tt := range variants {
		t.Run(tt.name, func(t *testing.T) {
			if err := DecodeKlineFrame([]byte(tt.in), &f); err != nil {
				t.Fatalf("DecodeKlineFrame(%s): %v", tt.in, err)
			}
			got := exchange.Event{Kind: exchange.EventKline, Stream: string(f.Stream), EventTime: f.EventTime, Kline: f.Kline()}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// DecodeKlineFrame rejects what DecodeFrame rejects, with the same error,
// and a frame of another type as unknown.
func TestDecodeKlineFrameErrors(t *testing.T) {
	cases := append(frameErrors(),
		frameError{"ticker", string(readFixture(t, "ws_ticker.json")), true},
		frameError{"trailing garbage", klineEnv + "x", false},
		frameError{"two values", klineEnv + klineEnv, false},
		frameError{"bad escape in unknown field", strings.Replace(klineEnv, `"k":{`, `"z":"\q","k":{`, 1), false},
		frameError{"control character", strings.Replace(klineEnv, `"1m"`, "\"1\tm\"", 1), false},
		frameError{"id in envelope", strings.Replace(klineEnv, `{"stream"`, `{"id":"x","stream"`, 1), false},
	)
	var f KlineFrame
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeKlineFrame([]byte(tt.in), &f)
			switch {
			case err == nil:
				t.Fatalf("DecodeKlineFrame(%s) succeeded", tt.in)
			case tt.unknown && !errors.Is(err, ErrUnknownEvent):
				t.Errorf("err = %v, want ErrUnknownEvent", err)
			case !tt.unknown && !errors.Is(err, ErrMalformed):
				t.Errorf("err = %v, want ErrMalformed", err)
			}
			if _, want := DecodeFrame([]byte(tt.in)); want != nil && want.Error() != err.Error() {
				t.Errorf("err = %v, DecodeFrame's = %v", err, want)
			}
		})
	}
}

// The hot path: a plain kline frame decodes into a reused KlineFrame
// without allocating.
func TestDecodeKlineFrameAllocs(t *testing.T) {
	in := readFixture(t, "ws_kline.json")
	var f KlineFrame
	allocs := testing.AllocsPerRun(1000, func() {
		if err := DecodeKlineFrame(in, &f); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeKlineFrame: %v allocations per frame, want 0", allocs)
	}
	if n := testing.AllocsPerRun(1000, func() { f.Kline() }); n != 1 {
		t.Errorf("Kline: %v allocations, want 1 (the text of its fields)", n)
	}
}

func BenchmarkDecodeKlineFrame(b *testing.B) {
	in := readFixture(b, "ws_kline.json")
	b.Run("plain", func(b *testing.B) {
		var f KlineFrame
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if err := DecodeKlineFrame(in, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain+Kline", func(b *testing.B) {
		var f KlineFrame
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if err := DecodeKlineFrame(in, &f); err != nil {
				b.Fatal(err)
			}
			_ = f.Kline()
		}
	})
}

// The strict scanner accepts exactly what json.Valid accepts.
func FuzzScanValue(f *testing.F) {
	for _, s := range []string{klineEnv, `[]`, `{}`, ` 1 `, `-0.5e+3`, `01`, `1.`, `"\u00e9\n"`, `"\x"`, "\"\x01\"", `[1,]`, `{"a":1,}`,
		`{"a" 1}`, `tru`, `nulll`, `[[[[]]]]`, `{"a":[{"b":null}],"c":"}"}`, `"\ud800"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Add(readFixture(f, "ws_ticker_arr.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := scanValue(b, skipSpace(b, 0), 0)
		got := e >= 0 && skipSpace(b, e) == len(b)
		if want := json.Valid(b); got != want {
			t.Fatalf("scanValue(%q) valid = %v, json.Valid = %v", b, got, want)
		}
	})
}

// DecodeKlineFrame agrees with DecodeFrame on every input: same event or
// same error.
func FuzzDecodeKlineFrame(f *testing.F) {
	for _, name := range []string{"ws_kline.json", "ws_kline_doc.json", "ws_ticker.json", "ws_bookticker.json"} {
		f.Add(readFixture(f, name))
	}
	for _, v := range frameVariants() {
		f.Add([]byte(v.in))
	}
	for _, e := range frameErrors() {
		f.Add([]byte(e.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var kf KlineFrame
		err := DecodeKlineFrame(b, &kf)
		want, wantErr := DecodeFrame(b)
		if wantErr != nil {
			if err == nil || err.Error() != wantErr.Error() {
				t.Fatalf("DecodeKlineFrame(%q) err = %v, DecodeFrame's = %v", b, err, wantErr)
			}
			return
		}
		if want.Kind != exchange.EventKline {
			if !errors.Is(err, ErrUnknownEvent) {
				t.Fatalf("DecodeKlineFrame(%q) of a %v: err = %v, want ErrUnknownEvent", b, want.Kind, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeKlineFrame(%q): %v; DecodeFrame accepts it", b, err)
		}
		got := exchange.Event{Kind: exchange.EventKline, Stream: string(kf.Stream), EventTime: kf.EventTime, Kline: kf.Kline()}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("DecodeKlineFrame(%q) (-DecodeFrame +got):\n%s", b, d)
		}
	})
}
