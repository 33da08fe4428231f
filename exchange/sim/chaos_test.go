package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

// chaosSeen is what a client saw of chaos.
type chaosSeen struct {
	closes                    map[websocket.StatusCode]int
	resets, fins              int
	bigs                      map[int]int // by size in MiB
	floods, garbage           int
	replays, resends, stalled int
}

// TestChaosDoesEveryFault connects again and again to a sim in chaos mode,
// with every knob short, and sees every kind of fault.
func TestChaosDoesEveryFault(t *testing.T) {
	t.Parallel()
	cfg := fastCfg()
	cfg.Speed = 60
	cfg.Chaos = &Chaos{Seed: 5, DropEvery: 400 * time.Millisecond, StallEvery: 300 * time.Millisecond, StallFor: 250 * time.Millisecond,
		FloodEvery: 300 * time.Millisecond, FloodFrames: 3000, FloodWithin: 100 * time.Millisecond,
		BigEvery: 150 * time.Millisecond, GarbageEvery: 40 * time.Millisecond, ReplayEvery: 60 * time.Millisecond, ResendEvery: 60 * time.Millisecond}
	s, ts := startSim(t, cfg)
	seen := chaosSeen{closes: map[websocket.StatusCode]int{}, bigs: map[int]int{}}
	done := func() bool {
		return seen.closes[websocket.StatusGoingAway] > 0 && seen.closes[websocket.StatusPolicyViolation] > 0 && seen.resets > 0 && seen.fins > 0 &&
			seen.bigs[2] > 0 && seen.bigs[16] > 0 && seen.floods > 1000 && seen.garbage > 0 && seen.replays > 0 && seen.resends > 0 && seen.stalled > 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for !done() && time.Now().Before(deadline) {
		chaosClient(t, s, ts, &seen)
	}
	if !done() {
		t.Fatalf("not every fault seen in 20 s: %+v; sim counts %v", seen, s.ChaosStats())
	}
	st := s.ChaosStats()
	for _, k := range chaosNames {
		if st[k] == 0 {
			t.Errorf("ChaosStats[%s] = 0: %v", k, st)
		}
	}
	var got struct {
		Active bool             `json:"active"`
		Counts map[string]int64 `json:"counts"`
		Config map[string]any   `json:"config"`
	}
	getJSON(t, ts.URL+"/sim/chaos", &got)
	if !got.Active || got.Counts["replay"] == 0 || got.Config["seed"] != 5.0 {
		t.Errorf("GET /sim/chaos = %+v", got)
	}
	// Chaos off: the stream is quiet again.
	postFault(t, ts, "mode=none")
	getJSON(t, ts.URL+"/sim/chaos", &got)
	if got.Active {
		t.Error("chaos still active")
	}
}

// chaosClient reads one connection until it ends, and records what it saw.
func chaosClient(t *testing.T, s *Server, ts *httptest.Server, seen *chaosSeen) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(ts, "/market/stream?streams=btcusdt@kline_1m"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(32 << 20)
	last := time.Now()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			switch code := websocket.CloseStatus(err); {
			case code != -1:
				seen.closes[code]++
			case strings.Contains(err.Error(), "reset by peer"):
				seen.resets++
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF"):
				seen.fins++
			}
			return
		}
		if time.Since(last) > 200*time.Millisecond {
			seen.stalled++ // a kline update every 20 ms, unless stalled
		}
		last = time.Now()
		if len(b) > 1<<20 {
			seen.bigs[len(b)>>20]++
			continue
		}
		var f struct {
			Data struct {
				E    string  `json:"e"`
				Time int64   `json:"E"`
				K    wsKline `json:"k"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &f) != nil || f.Data.E == "" {
			seen.garbage++
			continue
		}
		switch f.Data.E {
		case "simFlood":
			seen.floods++
		case "kline":
			w := f.Data.K
			k := exchange.Kline{Symbol: w.Symbol, Interval: w.Interval, OpenTime: w.OpenTime, CloseTime: w.CloseTime,
				Open: w.Open, High: w.High, Low: w.Low, Close: w.Close, Volume: w.Volume, QuoteVolume: w.QuoteVolume,
				Trades: w.Trades, TakerBuyBase: w.TakerBase, TakerBuyQuote: w.TakerQuote, Closed: w.Closed}
			if k.OpenTime <= 0 || k.Symbol == "" {
				seen.garbage++ // a kline without its fields
				continue
			}
			now := s.nowMs()
			if k.CloseTime >= now-2000 {
				continue // the open bar, or the final of the bar that just closed
			}
			want, err := s.TrueKlines("BTCUSDT", "1m", k.OpenTime, k.OpenTime)
			if err != nil || len(want) != 1 {
				t.Fatalf("truth of %d: %d klines, %v", k.OpenTime, len(want), err)
			}
			tk := want[0]
			switch {
			case k.Closed && k != tk:
				seen.replays++
			case !k.Closed && f.Data.Time > k.CloseTime:
				seen.resends++ // not a late update: sent after the close
			}
		}
	}
}

// TestChaosScheduleIsSeeded: a connection's schedule is a function of the
// seed and its number.
func TestChaosScheduleIsSeeded(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	draw := func(seed int64, seq uint64) []time.Time {
		r := newChaosRun(Chaos{Seed: seed}, 1)
		cc := r.schedule(&client{seq: seq}, t0)
		var out []time.Time
		for k := range numSched {
			at := cc.next[k]
			for range 5 {
				out = append(out, at)
				at = r.after(cc, k, at)
			}
		}
		return out
	}
	if d := cmp.Diff(draw(7, 3), draw(7, 3)); d != "" {
		t.Errorf("same seed, same connection, other schedule:\n%s", d)
	}
	if cmp.Equal(draw(7, 3), draw(8, 3)) || cmp.Equal(draw(7, 3), draw(7, 4)) {
		t.Error("another seed or connection draws the same schedule")
	}
	off := newChaosRun(Chaos{DropEvery: -1}, 1)
	if cc := off.schedule(&client{seq: 1}, t0); !cc.next[schedDrop].IsZero() || cc.next[schedStall].IsZero() {
		t.Errorf("a knob set to never: %v", cc.next)
	}
}

func TestParseChaos(t *testing.T) {
	c, err := ParseChaos("seed=9, drop=2s,stall=off,stallFor=5s,floodFrames=100,bigSizes=1024/4096", Chaos{GarbageEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := Chaos{Seed: 9, DropEvery: 2 * time.Second, StallEvery: -1, StallFor: 5 * time.Second, FloodFrames: 100, BigSizes: []int{1024, 4096}, GarbageEvery: time.Second}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, bad := range []string{"nope=1", "drop", "drop=-1s", "seed=x", "bigSizes=1"} {
		if _, err := ParseChaos(bad, Chaos{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTrueKlines: the ground truth is REST's closed klines, over HTTP too,
// and never the open bar.
func TestTrueKlines(t *testing.T) {
	t.Parallel()
	cfg := fastCfg()
	cfg.Speed = 600
	s, ts := startSim(t, cfg)
	now := s.nowMs()
	rest, err := s.Klines("BTCUSDT", "5m", 0, 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := s.TrueKlines("BTCUSDT", "5m", rest[0].OpenTime, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(truth) < 29 {
		t.Fatalf("%d true klines", len(truth))
	}
	for i, k := range truth[:29] {
		if !k.Closed || k != rest[i] {
			t.Fatalf("truth %d = %+v, REST %+v", i, k, rest[i])
		}
	}
	last := truth[len(truth)-1]
	if last.CloseTime >= s.nowMs() || last.CloseTime < now-5*minuteMs {
		t.Errorf("last true kline closes at %d, now %d", last.CloseTime, s.nowMs())
	}
	var got []exchange.Kline
	q := "symbol=BTCUSDT&interval=5m&startTime=" + strconv.FormatInt(truth[0].OpenTime, 10) + "&endTime=" + strconv.FormatInt(truth[9].OpenTime, 10)
	if res := getJSON(t, ts.URL+"/sim/truth/klines?"+q, &got); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if d := cmp.Diff(truth[:10], got); d != "" {
		t.Errorf("GET /sim/truth/klines (-want +got):\n%s", d)
	}
	for _, q := range []string{"interval=1m", "symbol=BTCUSDT", "symbol=NOPEUSDT&interval=1m", "symbol=BTCUSDT&interval=2m", "symbol=BTCUSDT&interval=1m&startTime=x"} {
		if res := getJSON(t, ts.URL+"/sim/truth/klines?"+q, nil); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d", q, res.StatusCode)
		}
	}
}
