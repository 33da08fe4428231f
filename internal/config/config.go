// Package config turns command-line flags, the environment and a .env file
// into one plain Config. Precedence: flag, then environment, then .env, then
// the default. Every flag has an environment variable; Jesse's REDIS_HOST,
// REDIS_PORT, REDIS_PASSWORD and REDIS_DB are honoured when REDIS_URL is
// not set. Errors name the field, the value and the source they came from.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/keyspace"
)

// Config is the effective configuration of a command.
type Config struct {
	RedisURL         string        // "" = embedded memory tier
	KeyPrefix        string        // global key prefix
	Listen           string        // HTTP address of serve
	NodeID           string        // this node's id
	Demo             bool          // serve: simulated exchange, embedded tier unless --redis
	RedisTimeout     time.Duration // deadline of every Redis call
	FailureThreshold int           // consecutive failures before the memory tier
	MemoryEntries    int           // memory tier bound
	MemoryTTL        time.Duration // memory tier entry life
	LogFormat        string        // text | json
	LogLevel         string        // debug | info | warn | error
	Exchange         string        // binance | sim
	ExchangeREST     string        // REST base URL ("" = the exchange's default)
	ExchangeWS       string        // WebSocket base URL ("" = the exchange's default)
	Symbols          []string      // upper-case symbols
	Intervals        []string      // kline intervals
	LeaseTTL         time.Duration // market stream leader lease
	Window           int           // klines kept per series in Redis
	AppPort          string        // Jesse's APP_PORT: names the event channel "<APP_PORT>:channel:1"
	WSTokens         []string      // accepted /ws tokens
	WSOrigins        []string      // Origin patterns allowed on /ws besides same-origin
	APIKey           string        // exchange API key (secret: never logged)
	APISecret        string        // exchange API secret (secret: never logged)
	Account          string        // account name in Redis keys
	EnvFile          string        // the .env file read ("" if none)

	// Args are the positional arguments left after the flags.
	Args []string
	// Sources tells where each field's value came from (flag, env, .env, default).
	Sources map[string]string
}

