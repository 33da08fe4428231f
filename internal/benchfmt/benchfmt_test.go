package benchfmt_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tradecache/tradecache/internal/benchfmt"
)

func TestQuantilesWithinBucketError(t *testing.T) {
	var h, a, b benchfmt.Hist
	var samples []time.Duration
	for i := range 100000 {
		d := time.Duration(rand.ExpFloat64() * float64(50*time.Microsecond))
		samples = append(samples, d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	h.Merge(&a)
	h.Merge(&b)
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := samples[int(q*float64(len(samples)))-1]
		got := h.Quantile(q)
		if got > exact || float64(exact-got) > float64(exact)/16+1 {
			t.Errorf("q%.3f = %v, exact %v", q, got, exact)
		}
	}
	if h.Count() != 100000 || h.Max() != samples[len(samples)-1] {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
}

func TestReportFormat(t *testing.T) {
	var r benchfmt.Report
	r.Add("cache.get.redis", 412345, "ops/s")
	r.Add("cache.get.redis.p99", 81.5, "us")
	var buf bytes.Buffer
	r.Write(&buf, false)
	if got, want := buf.String(), "cache.get.redis 412345 ops/s\ncache.get.redis.p99 81.5 us\n"; got != want {
		t.Errorf("lines = %q, want %q", got, want)
	}
	buf.Reset()
	r.Write(&buf, true)
	if !bytes.Contains(buf.Bytes(), []byte(`"cache.get.redis": {`)) {
		t.Errorf("json = %s", buf.String())
	}
}

func TestHistJSON(t *testing.T) {
	var h benchfmt.Hist
	for _, d := range []time.Duration{0, 5, 100, 1000, 123456, 7 * time.Second} {
		h.Record(d)
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var g benchfmt.Hist
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if g != h {
		t.Fatalf("round trip changed the histogram: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"n":1,"buckets":{"9999":1}}`), &g); err == nil {
		t.Fatal("a bucket out of range was accepted")
	}
}
