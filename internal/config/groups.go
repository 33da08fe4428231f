package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/node"
	"github.com/tradecache/tradecache/notify"
	"github.com/tradecache/tradecache/ratelimit"
)

// Redis is the group of the Redis/Valkey connection: --redis and
// --redis-timeout. Jesse's REDIS_HOST, REDIS_PORT, REDIS_PASSWORD and
// REDIS_DB make the URL when REDIS_URL is not set.
func Redis(r *node.Redis) Group {
	return Group{Name: "redis", Fields: []Field{
		{Flag: "redis", Env: "REDIS_URL", Usage: "Redis/Valkey URL (redis://, rediss://, ?addr= for cluster, ?master_set= for Sentinel); empty: the embedded memory tier",
			Redact: cache.Redact,
			Set: func(s string) error {
				if s != "" {
					if _, err := cache.RedisOptions(s); err != nil {
						return err
					}
				}
				r.URL = s
				return nil
			},
			Fallback: func(lookup func(string) (string, string, bool)) (string, string, bool, error) {
				h, hsrc, ok := lookup("REDIS_HOST")
				if !ok {
					return "", "", false, nil
				}
				p, _, _ := lookup("REDIS_PORT")
				pw, _, _ := lookup("REDIS_PASSWORD")
				db, _, _ := lookup("REDIS_DB")
				src := strings.Replace(hsrc, "REDIS_HOST", "REDIS_HOST/PORT/PASSWORD/DB", 1)
				u, err := cache.JesseURL(h, p, pw, db)
				return u, src, err == nil, err
			}},
		{Flag: "redis-timeout", Env: "TRADECACHE_REDIS_TIMEOUT", Default: "250ms", Usage: "deadline of every Redis call", Set: durSetter(&r.Timeout)},
	}}
}

// Memory is the group of the memory tier that serves while Redis is down.
func Memory(r *node.Redis) Group {
	return Group{Name: "memory tier", Fields: []Field{
		{Flag: "failure-threshold", Env: "TRADECACHE_FAILURE_THRESHOLD", Default: "3", Usage: "consecutive Redis failures before the memory tier takes over", Set: intSetter(&r.FailureThreshold)},
		{Flag: "memory-entries", Env: "TRADECACHE_MEMORY_ENTRIES", Default: "200", Usage: "bound of the memory tier (entries)", Set: intSetter(&r.MemoryEntries)},
		{Flag: "memory-ttl", Env: "TRADECACHE_MEMORY_TTL", Default: "5m", Usage: "longest life of a memory-tier entry", Set: durSetter(&r.MemoryTTL)},
	}}
}

// Keys is the group of the key registry: --key-prefix, --max-value-bytes.
func Keys(k *node.Keys) Group {
	return Group{Name: "keys", Fields: []Field{
		{Flag: "key-prefix", Env: "TRADECACHE_KEY_PREFIX", Usage: "prefix of every Redis key and channel, to share one Redis",
			Set: func(s string) error {
				if _, err := keyspace.New(keyspace.Config{Prefix: s}); err != nil {
					return err
				}
				k.Prefix = s
				return nil
			}},
		{Flag: "key-naming", Env: "TRADECACHE_KEY_NAMING", Default: node.NamingStandard,
			Usage: "standard: the trading system's key names (a single Redis, Sentinel); cluster: keys with Redis Cluster hash tags, needed on a cluster (tradecache keys kinds shows both); every process sharing a Redis must use the same",
			Set: func(s string) error {
				if s != node.NamingStandard && s != node.NamingCluster {
					return fmt.Errorf("want %s or %s", node.NamingStandard, node.NamingCluster)
				}
				k.Naming = s
				return nil
			}},
		{Flag: "max-value-bytes", Env: "TRADECACHE_MAX_VALUE_BYTES", Default: keyspace.FormatSize(keyspace.DefaultMaxValue),
			Usage: "largest value read from Redis, over each kind's own limit (tradecache keys kinds shows them): bytes, or with KiB or MiB; larger values are refused or skipped without being fetched",
			Set: func(s string) error {
				n, err := keyspace.ParseSize(s)
				if err != nil {
					return err
				}
				if _, err := keyspace.New(keyspace.Config{MaxValue: n}); err != nil {
					return err
				}
				k.MaxValue = n
				return nil
			}},
	}}
}

