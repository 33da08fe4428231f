package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
)

// With events (IngestOptions.Events and SubscriberCommand), the ingest
// bench also runs a subscriber of the leader's channel in a process of its
// own: what a node pays for the leader's events while it receives them —
// its /ws gateway while a client listens (with none it does not subscribe),
// its notification forwarding always — before any client's share. The bench starts the process with its settings in the
// environment; it prints {"ready":true} once its first event arrived (or
// {"error":..}), then answers the bench's "start" and "stop" lines on its
// stdin with one line of figures for the run between them, and exits when
// its stdin closes, at any point.
const (
	envIngestSub        = "TRADECACHE_BENCH_INGEST_SUB"         // the channel
	envIngestSubRedis   = "TRADECACHE_BENCH_INGEST_SUB_REDIS"   // the Redis URL
	envIngestSubTimeout = "TRADECACHE_BENCH_INGEST_SUB_TIMEOUT" // the cache's CallTimeout
)

// IsIngestSub reports whether this process was started as the ingest
// bench's subscriber process.
func IsIngestSub(getenv func(string) string) bool { return getenv(envIngestSub) != "" }

// subMsg is one line from the subscriber process to the bench.
type subMsg struct {
	Ready     bool   `json:"ready,omitempty"`
	Error     string `json:"error,omitempty"`
	Events    uint64 `json:"events,omitempty"`    // events received in the run
	Dropped   uint64 `json:"dropped,omitempty"`   // dropped by the subscriber's full queue
	Malformed uint64 `json:"malformed,omitempty"` // messages Decode refused
	CPUNs     int64  `json:"cpu_ns,omitempty"`
	WallNs    int64  `json:"wall_ns,omitempty"`
}

// IngestSubMain runs the ingest bench's subscriber process (see
// IsIngestSub). It returns the process's exit code.
func IngestSubMain(ctx context.Context, in io.Reader, out io.Writer, getenv func(string) string) int {
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		_ = enc.Encode(subMsg{Error: err.Error()})
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The bench's requests; closed, and ctx cancelled, when it closes our
	// stdin, whatever we are waiting for.
	lines := make(chan string, 1)
	go func() {
		defer cancel()
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	opt, err := cache.RedisOptions(getenv(envIngestSubRedis))
	if err != nil {
		return fail(err)
	}
	cc := cache.Config{Redis: opt, Logger: discardLogger()}
	if t := getenv(envIngestSubTimeout); t != "" {
		if cc.CallTimeout, err = time.ParseDuration(t); err != nil {
			return fail(fmt.Errorf("%s: %w", envIngestSubTimeout, err))
		}
	}
	tc, err := cache.New(cc)
	if err != nil {
		return fail(err)
	}
	defer tc.Close()
	if err := tc.Connect(ctx); err != nil {
		return fail(err)
	}
	go tc.Run(ctx)
	rb, err := bus.NewRedis(tc, bus.RedisConfig{Channel: getenv(envIngestSub), Logger: discardLogger()})
	if err != nil {
		return fail(err)
	}
	var n atomic.Uint64
	first := make(chan struct{})
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		// As a node's subscriber before any client's share: every event
		// decoded, none sent anywhere. Subscribe retries until ctx ends.
		_ = rb.Subscribe(ctx, func(bus.Event) {
			if n.Add(1) == 1 {
				close(first)
			}
		})
	}()
	defer func() { cancel(); <-subDone }()
	select {
	case <-first:
	case <-ctx.Done():
		return 0 // the bench gave up waiting
	}
	if err := enc.Encode(subMsg{Ready: true}); err != nil {
		return 1
	}
	var t0 time.Time
	var cpu0 time.Duration
	var n0 uint64
	var st0 bus.Stats
	for line := range lines {
		switch line {
		case "start":
			cpu0, t0, n0, st0 = processCPU(), time.Now(), n.Load(), rb.Stats()
		case "stop":
			if t0.IsZero() {
				return fail(errors.New(`"stop" before "start"`))
			}
			st := rb.Stats()
			m := subMsg{Events: n.Load() - n0, Dropped: st.DroppedSlow - st0.DroppedSlow, Malformed: st.Malformed - st0.Malformed,
				CPUNs: int64(processCPU() - cpu0), WallNs: int64(time.Since(t0))}
			if err := enc.Encode(m); err != nil {
				return 1
			}
		default:
			return fail(fmt.Errorf("unknown request %q", line))
		}
	}
	return 0 // the bench closed our stdin
}

// subProcess is the subscriber running in a child process.
type subProcess struct {
	child
	lines chan subMsg // the process's lines; closed when its stdout ends
}

// startSub runs argv as the subscriber process of channel on the Redis at
// redisURL (calls with timeout). It returns at once; ready waits for the
// process's first event.
func startSub(argv []string, redisURL string, timeout time.Duration, channel string) (*subProcess, error) {
	// The URL goes in the environment, not the command line: other users
	// can read a process's arguments, not its environment.
	env := []string{envIngestSub + "=" + channel, envIngestSubRedis + "=" + redisURL}
	if timeout > 0 {
		env = append(env, envIngestSubTimeout+"="+timeout.String())
	}
	c, stdout, err := startChild(argv, env)
	if err != nil {
		return nil, fmt.Errorf("subscriber process: %w", err)
	}
	p := &subProcess{child: c, lines: make(chan subMsg, 4)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m subMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = subMsg{Error: fmt.Sprintf("unreadable line %q", sc.Text())}
			}
			select {
			case p.lines <- m:
			default: // the bench reads one line per request; more is noise
			}
		}
		_, _ = io.Copy(io.Discard, stdout) // never leave the process blocked writing
	}()
	return p, nil
}

// ready waits up to wait for the process's first event.
func (p *subProcess) ready(ctx context.Context, wait time.Duration) error {
	m, err := p.next(ctx, wait)
	if err == nil && !m.Ready {
		err = fmt.Errorf("subscriber process: %+v where ready was expected", m)
	}
	return err
}

// next waits for the process's next line, up to wait.
func (p *subProcess) next(ctx context.Context, wait time.Duration) (subMsg, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case m, ok := <-p.lines:
		switch {
		case !ok:
			return m, errors.New("subscriber process: exited")
		case m.Error != "":
			return m, fmt.Errorf("subscriber process: %s", m.Error)
		}
		return m, nil
	case <-ctx.Done():
		return subMsg{}, fmt.Errorf("subscriber process: %w", ctx.Err())
	case <-t.C:
		return subMsg{}, fmt.Errorf("subscriber process: no answer within %v", wait)
	}
}

// measure runs "start", then f, then "stop", and returns the process's
// figures over f.
func (p *subProcess) measure(ctx context.Context, f func() error) (subMsg, error) {
	if err := p.send("start"); err != nil {
		return subMsg{}, err
	}
	if err := f(); err != nil {
		return subMsg{}, err
	}
	if err := p.send("stop"); err != nil {
		return subMsg{}, err
	}
	m, err := p.next(ctx, 10*time.Second)
	if err == nil && m.WallNs <= 0 {
		err = fmt.Errorf("subscriber process: %+v where figures were expected", m)
	}
	return m, err
}

// send writes a request line ("start", "stop").
func (p *subProcess) send(line string) error {
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("subscriber process: %w", err)
	}
	return nil
}
