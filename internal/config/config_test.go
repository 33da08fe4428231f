package config_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

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
		want func(c config.Config) []any
		vals []any
	}{
		{"defaults", []string{"--env-file", empty}, nil,
			func(c config.Config) []any { return []any{c.RedisURL, c.Listen, c.MemoryEntries, c.RedisTimeout} },
			[]any{"", "127.0.0.1:8080", 200, 250 * time.Millisecond}},
		{".env", []string{"--env-file=" + envFile}, nil,
			func(c config.Config) []any { return []any{c.RedisURL, c.Listen, c.MemoryEntries} },
			[]any{"redis://dotenv:6379", "127.0.0.1:7000", 50}},
		{"env beats .env", []string{"--env-file", envFile}, map[string]string{"REDIS_URL": "redis://env:1"},
			func(c config.Config) []any { return []any{c.RedisURL, c.Sources["redis"]} },
			[]any{"redis://env:1", "env REDIS_URL"}},
		{"flag beats env", []string{"--env-file", envFile, "--redis", "redis://flag:2", "get", "x"}, map[string]string{"REDIS_URL": "redis://env:1"},
			func(c config.Config) []any { return []any{c.RedisURL, c.Sources["redis"], c.Args} },
			[]any{"redis://flag:2", "flag --redis", []string{"get", "x"}}},
		{"jesse vars", []string{"--env-file", empty}, map[string]string{"REDIS_HOST": "r.local", "REDIS_PORT": "6380", "REDIS_PASSWORD": "pw", "REDIS_DB": "2"},
			func(c config.Config) []any { return []any{c.RedisURL} },
			[]any{"redis://:pw@r.local:6380/2"}},
		{"REDIS_URL beats jesse vars", []string{"--env-file", empty}, map[string]string{"REDIS_URL": "redis://u:1", "REDIS_HOST": "r.local"},
			func(c config.Config) []any { return []any{c.RedisURL} },
			[]any{"redis://u:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("serve", tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.vals, tt.want(c)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	_, err := config.Parse("serve", []string{"--env-file", "/nonexistent/x.env"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/x.env") {
		t.Fatalf("missing explicit env file: %v", err)
	}
	_, err = config.Parse("serve", []string{
		"--env-file", "/dev/null",
		"--redis", "http://user:hunter2@h", "--listen", "nohost", "--memory-entries", "0",
		"--redis-timeout", "-1s", "--log-format", "xml", "--key-prefix", "a b",
	}, env(nil), io.Discard)
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err %v is not a FieldError", err)
	}
	msg := err.Error()
	for _, field := range []string{"--redis", "--listen", "--memory-entries", "--redis-timeout", "--log-format", "--key-prefix"} {
		if !strings.Contains(msg, field+" ") {
			t.Errorf("error does not name %s:\n%s", field, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error shows the Redis password:\n%s", msg)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	_, err := config.Parse("serve", []string{"--env-file", "/dev/null", "--api-key", "KEY-hunter2-KEY", "--ws-token", "tokzz9"},
		env(map[string]string{"REDIS_URL": "redis://:pw-hunter2@h:1/x"}), io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"--api-secret", "--ws-token", "--redis"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "tokzz9") {
		t.Errorf("error shows a secret: %v", err)
	}
}