// Election is the group of the leaders' leases: --lease-ttl.
func Election(k *node.Keys) Group {
	return Group{Name: "election", Fields: []Field{
		{Flag: "lease-ttl", Env: "TRADECACHE_LEASE_TTL", Default: "30s", Usage: "TTL of the leaders' leases (market streams, user data stream), renewed every third of it", Set: durSetter(&k.LeaseTTL)},
	}}
}

// Node is the group of the node's identity and mode: --node-id, --demo.
func Node(c *node.Config) Group {
	host, _ := os.Hostname()
	return Group{Name: "node", Fields: []Field{
		{Flag: "node-id", Env: "TRADECACHE_NODE_ID", Default: fmt.Sprintf("%s-%d", host, os.Getpid()), Usage: "this node's id",
			Set: func(s string) error {
				if err := keyspace.ValidPart(s); err != nil {
					return err
				}
				c.NodeID = s
				return nil
			}},
		{Flag: "demo", Env: "TRADECACHE_DEMO", Default: "false", Usage: "a demo node: simulated exchange and account, generated /ws token; embedded memory tier unless --redis", Set: boolSetter(&c.Demo)},
	}}
}

// Exchange is the group of the exchange the node streams from.
func Exchange(e *node.Exchange) Group {
	return Group{Name: "exchange", Fields: []Field{
		{Flag: "exchange", Env: "TRADECACHE_EXCHANGE", Default: node.ExchangeBinance, Usage: "binance (Binance USDⓈ-M futures, or any server speaking its API at --exchange-rest/--exchange-ws) or sim (an in-process simulated exchange)",
			Set: oneOf(&e.Kind, node.ExchangeBinance, node.ExchangeSim)},
		{Flag: "exchange-rest", Env: "TRADECACHE_EXCHANGE_REST", Usage: "REST base URL of a Binance-compatible exchange (empty: https://fapi.binance.com)", Set: urlSetter(&e.REST, "http", "https")},
		{Flag: "exchange-ws", Env: "TRADECACHE_EXCHANGE_WS", Usage: "stream base URL of a Binance-compatible exchange (empty: wss://fstream.binance.com)", Set: urlSetter(&e.WS, "ws", "wss")},
		{Flag: "rest-weight-limit", Env: "TRADECACHE_REST_WEIGHT_LIMIT", Default: strconv.Itoa(ratelimit.DefaultLimit), Usage: "REST request weight per minute every node sharing --rest-egress may spend together (Binance allows 2400 per IP)", Set: intSetter(&e.RESTWeightLimit)},
		{Flag: "rest-user-share", Env: "TRADECACHE_REST_USER_SHARE", Default: strconv.FormatFloat(ratelimit.DefaultUserShare, 'g', -1, 64), Usage: "part of --rest-weight-limit that read-throughs users trigger may use, in (0, 1]; backfill and account seeds may use all of it",
			Set: func(s string) error {
				v, err := strconv.ParseFloat(s, 64)
				if err == nil && (v <= 0 || v > 1) {
					err = errors.New("want a fraction in (0, 1]")
				}
				e.RESTUserShare = v
				return err
			}},
		{Flag: "rest-egress", Env: "TRADECACHE_REST_EGRESS", Usage: "identity the exchange counts REST weight by (the IP requests leave from): nodes with the same one share a budget (empty: the REST URL's host)",
			Set: func(s string) error {
				if s != "" {
					if err := keyspace.ValidPart(s); err != nil {
						return err
					}
				}
				e.RESTEgress = s
				return nil
			}},
	}}
}

// Market is the group of what a node streams.
func Market(m *node.Market) Group {
	return Group{Name: "market", Fields: []Field{
		{Flag: "symbols", Env: "TRADECACHE_SYMBOLS", Default: "BTCUSDT,ETHUSDT", Usage: "symbols to stream, comma-separated",
			Set: func(s string) error {
				m.Symbols = nil
				for _, p := range strings.Split(s, ",") {
					p = strings.ToUpper(strings.TrimSpace(p))
					if err := keyspace.ValidPart(p); err != nil {
						return err
					}
					m.Symbols = append(m.Symbols, p)
				}
				return nil
			}},
		{Flag: "intervals", Env: "TRADECACHE_INTERVALS", Default: "1m,5m", Usage: "kline intervals to stream, comma-separated",
			Set: func(s string) error {
				m.Intervals = nil
				for _, p := range strings.Split(s, ",") {
					p = strings.TrimSpace(p)
					if _, err := keyspace.IntervalDuration(p); err != nil {
						return err
					}
					m.Intervals = append(m.Intervals, p)
				}
				return nil
			}},
		{Flag: "window", Env: "TRADECACHE_WINDOW", Default: "1000", Usage: "klines kept per series in Redis", Set: intSetter(&m.Window)},
		{Flag: "stream-group-size", Env: "TRADECACHE_STREAM_GROUP_SIZE", Default: "200", Usage: "most streams in one stream group (1 to 1024); more streams are cut into groups the nodes share, each with its own lease", Set: intSetter(&m.GroupSize)},
	}}
}

