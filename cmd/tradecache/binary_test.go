package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tradecache/tradecache/internal/testenv"
)

// dashboardMarker is in web/src/index.html and in no page the node makes
// itself.
const dashboardMarker = `<div id="chart"></div>`

// A binary made by go build carries its dashboard: run from a directory
// with no web/ in it, serve --demo answers / with the dashboard's
// index.html and serves the bundle it loads.
func TestBinaryServesEmbeddedDashboard(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not in the module", gomod)
	}
	root := filepath.Dir(gomod)
	src, err := os.ReadFile(filepath.Join(root, "web", "src", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), dashboardMarker) {
		t.Fatalf("web/src/index.html lacks %q: update dashboardMarker", dashboardMarker)
	}

	bin := filepath.Join(t.TempDir(), "tc")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tradecache")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve", "--demo", "--listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir() // no web/dist, no .env
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRADECACHE_") && !strings.HasPrefix(kv, "BINANCE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	firstLine := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		// Read stdout to its end (the node must never block on it) before
		// Wait, which closes it.
		sc := bufio.NewScanner(stdout)
		for n := 0; sc.Scan(); n++ {
			if n == 0 {
				firstLine <- sc.Text()
			}
		}
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("stderr of tc serve:\n%s", lastN(stderr.String(), 30))
		}
	})

	var first string
	select {
	case first = <-firstLine:
	case err := <-exited:
		stopped = true
		t.Fatalf("tc serve exited before printing its address: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("tc serve printed no first line in 30 s")
	}
	m := regexp.MustCompile(`on http://(\S+) \(health`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first stdout line of tc serve has no address: %q", first)
	}
	base := "http://" + m[1]

	code, body, h := httpGet(t, base+"/")
	if code != http.StatusOK || !strings.Contains(body, dashboardMarker) || strings.Contains(body, "not built") {
		t.Fatalf("GET / = %d, want 200 and the dashboard's index.html (with %q):\n%.400s", code, dashboardMarker, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type = %q, want text/html", ct)
	}
	if !strings.Contains(body, `<script src="app.js">`) {
		t.Fatalf("GET /: the page loads no app.js:\n%.400s", body)
	}
	code, body, h = httpGet(t, base+"/app.js")
	if code != http.StatusOK || len(body) < 50_000 {
		t.Errorf("GET /app.js = %d, %d bytes: want 200 and the bundle", code, len(body))
	}
	if ct := h.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("GET /app.js Content-Type = %q, want JavaScript", ct)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("tc serve after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("tc serve still runs 20 s after SIGTERM")
	}
}

func httpGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return res.StatusCode, string(b), res.Header
}
