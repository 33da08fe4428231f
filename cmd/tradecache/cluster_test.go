package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/tradecache once per test run: the cluster tests run
// real processes, so they can be killed and paused like real nodes.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tradecache-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tradecache")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type proc struct {
	name string
	cmd  *exec.Cmd
	url  string
	log  *testenv.Buffer
}

// LogDirEnv names a directory where every process a test spawned leaves
// its whole log (name-pid.log) when the test ends; a failing test prints
// only the last lines of each. For instance
//
//	TRADECACHE_TEST_LOGDIR=/tmp/logs go test ./cmd/tradecache -run TestChaosSoak
const LogDirEnv = "TRADECACHE_TEST_LOGDIR"

// spawn starts the binary and waits for the first http:// address it prints.
func spawn(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "TRADECACHE_ENV_FILE=/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	p := &proc{name: name, cmd: cmd, log: &testenv.Buffer{}}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
		if d := os.Getenv(LogDirEnv); d != "" {
			f := filepath.Join(d, fmt.Sprintf("%s-%d.log", name, cmd.Process.Pid))
			if err := os.WriteFile(f, []byte(p.log.String()), 0o644); err != nil {
				t.Errorf("%s: %v", LogDirEnv, err)
			}
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, lastN(p.log.String(), 30))
		}
	})
	addr := regexp.MustCompile(`(?:http|on) (?:http://)?(127\.0\.0\.1:\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := addr.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		p.url = "http://" + a
	case <-time.After(15 * time.Second):
		t.Fatalf("%s printed no address; log:\n%s", name, p.log.String())
	}
	return p
}

func lastN(s string, n int) string {
	lines := regexp.MustCompile("\n").Split(s, -1)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", url, res.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

func nodeHealth(p *proc) (httpapi.Health, error) {
	var h httpapi.Health
	err := getJSON(p.url+"/healthz", &h)
	return h, err
}

// klineTimes returns the open times of the closed klines a node serves.
func klineTimes(t *testing.T, p *proc, limit int) []int64 {
	t.Helper()
	var rows [][]any
	if err := getJSON(fmt.Sprintf("%s/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=%d", p.url, limit), &rows); err != nil {
		t.Fatal(err)
	}
	var ts []int64
	for _, r := range rows[:max(0, len(rows)-1)] { // the last one is open
		ts = append(ts, int64(r[0].(float64)))
	}
	return ts
}

func assertContiguous(t *testing.T, ts []int64) {
	t.Helper()
	for i := 1; i < len(ts); i++ {
		if ts[i]-ts[i-1] != 60000 {
			t.Fatalf("open times %d → %d: a missing or duplicated kline", ts[i-1], ts[i])
		}
	}
}

const clusterToken = "cluster-test-token-0123456789"

type cluster struct {
	t     *testing.T
	redis *testenv.Redis
	sim   *proc
	nodes []*proc
}

func startCluster(t *testing.T, n int, leaseTTL string) *cluster {
	r := testenv.Start(t)
	c := &cluster{t: t, redis: r}
	c.sim = spawn(t, "sim", "sim", "--listen", "127.0.0.1:0", "--speed", "60", "--symbols", "BTCUSDT,ETHUSDT")
	for i := range n {
		c.nodes = append(c.nodes, c.node(fmt.Sprintf("n%d", i), leaseTTL))
	}
	return c
}

func (c *cluster) node(id, leaseTTL string, extra ...string) *proc {
	ws := "ws" + c.sim.url[len("http"):]
	args := []string{"serve", "--listen", "127.0.0.1:0", "--redis", c.redis.URL(), "--node-id", id,
		"--exchange-rest", c.sim.url, "--exchange-ws", ws, "--symbols", "BTCUSDT", "--intervals", "1m",
		"--lease-ttl", leaseTTL, "--window", "1000", "--log-level", "debug",
		"--ws-token", clusterToken} // no --app-port: nodes share the default channel
	return spawn(c.t, id, append(args, extra...)...)
}

// leaders returns the nodes reporting leader, among those answering.
func (c *cluster) leaders(skip ...*proc) []*proc {
	var out []*proc
outer:
	for _, p := range c.nodes {
		for _, s := range skip {
			if s == p {
				continue outer
			}
		}
		if h, err := nodeHealth(p); err == nil && h.Leader {
			out = append(out, p)
		}
	}
	return out
}

func TestClusterOneLeaderIdenticalKlinesAuditClean(t *testing.T) {
	c := startCluster(t, 3, "5s")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "not exactly one leader")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(klineTimes(t, c.nodes[0], 1000)) > 500 }, "no backfilled klines")
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if l := c.leaders(); len(l) != 1 {
			t.Fatalf("%d leaders", len(l))
		}
	}
	// All three serve the same closed klines. Read one after the other, the
	// newest 200 may have moved on by a kline or two between reads (the
	// window's oldest drops out as one closes): compare by open time, over
	// those every node returned but the newest two, which may still change.
	var series []map[string]string
	for _, p := range c.nodes {
		var rows [][]any
		if err := getJSON(p.url+"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=200", &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) < 150 {
			t.Fatalf("%s serves %d klines, want 200", p.url, len(rows))
		}
		byOpen := map[string]string{}
		for _, r := range rows[:len(rows)-2] {
			byOpen[fmt.Sprint(r[0])] = fmt.Sprint(r)
		}
		series = append(series, byOpen)
	}
	for i := 1; i < 3; i++ {
		common := 0
		for open, row := range series[0] {
			other, ok := series[i][open]
			if !ok {
				continue
			}
			common++
			if other != row {
				t.Fatalf("node %d serves another kline at %s than node 0:\n%s\n%s", i, open, other, row)
			}
		}
		if common < 140 {
			t.Fatalf("node %d and node 0 share %d klines of 198, want ≥ 140", i, common)
		}
	}
	assertContiguous(t, klineTimes(t, c.nodes[1], 1000))
	code, out, errOut := runCmd(t, map[string]string{"REDIS_URL": c.redis.URL()}, "keys", "audit")
	if code != 0 {
		t.Fatalf("keys audit exit %d:\n%s\n%s", code, out, errOut)
	}
	t.Logf("audit:\n%s", out)
	var rep struct {
		Keys       int `json:"keys"`
		NoTTLCount int `json:"no_ttl_count"`
	}
	if err := getJSON(c.nodes[2].url+"/api/v1/keys/audit", &rep); err != nil || rep.Keys == 0 || rep.NoTTLCount != 0 {
		t.Fatalf("/api/v1/keys/audit = %+v, %v", rep, err)
	}
}

func TestClusterFailover(t *testing.T) {
	const ttl = 5 * time.Second
	c := startCluster(t, 2, ttl.String())
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "no leader")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(klineTimes(t, c.nodes[0], 1000)) > 500 }, "no klines")

	// SIGKILL: a follower leads within TTL + 2 s.
	old := c.leaders()[0]
	old.cmd.Process.Kill()
	killed := time.Now()
	testenv.Eventually(t, ttl+2*time.Second, func() bool { return len(c.leaders(old)) == 1 }, "no takeover within TTL+2s of SIGKILL")
	t.Logf("takeover %v after SIGKILL (lease TTL %v)", time.Since(killed).Round(time.Millisecond), ttl)
	survivor := c.leaders(old)[0]
	time.Sleep(3 * time.Second) // a few sim minutes, backfilled and streamed
	ts := klineTimes(t, survivor, 1000)
	assertContiguous(t, ts)
	if time.Now().UnixMilli() > 0 && len(ts) < 900 {
		t.Fatalf("only %d klines after failover", len(ts))
	}

	// Clean shutdown: a new node joins, the leader stops with SIGTERM and
	// the new one leads within 2 s.
	fresh := c.node("n-fresh", ttl.String())
	c.nodes = append(c.nodes, fresh)
	time.Sleep(500 * time.Millisecond)
	survivor.cmd.Process.Signal(syscall.SIGTERM)
	stopped := time.Now()
	testenv.Eventually(t, 2*time.Second, func() bool { l := c.leaders(old, survivor); return len(l) == 1 }, "no takeover within 2s of a clean shutdown")
	t.Logf("takeover %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	assertContiguous(t, klineTimes(t, fresh, 1000))
}

func TestClusterPausedLeaderStepsDown(t *testing.T) {
	const ttl = 3 * time.Second
	c := startCluster(t, 2, ttl.String())
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "no leader")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(klineTimes(t, c.nodes[0], 1000)) > 500 }, "no klines")
	old := c.leaders()[0]
	old.cmd.Process.Signal(syscall.SIGSTOP)
	testenv.Eventually(t, ttl+3*time.Second, func() bool { return len(c.leaders(old)) == 1 }, "no takeover while the leader is paused")
	other := c.leaders(old)[0]
	time.Sleep(time.Second)
	old.cmd.Process.Signal(syscall.SIGCONT)
	// The resumed node finds its lease gone: it steps down.
	testenv.Eventually(t, ttl, func() bool { h, err := nodeHealth(old); return err == nil && !h.Leader }, "paused leader did not step down after resuming")
	// One leader: other, unless a renewal of its short lease missed its
	// deadline on a loaded machine and a node (either) took the lease again.
	testenv.Eventually(t, 2*ttl, func() bool { return len(c.leaders()) == 1 }, "not one leader after the resume")
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if l := c.leaders(); len(l) > 1 {
			t.Fatalf("%d leaders after the resume", len(l))
		}
	}
	time.Sleep(time.Second)
	assertContiguous(t, klineTimes(t, other, 1000))
	if !regexp.MustCompile(`stepped down|lease lost|FENCED|fenced`).MatchString(old.log.String()) {
		t.Errorf("the resumed node logged no step-down:\n%s", lastN(old.log.String(), 20))
	}
}

// TestNodeSurvivesExchangeFaults: the simulated exchange drops every
// connection, sends malformed, oversized and unknown frames; the node stays
// up, reconnects, and the 1m series stays whole.
func TestNodeSurvivesExchangeFaults(t *testing.T) {
	c := startCluster(t, 1, "5s")
	n := c.nodes[0]
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "no leader")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(klineTimes(t, n, 1000)) > 500 }, "no klines")
	for _, mode := range []string{"malformed", "unknown", "oversized", "drop"} {
		res, err := http.Post(c.sim.url+"/sim/fault?mode="+mode+"&duration=1s", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Fatalf("fault %s: status %d", mode, res.StatusCode)
		}
		time.Sleep(2500 * time.Millisecond) // the fault, a reconnect, a backfill
		if h, err := nodeHealth(n); err != nil || !h.Leader {
			t.Fatalf("after %s: health %+v %v", mode, h, err)
		}
		ts := klineTimes(t, n, 1000)
		assertContiguous(t, ts)
		// The newest closed kline is recent: the stream came back.
		var now struct {
			ServerTime int64 `json:"serverTime"`
		}
		if err := getJSON(c.sim.url+"/fapi/v1/time", &now); err != nil {
			t.Fatal(err)
		}
		if lag := now.ServerTime - ts[len(ts)-1]; lag > 5*60000 {
			t.Fatalf("after %s: newest closed kline %d sim-ms old: the stream did not recover", mode, lag)
		}
	}
	// What was dropped is counted on /metrics.
	res, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, re := range []string{
		`tradecache_stream_dropped_total\{reason="malformed"\} [1-9]`,
		`tradecache_stream_dropped_total\{reason="unknown"\} [1-9]`,
		`tradecache_stream_dropped_total\{reason="oversized"\} [1-9]`,
		`tradecache_stream_connection_events_total\{event="reconnect"\} [1-9]`,
	} {
		if !regexp.MustCompile(re).Match(b) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
}

// TestClusterEventsReachEveryNode: an event published with PUBLISH on the
// channel reaches WebSocket clients of every node; klines the leader
// writes reach a client of the follower.
func TestClusterEventsReachEveryNode(t *testing.T) {
	c := startCluster(t, 2, "5s")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "no leader")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A wrong bearer token is refused at the upgrade.
	_, res, err := websocket.Dial(ctx, "ws"+c.nodes[0].url[4:]+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer wrong"}}})
	if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v %v", res, err)
	}
	var conns []*websocket.Conn
	for _, p := range c.nodes {
		conn, _, err := websocket.Dial(ctx, "ws"+p.url[4:]+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + clusterToken}}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		if err := wsjson.Write(ctx, conn, map[string]any{"type": "subscribe", "events": []string{"live.*"}}); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	time.Sleep(300 * time.Millisecond) // subscriptions registered
	rc := c.redis.Client(t)
	msg := `{"id":4242,"event":"live.custom","is_compressed":false,"data":{"hello":"jesse"}}`
	if err := rc.Do(ctx, rc.B().Publish().Channel("9000:channel:1").Message(msg).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	follower := 0
	if l := c.leaders(); len(l) == 1 && l[0] == c.nodes[0] {
		follower = 1
	}
	for i, conn := range conns {
		gotCustom, gotKline, gotOther := false, false, false
		other := c.nodes[1-i].name
		for !gotCustom || (i == follower && !gotKline) || !gotOther {
			var env struct {
				ID    any             `json:"id"`
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if err := wsjson.Read(ctx, conn, &env); err != nil {
				t.Fatalf("node %d: %v (custom %v kline %v)", i, err, gotCustom, gotKline)
			}
			switch env.Event {
			case "live.custom":
				gotCustom = string(env.Data) == `{"hello":"jesse"}`
			case "live.kline":
				gotKline = true
			case "live.heartbeat": // every node sees the others
				var h httpapi.Health
				gotOther = gotOther || (json.Unmarshal(env.Data, &h) == nil && h.NodeID == other)
			}
		}
	}
}

// The README's multi-node recipe, as written (three nodes on their own
// ports, no --app-port): they share one event channel, so a /ws client of
// a follower receives the leader's live.kline and every node's heartbeat.
func TestReadmeRecipeSharesOneChannel(t *testing.T) {
	c := startCluster(t, 3, "5s")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(c.leaders()) == 1 }, "no leader")
	leader := c.leaders()[0]
	var follower *proc
	for _, p := range c.nodes {
		if p != leader {
			follower = p
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+follower.url[4:]+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + clusterToken}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "subscribe", "events": []string{"live.kline", "live.heartbeat"}}); err != nil {
		t.Fatal(err)
	}
	gotKline := false
	beats := map[string]bool{}
	for !gotKline || len(beats) < len(c.nodes) {
		var env struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := wsjson.Read(ctx, conn, &env); err != nil {
			t.Fatalf("follower %s: %v (kline %v, heartbeats from %v)", follower.name, err, gotKline, beats)
		}
		switch env.Event {
		case "live.kline":
			gotKline = true
		case "live.heartbeat":
			var h httpapi.Health
			if json.Unmarshal(env.Data, &h) == nil {
				beats[h.NodeID] = true
			}
		}
	}
}
