package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
)

// IngestOptions configures Ingest.
type IngestOptions struct {
	// Cache is the tiered cache the node writes through; Cache.Redis must
	// be set. A nil Logger discards.
	Cache cache.Config
	// KeyPrefix is the deployment's key prefix; the node's keys, lease
	// included, live under KeyPrefix + "tradecache_bench:".
	KeyPrefix string

	Symbols     int           // simulated symbols, each streaming klines of 1m and 5m (≥ 1)
	UpdateEvery time.Duration // kline update period of the simulated exchange per stream
	Duration    time.Duration // measured run, after the node leads and has backfilled
	// CPUProfile, when set, is the file a CPU profile of the measured run
	// is written to.
	CPUProfile string
	// Log receives progress lines; nil discards.
	Log io.Writer
}

// Ingest runs a fast simulated exchange in process and one market data
// node that leads and writes everything to Redis, and reports the kline
// updates per second that went from the exchange's streams through the
// leader into Redis (ingest.* figures, after machine.cpus). Every key it
// writes carries its kind's TTL.
func Ingest(ctx context.Context, o IngestOptions) (benchfmt.Report, error) {
	if o.Cache.Redis == nil {
		return nil, errors.New("bench ingest measures writes into Redis: no Redis configured")
	}
	if o.Symbols < 1 || o.UpdateEvery <= 0 || o.Duration <= 0 {
		return nil, errors.New("bench ingest: symbols ≥ 1, update period and duration > 0")
	}
	log := logTo(o.Log)
	syms := make([]string, o.Symbols)
	for i := range syms {
		syms[i] = fmt.Sprintf("B%04dUSDT", i)
	}
	intervals := []string{"1m", "5m"}
	s, err := sim.New(sim.Config{Symbols: syms, Speed: 1, KlineUpdateEvery: o.UpdateEvery, History: 10,
		TickerEvery: time.Second, TickerArrEvery: 5 * time.Second, BookTickerEvery: time.Second, WriteQueue: 1 << 16})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	go s.Serve(sctx, ln)
	go s.Run(sctx)

	cc := o.Cache
	if cc.Logger == nil {
		cc.Logger = discardLogger()
	}
	tc, err := cache.New(cc)
	if err != nil {
		return nil, err
	}
	if err := tc.Connect(ctx); err != nil {
		return nil, fmt.Errorf("bench ingest: %w", err)
	}
	defer tc.Close()
	reg, err := keyspace.New(keyspace.Config{Prefix: o.KeyPrefix + benchKeys})
	if err != nil {
		return nil, err
	}
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(tc, leader.Config{Lease: lease, Epoch: epoch, NodeID: "bench", Logger: discardLogger()})
	if err != nil {
		return nil, err
	}
	base := ln.Addr().String()
	streams := func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		return binance.NewStreams(binance.StreamConfig{BaseURL: "ws://" + base, Streams: names, OnEvent: onEvent, OnConnect: onConnect})
	}
	md, err := marketdata.New(marketdata.Config{Symbols: syms, Intervals: intervals, Window: 100, Logger: discardLogger()},
		reg, tc, binance.NewREST(binance.RESTConfig{BaseURL: "http://" + base}), streams, el)
	if err != nil {
		return nil, err
	}
	mctx, stopNode := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { md.Run(mctx); close(done) }()
	defer func() { stopNode(); <-done }()

	fmt.Fprintf(log, "bench ingest: %d symbols × %v, an update per stream every %v, into %s\n", o.Symbols, intervals, o.UpdateEvery, strings.Join(cc.Redis.InitAddress, ","))
	st := md.Stats()
	series := uint64(o.Symbols * len(intervals))
	warm := time.Now().Add(30 * time.Second)
	for st.Backfills.Load() < series || md.Mode() != marketdata.ModeLeader {
		if time.Now().After(warm) {
			return nil, fmt.Errorf("bench ingest: the node did not lead and backfill within 30 s (mode %v, %d/%d series backfilled)", md.Mode(), st.Backfills.Load(), series)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	ev0, wr0, fl0 := st.Events.Load(), st.KlinesWritten.Load(), st.Flushes.Load()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.Duration):
	}
	el0 := time.Since(t0).Seconds()
	ev, wr, fl := st.Events.Load()-ev0, st.KlinesWritten.Load()-wr0, st.Flushes.Load()-fl0
	if errs := st.WriteErrors.Load() + st.Fenced.Load(); errs > 0 {
		return nil, fmt.Errorf("bench ingest: %d writes failed", errs)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	rep.Add("ingest.streams", float64(series), "kline streams")
	rep.Add("ingest.events", benchfmt.Round(float64(ev)/el0, 4), "events/s")
	rep.Add("ingest.kline_upserts", benchfmt.Round(float64(wr)/el0, 4), "upserts/s")
	rep.Add("ingest.flushes", benchfmt.Round(float64(fl)/el0, 3), "flushes/s")
	p50, p99, _ := md.WriteLatency()
	rep.Add("ingest.latency.p50", float64(p50.Microseconds())/1000, "ms")
	rep.Add("ingest.latency.p99", float64(p99.Microseconds())/1000, "ms")
	rep.Add("ingest.heap", benchfmt.Round(float64(m.HeapInuse)/(1<<20), 3), "MiB")
	return rep, nil
}
