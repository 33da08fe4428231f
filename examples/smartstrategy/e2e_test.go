package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/store"
	"github.com/tradecache/tradecache/storefeed"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	wsToken   = "smartstrategy-e2e-token-0123456789"
	apiKey    = "e2e-api-key-AKIAEXAMPLE"
	apiSecret = "e2e-secret-never-shown-9f8e7d"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/tradecache once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "smartstrategy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tradecache")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/tradecache")
		build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// lockedBuf is a log both the process and the test touch.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// spawn runs the binary and returns the first http:// address it prints.
func spawn(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "TRADECACHE_ENV_FILE=/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	log := &lockedBuf{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		re := regexp.MustCompile(`(?:http|on) (?:http://)?(127\.0\.0\.1:\d+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- "http://" + m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(15 * time.Second):
		t.Fatalf("%s printed no address; log:\n%s", name, log.String())
		return ""
	}
}

// analyses reads strategy_analysis events from a node's /ws.
func analyses(t *testing.T, ctx context.Context, node string) <-chan json.RawMessage {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws"+node[len("http"):]+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + wsToken}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "subscribe", "events": []string{"live.strategy_analysis"}}); err != nil {
		t.Fatal(err)
	}
	var reply struct{ Type string }
	if err := wsjson.Read(ctx, conn, &reply); err != nil || reply.Type != "subscribed" {
		t.Fatalf("subscribe: %+v %v", reply, err)
	}
	ch := make(chan json.RawMessage, 16)
	go func() {
		for {
			var env struct {
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if err := wsjson.Read(ctx, conn, &env); err != nil {
				close(ch)
				return
			}
			if env.Event == "live.strategy_analysis" {
				ch <- env.Data
			}
		}
	}()
	return ch
}

// next returns the next analysis, decoded, checking it holds exactly
// Jesse's three fields.
func next(t *testing.T, ch <-chan json.RawMessage) Analysis {
	t.Helper()
	select {
	case data, ok := <-ch:
		if !ok {
			t.Fatal("the /ws connection ended")
		}
		var fields map[string]any
		if err := json.Unmarshal(data, &fields); err != nil || len(fields) != 3 || fields["symbol"] == nil || fields["indicator_value"] == nil || fields["signal"] == nil {
			t.Fatalf("strategy_analysis data %s: want exactly symbol, indicator_value, signal", data)
		}
		var a Analysis
		if err := json.Unmarshal(data, &a); err != nil {
			t.Fatal(err)
		}
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no strategy_analysis on the node's /ws within 5 s")
		return Analysis{}
	}
}

// TestAgainstANodeOnRedis: the strategy beside a node on Redis with a
// simulated account. With a position open (a MARKET fill) it publishes its
// analysis, which the node relays on /ws, and does not go long; once the
// position is closed it decides from the indicator alone. The program
// itself then runs against the same node, finding the event channel
// without flags.
func TestAgainstANodeOnRedis(t *testing.T) {
	r := testenv.Start(t)
	sim := spawn(t, "sim", "sim", "--listen", "127.0.0.1:0", "--speed", "60", "--symbols", "BTCUSDT",
		"--api-key", apiKey, "--api-secret", apiSecret, "--balance", "USDT=10000")
	node := spawn(t, "node", "serve", "--listen", "127.0.0.1:0", "--redis", r.URL(), "--node-id", "n1",
		"--exchange-rest", sim, "--exchange-ws", "ws"+sim[len("http"):], "--symbols", "BTCUSDT", "--intervals", "1m",
		"--ws-token", wsToken, "--api-key", apiKey, "--api-secret", apiSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rest := binance.NewREST(binance.RESTConfig{BaseURL: sim, APIKey: apiKey, APISecret: apiSecret})
	order := func(side string, reduce bool) {
		t.Helper()
		if _, err := rest.PlaceOrder(ctx, binance.OrderRequest{Symbol: "BTCUSDT", Side: side, Type: "MARKET", Quantity: "0.010", ReduceOnly: reduce}); err != nil {
			t.Fatal(err)
		}
	}

	// The Store, kept live from the node.
	st := store.New(store.Config{})
	feed, err := storefeed.New(st, storefeed.Config{Node: node, WSToken: wsToken, Symbols: []string{"BTCUSDT"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	fctx, stopFeed := context.WithCancel(ctx)
	fed := make(chan error, 1)
	go func() { fed <- feed.Run(fctx) }()
	defer func() { stopFeed(); <-fed }()
	select {
	case <-feed.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("feeder not ready: %+v", feed.Stats())
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return st.Len("binance", "BTCUSDT", "1m") >= 30 }, "fewer than 30 candles")

	// The publisher as the program makes it: REDIS_URL, no APP_PORT.
	env := func(k string) string { return map[string]string{"REDIS_URL": r.URL()}[k] }
	events, closeBus, err := publisher(ctx, options{redis: r.URL(), mode: "live"}, env)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBus()
	fc, err := filecache.Open(t.TempDir(), filecache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	s := &SmartStrategy{Exchange: "binance", Symbol: "BTCUSDT", Timeframe: "1m", Store: st, Cache: fc, Events: events}
	relayed := analyses(t, ctx, node)

	// A position open: no long, whatever the indicator.
	order("BUY", false)
	testenv.Eventually(t, 5*time.Second, func() bool { p, _ := st.Position("binance", "BTCUSDT"); return p.Qty == 0.01 }, "the fill did not reach the Store")
	long, err := s.ShouldLong(ctx)
	if err != nil || long {
		t.Fatalf("ShouldLong with a position = %v, %v; want false", long, err)
	}
	indicator, cached, _ := s.ComplexIndicator()
	if !cached {
		t.Error("the indicator was not cached by ShouldLong")
	}
	signal := map[bool]string{true: "bullish", false: "bearish"}[indicator > 50]
	if got, want := next(t, relayed), (Analysis{"BTCUSDT", indicator, signal}); got != want {
		t.Errorf("relayed analysis %+v, want %+v", got, want)
	}

	// Closed: the indicator alone decides.
	order("SELL", true)
	testenv.Eventually(t, 5*time.Second, func() bool { p, _ := st.Position("binance", "BTCUSDT"); return p.Qty == 0 }, "the close did not reach the Store")
	long, err = s.ShouldLong(ctx)
	if err != nil || long != (indicator > 50) {
		t.Fatalf("ShouldLong flat = %v, %v; want %v (indicator %v)", long, err, indicator > 50, indicator)
	}
	if got, want := next(t, relayed), (Analysis{"BTCUSDT", indicator, signal}); got != want {
		t.Errorf("relayed analysis %+v, want %+v", got, want)
	}
	t.Logf("indicator %.4f (%s): long %v with the position open, %v flat", indicator, signal, false, long)

	// The program: two decisions (at start, at the next closed candle),
	// published on the channel the node relays, found from REDIS_URL alone.
	var out bytes.Buffer
	args := []string{"--node", node, "--token", wsToken, "--decisions", "2", "--cache-dir", t.TempDir()}
	if err := run(ctx, args, env, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "(live.strategy_analysis)") || !strings.Contains(lines[1], "position 0 → should_long") {
		t.Errorf("program output:\n%s", out.String())
	}
	for range 2 {
		if a := next(t, relayed); a.Symbol != "BTCUSDT" || a.Signal != map[bool]string{true: "bullish", false: "bearish"}[a.IndicatorValue > 50] {
			t.Errorf("the program's analysis %+v", a)
		}
	}
	t.Logf("program output:\n%s", out.String())
}
