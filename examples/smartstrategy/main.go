// Command smartstrategy is Jesse's SmartStrategy example as a Go program against
// a tradecache node: it reads the candles into a Store (from the node's
// klines API, then live kline events from /ws), computes a composite
// indicator (SMA 10 / SMA 30 and RSI 14) that it keeps in the file cache for
// 30 minutes, publishes its analysis on the event bus, and prints its
// decision.
//
//	go run ./cmd/tradecache serve --demo          # prints a /ws token
//	go run ./examples/smartstrategy --token <token> --updates 3
//
// With --redis the analysis goes to Redis pub/sub (every node's /ws relays
// it as live.analysis); without, to an in-process bus.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "smartstrategy:", err)
		os.Exit(1)
	}
}

type options struct {
	node, token, redis, symbol, timeframe, cacheDir, appPort string
	updates                                                  int
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("smartstrategy", flag.ContinueOnError)
	fs.StringVar(&o.node, "node", "http://127.0.0.1:8080", "tradecache node")
	fs.StringVar(&o.token, "token", os.Getenv("TRADECACHE_WS_TOKEN"), "the node's /ws token (live klines); empty: poll the klines API")
	fs.StringVar(&o.redis, "redis", os.Getenv("REDIS_URL"), "publish the analysis on this Redis's event channel (REDIS_URL; empty: in process)")
	fs.StringVar(&o.appPort, "app-port", cmp.Or(os.Getenv("APP_PORT"), keyspace.DefaultAppPort), "APP_PORT naming the event channel <APP_PORT>:channel:1, the one every node shares by default")
	fs.StringVar(&o.symbol, "symbol", "BTCUSDT", "symbol")
	fs.StringVar(&o.timeframe, "timeframe", "1m", "timeframe")
	fs.StringVar(&o.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "tradecache-smartstrategy"), "file cache directory")
	fs.IntVar(&o.updates, "updates", 1, "decisions to make (one per closed candle after the first); 0 runs until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := &strategy{o: o, st: store.New(store.Config{}), out: stdout}
	fc, err := filecache.Open(o.cacheDir, filecache.Options{})
	if err != nil {
		return err
	}
	defer fc.Close()
	s.fc = fc
	pub, closeBus, err := publisher(ctx, o)
	if err != nil {
		return err
	}
	defer closeBus()
	s.pub = pub

	if err := s.loadCandles(ctx); err != nil {
		return err
	}
	if err := s.decide(ctx); err != nil {
		return err
	}
	for n := 1; o.updates == 0 || n < o.updates; n++ {
		if err := s.nextClose(ctx); err != nil {
			return err
		}
		if err := s.decide(ctx); err != nil {
			return err
		}
	}
	return nil
}

// publisher returns the bus the analysis goes to.
func publisher(ctx context.Context, o options) (bus.Publisher, func(), error) {
	if o.redis == "" {
		return bus.NewLocal(bus.LocalConfig{Mode: "live", Publisher: "smartstrategy"}), func() {}, nil
	}
	opt, err := cache.RedisOptions(o.redis)
	if err != nil {
		return nil, nil, err
	}
	c, err := cache.New(cache.Config{Redis: opt})
	if err != nil {
		return nil, nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, nil, err
	}
	ch, err := keyspace.MustNew(keyspace.Config{}).Channel(o.appPort)
	if err != nil {
		return nil, nil, err
	}
	rb, err := bus.NewRedis(c, bus.RedisConfig{Channel: ch, Mode: "live", Publisher: "smartstrategy"})
	if err != nil {
		return nil, nil, err
	}
	return rb, c.Close, nil
}

type strategy struct {
	o   options
	st  *store.Store
	fc  *filecache.Cache
	pub bus.Publisher
	out io.Writer
	ws  *websocket.Conn
	// closedTS is the open time of the newest closed candle: the Store's
	// newest candle may still be forming.
	closedTS float64
}

const exchangeName = "binance"

