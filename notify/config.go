package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Config says where notifications go and which events become one. The
// zero value forwards error logs to no sink; a nil sink is disabled.
type Config struct {
	Webhook  *Webhook
	Telegram *Telegram
	Slack    *Slack
	Discord  *Discord

	// Events are the events forwarded besides error logs: exact names
	// ("livetrade.orders") or path.Match patterns ("live.*_alert"). A
	// pattern without a dot matches the name after the mode: "orders"
	// matches "livetrade.orders" and "papertrade.orders".
	Events []string
	// IgnoreErrors stops the forwarding of "*.error_log" events, which is
	// on by default (Jesse's notifications.events.errors).
	IgnoreErrors bool

	QueueSize    int           // notifications queued per sink; 0 = 256
	MaxAttempts  int           // attempts per notification and sink; 0 = 5
	DedupeWindow time.Duration // repeats within it are collapsed; 0 = 1 min, <0 = off
	Timeout      time.Duration // per HTTP request; 0 = 10 s
}

// Defaults of Config's zero fields.
const (
	DefaultQueueSize    = 256
	DefaultMaxAttempts  = 5
	DefaultDedupeWindow = time.Minute
	DefaultTimeout      = 10 * time.Second
)

// The environment variables FromEnv reads.
const (
	EnvWebhookURL      = "TRADECACHE_NOTIFY_WEBHOOK_URL"
	EnvWebhookHeaders  = "TRADECACHE_NOTIFY_WEBHOOK_HEADERS" // "Name: value; Name2: value2"
	EnvTelegramToken   = "TRADECACHE_NOTIFY_TELEGRAM_TOKEN"
	EnvTelegramChatID  = "TRADECACHE_NOTIFY_TELEGRAM_CHAT_ID"
	EnvTelegramBaseURL = "TRADECACHE_NOTIFY_TELEGRAM_URL"
	EnvSlackWebhook    = "TRADECACHE_NOTIFY_SLACK_WEBHOOK"
	EnvDiscordWebhook  = "TRADECACHE_NOTIFY_DISCORD_WEBHOOK"
	EnvEvents          = "TRADECACHE_NOTIFY_EVENTS" // comma-separated names or patterns
	EnvErrors          = "TRADECACHE_NOTIFY_ERRORS" // forward error logs: true (default) or false
	EnvQueueSize       = "TRADECACHE_NOTIFY_QUEUE"
	EnvMaxAttempts     = "TRADECACHE_NOTIFY_ATTEMPTS"
	EnvDedupeWindow    = "TRADECACHE_NOTIFY_DEDUPE_WINDOW" // a duration; 0 = off
	EnvTimeout         = "TRADECACHE_NOTIFY_TIMEOUT"
)