// Account is the group of the exchange account whose positions and
// balances a node keeps.
func Account(a *node.Account) Group {
	return Group{Name: "account", Fields: []Field{
		{Flag: "api-key", Env: "BINANCE_API_KEY", Secret: true, Usage: "exchange API key, for the account's positions and balances", Set: strSetter(&a.APIKey)},
		{Flag: "api-secret", Env: "BINANCE_API_SECRET", Secret: true, Usage: "exchange API secret", Set: strSetter(&a.APISecret)},
		{Flag: "account", Env: "TRADECACHE_ACCOUNT", Default: "main", Usage: "account name in Redis keys (listen_key:{account}, account_leader:{account})",
			Set: func(s string) error {
				if err := keyspace.ValidPart(s); err != nil {
					return err
				}
				a.Name = s
				return nil
			}},
	}, Finish: func() error {
		if (a.APIKey == "") != (a.APISecret == "") {
			return errors.New("--api-key (BINANCE_API_KEY) and --api-secret (BINANCE_API_SECRET) go together: set both or neither")
		}
		return nil
	}}
}

// HTTP is the group of a node's HTTP side and /ws.
func HTTP(h *node.HTTP) Group {
	return Group{Name: "http", Fields: []Field{
		{Flag: "listen", Env: "TRADECACHE_LISTEN", Default: node.DefaultListen, Usage: "HTTP listen address; beyond loopback (0.0.0.0, ::, a LAN address, a name) it needs --api-token or --trust-network",
			Set: func(s string) error {
				if _, _, err := net.SplitHostPort(s); err != nil {
					return err
				}
				h.Listen = s
				return nil
			}},
		{Flag: "api-token", Env: "TRADECACHE_API_TOKEN", Secret: true, Usage: "token(s) required as Authorization: Bearer on the account routes and the keys audit (see --api-auth), comma-separated, at least 16 characters each",
			Set: listSetter(&h.APITokens, 16)},
		{Flag: "api-auth", Env: "TRADECACHE_API_AUTH", Default: node.APIAuthAccount, Usage: "routes that need --api-token: account (the account routes and the keys audit) or all (every route but /healthz, the dashboard's files and /ws)",
			Set: oneOf(&h.APIAuth, node.APIAuthAccount, node.APIAuthAll)},
		{Flag: "trust-network", Env: "TRADECACHE_TRUST_NETWORK", Default: "false", Usage: "let a node listen beyond loopback without --api-token: every host that can reach it may use it (its account routes stay closed)",
			Set: boolSetter(&h.TrustNetwork)},
		{Flag: "allowed-hosts", Env: "TRADECACHE_ALLOWED_HOSTS", Usage: "Host header names served besides IP addresses, localhost and the --listen host, comma-separated: name, name:port, *.domain, or * for any",
			Set: hostsSetter(&h.AllowedHosts)},
		{Flag: "tls-cert", Env: "TRADECACHE_TLS_CERT", Usage: "PEM certificate (chain) file: serve HTTPS, with --tls-key", Set: fileSetter(&h.TLSCert)},
		{Flag: "tls-key", Env: "TRADECACHE_TLS_KEY", Usage: "PEM private key file of --tls-cert", Set: fileSetter(&h.TLSKey)},
		{Flag: "ws-token", Env: "TRADECACHE_WS_TOKEN", Secret: true, Usage: "token(s) accepted on /ws, comma-separated, at least 16 characters each; --demo generates one when empty", Set: listSetter(&h.WSTokens, 16)},
		{Flag: "ws-origins", Env: "TRADECACHE_WS_ORIGINS", Usage: "Origin host patterns allowed on /ws besides same-origin, comma-separated", Set: listSetter(&h.WSOrigins, 0)},
		{Flag: "stale-after", Env: "TRADECACHE_STALE_AFTER", Default: "30s", Usage: "a streaming node with no exchange event for this long reports itself degraded on /healthz", Set: durSetter(&h.StaleAfter)},
	}, Finish: func() error {
		switch {
		case (h.TLSCert == "") != (h.TLSKey == ""):
			return errors.New("--tls-cert (TRADECACHE_TLS_CERT) and --tls-key (TRADECACHE_TLS_KEY) go together: set both or neither")
		case h.TLSCert != "":
			if _, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey); err != nil {
				return fmt.Errorf("--tls-cert %s and --tls-key %s: %w", h.TLSCert, h.TLSKey, err)
			}
		}
		return nil
	}}
}

