package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
)

// runBounded is runCmd for a command that should return at once: if it
// runs on (a node that started), it is stopped after 10 s.
func runBounded(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut testenv.Buffer
	code := run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	if ctx.Err() != nil {
		t.Errorf("%v ran until stopped: it should have refused to start", args)
	}
	return code, out.String(), errOut.String()
}

// A node that would listen beyond loopback without an API token refuses to
// start, with exit status 2 and an error naming the way out.
func TestServeRefusesNetworkWithoutToken(t *testing.T) {
	noEnv := map[string]string{"TRADECACHE_ENV_FILE": "/dev/null"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"serve", "--listen", "0.0.0.0:0", "--exchange", "sim"}, noEnv, []string{"--listen 0.0.0.0:0 (from flag --listen)", "--api-token", "--trust-network"}},
		{[]string{"serve", "--exchange", "sim"}, map[string]string{"TRADECACHE_ENV_FILE": "/dev/null", "TRADECACHE_LISTEN": "[::]:0"}, []string{"env TRADECACHE_LISTEN", "--api-token", "--trust-network"}},
		{[]string{"serve", "--listen", "0.0.0.0:0", "--exchange", "sim", "--api-auth", "all", "--trust-network"}, noEnv, []string{"--api-auth all", "--api-token"}},
		{[]string{"serve", "--exchange", "sim", "--tls-cert", "/dev/null"}, noEnv, []string{"--tls-cert", "--tls-key"}},
	} {
		code, _, errOut := runBounded(t, tc.env, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: %q does not name %s", tc.args, errOut, w)
			}
		}
	}
}

// With --api-token, the account routes and the keys audit answer 401
// without it and as ever with it; a foreign Host is refused; every answer
// carries the security headers.
func TestServeAPIToken(t *testing.T) {
	const tok = "api-token-0123456789abcdef"
	url := startServe(t, "--api-token", tok)
	do := func(path string, header ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			if header[i] == "Host" {
				req.Host = header[i+1]
			} else {
				req.Header.Set(header[i], header[i+1])
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	auth := []string{"Authorization", "Bearer " + tok}
	got := map[string]int{}
	for name, req := range map[string][]string{
		"positions":              {"/api/v1/positions"},
		"positions, token":       {"/api/v1/positions", auth[0], auth[1]},
		"positions, wrong token": {"/api/v1/positions", "Authorization", "Bearer api-token-0123456789abcdeX"},
		"balance":                {"/api/v1/balance?asset=USDT"},
		"balance, token":         {"/api/v1/balance?asset=USDT", auth[0], auth[1]},
		"audit":                  {"/api/v1/keys/audit"},
		"audit, token":           {"/api/v1/keys/audit", auth[0], auth[1]},
		"klines":                 {"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1"},
		"healthz":                {"/healthz"},
		"foreign host":           {"/healthz", "Host", "attacker.example"},
		"foreign host, token":    {"/api/v1/positions", "Host", "attacker.example", auth[0], auth[1]},
	} {
		got[name], _, _ = do(req[0], req[1:]...)
	}
	want := map[string]int{"positions": 401, "positions, token": 200, "positions, wrong token": 401, "balance": 401, "balance, token": 200,
		"audit": 401, "audit, token": 404, "klines": 200, "healthz": 200, "foreign host": 421, "foreign host, token": 421}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}

	code, h, body := do("/api/v1/positions")
	var e httpapi.CodeError
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != 401 || e.Code != -2015 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 = %d %v %q", code, h, body)
	}
	for _, path := range []string{"/", "/healthz", "/api/v1/positions"} {
		_, h, _ := do(path)
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy = %q", path, h.Get("Content-Security-Policy"))
		}
	}
}
