package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRunAgainstKlinesAPI runs the strategy twice against a node's klines
// API (served here from fixed rows): the first run computes the analysis,
// the second finds it in the file cache.
func TestRunAgainstKlinesAPI(t *testing.T) {
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/klines" || r.URL.Query().Get("symbol") != "BTCUSDT" {
			http.NotFound(w, r)
			return
		}
		var rows [][]any
		for i := range 60 {
			c := fmt.Sprint(100 + i) // rising closes
			rows = append(rows, []any{int64(i)*60000 + 60000, c, c, c, c, "1", int64(i)*60000 + 119999, "1", 1, "0", "0", "0"})
		}
		json.NewEncoder(w).Encode(rows)
	}))
	defer node.Close()
	dir := t.TempDir()
	var out bytes.Buffer
	for range 2 {
		if err := run(context.Background(), []string{"--node", node.URL, "--cache-dir", dir, "--token", ""}, &out); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "(computed)") || !strings.Contains(lines[1], "(from the file cache)") {
		t.Fatalf("output:\n%s", out.String())
	}
	// 59 closed candles closing 100…158: SMA10 = 153.5, SMA30 = 143.5, RSI 100 → hold.
	if !strings.Contains(lines[0], "SMA10 153.50 SMA30 143.50 RSI14 100.0") || !strings.HasSuffix(lines[0], "→ hold") {
		t.Fatalf("analysis: %s", lines[0])
	}
}