// hostsSetter reads Host patterns: name, name:port, *.domain, *.
func hostsSetter(p *[]string) func(string) error {
	return func(s string) error {
		*p = nil
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if e != "*" && !validHostPattern(e) {
				return fmt.Errorf("%q is not a host name: want name, name:port, *.domain or *", e)
			}
			*p = append(*p, e)
		}
		return nil
	}
}

// validHostPattern: name, [v6], name:port or *.domain, without a scheme,
// path or user.
func validHostPattern(e string) bool {
	if strings.ContainsAny(e, "/@?#\\ ") {
		return false
	}
	name := strings.TrimPrefix(e, "*.")
	if h, port, err := net.SplitHostPort(name); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return false
		}
		name = h
	}
	name = strings.Trim(name, "[]")
	return name != "" && !strings.ContainsAny(name, "*[]")
}

// fileSetter stores a path that must name a readable file ("" for none).
func fileSetter(p *string) func(string) error {
	return func(s string) error {
		*p = s
		if s == "" {
			return nil
		}
		f, err := os.Open(s)
		if err != nil {
			return err
		}
		return f.Close()
	}
}

// Events is the group of the event channel.
func Events(e *node.Events) Group {
	return Group{Name: "events", Fields: []Field{
		{Flag: "event-prefix", Env: "TRADECACHE_EVENT_PREFIX", Default: "live", Usage: "mode the node's events are named under, <prefix>.<name> (Jesse's processes use livetrade or papertrade)",
			Set: func(s string) error {
				if !validMode(s) {
					return errors.New("want lower-case letters, digits and _")
				}
				e.Prefix = s
				return nil
			}},
		{Flag: "session-id", Env: "TRADECACHE_SESSION_ID", Usage: "Jesse's session_id carried by the node's log events (empty: a random UUID per start)", Set: strSetter(&e.SessionID)},
		{Flag: "app-port", Env: "APP_PORT", Default: node.DefaultAppPort, Usage: "names the event channel <APP_PORT>:channel:1 (Jesse's APP_PORT); every node of a deployment shares it",
			Set: func(s string) error {
				if err := keyspace.ValidPart(s); err != nil {
					return err
				}
				e.AppPort = s
				return nil
			}},
	}}
}

func validMode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// Log is the logging configuration of a command.
type Log struct {
	Format string // text | json
	Level  string // debug | info | warn | error
}

// Logger returns a logger writing to w as l says.
func (l Log) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Logging is the group of the log format and level.
func Logging(l *Log) Group {
	return Group{Name: "log", Fields: []Field{
		{Flag: "log-format", Env: "TRADECACHE_LOG_FORMAT", Default: "text", Usage: "log format: text or json", Set: oneOf(&l.Format, "text", "json")},
		{Flag: "log-level", Env: "TRADECACHE_LOG_LEVEL", Default: "info", Usage: "log level: debug, info, warn or error", Set: oneOf(&l.Level, "debug", "info", "warn", "error")},
	}}
}