// FieldError is a bad value for one field.
type FieldError struct {
	Field  string // flag name
	Env    string // environment variable
	Value  string
	Source string
	Err    error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("--%s (%s) = %q from %s: %v", e.Field, e.Env, e.Value, e.Source, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

type field struct {
	name, env, def, usage string
	set                   func(string) error
}

// isBool: a field whose default is a boolean is a bool flag.
func (f field) isBool() bool { return f.def == "false" || f.def == "true" }

// strValue holds a flag's text until every source is known; bool fields
// take no argument on the command line (--demo).
type strValue struct {
	s      string
	isBool bool
}

func (v *strValue) String() string     { return v.s }
func (v *strValue) Set(s string) error { v.s = s; return nil }
func (v *strValue) IsBoolFlag() bool   { return v.isBool }

// Parse parses args (without the command name) for command name. getenv
// reads the environment; a .env file in the working directory, or the one
// --env-file / TRADECACHE_ENV_FILE names, fills what the environment lacks.
// Usage goes to usage. A bad field is returned as a *FieldError (several
// joined with errors.Join). extra registers a command's own flags.
func Parse(name string, args []string, getenv func(string) string, usage io.Writer, extra ...func(*flag.FlagSet)) (Config, error) {
	var c Config
	c.Sources = map[string]string{}
	envFile, explicit := scanEnvFile(args, getenv)
	dotenv := map[string]string{}
	if envFile != "" {
		m, err := godotenv.Read(envFile)
		switch {
		case err == nil:
			dotenv, c.EnvFile = m, envFile
		case explicit || !errors.Is(err, os.ErrNotExist):
			return c, fmt.Errorf("config: read %s: %w", envFile, err)
		}
	}
	lookup := func(env string) (string, string, bool) {
		if v := getenv(env); v != "" {
			return v, "env " + env, true
		}
		if v, ok := dotenv[env]; ok && v != "" {
			return v, ".env " + env, true
		}
		return "", "", false
	}
	host, _ := os.Hostname()
	fields := []field{
		{"redis", "REDIS_URL", "", "Redis/Valkey URL (redis://, rediss://, ?addr= for cluster, ?master_set= for Sentinel); empty runs on the embedded memory tier", func(s string) error {
			if s != "" {
				if _, err := cache.RedisOptions(s); err != nil {
					return err
				}
			}
			c.RedisURL = s
			return nil
		}},
		{"key-prefix", "TRADECACHE_KEY_PREFIX", "", "prefix of every Redis key and channel, to share one Redis", func(s string) error {
			if _, err := keyspace.New(keyspace.Config{Prefix: s}); err != nil {
				return err
			}
			c.KeyPrefix = s
			return nil
		}},
		{"listen", "TRADECACHE_LISTEN", "127.0.0.1:8080", "HTTP listen address of serve", func(s string) error {
			if _, _, err := net.SplitHostPort(s); err != nil {
				return err
			}
			c.Listen = s
			return nil
		}},
		{"node-id", "TRADECACHE_NODE_ID", fmt.Sprintf("%s-%d", host, os.Getpid()), "this node's id", func(s string) error {
			if err := keyspace.ValidPart(s); err != nil {
				return err
			}
			c.NodeID = s
			return nil
		}},
		{"demo", "TRADECACHE_DEMO", "false", "run a demo node: simulated exchange, embedded memory tier unless --redis is given", boolSetter(&c.Demo)},
		{"redis-timeout", "TRADECACHE_REDIS_TIMEOUT", "250ms", "deadline of every Redis call", durSetter(&c.RedisTimeout)},
		{"failure-threshold", "TRADECACHE_FAILURE_THRESHOLD", "3", "consecutive Redis failures before the memory tier takes over", intSetter(&c.FailureThreshold)},
		{"memory-entries", "TRADECACHE_MEMORY_ENTRIES", "200", "bound of the memory tier (entries)", intSetter(&c.MemoryEntries)},
		{"memory-ttl", "TRADECACHE_MEMORY_TTL", "5m", "longest life of a memory-tier entry", durSetter(&c.MemoryTTL)},
		{"log-format", "TRADECACHE_LOG_FORMAT", "text", "log format: text or json", oneOf(&c.LogFormat, "text", "json")},
		{"log-level", "TRADECACHE_LOG_LEVEL", "info", "log level: debug, info, warn or error", oneOf(&c.LogLevel, "debug", "info", "warn", "error")},
		{"exchange", "TRADECACHE_EXCHANGE", "binance", "exchange: binance (Binance USDⓈ-M futures, or any server speaking its API) or sim (an in-process simulated one)", oneOf(&c.Exchange, "binance", "sim")},
		{"exchange-rest", "TRADECACHE_EXCHANGE_REST", "", "REST base URL of the exchange (default https://fapi.binance.com)", urlSetter(&c.ExchangeREST, "http", "https")},
		{"exchange-ws", "TRADECACHE_EXCHANGE_WS", "", "WebSocket base URL of the exchange (default wss://fstream.binance.com)", urlSetter(&c.ExchangeWS, "ws", "wss")},
		{"symbols", "TRADECACHE_SYMBOLS", "BTCUSDT,ETHUSDT", "symbols to stream, comma-separated", func(s string) error {
			c.Symbols = nil
			for _, p := range strings.Split(s, ",") {
				p = strings.ToUpper(strings.TrimSpace(p))
				if err := keyspace.ValidPart(p); err != nil {
					return err
				}
				c.Symbols = append(c.Symbols, p)
			}
			return nil
		}},
		{"intervals", "TRADECACHE_INTERVALS", "1m,5m", "kline intervals to stream, comma-separated", func(s string) error {
			c.Intervals = nil
			for _, p := range strings.Split(s, ",") {
				p = strings.TrimSpace(p)
				if _, err := keyspace.IntervalDuration(p); err != nil {
					return err
				}
				c.Intervals = append(c.Intervals, p)
			}
			return nil
		}},
		{"lease-ttl", "TRADECACHE_LEASE_TTL", "30s", "TTL of the leaders' leases (market streams, user data stream), renewed every third of it", durSetter(&c.LeaseTTL)},
		{"window", "TRADECACHE_WINDOW", "1000", "klines kept per series in Redis", intSetter(&c.Window)},
		{"app-port", "APP_PORT", "", "names the event channel <APP_PORT>:channel:1 (Jesse's); default: the --listen port", func(s string) error {
			if s != "" {
				if err := keyspace.ValidPart(s); err != nil {
					return err
				}
			}
			c.AppPort = s
			return nil
		}},
		{"ws-token", "TRADECACHE_WS_TOKEN", "", "token(s) accepted on /ws, comma-separated; --demo generates one when empty", listSetter(&c.WSTokens, 16)},
		{"api-key", "BINANCE_API_KEY", "", "exchange API key, for the account's positions and balances", func(s string) error { c.APIKey = s; return nil }},
		{"api-secret", "BINANCE_API_SECRET", "", "exchange API secret", func(s string) error { c.APISecret = s; return nil }},
		{"account", "TRADECACHE_ACCOUNT", "main", "account name in Redis keys (listen_key:{account}, account_leader:{account})", func(s string) error {
			if err := keyspace.ValidPart(s); err != nil {
				return err
			}
			c.Account = s
			return nil
		}},
		{"ws-origins", "TRADECACHE_WS_ORIGINS", "", "Origin host patterns allowed on /ws besides same-origin, comma-separated", listSetter(&c.WSOrigins, 0)},
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.String("env-file", ".env", "file of KEY=value settings read before the environment defaults (TRADECACHE_ENV_FILE)")
	vals := make([]*strValue, len(fields))
	for i, f := range fields {
		vals[i] = &strValue{s: f.def, isBool: f.isBool()}
		fs.Var(vals[i], f.name, f.usage+" ("+f.env+")")
	}
	for _, x := range extra {
		x(fs)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	setByFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setByFlag[f.Name] = true })
	var errs []error
	for i, f := range fields {
		v, src := vals[i].s, "flag --"+f.name
		if !setByFlag[f.name] {
			if ev, esrc, ok := lookup(f.env); ok {
				v, src = ev, esrc
			} else {
				src = "default"
			}
		}
		if f.name == "redis" && src == "default" {
			// Jesse's settings, when REDIS_URL is not given.
			if h, hsrc, ok := lookup("REDIS_HOST"); ok {
				p, _, _ := lookup("REDIS_PORT")
				pw, _, _ := lookup("REDIS_PASSWORD")
				db, _, _ := lookup("REDIS_DB")
				u, err := cache.JesseURL(h, p, pw, db)
				if err != nil {
					errs = append(errs, &FieldError{"redis", "REDIS_HOST/PORT/PASSWORD/DB", h, hsrc, err})
					continue
				}
				v, src = u, strings.Replace(hsrc, "REDIS_HOST", "REDIS_HOST/PORT/PASSWORD/DB", 1)
			}
		}
		c.Sources[f.name] = src
		if err := f.set(v); err != nil {
			shown := v
			switch f.name {
			case "redis":
				shown = cache.Redact(v)
			case "ws-token", "api-key", "api-secret":
				shown = "(redacted)"
			}
			errs = append(errs, &FieldError{f.name, f.env, shown, src, err})
		}
	}
	c.Args = fs.Args()
	if (c.APIKey == "") != (c.APISecret == "") {
		errs = append(errs, &FieldError{"api-secret", "BINANCE_API_SECRET", "(redacted)", c.Sources["api-secret"], errors.New("--api-key and --api-secret go together")})
	}
	if c.AppPort == "" && c.Listen != "" {
		_, c.AppPort, _ = net.SplitHostPort(c.Listen)
	}
	return c, errors.Join(errs...)
}

// scanEnvFile finds --env-file in args or TRADECACHE_ENV_FILE, before the
// flags are parsed: the file supplies defaults for them.
func scanEnvFile(args []string, getenv func(string) string) (path string, explicit bool) {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, "env-file="); ok {
			return v, true
		}
		if a == "env-file" && i+1 < len(args) {
			return args[i+1], true
		}
	}
	if v := getenv("TRADECACHE_ENV_FILE"); v != "" {
		return v, true
	}
	return ".env", false
}

