// Package testenv starts real redis-server processes for tests.
//
// Tests talk to a real Redis on a free loopback port, never to a mock. A
// package shares one server (Shared), started on first use and stopped by
// Main after the package's tests, which also audits it: a key left without a
// TTL fails the package. A test that stops, restarts or pauses Redis takes a
// private server (Start). Tests that share a server keep apart by key prefix
// (Prefix). A test of authentication starts a private server that requires
// a password (Start with RequirePass).
//
// When redis-server cannot be found or started the test fails with the reason
// and how to fix it; it never skips.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/internal/keyaudit"
)

// Redis is one redis-server process on 127.0.0.1, or a Redis Cluster of
// several (StartCluster): then Port and Addr are the first master's, URL
// and Client reach the whole cluster, and Stop, Restart, Pause and Resume
// act on every node at once (the cluster is down, or back, as a whole).
type Redis struct {
	Port      int
	Password  string // requirepass; empty: none
	ReplicaOf string // host:port of the master this server replicates; empty: a master
	dir       string

	nodes    []*Redis // the masters of a cluster at start; nil for one server
	replicas []*Redis // replicas[i] replicates nodes[i] at start (ClusterReplicas)
	busPort  int      // a cluster node's cluster bus port; 0: not a cluster node
	withRepl bool     // ClusterReplicas was given

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

// Addr is host:port.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// URL is the redis:// URL of the server, with its password if it has one;
// for a cluster, every master as a seed (addr=…).
func (r *Redis) URL() string {
	u := url.URL{Scheme: "redis", Host: r.Addr()}
	if r.Password != "" {
		u.User = url.UserPassword("", r.Password)
	}
	if len(r.nodes) > 1 {
		q := url.Values{}
		for _, n := range r.nodes[1:] {
			q.Add("addr", n.Addr())
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Addrs is every address of the deployment: the server, or the masters of
// a cluster.
func (r *Redis) Addrs() []string {
	if r.nodes == nil {
		return []string{r.Addr()}
	}
	out := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = n.Addr()
	}
	return out
}

// IsCluster reports whether r is a Redis Cluster.
func (r *Redis) IsCluster() bool { return r.nodes != nil }

// Option configures a server started by Start.
type Option func(*Redis)

// RequirePass makes the server require password (requirepass): clients
// that do not authenticate get NOAUTH, a wrong password WRONGPASS.
func RequirePass(password string) Option { return func(r *Redis) { r.Password = password } }

// ReplicaOf makes the server a replica of the master at addr (host:port).
func ReplicaOf(addr string) Option { return func(r *Redis) { r.ReplicaOf = addr } }

// Start starts a private redis-server for tb — a three-master cluster when
// the topology is TopologyCluster — stopped and audited for keys without
// TTL when tb ends. A replica (ReplicaOf) is always one server.
func Start(tb testing.TB, opts ...Option) *Redis {
	tb.Helper()
	if Topology() == TopologyCluster && !isReplica(opts) {
		return StartCluster(tb, opts...)
	}
	return startOne(tb, opts...)
}

// StartOne starts a private single redis-server whatever the topology:
// for tests of what only one server does (replication, Sentinel).
func StartOne(tb testing.TB, opts ...Option) *Redis {
	tb.Helper()
	return startOne(tb, opts...)
}

func startOne(tb testing.TB, opts ...Option) *Redis {
	tb.Helper()
	return private(tb, start, opts)
}

// private starts a server (or cluster) with startFn in tb's temporary
// directory, audited for keys without TTL and stopped when tb ends.
func private(tb testing.TB, startFn func(string, ...Option) (*Redis, error), opts []Option) *Redis {
	tb.Helper()
	r, err := startFn(tb.TempDir(), opts...)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if r.running() {
			if err := auditNoTTL(r); err != nil {
				tb.Errorf("testenv: %v", err)
			}
		}
		r.kill()
	})
	return r
}

// redisServer is the redis-server binary, or why there is none.
func redisServer() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found on PATH: install Debian's package (apt-get install -y redis-server) or run the README's test command, which installs it: %w", err)
	}
	return bin, nil
}

func start(dir string, opts ...Option) (*Redis, error) {
	bin, err := redisServer()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &Redis{Port: port, dir: dir}
		for _, o := range opts {
			o(r)
		}
		if lastErr = r.launch(bin); lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *Redis) launch(bin string) error {
	logPath := filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.Port))
	args := []string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--logfile", logPath, "--daemonize", "no", "--protected-mode", "yes",
		// A replica's first sync starts at once, not after Redis's default
		// 5 s wait for more replicas.
		"--repl-diskless-sync-delay", "0",
	}
	if r.busPort != 0 {
		args = append(args, clusterArgs(r)...)
	}
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password)
	}
	if r.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(r.ReplicaOf)
		args = append(args, "--replicaof", host, port)
	}
	cmd, err := launchProcess(bin, args, "redis-server", r.Addr(), r.Password, logPath)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
	return nil
}

// launchProcess starts bin with args, dying with the test binary, and
// waits until it answers PING at addr; name and logPath explain a failure.
func launchProcess(bin string, args []string, name, addr, password, logPath string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	// Die with the test binary, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s on %s exited at start: %s", name, addr, lastLines(string(log), 5))
		default:
		}
		if ping(addr, password) == nil {
			return cmd, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exited
	return nil, fmt.Errorf("%s on %s did not answer PING within 10s", name, addr)
}