// FieldError is a bad value for one field. Its text names the field and
// its environment variable and never holds a secret value.
type FieldError struct {
	Field string // the Config field, e.g. "Slack.WebhookURL"
	Env   string // its environment variable
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("notify: %s (%s): %v", e.Env, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// FromEnv reads a Config from the environment (getenv is os.Getenv, or a
// map's lookup in tests). A sink is enabled by its URL or token. Bad
// fields are *FieldErrors, several joined with errors.Join.
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	bad := func(field, env string, err error) { errs = append(errs, &FieldError{field, env, err}) }
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }

	if u := get(EnvWebhookURL); u != "" {
		c.Webhook = &Webhook{URL: u}
		if h := get(EnvWebhookHeaders); h != "" {
			hdr, err := parseHeaders(h)
			if err != nil {
				bad("Webhook.Headers", EnvWebhookHeaders, err)
			}
			c.Webhook.Headers = hdr
		}
	} else if get(EnvWebhookHeaders) != "" {
		bad("Webhook.URL", EnvWebhookURL, fmt.Errorf("required when %s is set", EnvWebhookHeaders))
	}
	tok, chat, base := get(EnvTelegramToken), get(EnvTelegramChatID), get(EnvTelegramBaseURL)
	if tok != "" || chat != "" {
		c.Telegram = &Telegram{Token: tok, ChatID: chat, BaseURL: base}
	} else if base != "" {
		bad("Telegram.Token", EnvTelegramToken, fmt.Errorf("required when %s is set", EnvTelegramBaseURL))
	}
	if u := get(EnvSlackWebhook); u != "" {
		c.Slack = &Slack{WebhookURL: u}
	}
	if u := get(EnvDiscordWebhook); u != "" {
		c.Discord = &Discord{WebhookURL: u}
	}
	for p := range strings.SplitSeq(get(EnvEvents), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.Events = append(c.Events, p)
		}
	}
	if v := get(EnvErrors); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("IgnoreErrors", EnvErrors, fmt.Errorf("%q is not true or false", v))
		}
		c.IgnoreErrors = !b
	}
	ints := []struct {
		field, env string
		dst        *int
	}{{"QueueSize", EnvQueueSize, &c.QueueSize}, {"MaxAttempts", EnvMaxAttempts, &c.MaxAttempts}}
	for _, f := range ints {
		if v := get(f.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				bad(f.field, f.env, fmt.Errorf("%q is not a positive integer", v))
			}
			*f.dst = n
		}
	}
	if v := get(EnvDedupeWindow); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad("DedupeWindow", EnvDedupeWindow, fmt.Errorf("%q is not a duration", v))
		case d == 0:
			c.DedupeWindow = -1
		default:
			c.DedupeWindow = d
		}
	}
	if v := get(EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			bad("Timeout", EnvTimeout, fmt.Errorf("%q is not a positive duration", v))
		}
		c.Timeout = d
	}
	if len(errs) == 0 {
		return c, c.Validate()
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// parseHeaders reads "Name: value; Name2: value2". Values may be secrets:
// errors name the header, never its value.
func parseHeaders(s string) (http.Header, error) {
	h := http.Header{}
	for i, kv := range strings.Split(s, ";") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !validHeaderName(k) {
			return nil, fmt.Errorf("header %d: want \"Name: value\"", i+1)
		}
		h.Add(k, v)
	}
	return h, nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// Validate checks every field; New calls it. Bad fields are *FieldErrors.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, env string, err error) { errs = append(errs, &FieldError{field, env, err}) }
	if w := c.Webhook; w != nil {
		if err := checkURL(w.URL); err != nil {
			bad("Webhook.URL", EnvWebhookURL, err)
		}
		for k, vs := range w.Headers {
			for _, v := range vs {
				if !validHeaderName(k) || strings.ContainsAny(v, "\r\n\x00") {
					bad("Webhook.Headers", EnvWebhookHeaders, fmt.Errorf("header %q: invalid name or value", k))
				}
			}
		}
	}
	if t := c.Telegram; t != nil {
		if !validBotToken(t.Token) {
			bad("Telegram.Token", EnvTelegramToken, errors.New(`not a bot token (want "<bot id>:<secret>")`))
		}
		if t.ChatID == "" {
			bad("Telegram.ChatID", EnvTelegramChatID, errors.New("required with a Telegram token"))
		} else if !validChatID(t.ChatID) {
			bad("Telegram.ChatID", EnvTelegramChatID, errors.New(`not a chat id (want an integer or "@channel")`))
		}
		if t.BaseURL != "" {
			if err := checkURL(t.BaseURL); err != nil {
				bad("Telegram.BaseURL", EnvTelegramBaseURL, err)
			}
		}
	}
	if s := c.Slack; s != nil {
		if err := checkURL(s.WebhookURL); err != nil {
			bad("Slack.WebhookURL", EnvSlackWebhook, err)
		}
	}
	if d := c.Discord; d != nil {
		if err := checkURL(d.WebhookURL); err != nil {
			bad("Discord.WebhookURL", EnvDiscordWebhook, err)
		}
	}
	for _, p := range c.Events {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			bad("Events", EnvEvents, fmt.Errorf("bad pattern %q", p))
		}
	}
	if c.QueueSize < 0 {
		bad("QueueSize", EnvQueueSize, errors.New("negative"))
	}
	if c.MaxAttempts < 0 {
		bad("MaxAttempts", EnvMaxAttempts, errors.New("negative"))
	}
	if c.Timeout < 0 {
		bad("Timeout", EnvTimeout, errors.New("negative"))
	}
	return errors.Join(errs...)
}

