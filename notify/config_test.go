package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"empty", nil, Config{}},
		{
			name: "everything",
			env: map[string]string{
				EnvWebhookURL:      "https://example.com/hook?key=abc",
				EnvWebhookHeaders:  "Authorization: Bearer xyz; X-Env: prod;",
				EnvTelegramToken:   "123456:AAH-sec_ret",
				EnvTelegramChatID:  "-100123",
				EnvTelegramBaseURL: "http://127.0.0.1:9999",
				EnvSlackWebhook:    "https://hooks.slack.com/services/T0/B0/sec",
				EnvDiscordWebhook:  "https://discord.com/api/webhooks/1/tok",
				EnvEvents:          "live.orders, live.*_alert,,notification",
				EnvErrors:          "false",
				EnvQueueSize:       "64",
				EnvMaxAttempts:     "3",
				EnvDedupeWindow:    "30s",
				EnvTimeout:         "5s",
			},
			want: Config{
				Webhook:      &Webhook{URL: "https://example.com/hook?key=abc", Headers: http.Header{"Authorization": {"Bearer xyz"}, "X-Env": {"prod"}}},
				Telegram:     &Telegram{Token: "123456:AAH-sec_ret", ChatID: "-100123", BaseURL: "http://127.0.0.1:9999"},
				Slack:        &Slack{WebhookURL: "https://hooks.slack.com/services/T0/B0/sec"},
				Discord:      &Discord{WebhookURL: "https://discord.com/api/webhooks/1/tok"},
				Events:       []string{"live.orders", "live.*_alert", "notification"},
				IgnoreErrors: true,
				QueueSize:    64,
				MaxAttempts:  3,
				DedupeWindow: 30 * time.Second,
				Timeout:      5 * time.Second,
			},
		},
		{"dedupe 0 is off", map[string]string{EnvDedupeWindow: "0"}, Config{DedupeWindow: -1}},
		{"channel chat id", map[string]string{EnvTelegramToken: "1:a", EnvTelegramChatID: "@alerts"}, Config{Telegram: &Telegram{Token: "1:a", ChatID: "@alerts"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromEnv(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// fieldEnvs lists the variables the FieldErrors in err name.
func fieldEnvs(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe.Env)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	slices.Sort(out)
	return slices.Compact(out)
}

func TestFromEnvErrors(t *testing.T) {
	// Every secret holds "SECRET": no error may.
	tests := []struct {
		name string
		env  map[string]string
		want []string // variables named by the errors
		says string   // the error also says this
	}{
		{"slack URL without scheme", map[string]string{EnvSlackWebhook: "hooks.slack.com/services/T0/B0/slackSECRET"}, []string{EnvSlackWebhook}, "scheme must be http or https"},
		{"discord URL unparsable", map[string]string{EnvDiscordWebhook: "https://dis cord.com/api/webhooks/1/discordSECRET"}, []string{EnvDiscordWebhook}, "not a valid URL"},
		{"webhook ftp", map[string]string{EnvWebhookURL: "ftp://h/webhookSECRET"}, []string{EnvWebhookURL}, "scheme"},
		{"webhook without host", map[string]string{EnvWebhookURL: "https:///webhookSECRET"}, []string{EnvWebhookURL}, "missing host"},
		{"bad header", map[string]string{EnvWebhookURL: "https://h/", EnvWebhookHeaders: "Authorization Bearer headerSECRET"}, []string{EnvWebhookHeaders}, "header 1"},
		{"headers without URL", map[string]string{EnvWebhookHeaders: "A: headerSECRET"}, []string{EnvWebhookURL}, "required"},
		{"bad token, no chat", map[string]string{EnvTelegramToken: "telegramSECRET"}, []string{EnvTelegramChatID, EnvTelegramToken}, "not a bot token"},
		{"token with bad chars", map[string]string{EnvTelegramToken: "12:telegram SECRET", EnvTelegramChatID: "1"}, []string{EnvTelegramToken}, "not a bot token"},
		{"chat without token", map[string]string{EnvTelegramChatID: "5"}, []string{EnvTelegramToken}, "not a bot token"},
		{"bad chat id", map[string]string{EnvTelegramToken: "1:telegramSECRET", EnvTelegramChatID: "my chat"}, []string{EnvTelegramChatID}, "not a chat id"},
		{"bad telegram URL", map[string]string{EnvTelegramToken: "1:telegramSECRET", EnvTelegramChatID: "5", EnvTelegramBaseURL: "api.telegram.org"}, []string{EnvTelegramBaseURL}, "scheme"},
		{"telegram URL without token", map[string]string{EnvTelegramBaseURL: "http://127.0.0.1:1"}, []string{EnvTelegramToken}, "required when"},
		{"bad pattern", map[string]string{EnvEvents: "live.orders,live.["}, []string{EnvEvents}, `"live.["`},
		{"bad bool", map[string]string{EnvErrors: "maybe"}, []string{EnvErrors}, `"maybe"`},
		{"bad queue", map[string]string{EnvQueueSize: "-3"}, []string{EnvQueueSize}, `"-3"`},
		{"bad attempts", map[string]string{EnvMaxAttempts: "x"}, []string{EnvMaxAttempts}, `"x"`},
		{"bad window", map[string]string{EnvDedupeWindow: "soon"}, []string{EnvDedupeWindow}, `"soon"`},
		{"bad timeout", map[string]string{EnvTimeout: "-1s"}, []string{EnvTimeout}, `"-1s"`},
		{"several at once", map[string]string{EnvSlackWebhook: "slackSECRET", EnvDiscordWebhook: "discordSECRET", EnvQueueSize: "0"}, []string{EnvDiscordWebhook, EnvQueueSize, EnvSlackWebhook}, "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromEnv(env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tt.want, fieldEnvs(err)); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			msg := err.Error()
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error holds a secret: %s", msg)
			}
			if !strings.Contains(msg, tt.says) {
				t.Errorf("error %q does not say %q", msg, tt.says)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("not a *FieldError: %T", err)
			}
		})
	}
}

func secretConfig(base string) Config {
	return Config{
		Webhook:  &Webhook{URL: base + "/hook?token=webhookSECRETquery", Headers: http.Header{"Authorization": {"Bearer headerSECRETvalue"}}},
		Telegram: &Telegram{Token: "987654:telegramSECRETtoken", ChatID: "-100", BaseURL: base},
		Slack:    &Slack{WebhookURL: base + "/services/T1/B1/slackSECRETpath"},
		Discord:  &Discord{WebhookURL: "https://user:pwSECRET@discord.com/api/webhooks/9/discordSECRETpath"},
		Events:   []string{"live.orders"},
	}
}

func TestRedacted(t *testing.T) {
	cfg := secretConfig("https://example.com")
	want := "notify{webhook https://example.com/*** [Authorization: ***]; telegram chat -100 token *** via https://example.com/***; " +
		"slack https://example.com/***; discord https://discord.com/***; events live.orders; errors true}"
	if got := cfg.Redacted(); got != want {
		t.Errorf("Redacted() =\n%s\nwant\n%s", got, want)
	}
	var out bytes.Buffer
	for _, v := range []any{cfg, &cfg, *cfg.Telegram, cfg.Telegram, *cfg.Slack, cfg.Discord, *cfg.Webhook} {
		fmt.Fprintf(&out, "%v %+v %#v %s\n", v, v, v, v)
	}
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		slog.New(h).Info("config", "cfg", cfg, "ptr", &cfg, "tg", cfg.Telegram, "slack", *cfg.Slack, "discord", cfg.Discord, "hook", cfg.Webhook)
	}
	if strings.Contains(out.String(), "SECRET") {
		t.Errorf("printed a secret:\n%s", out.String())
	}
}

