package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestNewRefusesContradictions(t *testing.T) {
	base := node.Config{NodeID: "n1", Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}}
	tests := []struct {
		name string
		edit func(*node.Config)
		want string
	}{
		{"sim with a REST URL", func(c *node.Config) { c.Exchange = node.Exchange{Kind: node.ExchangeSim, REST: "http://x"} }, "exchange sim"},
		{"demo with a WS URL", func(c *node.Config) { c.Demo, c.Exchange.WS = true, "ws://x" }, "demo"},
		{"key without secret", func(c *node.Config) { c.Account.APIKey = "k" }, "API secret"},
		{"no symbols", func(c *node.Config) { c.Market.Symbols = nil }, "no symbols"},
		{"unknown exchange", func(c *node.Config) { c.Exchange.Kind = "kraken" }, "kraken"},
		{"a value cap below a kline", func(c *node.Config) { c.Keys.MaxValue = 100 }, "MaxValue 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			if _, err := node.New(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A demo node runs from its Config alone: it prints its dashboard address
// with the generated token, serves /healthz on the default channel, and
// stops when its context ends.
func TestDemoNodeRuns(t *testing.T) {
	var out syncBuf
	n, err := node.New(node.Config{NodeID: "demo-1", Demo: true, Stdout: &out,
		HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
		Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	dash := regexp.MustCompile(`dashboard: http://(127\.0\.0\.1:\d+)/#token=([0-9a-f]+)`)
	var m []string
	testenv.Eventually(t, 5*time.Second, func() bool { m = dash.FindStringSubmatch(out.String()); return m != nil }, "no dashboard address printed:\n%s", out.String())
	if !strings.Contains(out.String(), "events on 9000:channel:1") || !strings.Contains(out.String(), "embedded memory tier") {
		t.Errorf("banner:\n%s", out.String())
	}
	res, err := http.Get("http://" + m[1] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h httpapi.Health
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if h.NodeID != "demo-1" || h.CacheTier != "memory" {
		t.Errorf("healthz = %+v", h)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
