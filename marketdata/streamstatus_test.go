package marketdata_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/marketdata"
)

// flakyREST is the fake exchange's REST whose klines fail while fail is set.
type flakyREST struct {
	*fakeExchange
	fail atomic.Bool
}

func (f *flakyREST) Klines(ctx context.Context, symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error) {
	if f.fail.Load() {
		return nil, errors.New("binance: GET /fapi/v1/klines: connection refused")
	}
	return f.fakeExchange.Klines(ctx, symbol, interval, start, end, limit)
}

// TestStreamStatus runs a standalone node (no Redis, no election) on a
// scripted stream in a synctest bubble and reads its StreamStatus at fixed
// times of the fake clock. Streaming starts at 0; the stale limit is 1 s.
func TestStreamStatus(t *testing.T) {
	const stale = time.Second
	const ms = time.Millisecond
	type check struct {
		at       time.Duration
		state    string
		reason   string // in Reason; "" for none
		backfill bool   // BackfillError set
	}
	tests := []struct {
		name        string
		connectAt   time.Duration // < 0: never
		silentAfter time.Duration // an event every 100 ms from the connection until then
		restFails   time.Duration // backfills fail until then
		checks      []check
	}{
		{"never connects", -1, 0, 0, []check{
			{500 * ms, marketdata.StreamConnecting, "", false},
			{990 * ms, marketdata.StreamConnecting, "", false},
			{1500 * ms, marketdata.StreamDown, "exchange streams not connected 1.5s after streaming started", false},
			{10 * time.Second, marketdata.StreamDown, "not connected 10s after", false},
		}},
		{"connects late", 1500 * ms, time.Minute, 0, []check{
			{1200 * ms, marketdata.StreamDown, "not connected", false},
			{1700 * ms, marketdata.StreamConnected, "", false},
		}},
		{"goes silent", 100 * ms, 2 * time.Second, 0, []check{
			{1 * time.Second, marketdata.StreamConnected, "", false},
			{2500 * ms, marketdata.StreamConnected, "", false},
			{3500 * ms, marketdata.StreamDown, "no event from the exchange streams for 1.5s", false},
		}},
		{"connected without events", 100 * ms, 0, 0, []check{
			{900 * ms, marketdata.StreamConnected, "", false},
			{1100 * ms, marketdata.StreamDown, "no event from the exchange streams for 1.1s", false},
		}},
		// Reconciliations with REST (the first one at 0.25 s: a term's
		// start waits ReconcileDelay, and the connection joins it), then
		// retried 1, 2 and 4 s after each failure: 1.25 s, 3.25 s.
		{"backfill fails, then heals", 100 * ms, time.Minute, 2 * time.Second, []check{
			{500 * ms, marketdata.StreamConnected, "", true},
			{1500 * ms, marketdata.StreamConnected, "backfill failing for 1.25s: BTCUSDT 1m: binance: GET /fapi/v1/klines: connection refused", true},
			{3500 * ms, marketdata.StreamConnected, "", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				rest := &flakyREST{fakeExchange: newFake(time.Hour)}
				rest.fail.Store(tt.restFails > 0)
				streams := func(_ []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
					return streamerFunc(func(ctx context.Context) error {
						if tt.connectAt < 0 || !sleepUntil(ctx, t0.Add(tt.connectAt)) {
							<-ctx.Done()
							return nil
						}
						onConnect("/market")
						tick := time.NewTicker(100 * ms)
						defer tick.Stop()
						for {
							select {
							case <-ctx.Done():
								return nil
							case now := <-tick.C:
								if now.Sub(t0) <= tt.silentAfter {
									onEvent(exchange.Event{Kind: exchange.EventBookTicker, Book: exchange.BookTicker{Symbol: "BTCUSDT"}})
								}
							}
						}
					}), nil
				}
				c, err := cache.New(cache.Config{})
				if err != nil {
					t.Fatal(err)
				}
				reg := keyspace.MustNew(keyspace.Config{})
				n, err := marketdata.New(marketdata.Config{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}, Logger: slog.New(slog.DiscardHandler)},
					reg, c, rest, streams, nil)
				if err != nil {
					t.Fatal(err)
				}
				if st := n.StreamStatus(stale); st.State != marketdata.StreamNotStreaming || st.Reason != "" {
					t.Errorf("before Run: %+v", st)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { n.Run(ctx); close(done) }()
				if tt.restFails > 0 {
					go func() { sleepUntil(ctx, t0.Add(tt.restFails)); rest.fail.Store(false) }()
				}
				for _, ck := range tt.checks {
					time.Sleep(time.Until(t0.Add(ck.at)))
					synctest.Wait()
					st := n.StreamStatus(stale)
					type view struct {
						State     string
						Connected bool
						Reason    bool
						Backfill  bool
						Since     time.Time
					}
					want := view{ck.state, ck.state == marketdata.StreamConnected, ck.reason != "", ck.backfill, t0}
					got := view{st.State, st.Connected, strings.Contains(st.Reason, ck.reason) && st.Reason != "", st.BackfillError != "", st.Since}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("at %v (-want +got):\n%s\nstatus: %+v", ck.at, diff, st)
					}
					if tt.connectAt >= 0 && ck.at > tt.connectAt && !st.LastConnect.Equal(t0.Add(tt.connectAt)) {
						t.Errorf("at %v: LastConnect %v after start, want %v", ck.at, st.LastConnect.Sub(t0), tt.connectAt)
					}
				}
				cancel()
				<-done
				if st := n.StreamStatus(stale); st.State != marketdata.StreamNotStreaming || st.Reason != "" {
					t.Errorf("after Run: %+v", st)
				}
			})
		})
	}
}

// sleepUntil sleeps until t or ctx ends and reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
