package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"
)

func TestSinkRequests(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	n := Notification{Event: "live.error_log", Title: "live.error_log from node-1", Text: "boom <&>", Data: []byte(`{"message":"boom <&>"}`), Time: at}
	long := Notification{Title: "T", Text: strings.Repeat("é", 50000)}

	tests := []struct {
		name     string
		sink     Sink
		n        Notification
		wantPath string
		wantBody map[string]any
		header   string // a header the request must carry, "Name: value"
	}{
		{
			name:     "webhook",
			sink:     Webhook{URL: srv.URL + "/hook?k=1", Headers: http.Header{"Authorization": {"Bearer s3cret"}}},
			n:        n,
			wantPath: "/hook",
			wantBody: map[string]any{"event": "live.error_log", "title": "live.error_log from node-1", "text": "boom <&>", "data": map[string]any{"message": "boom <&>"}, "time": "2025-01-02T03:04:05Z"},
			header:   "Authorization: Bearer s3cret",
		},
		{
			name:     "telegram",
			sink:     Telegram{Token: "123:ABC", ChatID: "-1001", BaseURL: srv.URL + "/tg/"},
			n:        n,
			wantPath: "/tg/bot123:ABC/sendMessage",
			wantBody: map[string]any{"chat_id": "-1001", "text": "live.error_log from node-1\nboom <&>", "link_preview_options": map[string]any{"is_disabled": true}},
		},
		{
			name:     "slack",
			sink:     Slack{WebhookURL: srv.URL + "/services/T0/B0/XYZ"},
			n:        n,
			wantPath: "/services/T0/B0/XYZ",
			wantBody: map[string]any{"text": "*live.error_log from node-1*\nboom &lt;&amp;&gt;"},
		},
		{
			name:     "discord",
			sink:     Discord{WebhookURL: srv.URL + "/api/webhooks/1/tok"},
			n:        n,
			wantPath: "/api/webhooks/1/tok",
			wantBody: map[string]any{"content": "**live.error_log from node-1**\nboom <&>", "allowed_mentions": map[string]any{"parse": []any{}}},
		},
		{
			name:     "telegram truncated",
			sink:     Telegram{Token: "123:ABC", ChatID: "@chan", BaseURL: srv.URL},
			n:        long,
			wantPath: "/bot123:ABC/sendMessage",
			wantBody: map[string]any{"chat_id": "@chan", "text": "T\n" + strings.Repeat("é", TelegramMaxText-3) + "…", "link_preview_options": map[string]any{"is_disabled": true}},
		},
		{
			name:     "slack truncated",
			sink:     Slack{WebhookURL: srv.URL + "/s"},
			n:        long,
			wantPath: "/s",
			wantBody: map[string]any{"text": "*T*\n" + strings.Repeat("é", SlackMaxText-5) + "…"},
		},
		{
			name:     "discord truncated",
			sink:     Discord{WebhookURL: srv.URL + "/d"},
			n:        long,
			wantPath: "/d",
			wantBody: map[string]any{"content": "**T**\n" + strings.Repeat("é", DiscordMaxText-7) + "…", "allowed_mentions": map[string]any{"parse": []any{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rc.got())
			if err := tt.sink.Send(context.Background(), srv.Client(), tt.n); err != nil {
				t.Fatal(err)
			}
			got := rc.got()[before:]
			if len(got) != 1 {
				t.Fatalf("got %d requests, want 1", len(got))
			}
			h := got[0]
			if h.Path != tt.wantPath {
				t.Errorf("path = %q, want %q", h.Path, tt.wantPath)
			}
			if diff := cmp.Diff(tt.wantBody, h.Body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			if ct := h.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.header != "" {
				k, v, _ := strings.Cut(tt.header, ": ")
				if h.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, h.Header.Get(k), v)
				}
			}
			for _, k := range []string{"text", "content"} {
				if s, ok := h.Body[k].(string); ok {
					if n := len(utf16.Encode([]rune(s))); n > SlackMaxText {
						t.Errorf("%s: %d units", k, n)
					}
				}
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"hello", 5, "hello"},
		{"hello!", 5, "hell…"},
		{"ééé", 3, "ééé"},
		{"éééé", 3, "éé…"},
		{"a😀b", 4, "a😀b"},  // 😀 is two UTF-16 units
		{"a😀bc", 4, "a😀…"}, // 5 units
		{"😀😀😀", 4, "😀…"},   // never half a surrogate pair
		{"ab\xffcd", 10, "ab\uFFFDcd"},
	}
	for _, tt := range tests {
		got := truncate(tt.in, tt.limit)
		if got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
		if n := len(utf16.Encode([]rune(got))); n > tt.limit {
			t.Errorf("truncate(%q, %d): %d units", tt.in, tt.limit, n)
		}
	}
}

func TestSendErrors(t *testing.T) {
	type reply struct {
		code   int
		header http.Header
		body   string
	}
	tests := []struct {
		name  string
		sink  func(base string) Sink
		reply reply
		want  *SendError
	}{
		{
			name:  "telegram 429 retry_after",
			sink:  func(b string) Sink { return Telegram{Token: "1:x", ChatID: "1", BaseURL: b} },
			reply: reply{429, nil, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}`},
			want:  &SendError{Sink: "telegram", Status: 429, Temporary: true, RetryAfter: 7 * time.Second, Msg: "Too Many Requests: retry after 7"},
		},
		{
			name:  "telegram 400 is permanent",
			sink:  func(b string) Sink { return Telegram{Token: "1:x", ChatID: "1", BaseURL: b} },
			reply: reply{400, nil, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`},
			want:  &SendError{Sink: "telegram", Status: 400, Msg: "Bad Request: chat not found"},
		},
		{
			name:  "telegram ok false on 200",
			sink:  func(b string) Sink { return Telegram{Token: "1:x", ChatID: "1", BaseURL: b} },
			reply: reply{200, nil, `{"ok":false,"error_code":502,"description":"Bad Gateway"}`},
			want:  &SendError{Sink: "telegram", Status: 502, Temporary: true, Msg: "Bad Gateway"},
		},
		{
			name:  "discord 429 body and header: the longer",
			sink:  func(b string) Sink { return Discord{WebhookURL: b + "/d"} },
			reply: reply{429, http.Header{"Retry-After": {"3"}}, `{"message":"You are being rate limited.","retry_after":2.5,"global":false}`},
			want:  &SendError{Sink: "discord", Status: 429, Temporary: true, RetryAfter: 3 * time.Second, Msg: "You are being rate limited."},
		},
		{
			name:  "discord 429 body only",
			sink:  func(b string) Sink { return Discord{WebhookURL: b + "/d"} },
			reply: reply{429, nil, `{"message":"You are being rate limited.","retry_after":1.5}`},
			want:  &SendError{Sink: "discord", Status: 429, Temporary: true, RetryAfter: 1500 * time.Millisecond, Msg: "You are being rate limited."},
		},
		{
			name:  "slack 500",
			sink:  func(b string) Sink { return Slack{WebhookURL: b + "/s"} },
			reply: reply{500, nil, "internal_error"},
			want:  &SendError{Sink: "slack", Status: 500, Temporary: true, Msg: "internal_error"},
		},
		{
			name:  "slack 404 is permanent",
			sink:  func(b string) Sink { return Slack{WebhookURL: b + "/s"} },
			reply: reply{404, nil, "no_service"},
			want:  &SendError{Sink: "slack", Status: 404, Msg: "no_service"},
		},
		{
			name:  "webhook 503 Retry-After",
			sink:  func(b string) Sink { return Webhook{URL: b + "/w"} },
			reply: reply{503, http.Header{"Retry-After": {"4"}}, ""},
			want:  &SendError{Sink: "webhook", Status: 503, Temporary: true, RetryAfter: 4 * time.Second, Msg: "Service Unavailable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.reply.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.reply.code)
				_, _ = w.Write([]byte(tt.reply.body))
			}))
			defer srv.Close()
			err := tt.sink(srv.URL).Send(context.Background(), srv.Client(), Notification{Text: "x"})
			se, _ := err.(*SendError)
			if diff := cmp.Diff(tt.want, se); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0.25":                          250 * time.Millisecond,
		"-1":                            0,
		"soon":                          0,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
		"Tue, 31 Dec 2024 00:00:30 GMT": 0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
