package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tradecache/tradecache/bus"
)

func TestRender(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name string
		ev   bus.Event
		want Notification
	}{
		{
			name: "jesse error_log",
			ev:   bus.Event{Publisher: "node-1", Name: "livetrade.error_log", Data: raw(`{"id":"u","session_id":"s","timestamp":1700000000000,"message":"Order failed: insufficient margin"}`)},
			want: Notification{Event: "livetrade.error_log", Title: "livetrade.error_log from node-1", Text: "Order failed: insufficient margin",
				Data: raw(`{"id":"u","session_id":"s","timestamp":1700000000000,"message":"Order failed: insufficient margin"}`), Time: time.UnixMilli(1700000000000)},
		},
		{
			name: "alert without publisher",
			ev:   bus.Event{Name: "live.alert", Data: raw(`{"message":"hi","type":"success"}`)},
			want: Notification{Event: "live.alert", Title: "live.alert", Text: "hi", Data: raw(`{"message":"hi","type":"success"}`)},
		},
		{
			name: "other payload as indented JSON",
			ev:   bus.Event{Name: "live.orders", Data: raw(`[{"id":1,"side":"buy"}]`)},
			want: Notification{Event: "live.orders", Title: "live.orders", Text: "[\n  {\n    \"id\": 1,\n    \"side\": \"buy\"\n  }\n]", Data: raw(`[{"id":1,"side":"buy"}]`)},
		},
		{
			name: "object without message",
			ev:   bus.Event{Name: "live.x", Data: raw(`{"a":1}`)},
			want: Notification{Event: "live.x", Title: "live.x", Text: "{\n  \"a\": 1\n}", Data: raw(`{"a":1}`)},
		},
		{
			name: "string payload",
			ev:   bus.Event{Name: "live.notification", Data: raw(`"hello"`)},
			want: Notification{Event: "live.notification", Title: "live.notification", Text: "hello", Data: raw(`"hello"`)},
		},
		{
			name: "not JSON",
			ev:   bus.Event{Name: "live.x", Data: raw(`oops`)},
			want: Notification{Event: "live.x", Title: "live.x", Text: "oops", Data: raw(`oops`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Render(tt.ev)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	c := Config{Events: []string{"live.orders", "live.*_alert", "notification"}}
	tests := []struct {
		name         string
		ignoreErrors bool
		want         bool
	}{
		{"live.error_log", false, true},
		{"livetrade.error_log", false, true},
		{"live.error_log", true, false},
		{"live.info_log", false, false},
		{"live.orders", false, true},
		{"papertrade.orders", false, false},
		{"live.price_alert", false, true},
		{"live.alert", false, false},
		{"backtest.notification", false, true},
		{"live.kline", false, false},
		{"ping", false, false},
	}
	for _, tt := range tests {
		c.IgnoreErrors = tt.ignoreErrors
		if got := c.Match(tt.name); got != tt.want {
			t.Errorf("Match(%q) ignoreErrors=%t = %t, want %t", tt.name, tt.ignoreErrors, got, tt.want)
		}
	}
}

// fakeSub delivers its events, then waits for ctx, like a bus.
type fakeSub []bus.Event

func (f fakeSub) Subscribe(ctx context.Context, fn func(bus.Event)) error {
	for _, ev := range f {
		fn(ev)
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestForwardAndHandleEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{}
		n := start(t, Config{Discord: &Discord{WebhookURL: "http://d.test/x"}, Events: []string{"live.orders"}}, hosts{"d.test": rc})
		events := fakeSub{
			{Name: "live.kline", Data: json.RawMessage(`{}`)},
			{Publisher: "n1", Name: "live.error_log", Data: json.RawMessage(`{"message":"boom"}`)},
			{Name: "live.orders", Data: json.RawMessage(`{"message":"filled"}`)},
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() { errc <- n.Forward(ctx, events, nil) }()
		synctest.Wait()
		want := []string{"**live.error_log from n1**\nboom", "**live.orders**\nfilled"}
		if diff := cmp.Diff(want, rc.texts()); diff != "" {
			t.Errorf("Forward sent (-want +got):\n%s", diff)
		}
		cancel()
		if err := <-errc; err != context.Canceled {
			t.Errorf("Forward = %v", err)
		}

		// A match of the caller's own.
		ctx, cancel = context.WithCancel(context.Background())
		go func() { errc <- n.Forward(ctx, events, func(name string) bool { return name == "live.kline" }) }()
		synctest.Wait()
		cancel()
		<-errc
		if got := rc.texts(); len(got) != 3 || got[2] != "**live.kline**\n{}" {
			t.Errorf("custom match sent %q", got)
		}

		var handled []bool
		for _, ev := range events {
			handled = append(handled, n.HandleEvent(ev))
		}
		if diff := cmp.Diff([]bool{false, true, true}, handled); diff != "" {
			t.Errorf("HandleEvent (-want +got):\n%s", diff)
		}
	})
}

func TestCollector(t *testing.T) {
	n, err := New(Config{Slack: &Slack{WebhookURL: "http://s.test/x"}, QueueSize: 2}, WithHTTPClient(&http.Client{Transport: hosts{}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2, 2} { // one repeat, one dropped
		n.Notify(msg(i))
	}
	want := `
# HELP tradecache_notify_deduplicated_total Repeated notifications collapsed within the dedupe window.
# TYPE tradecache_notify_deduplicated_total counter
tradecache_notify_deduplicated_total 1
# HELP tradecache_notify_dropped_total Notifications dropped from a full queue, by sink.
# TYPE tradecache_notify_dropped_total counter
tradecache_notify_dropped_total{sink="slack"} 1
# HELP tradecache_notify_queued Notifications waiting for delivery, by sink.
# TYPE tradecache_notify_queued gauge
tradecache_notify_queued{sink="slack"} 2
# HELP tradecache_notify_received_total Notifications given to Notify.
# TYPE tradecache_notify_received_total counter
tradecache_notify_received_total 4
# HELP tradecache_notify_sent_total Notifications delivered, by sink.
# TYPE tradecache_notify_sent_total counter
tradecache_notify_sent_total{sink="slack"} 0
`
	if err := testutil.CollectAndCompare(n.Collector(), strings.NewReader(want),
		"tradecache_notify_deduplicated_total", "tradecache_notify_dropped_total", "tradecache_notify_queued",
		"tradecache_notify_received_total", "tradecache_notify_sent_total"); err != nil {
		t.Error(err)
	}
	if c := testutil.CollectAndCount(n.Collector()); c != 7 {
		t.Errorf("%d metrics, want 7", c)
	}
}
