package sim

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
)

func TestIntervalBoundaries(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 18, 17, 43, 21, 5e6, time.UTC).UnixMilli() // a Wednesday
	ms := func(y int, mo time.Month, d, h, mi int) int64 {
		return time.Date(y, mo, d, h, mi, 0, 0, time.UTC).UnixMilli()
	}
	for _, tc := range []struct {
		iv         string
		open, next int64
	}{
		{"1m", ms(2026, 3, 18, 17, 43), ms(2026, 3, 18, 17, 44)},
		{"15m", ms(2026, 3, 18, 17, 30), ms(2026, 3, 18, 17, 45)},
		{"4h", ms(2026, 3, 18, 16, 0), ms(2026, 3, 18, 20, 0)},
		{"1d", ms(2026, 3, 18, 0, 0), ms(2026, 3, 19, 0, 0)},
		{"1w", ms(2026, 3, 16, 0, 0), ms(2026, 3, 23, 0, 0)}, // Monday
		{"1M", ms(2026, 3, 1, 0, 0), ms(2026, 4, 1, 0, 0)},
	} {
		iv := intervals[tc.iv]
		got := []int64{iv.open(at), iv.next(iv.open(at)), iv.back(iv.next(iv.open(at)), 1)}
		if d := cmp.Diff([]int64{tc.open, tc.next, tc.open}, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.iv, d)
		}
	}
	if got := intervals["3d"].open(at) % (3 * dayMs); got != 0 {
		t.Errorf("3d not epoch aligned: %d", got)
	}
	if d := cmp.Diff(ms(2025, 12, 1, 0, 0), intervals["1M"].back(ms(2026, 3, 1, 0, 0), 3)); d != "" {
		t.Error(d)
	}
}

// The kline of (symbol, interval, openTime) depends on the seed alone, not
// on Start, Speed or when it is asked.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	a := newServer(t, Config{Seed: 42, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), History: 100000})
	b := newServer(t, Config{Seed: 42, Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Speed: 500, History: 100000})
	c := newServer(t, Config{Seed: 43, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), History: 100000})
	from := time.Date(2025, 12, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	for _, iv := range []string{"1m", "1h", "1d"} {
		ka, err := a.Klines("BTCUSDT", iv, from, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := b.Klines("BTCUSDT", iv, from, 0, 3)
		kc, _ := c.Klines("BTCUSDT", iv, from, 0, 3)
		if len(ka) != 3 {
			t.Fatalf("%s: %d klines", iv, len(ka))
		}
		if d := cmp.Diff(ka, kb); d != "" {
			t.Errorf("%s: same seed, different klines:\n%s", iv, d)
		}
		if cmp.Equal(ka, kc) {
			t.Errorf("%s: seeds 42 and 43 give the same klines", iv)
		}
	}
}

// The open minute at second s is a prefix of the closed minute, and at
// second 59 it is the closed minute.
func TestPartialIsPrefix(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"BTCUSDT", "DOGEUSDT", "ABCUSDC"} {
		sy, err := newSymbol(name, 0, 9)
		if err != nil {
			t.Fatal(err)
		}
		for m := int64(29_000_000); m < 29_000_050; m++ {
			full := sy.aggMinutes(m, m+1)
			if full.low > min(full.open, full.close) || full.high < max(full.open, full.close) || full.low <= 0 {
				t.Fatalf("%s %d: bad bar %+v", name, m, full)
			}
			var prev bar
			for s := range 60 {
				p := sy.partial(m, s)
				if p.open != full.open || p.high > full.high || p.low < full.low ||
					p.close > p.high || p.close < p.low || p.vol > full.vol || p.trades > full.trades {
					t.Fatalf("%s %d s=%d: partial %+v outside full %+v", name, m, s, p, full)
				}
				if s > 0 && (p.high < prev.high || p.low > prev.low || p.vol < prev.vol || p.lastID < prev.lastID) {
					t.Fatalf("%s %d s=%d: partial went backwards: %+v after %+v", name, m, s, p, prev)
				}
				prev = p
			}
			if d := cmp.Diff(full, prev, cmp.AllowUnexported(bar{})); d != "" {
				t.Fatalf("%s %d: second 59 is not the closed bar:\n%s", name, m, d)
			}
		}
	}
}