// ping sends PING (after AUTH when password is set) and expects +PONG.
func ping(addr, password string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	rd := bufio.NewReader(c)
	if password != "" {
		auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if _, err := c.Write([]byte(auth)); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("unexpected AUTH reply %q", strings.TrimSpace(line))
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected PING reply %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *Redis) running() bool {
	if r.nodes != nil {
		return r.nodes[0].running()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

func (r *Redis) kill() {
	if r.nodes != nil {
		for _, n := range r.all() {
			n.kill()
		}
		return
	}
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT) // a paused server must be able to die
	cmd.Process.Kill()
	// Wait is called by launch's reaper; wait for the port to close.
	for i := 0; i < 200 && ping(r.Addr(), r.Password) == nil; i++ {
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop kills the server with SIGKILL (an outage, not a clean shutdown).
func (r *Redis) Stop(tb testing.TB) {
	tb.Helper()
	r.kill()
}

// Restart starts the server again on the same port, empty.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	r.kill()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testenv: redis-server not found: %v", err)
	}
	if r.nodes != nil {
		if err := r.restartCluster(bin); err != nil {
			tb.Fatalf("testenv: restart cluster: %v", err)
		}
		return
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ { // the port may linger briefly
		if lastErr = r.launch(bin); lastErr == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("testenv: restart redis on port %d: %v", r.Port, lastErr)
}

// Pause stops the server process with SIGSTOP: connections stay open and
// nothing answers, like a hung server or a partition.
func (r *Redis) Pause(tb testing.TB) { r.signal(tb, syscall.SIGSTOP) }

// Resume continues a paused server.
func (r *Redis) Resume(tb testing.TB) { r.signal(tb, syscall.SIGCONT) }

func (r *Redis) signal(tb testing.TB, s syscall.Signal) {
	tb.Helper()
	if r.nodes != nil {
		for _, n := range r.all() {
			n.signal(tb, s)
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		tb.Fatalf("testenv: signal %v: redis on port %d is not running", s, r.Port)
	}
	if err := r.cmd.Process.Signal(s); err != nil {
		tb.Fatalf("testenv: signal %v: %v", s, err)
	}
}

// NumPat returns PUBSUB NUMPAT of the server: the pattern subscriptions
// its clients hold (on a cluster, those of its first node).
func (r *Redis) NumPat(tb testing.TB) int64 {
	tb.Helper()
	c := r.Client(tb)
	n, err := c.Do(context.Background(), c.B().PubsubNumpat().Build()).AsInt64()
	if err != nil {
		tb.Fatalf("testenv: PUBSUB NUMPAT: %v", err)
	}
	return n
}

// Client returns a valkey client for the server (authenticated when it
// requires a password), closed when tb ends.
func (r *Redis) Client(tb testing.TB) valkey.Client {
	tb.Helper()
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: r.Addrs(), Password: r.Password, DisableCache: true})
	if err != nil {
		tb.Fatalf("testenv: connect to %s: %v", r.Addr(), err)
	}
	tb.Cleanup(c.Close)
	return c
}

var (
	sharedMu  sync.Mutex
	shared    *Redis
	sharedErr error
	sharedDir string
	prefixSeq atomic.Int64
)

// Shared returns the package's shared server, starting it on first use. The
// package's TestMain must call Main so the server is audited and stopped.
func Shared(tb testing.TB) *Redis {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		sharedDir, sharedErr = os.MkdirTemp("", "testenv-redis-")
		if sharedErr == nil && Topology() == TopologyCluster {
			shared, sharedErr = startCluster(sharedDir)
		} else if sharedErr == nil {
			shared, sharedErr = start(sharedDir)
		}
	}
	if sharedErr != nil {
		tb.Fatalf("testenv: %v", sharedErr)
	}
	return shared
}

// Main runs the package's tests, then fails the package if the shared server
// holds a key without TTL, and stops it. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	r := shared
	sharedMu.Unlock()
	if r != nil {
		if err := auditNoTTL(r); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
			code = 1
		}
		r.kill()
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// Prefix returns a key prefix no other test of the process uses.
func Prefix(tb testing.TB) string {
	name := strings.NewReplacer("/", ".", " ", "_", ":", ".").Replace(tb.Name())
	return fmt.Sprintf("t%d.%s:", prefixSeq.Add(1), name)
}

// auditNoTTL fails when the server holds a key without TTL (every key the
// project writes must expire),
// checked after every test run against the test servers.
func auditNoTTL(r *Redis) error {
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: r.Addrs(), Password: r.Password, DisableCache: true})
	if err != nil {
		return fmt.Errorf("audit %s: %w", r.Addr(), err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := keyaudit.Audit(ctx, c, keyaudit.Options{})
	if err != nil {
		return fmt.Errorf("audit %s: %w", r.Addr(), err)
	}
	if !rep.OK() {
		return fmt.Errorf("redis %s holds %d keys without TTL after the tests: %v", r.Addr(), rep.NoTTLCount, rep.NoTTL)
	}
	return nil
}

// Eventually polls cond every 10 ms until it holds or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Buffer is a bytes.Buffer safe for concurrent use: a command or node
// writes its output while the test reads it.
type Buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
