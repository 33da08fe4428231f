package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
	"github.com/tradecache/tradecache/notify"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestNewRefusesContradictions(t *testing.T) {
	base := node.Config{NodeID: "n1", Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}}
	tests := []struct {
		name string
		edit func(*node.Config)
		want string
	}{
		{"sim with a REST URL", func(c *node.Config) { c.Exchange = node.Exchange{Kind: node.ExchangeSim, REST: "http://x"} }, "exchange sim"},
		{"demo with a WS URL", func(c *node.Config) { c.Demo, c.Exchange.WS = true, "ws://x" }, "demo"},
		{"key without secret", func(c *node.Config) { c.Account.APIKey = "k" }, "API secret"},
		{"no symbols", func(c *node.Config) { c.Market.Symbols = nil }, "no symbols"},
		{"unknown exchange", func(c *node.Config) { c.Exchange.Kind = "kraken" }, "kraken"},
		{"every interface without a token", func(c *node.Config) { c.HTTP.Listen = "0.0.0.0:8080" }, "--api-token"},
		{"every interface, IPv6, without a token", func(c *node.Config) { c.HTTP.Listen = "[::]:8080" }, "--trust-network"},
		{"no host without a token", func(c *node.Config) { c.HTTP.Listen = ":8080" }, "--api-token"},
		{"LAN address without a token", func(c *node.Config) { c.HTTP.Listen = "192.168.1.20:8080" }, "not a loopback address"},
		{"host name without a token", func(c *node.Config) { c.HTTP.Listen = "node1.lan:8080" }, "not a loopback address"},
		{"api auth all without a token", func(c *node.Config) { c.HTTP.APIAuth = node.APIAuthAll }, "--api-auth"},
		{"unknown api auth", func(c *node.Config) { c.HTTP.APIAuth = "some" }, `"some"`},
		{"empty api token", func(c *node.Config) { c.HTTP.APITokens = []string{""} }, "empty token"},
		{"certificate without key", func(c *node.Config) { c.HTTP.TLSCert = "cert.pem" }, "--tls-key"},
		{"key without certificate", func(c *node.Config) { c.HTTP.TLSKey = "key.pem" }, "--tls-cert"},
		{"unreadable certificate", func(c *node.Config) { c.HTTP.TLSCert, c.HTTP.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, "/nonexistent/cert.pem"},
		{"negative REST weight limit", func(c *node.Config) { c.Exchange.RESTWeightLimit = -1 }, "REST weight limit"},
		{"REST user share above 1", func(c *node.Config) { c.Exchange.RESTUserShare = 1.5 }, "REST user share"},
		{"REST egress with a colon", func(c *node.Config) { c.Exchange.RESTEgress = "10.0.0.1:443" }, "REST egress"},
		{"a value cap below a kline", func(c *node.Config) { c.Keys.MaxValue = 100 }, "MaxValue 100"},
		{"a stream group beyond Binance's connection", func(c *node.Config) { c.Market.GroupSize = 1025 }, "stream group size 1025"},
		{"a symbol's streams beyond the group size", func(c *node.Config) { c.Market.GroupSize = 2 }, "more than the group size 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			if _, err := node.New(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error naming %q", err, tt.want)
			}
		})
	}
	// Beyond loopback with a token, or trusting the network: accepted.
	for _, h := range []node.HTTP{
		{Listen: "0.0.0.0:8080", APITokens: []string{"api-token-0123456789"}},
		{Listen: "0.0.0.0:8080", TrustNetwork: true},
		{Listen: "192.168.1.20:8080", APITokens: []string{"api-token-0123456789"}, APIAuth: node.APIAuthAll},
		{Listen: "localhost:8080"},
		{Listen: "[::1]:8080"},
	} {
		c := base
		c.HTTP = h
		if err := c.Check(); err != nil {
			t.Errorf("%+v: Check = %v", h, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	got := map[string]bool{}
	for _, a := range []string{"", "127.0.0.1:8080", "127.8.9.1:80", "[::1]:8080", "localhost:8080", "LOCALHOST.:8080",
		"0.0.0.0:8080", "[::]:8080", ":8080", "192.168.1.20:8080", "node1.lan:8080", "localhost.example:8080", "nohost"} {
		got[a] = node.IsLoopback(a)
	}
	want := map[string]bool{"": true, "127.0.0.1:8080": true, "127.8.9.1:80": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST.:8080": true,
		"0.0.0.0:8080": false, "[::]:8080": false, ":8080": false, "192.168.1.20:8080": false, "node1.lan:8080": false, "localhost.example:8080": false, "nohost": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A demo node runs from its Config alone: it prints its dashboard address
// with the generated token, serves /healthz on the default channel, and
// stops when its context ends.
func TestDemoNodeRuns(t *testing.T) {
	out, stop := runDemo(t, "demo-1", node.Redis{})
	dash := regexp.MustCompile(`dashboard: http://(127\.0\.0\.1:\d+)/#token=([A-Za-z0-9_-]+)`)
	var m []string
	testenv.Eventually(t, 5*time.Second, func() bool { m = dash.FindStringSubmatch(out.String()); return m != nil }, "no dashboard address printed:\n%s", out.String())
	if !strings.Contains(out.String(), "events on 9000:channel:1") || !strings.Contains(out.String(), "embedded memory tier") {
		t.Errorf("banner:\n%s", out.String())
	}
	res, err := http.Get("http://" + m[1] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h httpapi.Health
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if h.NodeID != "demo-1" || h.CacheTier != "memory" {
		t.Errorf("healthz = %+v", h)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// runDemo runs a demo node on a free port until stop, which returns Run's
// error.
func runDemo(t *testing.T, id string, r node.Redis) (*testenv.Buffer, func() error) {
	t.Helper()
	out := &testenv.Buffer{}
	n, err := node.New(node.Config{NodeID: id, Demo: true, Stdout: out, Redis: r,
		Keys:   node.Keys{Naming: testenv.KeyNaming()},
		HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
		Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return out, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
}

// A demo node given a Redis says it runs on Redis, not that it needs none.
func TestDemoNodeOnRedisSaysSo(t *testing.T) {
	r := testenv.Start(t)
	out, stop := runDemo(t, "demo-r", node.Redis{URL: r.URL()})
	testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(out.String(), "demo mode") }, "no demo line")
	stop()
	if s := out.String(); !strings.Contains(s, "demo mode: simulated exchange and account on Redis") || strings.Contains(s, "no Redis") {
		t.Errorf("banner of a demo node on Redis:\n%s", s)
	}
}

// --event-prefix names the node's events: a /ws client sees
// papertrade.heartbeat, and the heartbeat's node is this one.
func TestEventPrefix(t *testing.T) {
	out := &testenv.Buffer{}
	n, err := node.New(node.Config{NodeID: "paper-1", Demo: true, Stdout: out,
		HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
		Events: node.Events{Prefix: "papertrade", SessionID: "s-1"},
		Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	conn := subscribeAll(ctx, t, dashboardAt(t, out))
	for {
		var env struct {
			Type  string          `json:"type"`
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		}
		if err := wsjson.Read(ctx, conn, &env); err != nil {
			t.Fatalf("no papertrade.heartbeat: %v", err)
		}
		if env.Type != "" {
			continue
		}
		if !strings.HasPrefix(env.Event, "papertrade.") {
			t.Fatalf("event %q is not under the prefix", env.Event)
		}
		if env.Event == "papertrade.heartbeat" {
			var h httpapi.Health
			if json.Unmarshal(env.Data, &h) != nil || h.NodeID != "paper-1" {
				t.Errorf("heartbeat %s", env.Data)
			}
			return
		}
	}
}

// startNode runs a node of c (the simulated exchange, its demo account)
// until the test ends, and returns its banner's address ("127.0.0.1:port")
// and what it printed.
func startNode(t *testing.T, c node.Config) (string, *testenv.Buffer) {
	t.Helper()
	out := &testenv.Buffer{}
	c.Stdout = out
	c.Exchange.Kind = node.ExchangeSim
	if c.NodeID == "" {
		c.NodeID = "n1"
	}
	c.Market = node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}
	n, err := node.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	on := regexp.MustCompile(` on https?://([^ ]+) `)
	var m []string
	testenv.Eventually(t, 5*time.Second, func() bool { m = on.FindStringSubmatch(out.String()); return m != nil }, "no address printed:\n%s", out.String())
	return m[1], out
}

// get answers one request with header (name, value pairs).
func get(t *testing.T, client *http.Client, url string, header ...string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header
}

// selfSigned writes a certificate for 127.0.0.1 and localhost, and its
// key, as PEM files; it returns their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tradecache test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With a certificate and key the node serves HTTPS only, TLS 1.2 or newer,
// says https:// in its banner, and its answers carry the security headers.
func TestNodeServesTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	addr, out := startNode(t, node.Config{HTTP: node.HTTP{Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile}})
	if !strings.Contains(out.String(), "on https://"+addr) {
		t.Errorf("banner:\n%s", out.String())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	code, h := get(t, client, "https://"+addr+"/healthz")
	if code != 200 || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Security-Policy") == "" {
		t.Errorf("GET https /healthz = %d %v", code, h)
	}
	if code, _ := get(t, client, "https://localhost:"+strings.Split(addr, ":")[1]+"/api/v1/positions"); code != 200 {
		t.Errorf("GET https://localhost/api/v1/positions = %d, want 200 (loopback, no token)", code)
	}
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + addr + "/healthz"); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
}

// A node beyond loopback that trusts its network starts, says so in one
// WARN line, keeps its account routes closed without a token, and refuses
// a Host name it was not given.
func TestTrustNetworkWarnsOnce(t *testing.T) {
	var logs testenv.Buffer
	addr, _ := startNode(t, node.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		HTTP: node.HTTP{Listen: "0.0.0.0:0", TrustNetwork: true}})
	_, port, _ := net.SplitHostPort(addr)
	base := "http://127.0.0.1:" + port
	testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "level=WARN") }, "no WARN line:\n%s", logs.String())
	client := &http.Client{}
	for _, tc := range []struct {
		path   string
		header []string
		want   int
	}{
		{"/healthz", nil, 200},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m", nil, 200},
		{"/api/v1/positions", nil, 401},
		{"/api/v1/positions", []string{"Authorization", "Bearer whatever-0123456789"}, 401},
		{"/healthz", []string{"Host", "attacker.example:" + port}, 421},
		{"/ws", []string{"Host", "attacker.example:" + port}, 421},
	} {
		if code, _ := get(t, client, base+tc.path, tc.header...); code != tc.want {
			t.Errorf("GET %s %v = %d, want %d", tc.path, tc.header, code, tc.want)
		}
	}
	var warns []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "--trust-network") || !strings.Contains(warns[0], "--api-token") {
		t.Errorf("WARN lines, want one naming --trust-network and --api-token:\n%s", strings.Join(warns, "\n"))
	}
}

// With an API token, the account routes answer 401 without it and 200 with
// it; market data needs none unless APIAuth is all.
func TestNodeAPIToken(t *testing.T) {
	const tok = "api-token-0123456789abcdef"
	for _, tc := range []struct {
		auth           string
		marketNoToken  int
		metricsNoToken int
	}{
		{node.APIAuthAccount, 200, 200},
		{node.APIAuthAll, 401, 401},
	} {
		t.Run(tc.auth, func(t *testing.T) {
			addr, out := startNode(t, node.Config{HTTP: node.HTTP{Listen: "127.0.0.1:0", APITokens: []string{tok}, APIAuth: tc.auth}})
			if !strings.Contains(out.String(), "API token (--api-token) required") {
				t.Errorf("banner:\n%s", out.String())
			}
			base, client, bearer := "http://"+addr, &http.Client{}, []string{"Authorization", "Bearer " + tok}
			got := map[string]int{}
			got["positions"], _ = get(t, client, base+"/api/v1/positions")
			got["balance"], _ = get(t, client, base+"/api/v1/balance?asset=USDT")
			got["audit"], _ = get(t, client, base+"/api/v1/keys/audit")
			got["market"], _ = get(t, client, base+"/api/v1/ticker/24hr")
			got["metrics"], _ = get(t, client, base+"/metrics")
			got["healthz"], _ = get(t, client, base+"/healthz")
			got["positions with token"], _ = get(t, client, base+"/api/v1/positions", bearer...)
			got["audit with token"], _ = get(t, client, base+"/api/v1/keys/audit", bearer...)
			got["market with token"], _ = get(t, client, base+"/api/v1/ticker/24hr", bearer...)
			want := map[string]int{"positions": 401, "balance": 401, "audit": 401, "market": tc.marketNoToken, "metrics": tc.metricsNoToken, "healthz": 200,
				"positions with token": 200, "audit with token": 404, "market with token": 200}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
		})
	}
}

// A node that fails to build after starting its in-process simulator
// leaves no listener behind.
func TestNewFailureClosesTheSimulator(t *testing.T) {
	before := openFDs(t)
	for range 20 {
		_, err := node.New(node.Config{NodeID: "n1", Demo: true,
			HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
			Notify: notify.Config{Webhook: &notify.Webhook{URL: "ftp://example.invalid/hook"}},
			Market: node.Market{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}}})
		if err == nil {
			t.Fatal("New accepted an ftp:// webhook")
		}
	}
	if after := openFDs(t); after > before+5 {
		t.Errorf("open file descriptors %d → %d after 20 failed New calls", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// A node on Redis holds no subscription to the event channel while no /ws
// client listens (PUBSUB NUMPAT 0 on its own server), and one once a
// client subscribes, whose events then arrive.
func TestNodeSubscribesToEventsOnlyWhileWatched(t *testing.T) {
	r := testenv.StartOne(t)
	out, stop := runDemo(t, "watched", node.Redis{URL: r.URL()})
	defer stop()
	dash := dashboardAt(t, out)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Running, publishing (heartbeats, klines), and nobody watching.
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "demo mode") }, "no demo line")
	time.Sleep(time.Second)
	if n := r.NumPat(t); n != 0 {
		t.Fatalf("NUMPAT %d with no /ws client, want 0", n)
	}
	conn := subscribeAll(ctx, t, dash)
	var reply struct{ Type string }
	if err := wsjson.Read(ctx, conn, &reply); err != nil || reply.Type != "subscribed" {
		t.Fatalf("reply %+v, %v", reply, err)
	}
	if n := r.NumPat(t); n != 1 {
		t.Fatalf("NUMPAT %d once a client subscribed, want 1", n)
	}
	for {
		var env struct{ Event string }
		if err := wsjson.Read(ctx, conn, &env); err != nil {
			t.Fatalf("no event after subscribing: %v", err)
		}
		if strings.HasSuffix(env.Event, ".heartbeat") {
			return
		}
	}
}

// dashboardAt waits for a demo node's dashboard line and returns its
// address and /ws token.
func dashboardAt(t *testing.T, out *testenv.Buffer) [2]string {
	t.Helper()
	dash := regexp.MustCompile(`dashboard: http://(127\.0\.0\.1:\d+)/#token=([A-Za-z0-9_-]+)`)
	var m []string
	testenv.Eventually(t, 10*time.Second, func() bool { m = dash.FindStringSubmatch(out.String()); return m != nil }, "no dashboard address")
	return [2]string{m[1], m[2]}
}

// subscribeAll connects to the /ws of dash (address, token), closed when
// the test ends, and subscribes to every event.
func subscribeAll(ctx context.Context, t *testing.T, dash [2]string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, "ws://"+dash[0]+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + dash[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	conn.SetReadLimit(1 << 20)
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "subscribe", "events": []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	return conn
}
