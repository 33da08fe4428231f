package httpapi_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/httpapi"
)

func dashboardServer(t *testing.T, files fs.FS) *httptest.Server {
	t.Helper()
	s := &httpapi.Server{NodeID: "n1", Cache: fakeStatus{cache.TierMemory, true, ""}, Gatherer: prometheus.NewRegistry(),
		Started: time.Now(), Web: files}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
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

func TestDashboardServesDir(t *testing.T) {
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
	srv := dashboardServer(t, os.DirFS(dir))

	code, body, h := get(t, srv.URL+"/")
	if code != 200 || body != index {
		t.Fatalf("GET / = %d %q, want 200 and index.html", code, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type = %q", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET / Cache-Control = %q, want no-cache", cc)
	}
	// A build made after the server started is served at once.
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("rebuilt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, srv.URL+"/"); code != 200 || body != "rebuilt" {
		t.Errorf("GET / after a rebuild = %d %q, want 200 rebuilt", code, body)
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
	for name, files := range map[string]fs.FS{
		"missing dir":         os.DirFS(filepath.Join(t.TempDir(), "nope")),
		"no index.html":       os.DirFS(t.TempDir()),
		"index.html is a dir": fstest.MapFS{"index.html/x": {}, "app.js": {Data: []byte("1")}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := dashboardServer(t, files)
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

// With no Web the server serves the build embedded in the binary.
func TestDashboardEmbedded(t *testing.T) {
	srv := dashboardServer(t, nil)

	code, body, h := get(t, srv.URL+"/")
	if code != 200 || !strings.Contains(body, `<div id="chart">`) || !strings.Contains(body, `<script src="app.js">`) {
		t.Fatalf("GET / = %d, want 200 and the dashboard's index.html:\n%.300s", code, body)
	}
	if strings.Contains(body, "not built") {
		t.Errorf("GET / says the dashboard is not built")
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type = %q", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET / Cache-Control = %q, want no-cache", cc)
	}
	for _, p := range []string{"/", "/app.js", "/app.css"} {
		code, body, h := get(t, srv.URL+p)
		tag := h.Get("ETag")
		if code != 200 || len(body) == 0 || tag == "" {
			t.Errorf("GET %s = %d, %d bytes, ETag %q: want 200, a body and an ETag", p, code, len(body), tag)
			continue
		}
		// Revalidation (no-cache) costs no download.
		if code, body, _ := get(t, srv.URL+p, "If-None-Match", tag); code != http.StatusNotModified || body != "" {
			t.Errorf("GET %s If-None-Match %s = %d %q, want 304", p, tag, code, body)
		}
	}
	code, body, h = get(t, srv.URL+"/app.js")
	if code != 200 || len(body) < 10_000 || !strings.Contains(h.Get("Content-Type"), "javascript") {
		t.Errorf("GET /app.js = %d, %d bytes, %q: want 200, the bundle, JavaScript", code, len(body), h.Get("Content-Type"))
	}
	if code, _, _ := get(t, srv.URL+"/missing.js"); code != 404 {
		t.Errorf("GET /missing.js = %d, want 404", code)
	}
	if code, _, _ := get(t, srv.URL+"/index.html"); code != 200 {
		t.Errorf("GET /index.html = %d, want 200 (after the redirect to /)", code)
	}
}
