package bench

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFanoutSmoke(t *testing.T) {
	res, err := fanout(context.Background(), FanoutOptions{Clients: 20, Size: 200, Rate: 500, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published == 0 || res.Delivered != res.Expected || res.Slow != 0 {
		t.Fatalf("%+v", res)
	}
	// Memory per connection is measured, not asserted: with 20 clients the
	// heap's own churn outweighs them (the figure needs thousands).
	if res.P99 <= 0 || res.P50 > res.P99 {
		t.Fatalf("figures %+v", res)
	}
}

func TestFanoutClientProcess(t *testing.T) {
	// This test binary is the client process: TestMain runs the clients.
	res, err := fanout(context.Background(), FanoutOptions{Clients: 20, Size: 200, Rate: 500, Duration: 300 * time.Millisecond,
		ClientCommand: []string{os.Args[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Separate || res.Published == 0 || res.Delivered != res.Expected || res.Slow != 0 {
		t.Fatalf("%+v", res)
	}
	if res.P99 <= 0 || res.P50 > res.P99 || res.ClientsCPU <= 0 {
		t.Fatalf("figures %+v", res)
	}
	rep := res.report()
	requireFigures(t, rep, true, "fanout.clients_cpu", "fanout.client_process", "fanout.cpu_per_msg")
}

func TestFanoutClientProcessFails(t *testing.T) {
	_, err := fanout(context.Background(), FanoutOptions{Clients: 2, Size: 200, Rate: 10, Duration: 100 * time.Millisecond,
		ClientCommand: []string{"/bin/false"}})
	if err == nil || !strings.Contains(err.Error(), "client process") {
		t.Fatalf("err = %v, want the client process's failure", err)
	}
}

func TestFanoutReport(t *testing.T) {
	var log bytes.Buffer
	rep, err := Fanout(context.Background(), FanoutOptions{Clients: 5, Size: 120, Rate: 200, Duration: 100 * time.Millisecond, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "fanout.clients", "fanout.event_size", "fanout.rate", "fanout.delivered",
		"fanout.delivered_ratio", "fanout.latency.p50", "fanout.latency.p99", "fanout.latency.max")
	requireFigures(t, rep, false, "fanout.cpu", "fanout.idle_conn.heap", "fanout.idle_conn.stack", "fanout.slow_disconnects")
	if !strings.Contains(log.String(), "5 clients (in this process), 120-byte events, 200 events/s (1000 messages/s)") {
		t.Errorf("log = %q", log.String())
	}
}

func TestFanoutRefusesBadOptions(t *testing.T) {
	// FanoutOptions.Size documents the smallest event.
	if fanoutMinSize != 97 {
		t.Errorf("fanoutMinSize = %d; update FanoutOptions.Size's comment", fanoutMinSize)
	}
	for _, o := range []FanoutOptions{
		{Clients: 0, Size: 200, Rate: 1, Duration: time.Millisecond},
		{Clients: 1, Size: fanoutMinSize - 1, Rate: 1, Duration: time.Millisecond},
		{Clients: 1, Size: 200, Rate: 0, Duration: time.Millisecond},
		{Clients: 1, Size: 200, Rate: 1},
	} {
		if _, err := Fanout(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "bench fanout: ") {
			t.Errorf("Fanout(%+v) = %v, want an error", o, err)
		}
	}
}

// TestFanoutFigures logs the fan-out figures at a realistic scale: run it
// with
//
//	TRADECACHE_BENCH_FANOUT=1 go test -run TestFanoutFigures -v ./internal/bench
//
// and optionally _CLIENTS, _SIZE, _RATE (events/s), _SECONDS.
func TestFanoutFigures(t *testing.T) {
	if os.Getenv("TRADECACHE_BENCH_FANOUT") == "" {
		t.Skip("set TRADECACHE_BENCH_FANOUT=1 to run the fan-out benchmark")
	}
	env := func(k string, def int) int {
		if v, err := strconv.Atoi(os.Getenv("TRADECACHE_BENCH_FANOUT_" + k)); err == nil {
			return v
		}
		return def
	}
	res, err := fanout(context.Background(), FanoutOptions{Clients: env("CLIENTS", 1000), Size: env("SIZE", 200),
		Rate: env("RATE", 200), Duration: time.Duration(env("SECONDS", 5)) * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v\n%s", res, show(res.report()))
}
