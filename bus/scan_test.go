package bus

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// scanEnvelope agrees with json.Unmarshal wherever it answers, and
// answers for the envelopes publishers send.
func TestScanEnvelope(t *testing.T) {
	for name, tc := range map[string]struct {
		in   string
		scan bool // whether the scan answers (else json.Unmarshal does)
	}{
		"ours":             {`{"id":"node-a","event":"live.kline","is_compressed":false,"data":{"s":"BTCUSDT","x":[1,{"a":"}"}]}}`, true},
		"jesse":            {` { "id" : 12345 , "event" : "live.trades", "is_compressed" : true, "data" : "H4sI..." } `, true},
		"empty":            {`{}`, true},
		"unknown members":  {`{"other":[1,2,{"x":"\"}"}],"event":"e","data":null,"more":-1.5e3}`, true},
		"duplicate":        {`{"event":"a","event":"b","data":1,"data":2}`, true},
		"string data":      {`{"event":"e","data":"a\\\"b"}`, true},
		"folded name":      {`{"Event":"e","data":1}`, false},
		"escaped name":     {`{"\u0065vent":"e","data":1}`, false},
		"escaped event":    {`{"event":"a\u00e9","data":1}`, false},
		"null event":       {`{"event":null,"data":1}`, false},
		"numeric event":    {`{"event":1,"data":1}`, false},
		"null compressed":  {`{"event":"e","is_compressed":null,"data":1}`, false},
		"string flag":      {`{"event":"e","is_compressed":"yes","data":1}`, false},
		"not an object":    {`["event","data"]`, false},
		"invalid":          {`{"event":"e","data":}`, false},
		"non-ASCII name":   {`{"évent":"e","data":1}`, false},
		"trailing garbage": {`{"event":"e","data":1} x`, false},
	} {
		env, ok := scanEnvelope([]byte(tc.in))
		if ok != tc.scan {
			t.Errorf("%s: scan answered %v, want %v", name, ok, tc.scan)
		}
		if !ok {
			continue
		}
		var want Envelope
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Errorf("%s: the scan answered where json.Unmarshal fails: %v", name, err)
			continue
		}
		if diff := cmp.Diff(want, env); diff != "" {
			t.Errorf("%s: scan (-json.Unmarshal +scan):\n%s", name, diff)
		}
	}
}

func FuzzScanEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"id":"node-a","event":"live.kline","is_compressed":false,"data":{"s":"BTCUSDT"}}`,
		`{"id":12345,"event":"live.trades","is_compressed":true,"data":"H4sI"}`,
		`{"EVENT":"x","Data":[1,2],"id":null}`,
		`{"event":"a","event":"b","data":{"\"":"}"},"x":[[]]}`,
		"{\"event\":\"e\"\n,\t\"data\"\r:\n1 }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return // Decode refuses it before the scan
		}
		env, ok := scanEnvelope(b)
		if !ok {
			return
		}
		var want Envelope
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("the scan answered where json.Unmarshal fails (%v): %q", err, b)
		}
		if diff := cmp.Diff(want, env); diff != "" {
			t.Fatalf("%q: (-json.Unmarshal +scan):\n%s", b, diff)
		}
	})
}

// validJSON answers as json.Valid.
func TestValidJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1) }
	mixed := func(n int) string { return strings.Repeat(`[{"a":`, n/2) + "1" + strings.Repeat("}]", n/2) }
	for _, in := range []string{
		``, ` `, `{}`, `[]`, ` [ ] `, `{"a":1}`, `{"a" : [1, 2.5e-3, -0, "x", true, false, null, {}]}`,
		`"\u00e9\n\"\\\/\b\f\r\t"`, "\"\x01\"", `"\x"`, `"\u12"`, `"\u12g4"`, `"abc`, `"ab\`,
		`0`, `-0`, `01`, `-`, `-a`, `1.`, `1.e3`, `.5`, `1e`, `1e+`, `1E-7`, `12345678901234567890`, `+1`, `0x10`,
		`tru`, `true`, `truex`, `nul`, `null`, `false `, `NaN`, `Infinity`,
		`[1,]`, `[,1]`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `[`, `]`, `{`, `}`, `[}`, `{]`,
		`1 2`, `{} x`, "\t\n\r 1 \r\n\t", "\u00a01", `"é"`, "\"\xff\"", `[[[]]]`, `[[[]]`, `{"a":{"b":{"c":[{}]}}}`,
		deep(10000), deep(10001), "[" + deep(9999) + ",1]", deepObj(10000), deepObj(10001), mixed(10000), mixed(10002),
	} {
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validJSON(%.40q) = %v, json.Valid %v", in, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"node-a","event":"live.kline","is_compressed":false,"data":{"s":"BTCUSDT","o":"1.5","n":-12e3,"x":true}}`,
		`[1,"a\u00e9\\",null,{"":[]}]`, `-0.5E+3`, `"\ud800"`, `{"a":[1,2,]}`, "\"\x1f\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}