// TestSecretsNeverLogged drives every sink into failures whose raw errors
// would carry the secrets — a transport error (net/http spells the URL)
// and servers that echo the URL and Authorization header back — and greps
// the debug log and the errors for them.
func TestSecretsNeverLogged(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/services/") {
			w.WriteHeader(500) // slack: retried, so logged at Debug too
			fmt.Fprintf(w, "no_service %s", r.URL)
			return
		}
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"ok":false,"error_code":401,"description":"Unauthorized: %s %s"}`, r.URL, r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	// A server that hangs up on every connection: the client's error is a
	// *url.Error spelling the whole URL. (A closed server's port could be
	// reused by a parallel test process.)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	go func() {
		for {
			c, err := dead.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	deadURL := "http://" + dead.Addr().String()

	cfg := secretConfig(echo.URL)
	cfg.Discord.WebhookURL = deadURL + "/api/webhooks/9/discordSECRETpath"
	cfg.MaxAttempts = 2

	// The raw errors, sink by sink.
	n0 := Notification{Title: "t", Text: "x"}
	for _, s := range []Sink{*cfg.Webhook, *cfg.Telegram, *cfg.Slack, *cfg.Discord} {
		err := s.Send(context.Background(), http.DefaultClient, n0)
		if err == nil {
			t.Fatalf("%s: no error", s.Name())
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error holds a secret: %v", s.Name(), err)
		}
	}

	var log bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := New(cfg, WithLogger(logger), WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("notify config", "cfg", cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	n.Notify(n0)
	waitFor(t, "every sink to fail", func() bool {
		for _, s := range n.Stats().Sinks {
			if s.Failed != 1 {
				return false
			}
		}
		return true
	})
	cancel()
	<-done
	out := log.String()
	if strings.Contains(out, "SECRET") {
		t.Errorf("log holds a secret:\n%s", out)
	}
	if got := strings.Count(out, "delivery failed"); got != 4 {
		t.Errorf("%d failures logged, want 4:\n%s", got, out)
	}
	if !strings.Contains(out, "Unauthorized: /bot***/sendMessage") || !strings.Contains(out, "retrying") {
		t.Errorf("log lacks the scrubbed service messages:\n%s", out)
	}
}
