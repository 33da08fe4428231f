package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/httpapi"
)

func dashboardServer(t *testing.T, webDir string) *httptest.Server {
	t.Helper()
	s := &httpapi.Server{NodeID: "n1", Cache: fakeStatus{cache.TierMemory, true, ""}, Gatherer: prometheus.NewRegistry(),
		Started: time.Now(), WebDir: webDir}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b), res.Header
}

func TestDashboardServesWebDir(t *testing.T) {
	dir := t.TempDir()
	const index = `<!doctype html><title>dash</title><script src="app.js"></script>`
	for name, body := range map[string]string{"index.html": index, "app.js": "console.log(1)", "app.css": "body{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := dashboardServer(t, dir)

	code, body, h := get(t, srv.URL+"/")
	if code != 200 || body != index {
		t.Fatalf("GET / = %d %q, want 200 and index.html", code, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type = %q", ct)
	}
	code, body, h = get(t, srv.URL+"/app.js")
	if code != 200 || body != "console.log(1)" || !strings.Contains(h.Get("Content-Type"), "javascript") {
		t.Errorf("GET /app.js = %d %q %q", code, body, h.Get("Content-Type"))
	}
	if code, _, _ := get(t, srv.URL+"/missing.js"); code != 404 {
		t.Errorf("GET /missing.js = %d, want 404", code)
	}
	if code, body, _ := get(t, srv.URL+"/sub/"); code != 404 {
		t.Errorf("GET /sub/ = %d %q, want 404 (no listing)", code, body)
	}
	// The API is unaffected.
	if code, body, _ := get(t, srv.URL+"/healthz"); code != 200 || !strings.Contains(body, `"node_id":"n1"`) {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
}

func TestDashboardNotBuilt(t *testing.T) {
	for name, dir := range map[string]string{
		"missing dir":   filepath.Join(t.TempDir(), "nope"),
		"no index.html": t.TempDir(),
	} {
		t.Run(name, func(t *testing.T) {
			srv := dashboardServer(t, dir)
			code, body, h := get(t, srv.URL+"/")
			if code != 200 {
				t.Fatalf("GET / = %d, want 200", code)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Errorf("Content-Type = %q", h.Get("Content-Type"))
			}
			for _, want := range []string{"not built", "cd web &amp;&amp; npm ci &amp;&amp; npm run build", `"node_id": "n1"`} {
				if !strings.Contains(body, want) {
					t.Errorf("GET / lacks %q:\n%s", want, body)
				}
			}
			if code, _, _ := get(t, srv.URL+"/app.js"); code != 404 {
				t.Errorf("GET /app.js = %d, want 404", code)
			}
			if code, _, _ := get(t, srv.URL+"/healthz"); code != 200 {
				t.Errorf("GET /healthz = %d, want 200", code)
			}
		})
	}
}