// checkURL says what is wrong with u without quoting it: url.Parse's
// errors do, and webhook URLs are secrets.
func checkURL(u string) error {
	if u == "" {
		return errors.New("required")
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return errors.New("not a valid URL")
	case p.Scheme != "http" && p.Scheme != "https":
		return errors.New("scheme must be http or https")
	case p.Host == "":
		return errors.New("missing host")
	}
	return nil
}

func validBotToken(t string) bool {
	id, secret, ok := strings.Cut(t, ":")
	if !ok || id == "" || secret == "" {
		return false
	}
	for _, r := range id {
		if r < '0' || r > '9' {
			return false
		}
	}
	for _, r := range secret {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func validChatID(s string) bool {
	if strings.HasPrefix(s, "@") {
		return len(s) > 1 && !strings.ContainsAny(s, " /?#")
	}
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// Enabled reports whether any sink is configured.
func (c Config) Enabled() bool {
	return c.Webhook != nil || c.Telegram != nil || c.Slack != nil || c.Discord != nil
}

// Match reports whether the event named name is forwarded: an error log
// (unless IgnoreErrors) or a name matching one of Events.
func (c Config) Match(name string) bool {
	if !c.IgnoreErrors && strings.HasSuffix(name, ".error_log") {
		return true
	}
	_, short, _ := strings.Cut(name, ".")
	for _, p := range c.Events {
		subject := name
		if !strings.Contains(p, ".") {
			subject = short
		}
		if ok, _ := path.Match(p, subject); ok {
			return true
		}
	}
	return false
}

// Redacted describes c with every secret masked: tokens and header values
// as "***", URLs cut to scheme and host. String, GoString and LogValue
// return it, so printing or logging a Config is safe.
func (c Config) Redacted() string {
	var parts []string
	if c.Webhook != nil {
		parts = append(parts, c.Webhook.String())
	}
	if c.Telegram != nil {
		parts = append(parts, c.Telegram.String())
	}
	if c.Slack != nil {
		parts = append(parts, c.Slack.String())
	}
	if c.Discord != nil {
		parts = append(parts, c.Discord.String())
	}
	if len(parts) == 0 {
		parts = append(parts, "no sinks")
	}
	if len(c.Events) > 0 {
		parts = append(parts, "events "+strings.Join(c.Events, ","))
	}
	parts = append(parts, fmt.Sprintf("errors %t", !c.IgnoreErrors))
	if c.QueueSize != 0 {
		parts = append(parts, fmt.Sprintf("queue %d", c.QueueSize))
	}
	if c.MaxAttempts != 0 {
		parts = append(parts, fmt.Sprintf("attempts %d", c.MaxAttempts))
	}
	if c.DedupeWindow < 0 {
		parts = append(parts, "dedupe off")
	} else if c.DedupeWindow > 0 {
		parts = append(parts, "dedupe "+c.DedupeWindow.String())
	}
	if c.Timeout != 0 {
		parts = append(parts, "timeout "+c.Timeout.String())
	}
	return "notify{" + strings.Join(parts, "; ") + "}"
}

func (c Config) String() string { return c.Redacted() }

// GoString keeps %#v from printing the secrets.
func (c Config) GoString() string { return c.Redacted() }

// LogValue keeps slog from printing the secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.Redacted()) }
