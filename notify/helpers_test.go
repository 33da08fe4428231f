package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// hit is one request a recorder received.
type hit struct {
	Path   string
	Header http.Header
	Body   map[string]any
	At     time.Time
}

// recorder is a test server's handler: it records every request, then
// answers with reply (nil: 200 {"ok":true}). i is the request's index.
type recorder struct {
	reply func(i int, w http.ResponseWriter, r *http.Request)

	mu   sync.Mutex // guards hits
	hits []hit
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	rc.mu.Lock()
	i := len(rc.hits)
	rc.hits = append(rc.hits, hit{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()})
	rc.mu.Unlock()
	if rc.reply != nil {
		rc.reply(i, w, r)
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (rc *recorder) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// texts are the chat text of each hit (text, content or the webhook's text).
func (rc *recorder) texts() []string {
	var out []string
	for _, h := range rc.got() {
		for _, k := range []string{"text", "content"} {
			if s, ok := h.Body[k].(string); ok {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// offsets are the hits' arrival times after start.
func (rc *recorder) offsets(start time.Time) []time.Duration {
	var out []time.Duration
	for _, h := range rc.got() {
		out = append(out, h.At.Sub(start))
	}
	return out
}

// hosts is an in-memory transport for synctest bubbles: the request goes
// to the handler of its host, in a goroutine of the bubble, so fake time
// advances while handlers wait (a real socket would stall the bubble).
type hosts map[string]http.Handler

func (hs hosts) RoundTrip(r *http.Request) (*http.Response, error) {
	h, ok := hs[r.URL.Host]
	if !ok {
		return nil, &net404{r.URL.Host}
	}
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, r)
	}()
	select {
	case <-done:
		return rec.Result(), nil
	case <-r.Context().Done():
		<-done // handlers return when the request's context ends
		return nil, r.Context().Err()
	}
}

type net404 struct{ host string }

func (e *net404) Error() string { return "dial " + e.host + ": no such host" }

// start builds a Notifier over hs and runs it until the test ends.
func start(t *testing.T, cfg Config, hs hosts, opts ...Option) *Notifier {
	t.Helper()
	n, err := New(cfg, append([]Option{WithHTTPClient(&http.Client{Transport: hs})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	run(t, n)
	return n
}

// run runs n until the test ends, and checks Run returns.
func run(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// hang never answers: it returns when the client gives up.
func hang(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// waitFor polls cond until it holds or 5 s pass (tests on real sockets).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func msg(i int) Notification {
	return Notification{Event: "live.test", Title: "t", Text: "m" + string(rune('0'+i))}
}
