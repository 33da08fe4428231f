package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
)

// With events (IngestOptions.Events and SubscriberCommand), the ingest
// bench also runs a subscriber of the leader's channel in a process of its
// own: what every node serving /ws pays for the leader's events, with no
// client connected (the gateway decodes every event and finds nobody to
// send it to). The bench starts the process with its settings in the
// environment; it prints {"ready":true} once its first event arrived (or
// {"error":..}), then answers the bench's "start" and "stop" lines on its
// stdin with one line of figures for the run between them, and exits when
// its stdin closes.
const (
	envIngestSub      = "TRADECACHE_BENCH_INGEST_SUB"       // the channel
	envIngestSubRedis = "TRADECACHE_BENCH_INGEST_SUB_REDIS" // the Redis URL
)

// IsIngestSub reports whether this process was started as the ingest
// bench's subscriber process.
func IsIngestSub(getenv func(string) string) bool { return getenv(envIngestSub) != "" }

// subMsg is one line from the subscriber process to the bench.
type subMsg struct {
	Ready   bool   `json:"ready,omitempty"`
	Error   string `json:"error,omitempty"`
	Events  uint64 `json:"events,omitempty"`  // events received in the run
	Dropped uint64 `json:"dropped,omitempty"` // dropped by the subscriber's full queue
	CPUNs   int64  `json:"cpu_ns,omitempty"`
	WallNs  int64  `json:"wall_ns,omitempty"`
}

// IngestSubMain runs the ingest bench's subscriber process (see
// IsIngestSub). It returns the process's exit code.
func IngestSubMain(ctx context.Context, in io.Reader, out io.Writer, getenv func(string) string) int {
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		_ = enc.Encode(subMsg{Error: "subscriber: " + err.Error()})
		return 1
	}
	opt, err := cache.RedisOptions(getenv(envIngestSubRedis))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tc, err := cache.New(cache.Config{Redis: opt, Logger: discardLogger()})
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
		// As a node's gateway with no client: every event decoded, none
		// sent anywhere.
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
		return fail(ctx.Err())
	case <-time.After(60 * time.Second):
		return fail(errors.New("no event within 60 s"))
	}
	if err := enc.Encode(subMsg{Ready: true}); err != nil {
		return 1
	}
	var t0 time.Time
	var cpuStart time.Duration
	var n0, d0 uint64
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			cpuStart, t0, n0, d0 = processCPU(), time.Now(), n.Load(), rb.Stats().DroppedSlow
		case "stop":
			m := subMsg{Events: n.Load() - n0, Dropped: rb.Stats().DroppedSlow - d0,
				CPUNs: int64(processCPU() - cpuStart), WallNs: int64(time.Since(t0))}
			if err := enc.Encode(m); err != nil {
				return 1
			}
		}
	}
	return 0 // the bench closed our stdin
}

// subProcess is the subscriber running in a child process.
type subProcess struct {
	child
	lines chan subMsg // every line after ready; closed when stdout ends
}

// startSub runs argv as the subscriber process of channel on the Redis at
// redisURL and waits until it has received an event.
func startSub(ctx context.Context, argv []string, redisURL, channel string) (*subProcess, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	// The URL goes in the environment, not the command line: other users
	// can read a process's arguments, not its environment.
	cmd.Env = append(os.Environ(), envIngestSub+"="+channel, envIngestSubRedis+"="+redisURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("subscriber process: %w", err)
	}
	p := &subProcess{child: child{cmd: cmd, stdin: stdin}, lines: make(chan subMsg, 4)}
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
	}()
	if _, err := p.next(ctx, 70*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
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
		return subMsg{}, ctx.Err()
	case <-t.C:
		return subMsg{}, fmt.Errorf("subscriber process: no answer within %v", wait)
	}
}

// send writes a request line ("start", "stop").
func (p *subProcess) send(line string) error {
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("subscriber process: %w", err)
	}
	return nil
}