// units parses a decimal string into an integer of its last digit.
func units(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.Replace(s, ".", "", 1), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Longer intervals are exact aggregations of shorter ones.
func TestAggregation(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{Seed: 5, Start: time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC), History: 100000})
	check := func(long string, open int64, short string, n int) {
		t.Helper()
		lk, err := s.Klines("ETHUSDT", long, open, 0, 1)
		if err != nil || len(lk) != 1 {
			t.Fatalf("%s: %v %v", long, lk, err)
		}
		sk, err := s.Klines("ETHUSDT", short, open, lk[0].CloseTime, 1500)
		if err != nil || len(sk) != n {
			t.Fatalf("%s: %d klines, %v", short, len(sk), err)
		}
		agg := exchange.Kline{Open: sk[0].Open, Close: sk[n-1].Close, High: sk[0].High, Low: sk[0].Low}
		var v, q, tb, tq, tr int64
		for _, k := range sk {
			if units(t, k.High) > units(t, agg.High) {
				agg.High = k.High
			}
			if units(t, k.Low) < units(t, agg.Low) {
				agg.Low = k.Low
			}
			v += units(t, k.Volume)
			q += units(t, k.QuoteVolume)
			tb += units(t, k.TakerBuyBase)
			tq += units(t, k.TakerBuyQuote)
			tr += k.Trades
		}
		l := lk[0]
		got := []any{l.Open, l.High, l.Low, l.Close, units(t, l.Volume), units(t, l.QuoteVolume), units(t, l.TakerBuyBase), units(t, l.TakerBuyQuote), l.Trades}
		want := []any{agg.Open, agg.High, agg.Low, agg.Close, v, q, tb, tq, tr}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s vs %d×%s (-aggregated +%s):\n%s", long, n, short, long, d)
		}
	}
	day := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	check("1h", day+5*3600_000, "1m", 60)
	check("1d", day, "1h", 24)
	check("1d", day, "1m", 1440)
	check("1w", time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC).UnixMilli(), "1d", 7)
	check("1M", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), "1d", 31)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Symbols: []string{"btcusdt"}},
		{Symbols: []string{"BTCEUR"}},
		{Symbols: []string{"BTCUSDT", "BTCUSDT"}},
		{Speed: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	s := newServer(t, Config{Symbols: []string{"PEPEUSDT", "XYZUSDC"}})
	if _, err := s.Klines("XYZUSDC", "1m", 0, 0, 2); err != nil {
		t.Error(err)
	}
}

// An in-process subscriber on the fake clock: at 3600× fifteen 1m bars
// close per 250 ms tick, and each still closes exactly once, in order.
func TestEveryBarClosesOnceSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s := newServer(t, Config{Speed: 3600, Start: start})
		c := newClient(s, nil, routeMarket, true)
		s.addClient(c)
		if !s.subscribe(c, []string{"btcusdt@kline_1m", "btcusdt@kline_1h"}) {
			t.Fatal("subscribe refused")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		time.Sleep(10*time.Second + time.Millisecond) // 36000 s of sim time
		cancel()
		<-done

		closes := map[string][]int64{}
		for len(c.q) > 0 {
			var f struct {
				Stream string
				Data   wsKlineEvent
			}
			if err := json.Unmarshal(<-c.q, &f); err != nil {
				t.Fatal(err)
			}
			if f.Data.K.Closed {
				if f.Data.Time != f.Data.K.CloseTime+1 {
					t.Errorf("closed bar event time %d, close %d", f.Data.Time, f.Data.K.CloseTime)
				}
				closes[f.Stream] = append(closes[f.Stream], f.Data.K.OpenTime)
			}
		}
		for stream, n := range map[string]int{"btcusdt@kline_1m": 600, "btcusdt@kline_1h": 10} {
			step := map[string]int64{"btcusdt@kline_1m": minuteMs, "btcusdt@kline_1h": 60 * minuteMs}[stream]
			var want []int64
			for i := range n {
				want = append(want, start.UnixMilli()+int64(i)*step)
			}
			if d := cmp.Diff(want, closes[stream]); d != "" {
				t.Errorf("%s closes (-want +got):\n%s", stream, d)
			}
		}
		// Run's end asks every connection to go away.
		if req := <-c.closeReq; req.code != 1001 {
			t.Errorf("close %+v", req)
		}
	})
}

func TestFaultExpirySynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Config{})
		if err := s.SetFault(Fault{Mode: FaultStall, Duration: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1999 * time.Millisecond)
		if m := s.fault.snapshot().mode; m != FaultStall {
			t.Errorf("mode %s before expiry", m)
		}
		time.Sleep(time.Millisecond)
		if m := s.fault.snapshot().mode; m != FaultNone {
			t.Errorf("mode %s after expiry", m)
		}
		if err := s.SetFault(Fault{Mode: "bogus"}); err == nil {
			t.Error("bogus mode accepted")
		}
		// Drop without a duration is one shot.
		if err := s.SetFault(Fault{Mode: FaultDrop}); err != nil {
			t.Fatal(err)
		}
		if m := s.fault.snapshot().mode; m != FaultNone {
			t.Errorf("mode %s after one-shot drop", m)
		}
	})
}

func TestIncomingBucketSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Config{})
		c := newClient(s, nil, routeMarket, true)
		var got []bool
		for range 11 {
			got = append(got, c.allow())
		}
		time.Sleep(100 * time.Millisecond)
		got = append(got, c.allow(), c.allow())
		want := []bool{true, true, true, true, true, true, true, true, true, true, false, true, false}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
}

func TestSimClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s := newServer(t, Config{Speed: 60, Start: start})
		time.Sleep(1500 * time.Millisecond)
		if got, want := s.Now(), start.Add(90*time.Second); !got.Equal(want) {
			t.Errorf("Now %v, want %v", got, want)
		}
	})
}
