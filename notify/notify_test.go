package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Every test here runs in a synctest bubble: backoff, retry_after, rate
// limits, timeouts and dedupe windows elapse in fake time, exactly.

func TestRetryOn500ThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{reply: func(i int, w http.ResponseWriter, r *http.Request) {
			if i < 2 {
				w.WriteHeader(500)
				return
			}
			w.WriteHeader(204)
		}}
		n := start(t, Config{Webhook: &Webhook{URL: "http://hook.test/w"}}, hosts{"hook.test": rc}, WithBackoff(time.Second, 30*time.Second))
		t0 := time.Now()
		n.Notify(msg(1))
		time.Sleep(time.Minute)
		off := rc.offsets(t0)
		if len(off) != 3 {
			t.Fatalf("got %d attempts, want 3", len(off))
		}
		// Jitter puts the waits in [d/2, d]: 1 s, then 2 s.
		if d := off[1] - off[0]; d < 500*time.Millisecond || d > time.Second {
			t.Errorf("first retry after %v, want [0.5s, 1s]", d)
		}
		if d := off[2] - off[1]; d < time.Second || d > 2*time.Second {
			t.Errorf("second retry after %v, want [1s, 2s]", d)
		}
		want := Stats{Received: 1, Sinks: []SinkStats{{Sink: "webhook", Sent: 1, Retries: 2}}}
		if diff := cmp.Diff(want, n.Stats()); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		host  string
		reply func(w http.ResponseWriter)
		want  time.Duration
	}{
		{
			name: "telegram parameters.retry_after",
			cfg:  Config{Telegram: &Telegram{Token: "1:abc", ChatID: "7", BaseURL: "http://tg.test"}},
			host: "tg.test",
			reply: func(w http.ResponseWriter) {
				w.WriteHeader(429)
				fmt.Fprint(w, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}`)
			},
			want: 7 * time.Second,
		},
		{
			name: "discord JSON retry_after",
			cfg:  Config{Discord: &Discord{WebhookURL: "http://discord.test/api/webhooks/1/x"}},
			host: "discord.test",
			reply: func(w http.ResponseWriter) {
				w.WriteHeader(429)
				fmt.Fprint(w, `{"message":"You are being rate limited.","retry_after":4.5,"global":false}`)
			},
			want: 4500 * time.Millisecond,
		},
		{
			name: "discord Retry-After header",
			cfg:  Config{Discord: &Discord{WebhookURL: "http://discord.test/api/webhooks/1/x"}},
			host: "discord.test",
			reply: func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "6")
				w.WriteHeader(429)
			},
			want: 6 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := &recorder{reply: func(i int, w http.ResponseWriter, r *http.Request) {
					if i == 0 {
						tt.reply(w)
						return
					}
					fmt.Fprint(w, `{"ok":true}`)
				}}
				// The backoff (1 s) is shorter than what the service asks for.
				n := start(t, tt.cfg, hosts{tt.host: rc}, WithBackoff(time.Second, time.Second))
				t0 := time.Now()
				n.Notify(msg(1))
				time.Sleep(time.Minute)
				off := rc.offsets(t0)
				if diff := cmp.Diff([]time.Duration{0, tt.want}, off); diff != "" {
					t.Errorf("attempt times (-want +got):\n%s", diff)
				}
				if s := n.Stats().Sinks[0]; s.Sent != 1 || s.Retries != 1 {
					t.Errorf("stats = %+v", s)
				}
			})
		})
	}
}

func TestGiveUp(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		attempts int // MaxAttempts
		want     SinkStats
		requests int
	}{
		{"5xx until max attempts", 503, 3, SinkStats{Sink: "slack", Failed: 1, Retries: 2}, 3},
		{"default attempts", 502, 0, SinkStats{Sink: "slack", Failed: 1, Retries: 4}, 5},
		{"4xx at once", 403, 3, SinkStats{Sink: "slack", Failed: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ok atomic.Bool
				rc := &recorder{reply: func(i int, w http.ResponseWriter, r *http.Request) {
					if !ok.Load() {
						w.WriteHeader(tt.code)
					}
				}}
				n := start(t, Config{Slack: &Slack{WebhookURL: "http://slack.test/s"}, MaxAttempts: tt.attempts}, hosts{"slack.test": rc})
				n.Notify(msg(1))
				time.Sleep(10 * time.Minute)
				if got := len(rc.got()); got != tt.requests {
					t.Errorf("got %d requests, want %d", got, tt.requests)
				}
				if diff := cmp.Diff(tt.want, n.Stats().Sinks[0]); diff != "" {
					t.Errorf("stats (-want +got):\n%s", diff)
				}
				// The sink goes on with the next notification.
				ok.Store(true)
				n.Notify(msg(2))
				synctest.Wait()
				if s := n.Stats().Sinks[0]; s.Sent != 1 {
					t.Errorf("after recovery: %+v", s)
				}
			})
		})
	}
}

func TestRateLimit(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	tests := []struct {
		name string
		cfg  Config
		host string
		opts []Option
		n    int
		want []time.Duration
	}{
		{"webhook default 1/s burst 5", Config{Webhook: &Webhook{URL: "http://h.test/"}}, "h.test", nil, 8,
			[]time.Duration{0, 0, 0, 0, 0, s, 2 * s, 3 * s}},
		{"telegram 1/s per chat", Config{Telegram: &Telegram{Token: "1:a", ChatID: "1", BaseURL: "http://h.test"}}, "h.test", nil, 3,
			[]time.Duration{0, s, 2 * s}},
		{"discord 5 per 2s", Config{Discord: &Discord{WebhookURL: "http://h.test/d"}}, "h.test", nil, 7,
			[]time.Duration{0, 0, 0, 0, 0, 400 * ms, 800 * ms}},
		{"WithRate", Config{Slack: &Slack{WebhookURL: "http://h.test/s"}}, "h.test", []Option{WithRate("slack", Rate{Every: 250 * ms, Burst: 2})}, 4,
			[]time.Duration{0, 0, 250 * ms, 500 * ms}},
		{"unlimited", Config{Slack: &Slack{WebhookURL: "http://h.test/s"}}, "h.test", []Option{WithRate("slack", Rate{})}, 7,
			[]time.Duration{0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rc := &recorder{}
				n := start(t, tt.cfg, hosts{tt.host: rc}, tt.opts...)
				t0 := time.Now()
				for i := range tt.n {
					n.Notify(msg(i))
				}
				time.Sleep(time.Minute)
				if diff := cmp.Diff(tt.want, rc.offsets(t0)); diff != "" {
					t.Errorf("send times (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestDedupe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{}
		n := start(t, Config{Webhook: &Webhook{URL: "http://h.test/"}}, hosts{"h.test": rc})
		t0 := time.Now()
		boom := Notification{Event: "live.error_log", Title: "error", Text: "boom"}
		for range 10 {
			n.Notify(boom)
		}
		n.Notify(Notification{Event: "live.error_log", Title: "error", Text: "other"})
		synctest.Wait()
		if diff := cmp.Diff([]string{"boom", "other"}, rc.texts()); diff != "" {
			t.Fatalf("sent (-want +got):\n%s", diff)
		}
		// The window closes: one message reports the repeats.
		time.Sleep(3 * time.Minute)
		want := []string{"boom", "other", "boom\n(repeated 9 times in the last 1m)"}
		if diff := cmp.Diff(want, rc.texts()); diff != "" {
			t.Fatalf("sent (-want +got):\n%s", diff)
		}
		if at := rc.offsets(t0)[2]; at != time.Minute {
			t.Errorf("summary sent at %v, want 1m", at)
		}
		// Forgotten after a quiet window: the next one goes out as is.
		n.Notify(boom)
		synctest.Wait()
		if got := rc.texts(); got[len(got)-1] != "boom" {
			t.Errorf("last = %q", got[len(got)-1])
		}
		want2 := Stats{Received: 12, Deduplicated: 9, Sinks: []SinkStats{{Sink: "webhook", Sent: 4}}}
		if diff := cmp.Diff(want2, n.Stats()); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
	})
}

func TestDedupeEndlessRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{}
		n := start(t, Config{Webhook: &Webhook{URL: "http://h.test/"}}, hosts{"h.test": rc})
		t0 := time.Now()
		boom := Notification{Event: "e", Text: "boom"}
		n.Notify(boom) // t=0
		time.Sleep(5 * time.Second)
		for range 18 { // t=5s, 15s, … 175s
			n.Notify(boom)
			time.Sleep(10 * time.Second)
		}
		time.Sleep(5 * time.Minute)
		r := "boom\n(repeated 6 times in the last 1m)"
		if diff := cmp.Diff([]string{"boom", r, r, r}, rc.texts()); diff != "" {
			t.Errorf("sent (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute}, rc.offsets(t0)); diff != "" {
			t.Errorf("send times (-want +got):\n%s", diff)
		}
		if s := n.Stats(); s.Deduplicated != 18 {
			t.Errorf("Deduplicated = %d", s.Deduplicated)
		}
	})
}

func TestDedupeOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{}
		n := start(t, Config{Webhook: &Webhook{URL: "http://h.test/"}, DedupeWindow: -1}, hosts{"h.test": rc})
		for range 3 {
			n.Notify(msg(1))
		}
		time.Sleep(time.Minute)
		if got := len(rc.got()); got != 3 {
			t.Errorf("sent %d, want 3", got)
		}
	})
}

func TestQueueFullDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{}
		n, err := New(Config{Discord: &Discord{WebhookURL: "http://d.test/x"}, QueueSize: 3}, WithHTTPClient(&http.Client{Transport: hosts{"d.test": rc}}))
		if err != nil {
			t.Fatal(err)
		}
		// Not running yet: Notify still returns at once.
		for i := range 5 {
			n.Notify(msg(i))
		}
		want := Stats{Received: 5, Sinks: []SinkStats{{Sink: "discord", Dropped: 2, Queued: 3}}}
		if diff := cmp.Diff(want, n.Stats()); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
		run(t, n)
		synctest.Wait()
		wantText := []string{"**t**\nm2\n(2 older notifications dropped: queue full)", "**t**\nm3", "**t**\nm4"}
		if diff := cmp.Diff(wantText, rc.texts()); diff != "" {
			t.Errorf("sent (-want +got):\n%s", diff)
		}
		if s := n.Stats().Sinks[0]; s.Sent != 3 || s.Queued != 0 || s.Dropped != 2 {
			t.Errorf("stats = %+v", s)
		}
	})
}

func TestHangingSinkDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := &recorder{reply: hang}
		fast := &recorder{}
		cfg := Config{
			Slack:   &Slack{WebhookURL: "http://slack.test/s"},
			Discord: &Discord{WebhookURL: "http://discord.test/d"},
			Timeout: 10 * time.Second,
		}
		n := start(t, cfg, hosts{"slack.test": slow, "discord.test": fast})
		t0 := time.Now()
		for i := range 3 {
			n.Notify(msg(i))
		}
		if time.Since(t0) != 0 {
			t.Fatal("Notify blocked")
		}
		synctest.Wait()
		// Discord got everything at once while Slack's first request hangs.
		if diff := cmp.Diff([]time.Duration{0, 0, 0}, fast.offsets(t0)); diff != "" {
			t.Errorf("discord send times (-want +got):\n%s", diff)
		}
		if got := len(slow.got()); got != 1 {
			t.Errorf("slack requests = %d, want 1 (hanging)", got)
		}
		// The client timeout ends the hanging attempt; it is retried.
		time.Sleep(11 * time.Second)
		if s := n.Stats().Sinks[0]; s.Sink != "slack" || s.Retries != 1 || s.Sent != 0 {
			t.Errorf("slack stats = %+v", s)
		}
	})
}

// TestHangingSinkRealServer is the same over real sockets: a server that
// never answers.
func TestHangingSinkRealServer(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	fast := &recorder{}
	fastSrv := httptest.NewServer(fast)
	defer fastSrv.Close()

	n, err := New(Config{
		Webhook: &Webhook{URL: slow.URL + "/w"},
		Slack:   &Slack{WebhookURL: fastSrv.URL + "/s"},
		Timeout: time.Minute, // far longer than the test may take
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	t0 := time.Now()
	for i := range 3 {
		n.Notify(msg(i))
	}
	waitFor(t, "slack to get 3", func() bool { return len(fast.got()) == 3 })
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	// Ending Run cancels the hanging request.
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := n.Stats().Sinks[0]; s.Sink != "webhook" || s.Sent != 0 || s.Failed != 0 || s.Queued != 2 {
		t.Errorf("webhook stats = %+v", s)
	}
}

func TestEndToEndRealServer(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n, err := New(Config{
		Webhook:  &Webhook{URL: srv.URL + "/hook"},
		Telegram: &Telegram{Token: "1:abc", ChatID: "5", BaseURL: srv.URL},
		Slack:    &Slack{WebhookURL: srv.URL + "/slack"},
		Discord:  &Discord{WebhookURL: srv.URL + "/discord"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	n.Notify(Notification{Event: "e", Title: "hello", Text: "world"})
	waitFor(t, "every sink to send", func() bool {
		for _, s := range n.Stats().Sinks {
			if s.Sent != 1 {
				return false
			}
		}
		return true
	})
	cancel()
	<-done
	var paths []string
	for _, h := range rc.got() {
		paths = append(paths, h.Path)
	}
	want := []string{"/bot1:abc/sendMessage", "/discord", "/hook", "/slack"}
	if diff := cmp.Diff(want, paths, cmpSortStrings); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	for _, s := range n.Stats().Sinks {
		if s.Sent != 1 {
			t.Errorf("%+v", s)
		}
	}
}

var cmpSortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestRunTwice(t *testing.T) {
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v", err)
	}
	n.Notify(msg(1)) // no sinks: discarded
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		opts []Option
		want string
	}{
		{"bad config", Config{Slack: &Slack{WebhookURL: "nope"}}, nil, "TRADECACHE_NOTIFY_SLACK_WEBHOOK"},
		{"rate of unknown sink", Config{}, []Option{WithRate("slack", Rate{time.Second, 1})}, `no sink named "slack"`},
		{"bad rate", Config{Slack: &Slack{WebhookURL: "http://x/"}}, []Option{WithRate("slack", Rate{time.Second, 0})}, "Burst"},
		{"duplicate sink", Config{Slack: &Slack{WebhookURL: "http://x/"}}, []Option{WithSink(Slack{WebhookURL: "http://y/"})}, "two sinks"},
		{"bad backoff", Config{}, []Option{WithBackoff(0, 0)}, "WithBackoff"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, tt.opts...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to say %q", tt.name, err, tt.want)
		}
	}
}
