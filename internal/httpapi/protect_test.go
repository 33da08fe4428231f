package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/bearer"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/web"
)

const apiToken = "api-token-0123456789abcdef"

func tokens(t *testing.T, ts ...string) bearer.Tokens {
	t.Helper()
	b, err := bearer.New(ts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fullServer has every route: market, account, dashboard, /ws (a stub).
func fullServer(auth httpapi.Auth) *httpapi.Server {
	return &httpapi.Server{NodeID: "n1", Cache: fakeStatus{cache.TierMemory, true, ""}, Gatherer: prometheus.NewRegistry(), Started: time.Now(),
		Market: market{}, Account: acct{}, Auth: auth,
		WS: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
}

// serve runs one request through h and returns the response.
func serve(h http.Handler, host, path string, header ...string) *http.Response {
	r := httptest.NewRequest("GET", path, nil)
	r.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

// codeError decodes a {code,msg} body; the zero CodeError if it is not one.
func codeError(res *http.Response) httpapi.CodeError {
	var e httpapi.CodeError
	b, _ := io.ReadAll(res.Body)
	json.Unmarshal(b, &e)
	return e
}

func TestAPIToken(t *testing.T) {
	withToken := httpapi.Auth{Tokens: tokens(t, apiToken, "second-token-0123456789")}
	all := withToken
	all.Scope = httpapi.ScopeAll
	good, wrong := []string{"Authorization", "Bearer " + apiToken}, []string{"Authorization", "Bearer not-the-token-0123456789"}
	tests := []struct {
		name   string
		auth   httpapi.Auth
		path   string
		header []string
		want   int
	}{
		{"account without token", withToken, "/api/v1/positions", nil, 401},
		{"account wrong token", withToken, "/api/v1/positions", wrong, 401},
		{"account basic scheme", withToken, "/api/v1/positions", []string{"Authorization", "Basic " + apiToken}, 401},
		{"account with token", withToken, "/api/v1/positions", good, 200},
		{"account second token", withToken, "/api/v1/positions", []string{"Authorization", "Bearer second-token-0123456789"}, 200},
		{"balance without token", withToken, "/api/v1/balance?asset=USDT", nil, 401},
		{"balance with token", withToken, "/api/v1/balance?asset=USDT", good, 200},
		{"audit without token", withToken, "/api/v1/keys/audit", nil, 401},
		{"audit with token", withToken, "/api/v1/keys/audit", good, 404}, // no Redis
		{"market open", withToken, "/api/v1/klines?symbol=BTCUSDT&interval=1m", nil, 200},
		{"metrics open", withToken, "/metrics", nil, 200},
		{"healthz open", withToken, "/healthz", nil, 200},
		{"dashboard open", withToken, "/", nil, 200},
		{"ws its own", withToken, "/ws", nil, 418},

		{"all: market without token", all, "/api/v1/klines?symbol=BTCUSDT&interval=1m", nil, 401},
		{"all: market with token", all, "/api/v1/klines?symbol=BTCUSDT&interval=1m", good, 200},
		{"all: symbols without token", all, "/api/v1/symbols/BTCUSDT", nil, 401},
		{"all: metrics without token", all, "/metrics", nil, 401},
		{"all: metrics with token", all, "/metrics", good, 200},
		{"all: account without token", all, "/api/v1/positions", nil, 401},
		{"all: account with token", all, "/api/v1/positions", good, 200},
		{"all: healthz open", all, "/healthz", nil, 200},
		{"all: dashboard open", all, "/", nil, 200},
		{"all: dashboard script open", all, "/app.js", nil, 200},
		{"all: ws its own", all, "/ws", nil, 418},

		{"no token beyond loopback: account", httpapi.Auth{}, "/api/v1/positions", nil, 401},
		{"no token beyond loopback: audit", httpapi.Auth{}, "/api/v1/keys/audit", nil, 401},
		{"no token beyond loopback: market", httpapi.Auth{}, "/api/v1/bookTicker?symbol=BTCUSDT", nil, 200},
		{"no token on loopback: account", httpapi.Auth{OpenWithoutToken: true}, "/api/v1/positions", nil, 200},
		{"no token on loopback: audit", httpapi.Auth{OpenWithoutToken: true}, "/api/v1/keys/audit", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serve(fullServer(tt.auth).Handler(), "127.0.0.1:8080", tt.path, tt.header...)
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			if res.StatusCode != 401 {
				return
			}
			if wa := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer ") {
				t.Errorf("WWW-Authenticate = %q", wa)
			}
			if e := codeError(res); e.Code != httpapi.CodeUnauthorized || e.Msg == "" {
				t.Errorf("body %+v, want code %d and a message", e, httpapi.CodeUnauthorized)
			}
		})
	}

	// The messages say what to do.
	msgs := map[string]string{}
	for name, tc := range map[string]struct {
		auth   httpapi.Auth
		header []string
	}{"missing": {withToken, nil}, "wrong": {withToken, wrong}, "none configured": {httpapi.Auth{}, nil}} {
		msgs[name] = codeError(serve(fullServer(tc.auth).Handler(), "localhost", "/api/v1/positions", tc.header...)).Msg
	}
	want := map[string]string{
		"missing":         "API token required: send Authorization: Bearer <token>",
		"wrong":           "invalid API token",
		"none configured": "no API token is configured and this node listens beyond loopback: set --api-token (TRADECACHE_API_TOKEN) and send it as Authorization: Bearer <token>",
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestHostAllowList(t *testing.T) {
	tests := []struct {
		allowed []string
		host    string
		ok      bool
	}{
		{nil, "localhost:8080", true},
		{nil, "LOCALHOST.", true},
		{nil, "localhost", true},
		{nil, "127.0.0.1:8080", true},
		{nil, "127.0.0.1", true},
		{nil, "[::1]:8080", true},
		{nil, "192.168.1.20:8080", true}, // an IP address cannot be rebound
		{nil, "[fe80::1%25eth0]:8080", true},
		{nil, "", true}, // HTTP/1.0 without Host
		{nil, "attacker.example", false},
		{nil, "attacker.example:8080", false},
		{nil, "localhost.attacker.example", false},
		{nil, "127.0.0.1.nip.io:8080", false},
		{[]string{"node1.lan"}, "node1.lan:8080", true},
		{[]string{"node1.lan"}, "NODE1.LAN", true},
		{[]string{"node1.lan"}, "node2.lan:8080", false},
		{[]string{"node1.lan:443"}, "node1.lan:443", true},
		{[]string{"node1.lan:443"}, "node1.lan:8080", false},
		{[]string{"*.example.com"}, "a.example.com", true},
		{[]string{"*.example.com"}, "a.b.example.com:8080", true},
		{[]string{"*.example.com"}, "example.com", false},
		{[]string{"*.example.com"}, "badexample.com", false},
		{[]string{"*"}, "attacker.example", true},
	}
	for _, tt := range tests {
		h := fullServer(httpapi.Auth{OpenWithoutToken: true})
		h.AllowedHosts = tt.allowed
		handler := h.Handler()
		for _, path := range []string{"/healthz", "/ws", "/api/v1/positions", "/"} {
			res := serve(handler, tt.host, path)
			if got := res.StatusCode != http.StatusMisdirectedRequest; got != tt.ok {
				t.Errorf("allowed %q, Host %q, %s: status %d, want allowed=%v", tt.allowed, tt.host, path, res.StatusCode, tt.ok)
				continue
			}
			if !tt.ok {
				if e := codeError(res); e.Code != httpapi.CodeHostNotAllowed || !strings.Contains(e.Msg, "--allowed-hosts") {
					t.Errorf("Host %q: body %+v", tt.host, e)
				}
			}
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := fullServer(httpapi.Auth{Tokens: tokens(t, apiToken)}).Handler()
	for _, tc := range []struct {
		host, path string
		status     int
		cache      string
	}{
		{"localhost", "/", 200, "no-cache"},
		{"localhost", "/app.js", 200, "no-cache"},
		{"localhost", "/app.css", 200, "no-cache"},
		{"localhost", "/healthz", 200, "no-store"},
		{"localhost", "/metrics", 200, "no-store"},
		{"localhost", "/api/v1/klines?symbol=BTCUSDT&interval=1m", 200, "no-store"},
		{"localhost", "/api/v1/klines?interval=1m", 400, "no-store"},
		{"localhost", "/api/v1/symbols/NOPE", 400, "no-store"}, // Binance's -1121
		{"localhost", "/api/v1/positions", 401, "no-store"},
		{"attacker.example", "/", 421, "no-store"},
		{"localhost", "/nope.js", 404, "no-store"}, // Binance's -5000, before the file server
	} {
		res := serve(h, tc.host, tc.path)
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, res.StatusCode, tc.status)
		}
		got := map[string]string{}
		for _, k := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cache-Control"} {
			got[k] = res.Header.Get(k)
		}
		want := map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": tc.cache}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tc.host, tc.path, diff)
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: Content-Security-Policy %q lacks %s", tc.path, csp, d)
			}
		}
	}
}

// The embedded dashboard works under the Content-Security-Policy: its page
// loads only its own files, and holds no inline script, event handler or
// javascript: URL (which script-src 'self' blocks), and its script calls
// no eval.
func TestDashboardFitsCSP(t *testing.T) {
	index, err := fs.ReadFile(web.Dist(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(index)
	for _, tag := range regexp.MustCompile(`(?is)<script[^>]*>.*?</script>`).FindAllString(page, -1) {
		if !regexp.MustCompile(`(?is)^<script[^>]*\ssrc="[^"]+"[^>]*>\s*</script>$`).MatchString(tag) {
			t.Errorf("index.html has an inline script: %.80s", tag)
		}
	}
	for _, re := range []string{`\son[a-z]+\s*=`, `javascript:`} {
		if m := regexp.MustCompile(`(?i)` + re).FindString(page); m != "" {
			t.Errorf("index.html has %q, which the policy blocks", m)
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		u := m[1]
		external := strings.HasPrefix(u, "http:") || strings.HasPrefix(u, "https:") || strings.HasPrefix(u, "//")
		if external && !strings.Contains(page, `<a href="`+u+`"`) { // links are navigation, not loads
			t.Errorf("index.html loads %s from another origin", u)
		}
	}
	js, err := fs.ReadFile(web.Dist(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"eval(", "new Function("} {
		if strings.Contains(string(js), s) {
			t.Errorf("app.js calls %s, which script-src 'self' blocks", s)
		}
	}
}

func TestQueryBounds(t *testing.T) {
	h := fullServer(httpapi.Auth{OpenWithoutToken: true})
	handler := h.Handler()
	many := "/api/v1/klines?" + strings.Repeat("a=1&", 100_000)
	params := func(n int) string {
		var b strings.Builder
		b.WriteString("/api/v1/klines?symbol=BTCUSDT&interval=1m")
		for i := range n - 2 {
			fmt.Fprintf(&b, "&p%d=1", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{many, 400, "query string too long: 400000 bytes, at most 8192"},
		{"/api/v1/klines?symbol=" + strings.Repeat("A", 8200) + "&interval=1m", 400, "query string too long"},
		{params(33), 400, "too many query parameters: 33, at most 32"},
		{params(32), 200, ""},
		{"/healthz?" + strings.Repeat("x", 9000), 400, "query string too long"},
	} {
		res := serve(handler, "localhost", tc.path)
		if res.StatusCode != tc.status {
			t.Errorf("%.60s…: status %d, want %d", tc.path, res.StatusCode, tc.status)
			continue
		}
		if tc.msg != "" {
			if e := codeError(res); e.Code != httpapi.CodeTooManyParams || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("%.60s…: body %+v, want code %d and %q", tc.path, e, httpapi.CodeTooManyParams, tc.msg)
			}
		}
	}

	// Through the server, a request line over MaxHeaderBytes never reaches
	// a handler.
	h.Limits = httpapi.Limits{MaxHeaderBytes: 16 << 10}
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = h.HTTPServer()
	srv.Start()
	defer srv.Close()
	res, err := http.Get(srv.URL + many)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100,000 parameters: status %d, want 431", res.StatusCode)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	s := &httpapi.Server{Limits: httpapi.Limits{WriteTimeout: time.Second}}
	hs := s.HTTPServer()
	got := []any{hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes}
	want := []any{5 * time.Second, 30 * time.Second, time.Second, 2 * time.Minute, 64 << 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A client that sends a request and never reads the answer holds its
// connection (and the handler's goroutine and buffers) for the write
// timeout, not forever.
func TestWriteTimeoutCutsOffNonReader(t *testing.T) {
	const size = 64 << 20 // more than the kernel's socket buffers hold
	files := fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}, "big.bin": {Data: make([]byte, size)}}
	s := &httpapi.Server{NodeID: "n1", Cache: fakeStatus{cache.TierMemory, true, ""}, Gatherer: prometheus.NewRegistry(), Started: time.Now(),
		Web: files, Limits: httpapi.Limits{WriteTimeout: 300 * time.Millisecond}}
	hs := s.HTTPServer()
	closed := make(chan time.Time, 1)
	hs.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- time.Now()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	defer hs.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	start := time.Now()
	fmt.Fprintf(c, "GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
	select {
	case at := <-closed:
		if d := at.Sub(start); d < 250*time.Millisecond {
			t.Errorf("closed after %v, before the write timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server still holds a connection whose client does not read, 10 s after a write timeout of 300 ms")
	}
	// What the client then reads ends early: the answer was cut off.
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	if err == nil || n >= size {
		t.Errorf("read %d of %d bytes, err %v: want a truncated answer", n, size, err)
	}
}
