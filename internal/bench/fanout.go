package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

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
	// Log receives a line describing the run; nil discards.
	Log io.Writer
}

// Fanout runs a real gateway on loopback, connects Clients real WebSocket
// clients (coder/websocket, Bearer auth, subscribed to "bench.*"),
// measures the idle memory per connection, then publishes Rate events per
// second of Size bytes each for Duration from an in-process publisher, and
// measures delivered frames per second and the publish → receipt latency.
// The clients share the process (and its CPUs) with the gateway. It
// reports the fanout.* figures.
func Fanout(ctx context.Context, o FanoutOptions) (benchfmt.Report, error) {
	fmt.Fprintf(logTo(o.Log), "bench fanout: %d clients, %d-byte events, %d events/s (%d messages/s), %v\n", o.Clients, o.Size, o.Rate, o.Clients*o.Rate, o.Duration)
	r, err := fanout(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("bench fanout: %w", err)
	}
	return r.report(), nil
}

// fanoutResult is what fanout measured.
type fanoutResult struct {
	Clients   int
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
	// per idle, subscribed connection, after GC. The clients run in the same
	// process, so the heap figure holds both ends (server and client); idle
	// clients run no goroutine, so the stack figure is the server's.
	HeapPerConn  float64
	StackPerConn float64
	// CPU is the process's CPU time (both ends) per second of wall time
	// while publishing and draining: 1.0 is one core busy.
	CPU     float64
	Dropped uint64 // gateway Stats: coalesced (bench events are not market data: expect 0)
	Slow    uint64 // gateway Stats: slow-consumer disconnects
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

	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()

	conns := make([]*websocket.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.CloseNow()
			}
		}
	}()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(32)
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	for i := range conns {
		eg.Go(func() error {
			c, err := fanoutDial(ectx, url, hdr, size)
			conns[i] = c
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return res, err
	}
	for deadline := time.Now().Add(idleWait); runtime.NumGoroutine() > g0+clients && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	res.HeapPerConn = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / float64(clients)
	res.StackPerConn = float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / float64(clients)

	// Readers: one per client, each with its own histogram and count.
	type reader struct {
		hist benchfmt.Hist
		n    atomic.Uint64
	}
	readers := make([]*reader, clients)
	var rwg sync.WaitGroup
	for i, c := range conns {
		r := &reader{}
		readers[i] = r
		rwg.Go(func() {
			buf := make([]byte, size+64)
			for {
				typ, rd, err := c.Reader(context.Background())
				if err != nil {
					return
				}
				n, err := readAll(rd, buf)
				if err != nil {
					return
				}
				now := time.Now()
				if typ != websocket.MessageText || n < fanoutMinSize {
					continue
				}
				ts, err := strconv.ParseInt(string(buf[len(fanoutPrefix):len(fanoutPrefix)+19]), 10, 64)
				if err != nil {
					continue
				}
				r.hist.Record(now.Sub(time.Unix(0, ts)))
				r.n.Add(1)
			}
		})
	}
	delivered := func() uint64 {
		var n uint64
		for _, r := range readers {
			n += r.n.Load()
		}
		return n
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
	last, lastAt := delivered(), time.Now()
	for last < res.Expected && time.Now().Before(drain) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		if n := delivered(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	res.Delivered = last
	res.MsgsPerS = float64(last) / lastAt.Sub(start).Seconds()
	res.CPU = (processCPU() - cpu0).Seconds() / time.Since(start).Seconds()

	cancel() // gateway closes every client with 1001; readers end
	<-runDone
	for _, c := range conns {
		_ = c.CloseNow()
	}
	rwg.Wait()
	var h benchfmt.Hist
	for _, r := range readers {
		h.Merge(&r.hist)
	}
	res.P50, res.P99, res.Max = h.Quantile(0.50), h.Quantile(0.99), h.Max()
	st := g.Stats()
	res.Dropped, res.Slow = st.Dropped, st.SlowDisconnects
	return res, nil
}

func fanoutDial(ctx context.Context, url string, hdr http.Header, size int) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c.SetReadLimit(int64(size) + 4096)
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","events":["bench.*"]}`)); err != nil {
		return c, fmt.Errorf("subscribe: %w", err)
	}
	if _, _, err := c.Read(ctx); err != nil {
		return c, fmt.Errorf("subscribe reply: %w", err)
	}
	return c, nil
}

// readAll reads one message into buf, discarding what does not fit.
func readAll(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		k, err := r.Read(buf[n:])
		n += k
		switch {
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		case n == len(buf):
			_, err := io.Copy(io.Discard, r)
			return n, err
		}
	}
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
