package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/gateway"
)

// FanoutOptions configures Fanout.
type FanoutOptions struct {
	Clients  int           // WebSocket clients on loopback (≥ 1)
	Size     int           // bytes per event envelope (≥ 97)
	Rate     int           // events published per second, each to every client (≥ 1)
	Duration time.Duration // publishing time
	// ClientCommand, when set, is the command line of a program that runs
	// FanoutClientsMain (`tradecache bench fanout-clients`, or a test
	// binary that does in its TestMain): the clients then run in that
	// process, so the bench's CPU and memory figures are the gateway's
	// alone. Nil: the clients share this process.
	ClientCommand []string
	// CPUProfile, when set, is the file a CPU profile of the publishing
	// run (this process: the gateway, and the clients when they share it)
	// is written to.
	CPUProfile string
	// MemProfile, when set, is the file a heap profile of this process is
	// written to once the clients are connected and idle: what an idle
	// connection holds.
	MemProfile string
	// Log receives a line describing the run; nil discards.
	Log io.Writer
}

// Fanout runs a real gateway on loopback, connects Clients WebSocket
// clients (Bearer auth, subscribed to "bench.*"; lean ones that parse
// frames straight from a read buffer, as a load generator should), in
// this process or in a client process (ClientCommand), measures the idle
// memory per connection, then publishes Rate events per second of Size
// bytes each for Duration from an in-process publisher, and measures
// delivered frames per second, the publish → receipt latency and the CPU
// time of each process. It reports the fanout.* figures.
func Fanout(ctx context.Context, o FanoutOptions) (benchfmt.Report, error) {
	where := "in this process"
	if len(o.ClientCommand) > 0 {
		where = "in a process of their own"
	}
	fmt.Fprintf(logTo(o.Log), "bench fanout: %d clients (%s), %d-byte events, %d events/s (%d messages/s), %v\n", o.Clients, where, o.Size, o.Rate, o.Clients*o.Rate, o.Duration)
	r, err := fanout(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("bench fanout: %w", err)
	}
	return r.report(), nil
}

// fanoutResult is what fanout measured.
type fanoutResult struct {
	Clients   int
	Separate  bool          // the clients ran in a process of their own
	Size      int           // bytes per event envelope
	Rate      int           // events published per second
	Duration  time.Duration // publishing time
	Published uint64        // events published
	Delivered uint64        // frames received by all clients together
	Expected  uint64        // Published × Clients
	MsgsPerS  float64       // Delivered / (first publish → last delivery)
	P50, P99  time.Duration // publish → receipt, over every delivered frame
	Max       time.Duration
	// HeapPerConn and StackPerConn are the HeapInuse and StackInuse growth
	// per idle, subscribed connection, after GC, in this process: the
	// gateway's alone when the clients are Separate, else both ends'.
	HeapPerConn  float64
	StackPerConn float64
	// CPU is this process's CPU time per second of wall time while
	// publishing and draining (1.0 is one core busy): the gateway and the
	// publisher, plus the clients unless Separate. ClientsCPU is the client
	// process's over the same time (0 unless Separate).
	CPU, ClientsCPU float64
	// CPUPerMsg is this process's CPU time per delivered message.
	CPUPerMsg time.Duration
	Dropped   uint64 // gateway Stats: coalesced (bench events are not market data: expect 0)
	Slow      uint64 // gateway Stats: slow-consumer disconnects
}

