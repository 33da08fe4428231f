// Package benchfmt holds what `tradecache bench` commands share: a latency
// histogram of fixed size, and the output format users compare — one line
// per figure, "<figure> <value> <unit>", or one JSON object with --json.
package benchfmt

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"time"
)

// Hist is a log-linear latency histogram: 16 linear sub-buckets per power of
// two of nanoseconds, so a quantile is exact to within 1/16 (6 %) at any
// scale, in a fixed 1 KiB×8 of memory however many samples it takes. Not
// safe for concurrent use: give each goroutine its own and Merge them.
type Hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    time.Duration
}

const subBits = 4
const subBuckets = 1 << subBits

func index(ns uint64) int {
	if ns < subBuckets {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 - subBits // ns >> exp is in [16, 32)
	return (exp+1)*subBuckets + int(ns>>exp) - subBuckets
}

// lower returns the smallest value of bucket i.
func lower(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << exp
}

// Record adds one sample.
func (h *Hist) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[index(uint64(d))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

// Merge adds o's samples to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of samples.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest sample.
func (h *Hist) Max() time.Duration { return h.max }

// Quantile returns the q-quantile (0..1), the lower bound of its bucket.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(lower(i)), h.max)
		}
	}
	return h.max
}

// histJSON is Hist on the wire: the non-empty buckets only.
type histJSON struct {
	N       uint64            `json:"n"`
	Max     int64             `json:"max_ns"`
	Buckets map[string]uint64 `json:"buckets"` // bucket index → count
}

// MarshalJSON encodes h for another process (a bench's clients) to merge.
func (h *Hist) MarshalJSON() ([]byte, error) {
	j := histJSON{N: h.n, Max: int64(h.max), Buckets: map[string]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			j.Buckets[strconv.Itoa(i)] = c
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encoded.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*h = Hist{n: j.N, max: time.Duration(j.Max)}
	for k, c := range j.Buckets {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(h.counts) {
			return fmt.Errorf("benchfmt: histogram bucket %q out of range", k)
		}
		h.counts[i] = c
	}
	return nil
}

// Figure is one reported number.
type Figure struct {
	Name  string
	Value float64
	Unit  string
}

// Report is an ordered list of figures.
type Report []Figure

// Add appends a figure.
func (r *Report) Add(name string, value float64, unit string) {
	*r = append(*r, Figure{name, value, unit})
}

// AddLatency appends p50 and p99 of h in microseconds under name.p50/p99.
func (r *Report) AddLatency(name string, h *Hist) {
	r.Add(name+".p50", us(h.Quantile(0.50)), "us")
	r.Add(name+".p99", us(h.Quantile(0.99)), "us")
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// Write prints the report: lines, or one JSON object {"figure": {"value", "unit"}}.
func (r Report) Write(w io.Writer, asJSON bool) error {
	if asJSON {
		m := map[string]any{}
		for _, f := range r {
			m[f.Name] = map[string]any{"value": f.Value, "unit": f.Unit}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	for _, f := range r {
		if _, err := fmt.Fprintf(w, "%s %s %s\n", f.Name, strconv.FormatFloat(f.Value, 'f', -1, 64), f.Unit); err != nil {
			return err
		}
	}
	return nil
}

// Round keeps n significant digits, for readable figures.
func Round(v float64, n int) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}