func boolSetter(p *bool) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseBool(s)
		*p = v
		return err
	}
}

func durSetter(p *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(s)
		if err == nil && v <= 0 {
			err = errors.New("must be positive")
		}
		*p = v
		return err
	}
}

func intSetter(p *int) func(string) error {
	return func(s string) error {
		v, err := strconv.Atoi(s)
		if err == nil && v < 1 {
			err = errors.New("must be at least 1")
		}
		*p = v
		return err
	}
}

func urlSetter(p *string, schemes ...string) func(string) error {
	return func(s string) error {
		*p = s
		if s == "" {
			return nil
		}
		u, err := url.Parse(s)
		if err != nil {
			return err
		}
		for _, sc := range schemes {
			if u.Scheme == sc && u.Host != "" {
				return nil
			}
		}
		return fmt.Errorf("want a %s URL with a host", strings.Join(schemes, " or "))
	}
}

// listSetter splits a comma-separated list; minLen > 0 is the shortest
// element accepted (tokens must not be guessable).
func listSetter(p *[]string, minLen int) func(string) error {
	return func(s string) error {
		*p = nil
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if len(e) < minLen {
				return fmt.Errorf("an entry is shorter than %d characters", minLen)
			}
			*p = append(*p, e)
		}
		return nil
	}
}

func oneOf(p *string, allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				*p = s
				return nil
			}
		}
		return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
	}
}

// CacheConfig is the part of the tiered cache's configuration that comes
// from Config. The caller adds the logger and hooks.
func (c Config) CacheConfig() (cache.Config, error) {
	cc := cache.Config{
		CallTimeout:      c.RedisTimeout,
		FailureThreshold: c.FailureThreshold,
		MemoryEntries:    c.MemoryEntries,
		MemoryTTL:        c.MemoryTTL,
	}
	if c.RedisURL != "" {
		opt, err := cache.RedisOptions(c.RedisURL)
		if err != nil {
			return cc, err
		}
		cc.Redis = opt
	}
	return cc, nil
}

// Keyspace returns the key registry of Config.
func (c Config) Keyspace() (*keyspace.Registry, error) {
	ttl := map[string]time.Duration{}
	if c.LeaseTTL > 0 {
		ttl[keyspace.KindMarketWSLeader] = c.LeaseTTL
		ttl[keyspace.KindAccountLeader] = c.LeaseTTL
	}
	return keyspace.New(keyspace.Config{Prefix: c.KeyPrefix, TTL: ttl})
}
