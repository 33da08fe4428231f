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

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
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
	// SimCommand runs the simulated exchange in a process of its own
	// (this executable's hidden mode; see IngestSimMain), so that the CPU
	// figures are the node's alone; nil: in this process, and the CPU
	// figures hold both.
	SimCommand []string
	// Follower first measures the node as a follower for Duration, while
	// the bench holds the lease, then lets it lead.
	Follower bool
	// FlushEvery is the node's buffer → Redis period; 0: its default.
	FlushEvery time.Duration
	// Events publishes what the node writes as events on a Redis channel,
	// as serve's leader does for /ws and strategies (a kline, ticker or
	// book ticker event per write).
	Events bool
	// SubscriberCommand, with Events, runs a subscriber of the events in
	// a process of its own (this executable's hidden mode; see
	// IngestSubMain), as every node serving /ws runs one, and reports its
	// CPU (ingest.subscriber_*). It connects to RedisURL.
	SubscriberCommand []string
	RedisURL          string
	// Replay sends the kline streams from templates as fast as the node
	// reads them, instead of the simulator's market (which REST and the
	// other streams still come from); UpdateEvery is then unused.
	Replay bool
	// Log receives progress lines; nil discards.
	Log io.Writer
}

// Ingest runs a simulated exchange (in this process, or in its own with
// SimCommand) and one market data node that leads and writes everything
// to Redis, and reports the kline updates per second that went from the
// exchange's streams through the leader into Redis and the CPU the
// bench's process used for them (ingest.* figures, after machine.cpus).
// Every key it writes carries its kind's TTL.
func Ingest(ctx context.Context, o IngestOptions) (benchfmt.Report, error) {
	if o.Cache.Redis == nil {
		return nil, errors.New("bench ingest measures writes into Redis: no Redis configured")
	}
	if o.Symbols < 1 || o.UpdateEvery <= 0 || o.Duration <= 0 {
		return nil, errors.New("bench ingest: symbols ≥ 1, update period and duration > 0")
	}
	if len(o.SubscriberCommand) > 0 && (!o.Events || o.RedisURL == "") {
		return nil, errors.New("bench ingest: a subscriber process needs events and a Redis URL")
	}
	log := logTo(o.Log)
	syms := make([]string, o.Symbols)
	for i := range syms {
		syms[i] = fmt.Sprintf("B%04dUSDT", i)
	}
	intervals := []string{"1m", "5m"}
	var base string
	if len(o.SimCommand) > 0 {
		p, err := startSim(ctx, o.SimCommand, syms, o.UpdateEvery, o.Replay)
		if err != nil {
			return nil, fmt.Errorf("bench ingest: %w", err)
		}
		defer p.stop()
		base = p.addr
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		sctx, stopSim := context.WithCancel(ctx)
		defer stopSim()
		if err := serveExchange(sctx, ln, syms, o.UpdateEvery, o.Replay); err != nil {
			ln.Close()
			return nil, err
		}
		base = ln.Addr().String()
	}

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
	// On a cluster the keys carry hash tags, so each fenced script's keys
	// share a slot.
	cluster := tc.Redis() != nil && tc.Redis().Mode() == valkey.ClientModeCluster
	reg, err := keyspace.New(keyspace.Config{Prefix: o.KeyPrefix + benchKeys, HashTags: cluster})
	if err != nil {
		return nil, err
	}
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(tc, leader.Config{Lease: lease, Epoch: epoch, NodeID: "bench", Logger: discardLogger(), Keys: reg})
	if err != nil {
		return nil, err
	}
	var stopHolder func()
	if o.Follower {
		// Another "node" takes the lease first; the node follows.
		hold, err := leader.New(tc, leader.Config{Lease: lease, Epoch: epoch, NodeID: "bench-holder", Logger: discardLogger(), Keys: reg})
		if err != nil {
			return nil, err
		}
		hctx, cancel := context.WithCancel(ctx)
		held := make(chan struct{})
		go hold.Run(hctx, func(ctx context.Context, _ leader.Term) error {
			close(held)
			<-ctx.Done()
			return nil
		})
		select {
		case <-held:
		case <-time.After(30 * time.Second):
			cancel()
			return nil, errors.New("bench ingest: the lease holder did not get the lease within 30 s")
		}
		stopHolder = cancel
		defer cancel()
	}
	streams := func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		return binance.NewStreams(binance.StreamConfig{BaseURL: "ws://" + base, Streams: names, OnEvent: onEvent, OnConnect: onConnect})
	}
	var events marketdata.EventPublisher
	var rb *bus.Redis
	var ch string
	if o.Events {
		if ch, err = reg.Channel("bench"); err != nil {
			return nil, err
		}
		if rb, err = bus.NewRedis(tc, bus.RedisConfig{Channel: ch, Publisher: "bench", Logger: discardLogger()}); err != nil {
			return nil, err
		}
		bctx, stopBus := context.WithCancel(ctx)
		busDone := make(chan struct{})
		go func() { rb.Run(bctx); close(busDone) }()
		defer func() { stopBus(); <-busDone }()
		events = rb
	}
	// The simulated exchange does not limit REST weight: the backfill of a
	// thousand series need not take the minutes production's budget gives
	// it.
	md, err := marketdata.New(marketdata.Config{Symbols: syms, Intervals: intervals, Window: 100, Logger: discardLogger(), FlushEvery: o.FlushEvery,
		Integrity: marketdata.Integrity{WeightPerMinute: 100000, Concurrency: 8}, Events: events},
		reg, tc, binance.NewREST(binance.RESTConfig{BaseURL: "http://" + base}), streams, el)
	if err != nil {
		return nil, err
	}
	mctx, stopNode := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { md.Run(mctx); close(done) }()
	defer func() { stopNode(); <-done }()

	rate := "an update per stream every " + o.UpdateEvery.String()
	if o.Replay {
		rate = "klines replayed as fast as the node reads them"
	}
	fmt.Fprintf(log, "bench ingest: %d symbols × %v, %s, into %s\n", o.Symbols, intervals, rate, strings.Join(cc.Redis.InitAddress, ","))
	st := md.Stats()
	series := uint64(o.Symbols * len(intervals))
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	rep.Add("ingest.streams", float64(series), "kline streams")
	rep.Add("ingest.sim_process", boolFigure(len(o.SimCommand) > 0), "bool")
	rep.Add("ingest.replay", boolFigure(o.Replay), "bool")
	rep.Add("ingest.events_published", boolFigure(o.Events), "bool")
	if o.Follower {
		// The holder's lease renewals are in the figure too: a follower's
		// own cost is at most it.
		for deadline := time.Now().Add(30 * time.Second); md.Mode() != marketdata.ModeFollower; {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("bench ingest: the node did not follow within 30 s (mode %v)", md.Mode())
			}
			if !sleepCtx(ctx, 20*time.Millisecond) {
				return nil, ctx.Err()
			}
		}
		time.Sleep(time.Second)
		cpu0, t0 := processCPU(), time.Now()
		if !sleepCtx(ctx, o.Duration) {
			return nil, ctx.Err()
		}
		if md.Mode() != marketdata.ModeFollower {
			return nil, fmt.Errorf("bench ingest: the node left the follower's mode (%v) while measured", md.Mode())
		}
		rep.Add("ingest.follower_cpu", cpuPercent(processCPU()-cpu0, time.Since(t0)), "% of a core")
		stopHolder()
	}
	var sub *subProcess
	if len(o.SubscriberCommand) > 0 {
		// Subscribed while the node warms; ready (its first event) after.
		if sub, err = startSub(o.SubscriberCommand, o.RedisURL, cc.CallTimeout, ch); err != nil {
			return nil, fmt.Errorf("bench ingest: %w", err)
		}
		defer sub.stop()
	}
	// Backfilling is a REST call per series: allow for a thousand.
	wait := 30*time.Second + time.Duration(series)*50*time.Millisecond
	warm := time.Now().Add(wait)
	// Warm: the streams deliver, and every series is backfilled, or (when
	// Redis held them already, from an earlier run, and a backfill wrote
	// nothing) every start reconciliation made and none pending. On a
	// loaded machine the streams' subscriptions (200 names a SUBSCRIBE,
	// five a second) can finish after the backfills.
	warmed := func() bool {
		if md.Mode() != marketdata.ModeLeader || st.Events.Load() == 0 {
			return false
		}
		if st.Backfills.Load() >= series {
			return true
		}
		is := md.IntegrityStats()
		return is.Pending == 0 && is.Reconciliations["start"] >= series
	}
	for !warmed() {
		if time.Now().After(warm) {
			return nil, fmt.Errorf("bench ingest: the node did not lead, stream and backfill within %v (mode %v, %d events, %d/%d series backfilled)", wait, md.Mode(), st.Events.Load(), st.Backfills.Load(), series)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sub != nil {
		// The node leads and writes: an event is at most a flush away.
		if err := sub.ready(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("bench ingest: %w", err)
		}
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
	var bus0 bus.Stats
	if rb != nil {
		bus0 = rb.Stats()
	}
	var cpu0 time.Duration
	var t0 time.Time
	run := func() error {
		cpu0, t0 = processCPU(), time.Now()
		if !sleepCtx(ctx, o.Duration) {
			return ctx.Err()
		}
		return nil
	}
	var sm subMsg
	if sub != nil {
		sm, err = sub.measure(ctx, run)
	} else {
		err = run()
	}
	if err != nil {
		return nil, fmt.Errorf("bench ingest: %w", err)
	}
	el0 := time.Since(t0).Seconds()
	cpu := cpuPercent(processCPU()-cpu0, time.Since(t0))
	ev, wr, fl := st.Events.Load()-ev0, st.KlinesWritten.Load()-wr0, st.Flushes.Load()-fl0
	if errs := st.WriteErrors.Load() + st.Fenced.Load(); errs > 0 {
		return nil, fmt.Errorf("bench ingest: %d writes failed", errs)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	evps := float64(ev) / el0
	rep.Add("ingest.events", benchfmt.Round(evps, 4), "events/s")
	// The process's CPU over the run: the node's (and the exchange's too
	// without SimCommand), per 100k events/s.
	rep.Add("ingest.cpu", cpu, "% of a core")
	if evps > 0 {
		rep.Add("ingest.cpu_per_100k_events", benchfmt.Round(cpu/(evps/100000), 3), "% of a core")
	}
	if rb != nil {
		// Events lost would flatter the CPU figure: those dropped by the
		// bus's full queue, and those whose PUBLISH failed.
		s := rb.Stats()
		rep.Add("ingest.events_dropped", float64(s.DroppedAsync-bus0.DroppedAsync), "events")
		rep.Add("ingest.events_failed", float64(s.PublishErrors-bus0.PublishErrors), "events")
	}
	if sub != nil {
		wall := time.Duration(sm.WallNs)
		rep.Add("ingest.subscriber_events", benchfmt.Round(float64(sm.Events)/wall.Seconds(), 4), "events/s")
		rep.Add("ingest.subscriber_cpu", cpuPercent(time.Duration(sm.CPUNs), wall), "% of a core")
		rep.Add("ingest.subscriber_dropped", float64(sm.Dropped), "events")
		rep.Add("ingest.subscriber_malformed", float64(sm.Malformed), "events")
	}
	rep.Add("ingest.kline_upserts", benchfmt.Round(float64(wr)/el0, 4), "upserts/s")
	rep.Add("ingest.flushes", benchfmt.Round(float64(fl)/el0, 3), "flushes/s")
	p50, p99, _ := md.WriteLatency()
	rep.Add("ingest.latency.p50", float64(p50.Microseconds())/1000, "ms")
	rep.Add("ingest.latency.p99", float64(p99.Microseconds())/1000, "ms")
	rep.Add("ingest.heap", benchfmt.Round(float64(m.HeapInuse)/(1<<20), 3), "MiB")
	return rep, nil
}

// cpuPercent is CPU time used over wall time, in percent of one core.
func cpuPercent(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return benchfmt.Round(float64(cpu)/float64(wall)*100, 3)
}

func boolFigure(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// sleepCtx sleeps for d or until ctx ends, reporting whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