// loadCandles fills the Store with the node's last 200 klines.
func (s *strategy) loadCandles(ctx context.Context) error {
	var rows [][]any
	url := fmt.Sprintf("%s/api/v1/klines?symbol=%s&interval=%s&limit=200", s.o.node, s.o.symbol, s.o.timeframe)
	if err := getJSON(ctx, url, &rows); err != nil {
		return fmt.Errorf("load candles: %w", err)
	}
	for _, r := range rows {
		if len(r) < 6 {
			return fmt.Errorf("load candles: a row of %d fields", len(r))
		}
		ts, _ := r[0].(float64)
		c := store.Candle{ts, num(r[1]), num(r[4]), num(r[2]), num(r[3]), num(r[5])} // Jesse's order: ts, open, close, high, low, volume
		if err := s.st.AddCandle(exchangeName, s.o.symbol, s.o.timeframe, c); err != nil {
			return fmt.Errorf("load candles: %w", err)
		}
	}
	if len(rows) >= 2 { // the last row is the forming candle
		s.closedTS, _ = rows[len(rows)-2][0].(float64)
	}
	return nil
}

func num(v any) float64 {
	s, _ := v.(string)
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// nextClose waits for the next closed candle: a live.kline event with x
// set, or, without a token, the klines API polled every second.
func (s *strategy) nextClose(ctx context.Context) error {
	last := s.closedTS
	if s.o.token == "" {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			if err := s.loadCandles(ctx); err != nil {
				return err
			}
			if s.closedTS > last {
				return nil
			}
		}
	}
	if s.ws == nil {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.o.node, "http")+"/ws",
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + s.o.token}}})
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		ws.SetReadLimit(1 << 20)
		if err := wsjson.Write(ctx, ws, map[string]any{"type": "subscribe", "events": []string{"live.kline"}}); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		s.ws = ws
	}
	for {
		var env struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := wsjson.Read(ctx, s.ws, &env); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		var k exchange.Kline
		if env.Event != "live.kline" || json.Unmarshal(env.Data, &k) != nil || k.Symbol != s.o.symbol || k.Interval != s.o.timeframe {
			continue
		}
		c := store.Candle{float64(k.OpenTime), num(k.Open), num(k.Close), num(k.High), num(k.Low), num(k.Volume)}
		if err := s.st.AddCandle(exchangeName, s.o.symbol, s.o.timeframe, c); err != nil && !errors.Is(err, store.ErrTooOld) {
			return err
		}
		if k.Closed && float64(k.OpenTime) > last {
			s.closedTS = float64(k.OpenTime)
			return nil
		}
	}
}

// decide computes (or reads from the file cache) the analysis of the newest
// closed candle, publishes it and prints the decision.
func (s *strategy) decide(ctx context.Context) error {
	closed := s.st.Candles(exchangeName, s.o.symbol, s.o.timeframe, 0)
	for len(closed) > 0 && closed[len(closed)-1][0] > s.closedTS {
		closed = closed[:len(closed)-1] // still forming
	}
	if len(closed) == 0 {
		return errTooFew
	}
	newest := int64(closed[len(closed)-1][0])
	key := fmt.Sprintf("smartstrategy:%s:%s:%d", s.o.symbol, s.o.timeframe, newest)
	a, cached, err := filecache.GetJSON[Analysis](s.fc, key)
	if err != nil {
		return err
	}
	if !cached {
		closes := make([]float64, len(closed))
		for i, c := range closed {
			closes[i] = c[store.ColClose]
		}
		a = Analysis{Symbol: s.o.symbol, Timeframe: s.o.timeframe, CandleTS: newest, Close: closes[len(closes)-1]}
		if a.SMA10, a.SMA30, a.RSI14, a.Signal, err = analyse(closes); err != nil {
			return err
		}
		if err := filecache.SetJSON(s.fc, key, a, 30*time.Minute); err != nil {
			return err
		}
	}
	if err := s.pub.Publish(ctx, "analysis", a); err != nil {
		return fmt.Errorf("publish analysis: %w", err)
	}
	from := "computed"
	if cached {
		from = "from the file cache"
	}
	fmt.Fprintf(s.out, "%s %s candle %s close %.2f: SMA10 %.2f SMA30 %.2f RSI14 %.1f (%s) → %s\n",
		s.o.symbol, s.o.timeframe, time.UnixMilli(newest).UTC().Format(time.DateTime), a.Close, a.SMA10, a.SMA30, a.RSI14, from, a.Signal)
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, res.Status, b)
	}
	return json.NewDecoder(res.Body).Decode(v)
}
