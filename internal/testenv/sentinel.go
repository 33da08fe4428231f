package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
)

// SentinelMasterSet is the master set name a Sentinel started by
// StartSentinel monitors.
const SentinelMasterSet = "tcmaster"

// Sentinel is a master, a replica and one Redis Sentinel watching them
// (quorum 1, a master is down after 1 s), on loopback: a failover happens
// for real, by SENTINEL FAILOVER or by killing the master.
type Sentinel struct {
	Port    int
	Master  *Redis // the master at start; after a failover it is a replica or dead
	Replica *Redis // the replica at start

	dir string
	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

// StartSentinel starts the master, the replica and the Sentinel, waits for
// the Sentinel to know both, and stops everything when tb ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	master := StartOne(tb)
	replica := StartOne(tb, ReplicaOf(master.Addr()))
	s := &Sentinel{Master: master, Replica: replica, dir: tb.TempDir()}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testenv: redis-server not found: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.Port, lastErr = freePort(); lastErr != nil {
			continue
		}
		if lastErr = s.launch(bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("testenv: sentinel: %v", lastErr)
	}
	tb.Cleanup(s.kill)
	// The replica holds the master's data once its link is up.
	rc := replica.Client(tb)
	Eventually(tb, 15*time.Second, func() bool {
		info, err := rc.Do(context.Background(), rc.B().Info().Section("replication").Build()).ToString()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, "replica on %d never synced with its master", replica.Port)
	// The Sentinel learns the replica from the master's INFO; a failover
	// before it has is refused ("NOGOODSLAVE").
	Eventually(tb, 15*time.Second, func() bool {
		n, err := s.replicas()
		return err == nil && n >= 1
	}, "sentinel on %d never saw the replica", s.Port)
	return s
}

func (s *Sentinel) launch(bin string) error {
	conf := filepath.Join(s.dir, fmt.Sprintf("sentinel-%d.conf", s.Port))
	logPath := filepath.Join(s.dir, fmt.Sprintf("sentinel-%d.log", s.Port))
	host, port, _ := net.SplitHostPort(s.Master.Addr())
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s %s %s 1
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 5000
sentinel parallel-syncs %s 1
`, s.Port, s.dir, logPath, SentinelMasterSet, host, port, SentinelMasterSet, SentinelMasterSet, SentinelMasterSet)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	cmd, err := launchProcess(bin, []string{conf, "--sentinel"}, "sentinel", s.Addr(), "", logPath)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	return nil
}

func (s *Sentinel) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
	}
}

// Addr is the Sentinel's host:port.
func (s *Sentinel) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the redis:// URL a client finds the master through:
// redis://127.0.0.1:<sentinel port>?master_set=tcmaster.
func (s *Sentinel) URL() string {
	return "redis://" + s.Addr() + "?master_set=" + SentinelMasterSet
}

func (s *Sentinel) client() (valkey.Client, error) {
	return valkey.NewClient(valkey.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true, ForceSingleClient: true})
}

func (s *Sentinel) replicas() (int, error) {
	c, err := s.client()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rs, err := c.Do(ctx, c.B().Arbitrary("SENTINEL", "REPLICAS", SentinelMasterSet).Build()).ToArray()
	return len(rs), err
}

// MasterAddr is the master's host:port as the Sentinel knows it now.
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	c, err := s.client()
	if err != nil {
		tb.Fatalf("testenv: sentinel: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a, err := c.Do(ctx, c.B().Arbitrary("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMasterSet).Build()).AsStrSlice()
	if err != nil || len(a) != 2 {
		tb.Fatalf("testenv: sentinel: master address: %v %v", a, err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// Failover asks the Sentinel for a failover (SENTINEL FAILOVER) and waits
// until it names the other server as the master; it returns the new
// master's address.
func (s *Sentinel) Failover(tb testing.TB) string {
	tb.Helper()
	old := s.MasterAddr(tb)
	c, err := s.client()
	if err != nil {
		tb.Fatalf("testenv: sentinel: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Arbitrary("SENTINEL", "FAILOVER", SentinelMasterSet).Build()).Error(); err != nil {
		tb.Fatalf("testenv: SENTINEL FAILOVER: %v", err)
	}
	var now string
	Eventually(tb, 20*time.Second, func() bool { now = s.MasterAddr(tb); return now != old }, "the sentinel never promoted another master")
	return now
}
