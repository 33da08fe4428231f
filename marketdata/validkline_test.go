package marketdata

import (
	"strconv"
	"strings"
	"testing"
)

// plainNonNegative never vouches for what strconv.ParseFloat would
// refuse or read as negative, NaN or infinite.
func TestPlainNonNegative(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"0", true}, {"52.318", true}, {".5", true}, {"5.", true}, {"007", true}, {strings.Repeat("9", 300), true},
		{"", false}, {".", false}, {"1.2.3", false}, {"-1", false}, {"+1", false}, {"1e3", false}, {"NaN", false},
		{"Inf", false}, {"0x1p3", false}, {"1_0", false}, {" 1", false}, {strings.Repeat("9", 301), false},
	} {
		got := plainNonNegative(tt.in)
		if got != tt.want {
			t.Errorf("plainNonNegative(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if got {
			f, err := strconv.ParseFloat(tt.in, 64)
			if err != nil || f < 0 || f != f {
				t.Errorf("plainNonNegative(%q) but ParseFloat = %v, %v", tt.in, f, err)
			}
		}
	}
}

func FuzzPlainNonNegative(f *testing.F) {
	for _, s := range []string{"0", "52.318", ".5", "1e3", "-0", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainNonNegative(s) {
			return
		}
		if v, err := strconv.ParseFloat(s, 64); err != nil || v < 0 || v != v {
			t.Fatalf("plainNonNegative(%q) but ParseFloat = %v, %v", s, v, err)
		}
	})
}
