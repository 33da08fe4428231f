package config_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/node"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func parseServe(args []string, e map[string]string) (config.Serve, *config.Result, error) {
	var s config.Serve
	r, err := config.ServeCommand("serve", &s).Parse(args, env(e), io.Discard)
	return s, r, err
}

func source(r *config.Result, flag string) string {
	s, _ := r.Setting(flag)
	return s.Source
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "app.env")
	empty := filepath.Join(dir, "empty.env")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(envFile, []byte("REDIS_URL=redis://dotenv:6379\nTRADECACHE_LISTEN=127.0.0.1:7000\nTRADECACHE_MEMORY_ENTRIES=50\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		got  func(s config.Serve, r *config.Result) []any
		want []any
	}{
		{"defaults", []string{"--env-file", empty}, nil,
			func(s config.Serve, r *config.Result) []any {
				return []any{s.Node.Redis.URL, s.Node.HTTP.Listen, s.Node.Redis.MemoryEntries, s.Node.Redis.Timeout, s.Node.Events.AppPort}
			},
			[]any{"", "127.0.0.1:8080", 200, 250 * time.Millisecond, "9000"}},
		{".env", []string{"--env-file=" + envFile}, nil,
			func(s config.Serve, r *config.Result) []any {
				return []any{s.Node.Redis.URL, s.Node.HTTP.Listen, s.Node.Redis.MemoryEntries}
			},
			[]any{"redis://dotenv:6379", "127.0.0.1:7000", 50}},
		{"env file from the environment", nil, map[string]string{config.EnvFileEnv: envFile},
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Redis.URL, r.EnvFile} },
			[]any{"redis://dotenv:6379", envFile}},
		{"env beats .env", []string{"--env-file", envFile}, map[string]string{"REDIS_URL": "redis://env:1"},
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Redis.URL, source(r, "redis")} },
			[]any{"redis://env:1", "env REDIS_URL"}},
		{"flag beats env", []string{"--env-file", envFile, "--redis", "redis://flag:2"}, map[string]string{"REDIS_URL": "redis://env:1"},
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Redis.URL, source(r, "redis")} },
			[]any{"redis://flag:2", "flag --redis"}},
		{"jesse vars", []string{"--env-file", empty}, map[string]string{"REDIS_HOST": "r.local", "REDIS_PORT": "6380", "REDIS_PASSWORD": "pw", "REDIS_DB": "2"},
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Redis.URL, source(r, "redis")} },
			[]any{"redis://:pw@r.local:6380/2", "env REDIS_HOST/PORT/PASSWORD/DB"}},
		{"REDIS_URL beats jesse vars", []string{"--env-file", empty}, map[string]string{"REDIS_URL": "redis://u:1", "REDIS_HOST": "r.local"},
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Redis.URL} },
			[]any{"redis://u:1"}},
		{"max value default", []string{"--env-file", empty}, nil,
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Keys.MaxValue} },
			[]any{1 << 20}},
		{"max value from env", []string{"--env-file", empty}, map[string]string{"TRADECACHE_MAX_VALUE_BYTES": "256KiB"},
			func(s config.Serve, r *config.Result) []any {
				return []any{s.Node.Keys.MaxValue, source(r, "max-value-bytes")}
			},
			[]any{256 << 10, "env TRADECACHE_MAX_VALUE_BYTES"}},
		{"max value in bytes", []string{"--env-file", empty, "--max-value-bytes", "65536"}, nil,
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Keys.MaxValue} },
			[]any{65536}},
		{"APP_PORT is not the listen port", []string{"--env-file", empty, "--listen", "127.0.0.1:8083"}, nil,
			func(s config.Serve, r *config.Result) []any { return []any{s.Node.Events.AppPort} },
			[]any{node.DefaultAppPort}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r, err := parseServe(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.got(s, r)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	_, _, err := parseServe([]string{"--env-file", "/nonexistent/x.env"}, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/x.env") {
		t.Fatalf("missing explicit env file: %v", err)
	}
	_, _, err = parseServe([]string{
		"--env-file", "/dev/null",
		"--redis", "http://user:hunter2@h", "--listen", "nohost", "--memory-entries", "0",
		"--redis-timeout", "-1s", "--log-format", "xml", "--key-prefix", "a b", "--max-value-bytes", "1KiB",
	}, nil)
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err %v is not a FieldError", err)
	}
	msg := err.Error()
	for _, field := range []string{"--redis", "--listen", "--memory-entries", "--redis-timeout", "--log-format", "--key-prefix", "--max-value-bytes"} {
		if !strings.Contains(msg, field+" ") {
			t.Errorf("error does not name %s:\n%s", field, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error shows the Redis password:\n%s", msg)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	_, _, err := parseServe([]string{"--env-file", "/dev/null", "--api-key", "KEY-hunter2-KEY", "--ws-token", "tokzz9"},
		map[string]string{"REDIS_URL": "redis://:pw-hunter2@h:1/x", "TRADECACHE_NOTIFY_SLACK_WEBHOOK": "ftp://hooks/hunter2"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"--api-secret", "--ws-token", "--redis", "TRADECACHE_NOTIFY_SLACK_WEBHOOK"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "tokzz9") {
		t.Errorf("error shows a secret: %v", err)
	}
}

// A command takes only its own groups: a setting it does not use cannot
// break it, and a flag it does not take is an error naming the flag.
func TestCommandTakesOnlyItsGroups(t *testing.T) {
	var k node.Keys
	cmd := config.Command{Name: "keys kinds", Groups: []config.Group{config.Keys(&k), config.Election(&k)}}
	bad := map[string]string{"TRADECACHE_WS_TOKEN": "short", "TRADECACHE_LISTEN": "8080", "REDIS_URL": "http://nope", config.EnvFileEnv: "/dev/null"}
	if _, err := cmd.Parse(nil, env(bad), io.Discard); err != nil {
		t.Fatalf("settings keys kinds does not use broke it: %v", err)
	}
	_, err := cmd.Parse([]string{"--redis", "redis://x:1"}, env(bad), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-redis") {
		t.Fatalf("a flag of another command: %v", err)
	}
}

func TestFlagsAnywhere(t *testing.T) {
	var r node.Redis
	var yes bool
	cmd := config.Command{Name: "cache set", MaxArgs: -1, Groups: []config.Group{config.Redis(&r)},
		Flags: func(fs *flag.FlagSet) { fs.BoolVar(&yes, "yes", false, "") }}
	res, err := cmd.Parse([]string{"ticker_24h", "BTCUSDT", `{"a":1}`, "--redis", "redis://h:1", "--yes", "--", "-5"},
		env(map[string]string{config.EnvFileEnv: "/dev/null"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ticker_24h", "BTCUSDT", `{"a":1}`, "-5"}, res.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if r.URL != "redis://h:1" || !yes {
		t.Errorf("flags after arguments ignored: redis %q, yes %v", r.URL, yes)
	}
	cmd.MaxArgs = 1
	if _, err := cmd.Parse([]string{"a", "b"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("an argument too many: %v", err)
	}
}

func TestNotificationsFromDotEnv(t *testing.T) {
	f := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(f, []byte("TRADECACHE_NOTIFY_SLACK_WEBHOOK=https://hooks.slack.test/T/B/secret\nTRADECACHE_NOTIFY_EVENTS=live.*_alert\n"), 0o600)
	s, r, err := parseServe([]string{"--env-file", f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Node.Notify.Slack == nil || s.Node.Notify.Slack.WebhookURL != "https://hooks.slack.test/T/B/secret" {
		t.Fatalf("slack sink from .env not configured: %+v", s.Node.Notify)
	}
	if diff := cmp.Diff([]string{"live.*_alert"}, s.Node.Notify.Events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	st, _ := r.Setting("notify-slack-webhook")
	if st.Source != ".env TRADECACHE_NOTIFY_SLACK_WEBHOOK" || strings.Contains(st.Value, "secret") {
		t.Errorf("setting = %+v", st)
	}
}

func TestContradictionsNameBothSettings(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want []string // "" args: no error
	}{
		{[]string{"--exchange", "sim", "--exchange-rest", "http://x"}, nil, []string{"--exchange sim", "--exchange-rest http://x"}},
		{[]string{"--demo"}, map[string]string{"TRADECACHE_EXCHANGE_WS": "ws://x"}, []string{"--demo", "--exchange-ws ws://x (from env TRADECACHE_EXCHANGE_WS)"}},
		{[]string{"--demo", "--exchange", "binance"}, nil, []string{"--demo", "--exchange binance"}},
		{[]string{"--api-key", "k"}, nil, []string{"--api-key", "--api-secret"}},
		{[]string{"--demo", "--exchange", "sim"}, nil, nil},
		{[]string{"--exchange-rest", "http://x", "--exchange-ws", "ws://x"}, nil, nil},
		// Protected mode: beyond loopback, a token or --trust-network.
		{[]string{"--listen", "0.0.0.0:8080"}, nil, []string{"--listen 0.0.0.0:8080 (from flag --listen)", "--api-token", "--trust-network", "TRADECACHE_TRUST_NETWORK"}},
		{nil, map[string]string{"TRADECACHE_LISTEN": "[::]:8080"}, []string{"--listen [::]:8080 (from env TRADECACHE_LISTEN)", "--api-token", "--trust-network"}},
		{[]string{"--listen", ":8080"}, nil, []string{"--listen :8080", "--api-token"}},
		{[]string{"--listen", "node1.lan:8080"}, nil, []string{"--listen node1.lan:8080", "--api-token"}},
		{[]string{"--listen", "0.0.0.0:8080", "--trust-network"}, nil, nil},
		{[]string{"--listen", "0.0.0.0:8080"}, map[string]string{"TRADECACHE_TRUST_NETWORK": "true"}, nil},
		{[]string{"--listen", "0.0.0.0:8080", "--api-token", "api-token-0123456789"}, nil, nil},
		{[]string{"--listen", "localhost:8080"}, nil, nil},
		{[]string{"--listen", "[::1]:8080"}, nil, nil},
		{[]string{"--api-auth", "all"}, nil, []string{"--api-auth all (from flag --api-auth)", "--api-token"}},
		{[]string{"--api-auth", "all", "--api-token", "api-token-0123456789"}, nil, nil},
		{[]string{"--tls-cert", "/dev/null"}, nil, []string{"--tls-cert", "--tls-key"}},
		{[]string{"--tls-key", "/dev/null"}, nil, []string{"--tls-cert", "--tls-key"}},
		{[]string{"--tls-cert", "/dev/null", "--tls-key", "/dev/null"}, nil, []string{"--tls-cert /dev/null and --tls-key /dev/null"}},
	}
	for _, tt := range tests {
		_, _, err := parseServe(append([]string{"--env-file", "/dev/null"}, tt.args...), tt.env)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%v: %v", tt.args, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v: no error", tt.args)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %q", tt.args, err, w)
			}
		}
	}
}

func TestHTTPSettings(t *testing.T) {
	s, _, err := parseServe([]string{"--env-file", "/dev/null", "--listen", "0.0.0.0:8443", "--api-token", "api-token-0123456789, second-token-0123456789",
		"--api-auth", "all", "--allowed-hosts", "node1.lan, *.example.com,node2.lan:8443"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Node.HTTP
	got := []any{h.Listen, h.APITokens, h.APIAuth, h.TrustNetwork, h.AllowedHosts}
	want := []any{"0.0.0.0:8443", []string{"api-token-0123456789", "second-token-0123456789"}, "all", false, []string{"node1.lan", "*.example.com", "node2.lan:8443"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	d, _, err := parseServe([]string{"--env-file", "/dev/null"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := d.Node.HTTP; h.APIAuth != node.APIAuthAccount || h.TrustNetwork || h.APITokens != nil || h.AllowedHosts != nil || h.TLSCert != "" {
		t.Errorf("defaults: %+v", h)
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--api-token", "short"}, "--api-token"},
		{[]string{"--api-auth", "some"}, "--api-auth"},
		{[]string{"--trust-network=maybe"}, "--trust-network"},
		{[]string{"--allowed-hosts", "http://node1.lan"}, "--allowed-hosts"},
		{[]string{"--allowed-hosts", "node1.lan/x"}, "--allowed-hosts"},
		{[]string{"--allowed-hosts", "*x.lan"}, "--allowed-hosts"},
		{[]string{"--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/dev/null"}, "--tls-cert"},
	} {
		_, _, err := parseServe(append([]string{"--env-file", "/dev/null"}, tc.args...), nil)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != strings.TrimPrefix(tc.flag, "--") {
			t.Errorf("%v: err %v, want a FieldError of %s", tc.args, err, tc.flag)
		}
		if err != nil && strings.Contains(err.Error(), "short\"") {
			t.Errorf("%v: error shows the token: %v", tc.args, err)
		}
	}
}

func TestUsageListsOnlyOwnFlags(t *testing.T) {
	var k node.Keys
	var b strings.Builder
	cmd := config.Command{Name: "keys kinds", Groups: []config.Group{config.Keys(&k)},
		Flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON") }}
	if _, err := cmd.Parse([]string{"-h"}, env(nil), &b); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	out := b.String()
	for _, want := range []string{"usage: tradecache keys kinds", "--json", "--key-prefix", "TRADECACHE_KEY_PREFIX", "--env-file"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %s:\n%s", want, out)
		}
	}
	for _, not := range []string{"--redis", "--listen", "--ws-token"} {
		if strings.Contains(out, not+" ") || strings.Contains(out, not+"\n") {
			t.Errorf("usage lists %s:\n%s", not, out)
		}
	}
}
