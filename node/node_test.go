package node_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

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

// A demo node runs from its Config alone: it prints its dashboard address
// with the generated token, serves /healthz on the default channel, and
// stops when its context ends.
func TestDemoNodeRuns(t *testing.T) {
	out, stop := runDemo(t, "demo-1", node.Redis{})
	dash := regexp.MustCompile(`dashboard: http://(127\.0\.0\.1:\d+)/#token=([A-Za-z0-9_-]+)`)
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
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// runDemo runs a demo node on a free port until stop, which returns Run's
// error.
func runDemo(t *testing.T, id string, r node.Redis) (*testenv.Buffer, func() error) {
	t.Helper()
	out := &testenv.Buffer{}
	n, err := node.New(node.Config{NodeID: id, Demo: true, Stdout: out, Redis: r,
		HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
		Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return out, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
}

// A demo node given a Redis says it runs on Redis, not that it needs none.
func TestDemoNodeOnRedisSaysSo(t *testing.T) {
	r := testenv.Start(t)
	out, stop := runDemo(t, "demo-r", node.Redis{URL: r.URL()})
	testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(out.String(), "demo mode") }, "no demo line")
	stop()
	if s := out.String(); !strings.Contains(s, "demo mode: simulated exchange and account on Redis") || strings.Contains(s, "no Redis") {
		t.Errorf("banner of a demo node on Redis:\n%s", s)
	}
}

// --event-prefix names the node's events: a /ws client sees
// papertrade.heartbeat, and the heartbeat's node is this one.
func TestEventPrefix(t *testing.T) {
	out := &testenv.Buffer{}
	n, err := node.New(node.Config{NodeID: "paper-1", Demo: true, Stdout: out,
		HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
		Events: node.Events{Prefix: "papertrade", SessionID: "s-1"},
		Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	dash := regexp.MustCompile(`dashboard: http://(127\.0\.0\.1:\d+)/#token=([A-Za-z0-9_-]+)`)
	var m []string
	testenv.Eventually(t, 5*time.Second, func() bool { m = dash.FindStringSubmatch(out.String()); return m != nil }, "no dashboard address")
	conn, _, err := websocket.Dial(ctx, "ws://"+m[1]+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + m[2]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "subscribe", "events": []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	for {
		var env struct {
			Type  string          `json:"type"`
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := wsjson.Read(ctx, conn, &env); err != nil {
			t.Fatalf("no papertrade.heartbeat: %v", err)
		}
		if env.Type != "" {
			continue
		}
		if !strings.HasPrefix(env.Event, "papertrade.") {
			t.Fatalf("event %q is not under the prefix", env.Event)
		}
		if env.Event == "papertrade.heartbeat" {
			var h httpapi.Health
			if json.Unmarshal(env.Data, &h) != nil || h.NodeID != "paper-1" {
				t.Errorf("heartbeat %s", env.Data)
			}
			return
		}
	}
}