// report returns the figures in the `tradecache bench` format.
func (r fanoutResult) report() benchfmt.Report {
	var rep benchfmt.Report
	rep.Add("fanout.clients", float64(r.Clients), "clients")
	rep.Add("fanout.event_size", float64(r.Size), "bytes")
	rep.Add("fanout.rate", float64(r.Rate), "events/s")
	rep.Add("fanout.delivered", r.MsgsPerS, "msgs/s")
	rep.Add("fanout.delivered_ratio", ratio(r.Delivered, r.Expected), "ratio")
	rep.Add("fanout.latency.p50", float64(r.P50.Nanoseconds())/1e3, "us")
	rep.Add("fanout.latency.p99", float64(r.P99.Nanoseconds())/1e3, "us")
	rep.Add("fanout.latency.max", float64(r.Max.Nanoseconds())/1e3, "us")
	rep.Add("fanout.cpu", r.CPU, "cores")
	rep.Add("fanout.cpu_per_msg", float64(r.CPUPerMsg.Nanoseconds()), "ns")
	if r.Separate {
		rep.Add("fanout.clients_cpu", r.ClientsCPU, "cores")
	}
	rep.Add("fanout.client_process", map[bool]float64{false: 0, true: 1}[r.Separate], "bool")
	rep.Add("fanout.idle_conn.heap", r.HeapPerConn, "bytes")
	rep.Add("fanout.idle_conn.stack", r.StackPerConn, "bytes")
	rep.Add("fanout.slow_disconnects", float64(r.Slow), "clients")
	return rep
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fanoutPrefix starts every bench envelope; the publish time follows as
// 19 digits of Unix nanoseconds, so a client reads it without decoding
// JSON.
const fanoutPrefix = `{"id":"bench","event":"bench.tick","is_compressed":false,"data":{"t":`
const fanoutMid = `,"p":"`
const fanoutEnd = `"}}`
const fanoutMinSize = len(fanoutPrefix) + 19 + len(fanoutMid) + len(fanoutEnd)

// idleWait bounds the wait for the connections to go idle after their
// subscribe replies: the gateway's writer goroutine of a connection exits
// when it has had nothing to write for a while (2 s), leaving one
// goroutine (the reader) per connection.
const idleWait = 4 * time.Second

func fanout(ctx context.Context, o FanoutOptions) (fanoutResult, error) {
	clients, size, rate, d := o.Clients, o.Size, o.Rate, o.Duration
	res := fanoutResult{Clients: clients, Size: size, Rate: rate, Duration: d}
	switch {
	case clients < 1 || rate < 1 || d <= 0:
		return res, errors.New("clients, rate and duration must be positive")
	case size < fanoutMinSize:
		return res, fmt.Errorf("size must be at least %d bytes", fanoutMinSize)
	}
	tok, err := gateway.GenerateToken()
	if err != nil {
		return res, err
	}
	sub := &fanoutSubscriber{fn: make(chan func(bus.Event), 1)}
	g, err := gateway.New(sub, gateway.Config{Tokens: []string{tok}, MaxClients: clients + 16})
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = g.Run(ctx) // returns nil when ctx ends; the bench's errors are its own
	}()
	defer func() { cancel(); <-runDone }()
	publish := <-sub.fn

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "ws://" + ln.Addr().String() + "/ws"

	m0 := settledMem()
	g0 := runtime.NumGoroutine()

	var cs clientSet
	perConn := 1 // goroutines per idle connection in this process: the gateway's reader
	if len(o.ClientCommand) > 0 {
		res.Separate = true
		cs, err = startClients(ctx, o.ClientCommand, url, tok, clients, size)
	} else {
		perConn = 2 // and the client's
		cs, err = dialClients(ctx, url, tok, clients, size)
	}
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _, _ = cs.stop()
		}
	}()
	for deadline := time.Now().Add(idleWait); runtime.NumGoroutine() > g0+perConn*clients && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	m1 := settledMem()
	res.HeapPerConn = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / float64(clients)
	res.StackPerConn = float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / float64(clients)
	if o.MemProfile != "" {
		if err := writeHeapProfile(o.MemProfile); err != nil {
			return res, err
		}
	}

	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, start := processCPU(), time.Now()
	tick := time.NewTicker(time.Millisecond)
	var published uint64
	for now := start; now.Sub(start) < d; now = <-tick.C {
		due := uint64(now.Sub(start).Seconds() * float64(rate))
		for ; published < due; published++ {
			publish(fanoutEvent(size))
		}
		if ctx.Err() != nil {
			break
		}
	}
	tick.Stop()
	res.Published = published
	res.Expected = published * uint64(clients)
	drain := time.Now().Add(5 * time.Second)
	last, lastAt := cs.delivered(), time.Now()
	for last < res.Expected && time.Now().Before(drain) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		if n := cs.delivered(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	cpu := processCPU() - cpu0
	wall := time.Since(start)
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}

	cancel() // gateway closes every client with 1001
	<-runDone
	stopped = true
	h, clientsCPU, err := cs.stop()
	if err != nil {
		return res, err
	}
	res.Delivered = max(last, cs.delivered())
	res.MsgsPerS = float64(last) / lastAt.Sub(start).Seconds()
	res.CPU = cpu.Seconds() / wall.Seconds()
	if res.Delivered > 0 {
		res.CPUPerMsg = cpu / time.Duration(res.Delivered)
	}
	if res.Separate {
		res.ClientsCPU = clientsCPU.Seconds() / wall.Seconds()
	}
	res.P50, res.P99, res.Max = h.Quantile(0.50), h.Quantile(0.99), h.Max()
	st := g.Stats()
	res.Dropped, res.Slow = st.Dropped, st.SlowDisconnects
	return res, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// settledMem reads the memory statistics after garbage collection, once
// the heap and stacks have stopped shrinking (goroutines of what ran
// before, ending, free theirs), for up to a second.
func settledMem() runtime.MemStats {
	var prev, m runtime.MemStats
	for i := 0; i < 50; i++ {
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		if i > 0 && m.HeapInuse+64<<10 >= prev.HeapInuse && m.StackInuse >= prev.StackInuse {
			break
		}
		prev = m
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

func fanoutEvent(size int) bus.Event {
	b := make([]byte, 0, size)
	b = append(b, fanoutPrefix...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10) // 19 digits until 2286
	b = append(b, fanoutMid...)
	for len(b) < size-len(fanoutEnd) {
		b = append(b, 'x')
	}
	b = append(b, fanoutEnd...)
	return bus.Event{Publisher: "bench", Name: "bench.tick", Raw: b}
}

// fanoutSubscriber is the gateway's bus: it hands the gateway's callback
// to the bench's publisher.
type fanoutSubscriber struct{ fn chan func(bus.Event) }

func (s *fanoutSubscriber) Subscribe(ctx context.Context, fn func(bus.Event)) error {
	s.fn <- fn
	<-ctx.Done()
	return nil
}
