package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func postFault(t *testing.T, ts *httptest.Server, query string) {
	t.Helper()
	resp, err := http.Post(ts.URL+"/sim/fault?"+query, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /sim/fault?%s: %s", query, resp.Status)
	}
}

// readErr reads until the connection fails and returns the error.
func readErr(t *testing.T, c *websocket.Conn, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("connection still open")
			}
			return err
		}
	}
}

func TestFaultDrop(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	const path = "/market/stream?streams=btcusdt@kline_1m"
	c := dial(t, ts, path, nil)
	readUntil(t, c, 5*time.Second, func(frame) bool { return true })
	postFault(t, ts, "mode=drop")
	err := readErr(t, c, 5*time.Second)
	if code := websocket.CloseStatus(err); code != -1 {
		t.Errorf("want an abrupt close (no close frame), got %v", err)
	}
	// One shot: reconnecting works at once.
	c = dial(t, ts, path, nil)
	readUntil(t, c, 5*time.Second, func(frame) bool { return true })

	// With a duration, new connections are refused until it ends.
	postFault(t, ts, "mode=drop&duration=300ms")
	readErr(t, c, 5*time.Second)
	_, resp, err := websocket.Dial(context.Background(), wsURL(ts, path), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial during drop: %v %v", resp, err)
	}
	waitFor(t, 5*time.Second, "the drop to end", func() bool {
		c, _, err := websocket.Dial(context.Background(), wsURL(ts, path), nil)
		if err == nil {
			c.CloseNow()
		}
		return err == nil
	})
}

type arrival struct {
	at time.Time
	b  []byte
}

// reader collects a connection's frames with their arrival times.
func reader(c *websocket.Conn) <-chan arrival {
	ch := make(chan arrival, 4096)
	go func() {
		defer close(ch)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			ch <- arrival{time.Now(), b}
		}
	}()
	return ch
}

func TestFaultStall(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	c := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m", nil)
	frames := reader(c)
	<-frames
	const stall = 800 * time.Millisecond
	t0 := time.Now()
	postFault(t, ts, "mode=stall&duration=800ms")
	send(t, c, `{"method":"LIST_SUBSCRIPTIONS","id":"during"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); err == nil {
		t.Error("a stalled server answered a ping")
	}
	// Frames stop, then resume after the stall.
	last, gap := t0, time.Duration(0)
	timeout := time.After(5 * time.Second)
	for last.Sub(t0) < stall {
		select {
		case a, ok := <-frames:
			if !ok {
				t.Fatal("connection closed")
			}
			if bytes.Contains(a.b, []byte(`"during"`)) {
				t.Errorf("answered during the stall: %s", a.b)
			}
			gap = max(gap, a.at.Sub(last))
			last = a.at
		case <-timeout:
			t.Fatal("frames did not resume")
		}
	}
	if gap < stall/2 {
		t.Errorf("longest silence %v during an %v stall", gap, stall)
	}
	send(t, c, `{"method":"LIST_SUBSCRIPTIONS","id":"after"}`)
	for {
		select {
		case a, ok := <-frames:
			if !ok {
				t.Fatal("connection closed")
			}
			if bytes.Contains(a.b, []byte(`"after"`)) {
				return
			}
		case <-timeout:
			t.Fatal("no answer after the stall")
		}
	}
}

func TestFaultMalformed(t *testing.T) {
	t.Parallel()
	s, ts := startSim(t, fastCfg())
	c := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m", nil)
	postFault(t, ts, "mode=malformed")
	var invalid, wrongType, good bool
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !(invalid && wrongType && good) {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			invalid = true
			continue
		}
		var f struct{ Data json.RawMessage }
		if json.Unmarshal(b, &f) != nil {
			wrongType = true
			continue
		}
		var ev wsKlineEvent
		if json.Unmarshal(f.Data, &ev) != nil {
			wrongType = true
		} else if ev.Event == "kline" {
			good = true
		}
	}
	if err := s.SetFault(Fault{}); err != nil {
		t.Fatal(err)
	}
}

func TestFaultOversized(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	strict := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m", nil)
	strict.SetReadLimit(32 << 10) // coder/websocket's default
	lenient := dial(t, ts, "/market/ws/btcusdt@kline_1m", nil)
	// A first frame each: both are registered before the one-shot fault.
	readUntil(t, strict, 5*time.Second, func(frame) bool { return true })
	readUntil(t, lenient, 5*time.Second, func(frame) bool { return true })
	postFault(t, ts, "mode=oversized")

	err := readErr(t, strict, 5*time.Second)
	if !strings.Contains(err.Error(), "read limited") {
		t.Errorf("strict client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := lenient.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= 1<<20 {
			var ev map[string]any
			if err := json.Unmarshal(b, &ev); err != nil || ev["e"] != "simOversized" {
				t.Errorf("oversized frame (%d bytes) is not a valid event: %v", len(b), err)
			}
			break
		}
	}
}

func TestFaultUnknown(t *testing.T) {
	t.Parallel()
	_, ts := startSim(t, fastCfg())
	c := dial(t, ts, "/market/stream?streams=btcusdt@kline_1m/btcusdt@ticker", nil)
	postFault(t, ts, "mode=unknown&duration=1m")
	var unknownEvent, extraField bool
	readUntil(t, c, 5*time.Second, func(f frame) bool {
		var ev map[string]any
		if err := json.Unmarshal(f.Data, &ev); err != nil {
			t.Fatal(err)
		}
		switch {
		case ev["e"] == "simUnknownEvent":
			unknownEvent = true
		case ev["e"] == "kline" && ev["zUnknown"] != nil:
			extraField = true
		}
		return unknownEvent && extraField
	})
}

func TestFaultEndpointRejects(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{})
	for _, q := range []string{"mode=explode", "mode=stall&duration=soon", "mode=stall&duration=-1s"} {
		r := httptest.NewRequest(http.MethodPost, "/sim/fault?"+q, nil)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", q, w.Code)
		}
	}
	if err := s.SetFault(Fault{Mode: FaultStall, Duration: -time.Second}); err == nil {
		t.Error("negative duration accepted")
	}
}
