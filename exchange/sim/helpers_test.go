package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// startSim serves a new Server on a loopback httptest server and runs its
// market until the test ends.
func startSim(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	runSim(t, s, ts)
	return s, ts
}

func runSim(t *testing.T, s *Server, ts *httptest.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		ts.Close()
	})
}

func wsURL(ts *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + path
}

// dial connects a client; it is closed when the test ends.
func dial(t *testing.T, ts *httptest.Server, path string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(ts, path), opts)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(16 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %s: %v", msg, err)
	}
}

// frame is a decoded server message: a combined envelope, a control
// answer, or (raw mode) a payload.
type frame struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
	Result json.RawMessage `json:"result"`
	ID     json.RawMessage `json:"id"`
	Error  *struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"error"`
	raw []byte
}

// readUntil reads frames until keep returns true, failing after d.
func readUntil(t *testing.T, c *websocket.Conn, d time.Duration, keep func(frame) bool) frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %.200s: %v", b, err)
		}
		f.raw = b
		if keep(f) {
			return f
		}
	}
}

// answer reads until the control answer with id arrives.
func answer(t *testing.T, c *websocket.Conn, id string) frame {
	t.Helper()
	return readUntil(t, c, 5*time.Second, func(f frame) bool { return string(f.ID) == id })
}

func getJSON(t *testing.T, url string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %s: %v", url, b, err)
		}
	}
	return resp
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shape maps each key path of a JSON value to the JSON types seen there
// (elements of an array share the path "[]"; filters are told apart by
// filterType).
func shape(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%.200s: %v", b, err)
	}
	types := map[string]map[string]bool{}
	var walk func(v any, p string)
	walk = func(v any, p string) {
		if types[p] == nil {
			types[p] = map[string]bool{}
		}
		switch x := v.(type) {
		case map[string]any:
			types[p]["object"] = true
			for k, e := range x {
				walk(e, p+"."+k)
			}
		case []any:
			types[p]["array"] = true
			for _, e := range x {
				ep := p + "[]"
				if m, ok := e.(map[string]any); ok {
					if ft, ok := m["filterType"].(string); ok {
						ep = p + "[" + ft + "]"
					}
				}
				walk(e, ep)
			}
		case string:
			types[p]["string"] = true
		case float64:
			types[p]["number"] = true
		case bool:
			types[p]["bool"] = true
		case nil:
			types[p]["null"] = true
		}
	}
	walk(v, "")
	out := map[string]string{}
	for p, ts := range types {
		var l []string
		for k := range ts {
			l = append(l, k)
		}
		sort.Strings(l)
		out[p] = strings.Join(l, "|")
	}
	return out
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameShape fails unless got has the key paths and JSON types of the
// golden file.
func sameShape(t *testing.T, goldenName string, got []byte) {
	t.Helper()
	if d := cmp.Diff(shape(t, golden(t, goldenName)), shape(t, got)); d != "" {
		t.Errorf("shape differs from testdata/%s (-golden +got):\n%s", goldenName, d)
	}
}
