package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/notify"
)

// configCheck prints the effective configuration (flags, environment, .env
// and defaults merged) with where each value came from, secrets redacted.
// A bad field is reported with its name and source, exit status 2.
func configCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("%w: config check [flags]", errUsage)
	}
	return withConfig("config check", args[1:], getenv, stderr, nil, func(c config.Config) error {
		ncfg, err := notify.FromEnv(getenv)
		if err != nil {
			return fmt.Errorf("%w: notifications: %w", errUsage, err)
		}
		redact := func(s string) string {
			if s == "" {
				return ""
			}
			return "(redacted)"
		}
		tokens := make([]string, len(c.WSTokens))
		for i := range tokens {
			tokens[i] = "(redacted)"
		}
		out := map[string]any{
			"redis":             cache.Redact(c.RedisURL),
			"key_prefix":        c.KeyPrefix,
			"listen":            c.Listen,
			"node_id":           c.NodeID,
			"demo":              c.Demo,
			"redis_timeout":     c.RedisTimeout.String(),
			"failure_threshold": c.FailureThreshold,
			"memory_entries":    c.MemoryEntries,
			"memory_ttl":        c.MemoryTTL.String(),
			"log_format":        c.LogFormat,
			"log_level":         c.LogLevel,
			"exchange":          c.Exchange,
			"exchange_rest":     c.ExchangeREST,
			"exchange_ws":       c.ExchangeWS,
			"symbols":           strings.Join(c.Symbols, ","),
			"intervals":         strings.Join(c.Intervals, ","),
			"lease_ttl":         c.LeaseTTL.String(),
			"window":            c.Window,
			"app_port":          c.AppPort,
			"ws_tokens":         tokens,
			"ws_origins":        c.WSOrigins,
			"api_key":           redact(c.APIKey),
			"api_secret":        redact(c.APISecret),
			"account":           c.Account,
			"env_file":          c.EnvFile,
			"notifications":     ncfg.Redacted(),
			"sources":           c.Sources,
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	})
}
