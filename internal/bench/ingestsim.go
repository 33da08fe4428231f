package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
)

// The ingest bench's simulated exchange can run in a process of its own
// (IngestOptions.SimCommand), so that the CPU the bench's process uses is
// the node's alone: the exchange's encoding and writing is not counted.
// The bench starts the process with its settings in the environment; the
// process prints one JSON line, {"addr":..} or {"error":..}, and serves
// until its stdin closes.
const (
	envIngestSim       = "TRADECACHE_BENCH_INGEST_SIM" // symbols, comma-separated
	envIngestSimEvery  = "TRADECACHE_BENCH_INGEST_SIM_EVERY"
	envIngestSimReplay = "TRADECACHE_BENCH_INGEST_SIM_REPLAY" // "1": klines from a replayFeed
)

// IsIngestSim reports whether this process was started as the ingest
// bench's exchange process.
func IsIngestSim(getenv func(string) string) bool { return getenv(envIngestSim) != "" }

type simMsg struct {
	Addr  string `json:"addr,omitempty"`
	Error string `json:"error,omitempty"`
}

// serveExchange serves the ingest bench's exchange on ln until ctx ends:
// the simulator, klines of every symbol updated every `every` and the
// other streams slow; with replay, the kline streams come from a
// replayFeed as fast as the node reads them, the rest from the simulator.
func serveExchange(ctx context.Context, ln net.Listener, syms []string, every time.Duration, replay bool) error {
	if replay {
		every = time.Second // the simulator's klines serve REST only
	}
	s, err := sim.New(sim.Config{Symbols: syms, Speed: 1, KlineUpdateEvery: every, History: 10,
		TickerEvery: time.Second, TickerArrEvery: 5 * time.Second, BookTickerEvery: time.Second, WriteQueue: 1 << 16})
	if err != nil {
		return err
	}
	if !replay {
		go s.Serve(ctx, ln)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	feed := &replayFeed{ctx: ctx}
	mux.Handle(binance.PathMarket+"/stream", feed)
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	go s.Run(ctx)
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
		feed.wg.Wait()
	}()
	return nil
}

// IngestSimMain runs the ingest bench's exchange process: it serves on a
// free loopback port, prints the address to out and returns when in
// closes. It returns the process's exit code.
func IngestSimMain(ctx context.Context, in io.Reader, out io.Writer, getenv func(string) string) int {
	enc := json.NewEncoder(out)
	fail := func(err error) int {
		_ = enc.Encode(simMsg{Error: err.Error()})
		return 1
	}
	every, err := time.ParseDuration(getenv(envIngestSimEvery))
	if err != nil || every <= 0 {
		return fail(fmt.Errorf("bench ingest exchange: %s=%q: want a positive duration", envIngestSimEvery, getenv(envIngestSimEvery)))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := serveExchange(ctx, ln, strings.Split(getenv(envIngestSim), ","), every, getenv(envIngestSimReplay) == "1"); err != nil {
		ln.Close()
		return fail(err)
	}
	if err := enc.Encode(simMsg{Addr: ln.Addr().String()}); err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, in) // until the bench closes our stdin
	return 0
}

// simProcess is the exchange running in a child process.
type simProcess struct {
	child
	addr string
}

// child is a helper process of a bench, which ends when its stdin closes.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startChild starts argv with env added to this process's environment,
// its stderr ours; its stdin is the child's, its stdout returned.
func startChild(argv, env []string) (child, io.ReadCloser, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return child{}, nil, fmt.Errorf("stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return child{}, nil, fmt.Errorf("stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return child{}, nil, err
	}
	return child{cmd: cmd, stdin: stdin}, stdout, nil
}

// startSim runs argv as the exchange process of syms, updated every
// `every`, and waits for its address.
func startSim(ctx context.Context, argv []string, syms []string, every time.Duration, replay bool) (*simProcess, error) {
	env := []string{envIngestSim + "=" + strings.Join(syms, ","), envIngestSimEvery + "=" + every.String()}
	if replay {
		env = append(env, envIngestSimReplay+"=1")
	}
	c, stdout, err := startChild(argv, env)
	if err != nil {
		return nil, fmt.Errorf("exchange process: %w", err)
	}
	p := &simProcess{child: c}
	got := make(chan simMsg, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var m simMsg
		switch {
		case !sc.Scan():
			m.Error = "exited without its address"
		case json.Unmarshal(sc.Bytes(), &m) != nil:
			m = simMsg{Error: "unreadable line " + strconv.Quote(sc.Text())}
		}
		got <- m
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var m simMsg
	select {
	case m = <-got:
	case <-ctx.Done():
		m.Error = ctx.Err().Error()
	case <-time.After(30 * time.Second):
		m.Error = "no address within 30 s"
	}
	if m.Error != "" || m.Addr == "" {
		p.stop()
		return nil, fmt.Errorf("exchange process: %w", errors.New(m.Error))
	}
	p.addr = m.Addr
	return p, nil
}

// stop ends the process: it returns when its stdin closes; killed if it
// lingers.
func (p *child) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