// Notify is the group of notifications (webhook, Telegram, Slack,
// Discord), read like every other setting: flag, environment, .env.
func Notify(n *notify.Config) Group {
	vals := map[string]string{}
	field := func(flagName, env, usage string, secret bool, redact func(string) string) Field {
		return Field{Flag: flagName, Env: env, Usage: usage, Secret: secret, Redact: redact,
			Set: func(s string) error { vals[env] = s; return nil }}
	}
	return Group{Name: "notify", Fields: []Field{
		field("notify-webhook-url", notify.EnvWebhookURL, "POST notifications as JSON to this URL", false, redactURL),
		field("notify-webhook-headers", notify.EnvWebhookHeaders, `headers of the webhook, "Name: value; Name2: value2"`, true, nil),
		field("notify-telegram-token", notify.EnvTelegramToken, "Telegram bot token", true, nil),
		field("notify-telegram-chat-id", notify.EnvTelegramChatID, "Telegram chat id", false, nil),
		field("notify-telegram-url", notify.EnvTelegramBaseURL, "Telegram Bot API base URL (empty: Telegram's)", false, nil),
		field("notify-slack-webhook", notify.EnvSlackWebhook, "Slack incoming webhook URL", true, nil),
		field("notify-discord-webhook", notify.EnvDiscordWebhook, "Discord webhook URL", true, nil),
		field("notify-events", notify.EnvEvents, `events notified besides error logs: names or patterns ("live.*_alert"), comma-separated`, false, nil),
		field("notify-errors", notify.EnvErrors, "notify error logs (true or false; empty: true)", false, nil),
		field("notify-queue", notify.EnvQueueSize, "notifications queued per sink (empty: 256)", false, nil),
		field("notify-attempts", notify.EnvMaxAttempts, "attempts per notification and sink (empty: 5)", false, nil),
		field("notify-dedupe-window", notify.EnvDedupeWindow, "repeats within it are collapsed; 0 = off (empty: 1m)", false, nil),
		field("notify-timeout", notify.EnvTimeout, "per HTTP request (empty: 10s)", false, nil),
	}, Finish: func() error {
		c, err := notify.FromEnv(func(k string) string { return vals[k] })
		*n = c
		return err
	}}
}

// redactURL shows a URL without its userinfo, path and query: webhook
// URLs carry their secret in the path.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(redacted)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func strSetter(p *string) func(string) error {
	return func(s string) error { *p = s; return nil }
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
			return errors.New("not a URL")
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

// Serve is everything `tradecache serve` takes, and what `config check`
// prints: the node's Config and the log settings.
type Serve struct {
	Node node.Config
	Log  Log
}

// ServeCommand is the command of a node: every group, and the checks of
// settings that contradict each other.
func ServeCommand(name string, s *Serve) Command {
	c := &s.Node
	return Command{
		Name:    name,
		Summary: "Runs a node: the tiered cache, the elected exchange streams, the account, events on /ws and the HTTP API.",
		Groups: []Group{
			Node(c), Redis(&c.Redis), Memory(&c.Redis), Keys(&c.Keys), Election(&c.Keys),
			Exchange(&c.Exchange), Market(&c.Market), Account(&c.Account), HTTP(&c.HTTP), Events(&c.Events),
			Logging(&s.Log), Notify(&c.Notify),
		},
		Check: func(r *Result) error {
			var errs []error
			sim := c.Demo || c.Exchange.Kind == node.ExchangeSim
			if sim {
				who := "--exchange sim"
				if c.Demo {
					who = r.Describe("demo")
				} else {
					who = r.Describe("exchange")
				}
				for _, f := range []string{"exchange-rest", "exchange-ws"} {
					if r.IsSet(f) {
						errs = append(errs, fmt.Errorf("%s and %s contradict each other: the simulated exchange runs in process and would ignore the URL; drop one (for a separate simulator, run 'tradecache sim' and --exchange binance with its URLs)", who, r.Describe(f)))
					}
				}
			}
			if c.Demo && r.IsSet("exchange") && c.Exchange.Kind == node.ExchangeBinance {
				errs = append(errs, fmt.Errorf("%s and %s contradict each other: a demo node uses the simulated exchange", r.Describe("demo"), r.Describe("exchange")))
			}
			h := c.HTTP
			if !node.IsLoopback(h.Listen) && len(h.APITokens) == 0 && !h.TrustNetwork {
				errs = append(errs, fmt.Errorf("%s listens beyond loopback without an API token: set --api-token (TRADECACHE_API_TOKEN) to require one on the API, "+
					"or pass --trust-network (TRADECACHE_TRUST_NETWORK) if every host that can reach this address may use it", r.Describe("listen")))
			}
			if h.APIAuth == node.APIAuthAll && len(h.APITokens) == 0 {
				errs = append(errs, fmt.Errorf("%s guards every route with an API token, and --api-token (TRADECACHE_API_TOKEN) is not set", r.Describe("api-auth")))
			}
			return errors.Join(errs...)
		},
	}
}
