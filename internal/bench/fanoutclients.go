package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/internal/benchfmt"
)

// clientSet is the fan-out bench's clients, in this process or another.
type clientSet interface {
	// delivered is the number of bench events received so far.
	delivered() uint64
	// stop disconnects every client and returns the latency of every
	// event received and the CPU time the clients used (0 in process).
	stop() (*benchfmt.Hist, time.Duration, error)
}

// localClients are clients in this process: one goroutine per connection.
type localClients struct {
	conns []*benchConn
	wg    sync.WaitGroup
}

// readBufSize is a client's read buffer: large enough for a server batch
// to be read with one system call, smaller for many clients.
func readBufSize(clients, size int) int {
	b := 32 << 10
	if clients > 2000 {
		b = 4 << 10
	}
	return max(b, size+16)
}

// dialClients connects n clients to wsURL, subscribed to "bench.*", and
// starts reading.
func dialClients(ctx context.Context, wsURL, token string, n, size int) (*localClients, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	s := &localClients{conns: make([]*benchConn, n)}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(32)
	buf := readBufSize(n, size)
	for i := range s.conns {
		eg.Go(func() error {
			dctx, cancel := context.WithTimeout(ectx, 30*time.Second)
			defer cancel()
			c, err := benchDial(dctx, u, token, buf)
			if err != nil {
				return err
			}
			s.conns[i] = c
			s.wg.Go(c.readLoop)
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		_, _, _ = s.stop()
		return nil, err
	}
	return s, nil
}

func (s *localClients) delivered() uint64 {
	var n uint64
	for _, c := range s.conns {
		if c != nil {
			n += c.n.Load()
		}
	}
	return n
}

func (s *localClients) stop() (*benchfmt.Hist, time.Duration, error) {
	for _, c := range s.conns {
		if c != nil {
			_ = c.nc.Close()
		}
	}
	s.wg.Wait()
	h := new(benchfmt.Hist)
	for _, c := range s.conns {
		if c != nil {
			h.Merge(&c.hist)
		}
	}
	return h, 0, nil
}

// Environment of a fan-out client process (FanoutClientsMain).
const (
	envClients     = "TRADECACHE_FANOUT_CLIENTS" // number of clients; its presence makes a process one
	envClientsURL  = "TRADECACHE_FANOUT_URL"
	envClientsTok  = "TRADECACHE_FANOUT_TOKEN"
	envClientsSize = "TRADECACHE_FANOUT_SIZE"
)

// IsFanoutClients reports whether getenv describes a fan-out client
// process: one started by Fanout with FanoutOptions.ClientCommand.
func IsFanoutClients(getenv func(string) string) bool { return getenv(envClients) != "" }

// clientsMsg is one line from a client process to the bench.
type clientsMsg struct {
	Ready     bool           `json:"ready,omitempty"`
	Error     string         `json:"error,omitempty"`
	Delivered uint64         `json:"delivered"`
	Done      bool           `json:"done,omitempty"`
	Hist      *benchfmt.Hist `json:"hist,omitempty"`
	CPUNs     int64          `json:"cpu_ns,omitempty"`
}

// FanoutClientsMain is the client process of a fan-out bench (Fanout with
// FanoutOptions.ClientCommand), so that the bench measures the gateway's
// process alone. It reads its settings from getenv (set by Fanout),
// connects the clients, and writes JSON lines to out: {"ready":true} once
// every client is subscribed, the count of events received every 10 ms,
// and, once in reaches its end (the bench closes it), the clients'
// latency histogram and CPU time. It returns the process's exit code.
func FanoutClientsMain(ctx context.Context, in io.Reader, out io.Writer, getenv func(string) string) int {
	enc := json.NewEncoder(out)
	var mu sync.Mutex // serialises lines
	send := func(m clientsMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	n, err1 := strconv.Atoi(getenv(envClients))
	size, err2 := strconv.Atoi(getenv(envClientsSize))
	if err := errors.Join(err1, err2); err != nil || n < 1 {
		send(clientsMsg{Error: fmt.Sprintf("bad settings: %v", err)})
		return 2
	}
	var cpu0 time.Duration
	s, err := dialClients(ctx, getenv(envClientsURL), getenv(envClientsTok), n, size)
	if err != nil {
		send(clientsMsg{Error: err.Error()})
		return 1
	}
	cpu0 = processCPU() // from now on: the clients' reading, not their connecting
	send(clientsMsg{Ready: true})
	stopped := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopped:
				return
			case <-t.C:
				send(clientsMsg{Delivered: s.delivered()})
			}
		}
	}()
	_, _ = io.Copy(io.Discard, in) // until the bench closes our stdin
	close(stopped)
	total := s.delivered()
	h, _, _ := s.stop()
	send(clientsMsg{Done: true, Delivered: total, Hist: h, CPUNs: int64(processCPU() - cpu0)})
	return 0
}

// processClients are clients in a child process running FanoutClientsMain.
type processClients struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	n     atomic.Uint64
	final chan clientsMsg // the last line, or one with Error
}

// startClients runs argv as a client process of n clients of wsURL and
// waits until they are all subscribed.
func startClients(ctx context.Context, argv []string, wsURL, token string, n, size int) (*processClients, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), envClients+"="+strconv.Itoa(n), envClientsURL+"="+wsURL,
		envClientsTok+"="+token, envClientsSize+"="+strconv.Itoa(size))
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
		return nil, fmt.Errorf("client process: %w", err)
	}
	p := &processClients{cmd: cmd, stdin: stdin, final: make(chan clientsMsg, 1)}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		last := clientsMsg{Error: "client process ended without its figures"}
		for sc.Scan() {
			var m clientsMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				continue
			}
			switch {
			case m.Error != "":
				last = m
				select {
				case ready <- errors.New(m.Error):
				default:
				}
			case m.Ready:
				ready <- nil
			case m.Done:
				last = m
			default:
				p.n.Store(m.Delivered)
			}
		}
		select {
		case ready <- errors.New(last.Error):
		default:
		}
		p.final <- last
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("client process: %w", err)
	}
	return p, nil
}

func (p *processClients) delivered() uint64 { return p.n.Load() }

func (p *processClients) stop() (*benchfmt.Hist, time.Duration, error) {
	_ = p.stdin.Close()
	var m clientsMsg
	select {
	case m = <-p.final:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		m = <-p.final
	}
	werr := p.cmd.Wait()
	if m.Error != "" || !m.Done || m.Hist == nil {
		return nil, 0, fmt.Errorf("client process: %s (%v)", m.Error, werr)
	}
	p.n.Store(m.Delivered)
	return m.Hist, time.Duration(m.CPUNs), nil
}
