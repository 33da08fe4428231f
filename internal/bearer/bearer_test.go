package bearer_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/bearer"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := bearer.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || strings.ContainsAny(tok, "+/=") || seen[tok] {
			t.Fatalf("token %q", tok)
		}
		seen[tok] = true
	}
}

func TestTokens(t *testing.T) {
	ts, err := bearer.New([]string{"alpha", "beta"})
	if err != nil {
		t.Fatal(err)
	}
	if ts.Len() != 2 {
		t.Errorf("Len = %d", ts.Len())
	}
	for tok, want := range map[string]bool{"alpha": true, "beta": true, "": false, "alph": false, "alphaa": false, "Alpha": false} {
		if got := ts.Valid(tok); got != want {
			t.Errorf("Valid(%q) = %v", tok, got)
		}
	}
	var none bearer.Tokens
	if none.Valid("") || none.Valid("alpha") {
		t.Error("the zero Tokens accepts a token")
	}
	if _, err := bearer.New([]string{"a", ""}); err == nil {
		t.Error("New accepts an empty token")
	}
}

func TestParse(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc", "Bearer": "", "Basic abc": "", "Bearerabc": ""} {
		got, ok := bearer.Parse(h)
		if got != want || ok != (want != "") {
			t.Errorf("Parse(%q) = %q %v", h, got, ok)
		}
	}
}

func TestRequest(t *testing.T) {
	ts, _ := bearer.New([]string{"alpha"})
	tests := []struct {
		header string // "" = none
		want   bearer.Check
	}{
		{"", bearer.Missing},
		{"Bearer alpha", bearer.OK},
		{"bearer alpha", bearer.OK},
		{"Bearer beta", bearer.Invalid},
		{"Basic alpha", bearer.Invalid},
		{"Bearer ", bearer.Invalid},
	}
	var got, want []bearer.Check
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		got = append(got, ts.Request(r))
		want = append(want, tt.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
