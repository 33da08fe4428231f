package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Sink delivers one notification with one HTTP request. Send does not retry:
// the Notifier does, on errors that say so (see SendError).
type Sink interface {
	// Name identifies the sink in Stats, metrics and logs; it never
	// holds a secret.
	Name() string
	Send(ctx context.Context, c *http.Client, n Notification) error
}

// Text limits of the services, in UTF-16 code units (what their clients
// count; never fewer than runes, so a text within it is within any count).
const (
	TelegramMaxText = 4096
	DiscordMaxText  = 2000
	SlackMaxText    = 40000
)

// SendError is a failed delivery attempt. Its text never holds the sink's
// URL or token.
type SendError struct {
	Sink       string
	Status     int           // HTTP status; 0 when no response arrived
	Temporary  bool          // worth retrying: network error, 408, 429, 5xx
	RetryAfter time.Duration // the wait the service asked for (429), or 0
	Msg        string        // the service's description, or the network error
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("notify: ")
	b.WriteString(e.Sink)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Webhook POSTs the notification as JSON (Notification's own encoding) to
// URL with Headers. Any 2xx is success.
type Webhook struct {
	URL     string
	Headers http.Header // e.g. Authorization; values are treated as secrets
}

// Name implements Sink.
func (Webhook) Name() string { return "webhook" }

// Send implements Sink.
func (w Webhook) Send(ctx context.Context, c *http.Client, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return &SendError{Sink: w.Name(), Msg: "encode: " + err.Error()}
	}
	resp, err := post(ctx, c, w.Name(), w.URL, w.Headers, body, w.secrets())
	if err != nil {
		return err
	}
	return checkStatus(w.Name(), resp, w.secrets(), nil)
}

func (w Webhook) secrets() []string {
	s := urlSecrets(w.URL)
	for _, vs := range w.Headers {
		s = append(s, vs...)
	}
	return s
}

func (w Webhook) String() string {
	var names []string
	for k := range w.Headers {
		names = append(names, k+": ***")
	}
	s := "webhook " + redactURL(w.URL)
	if len(names) > 0 {
		s += " [" + strings.Join(slices.Sorted(slices.Values(names)), ", ") + "]"
	}
	return s
}

// GoString keeps %#v from printing the secrets.
func (w Webhook) GoString() string { return w.String() }

// LogValue keeps slog from printing the secrets.
func (w Webhook) LogValue() slog.Value { return slog.StringValue(w.String()) }

// Telegram sends a message with the Bot API: POST
// {BaseURL}/bot{Token}/sendMessage with chat_id and text (plain text, no
// parse mode, link previews off).
type Telegram struct {
	Token   string // the bot token, "<digits>:<secret>"; a secret
	ChatID  string // a numeric chat id or "@channelname"
	BaseURL string // "" = https://api.telegram.org
}

// TelegramBaseURL is the default Telegram.BaseURL.
const TelegramBaseURL = "https://api.telegram.org"

// Name implements Sink.
func (Telegram) Name() string { return "telegram" }

func (t Telegram) base() string {
	if t.BaseURL == "" {
		return TelegramBaseURL
	}
	return strings.TrimSuffix(t.BaseURL, "/")
}

// Send implements Sink.
func (t Telegram) Send(ctx context.Context, c *http.Client, n Notification) error {
	body, _ := json.Marshal(struct {
		ChatID      string `json:"chat_id"`
		Text        string `json:"text"`
		LinkPreview struct {
			IsDisabled bool `json:"is_disabled"`
		} `json:"link_preview_options"`
	}{ChatID: t.ChatID, Text: truncate(plainMessage(n), TelegramMaxText), LinkPreview: struct {
		IsDisabled bool `json:"is_disabled"`
	}{true}})
	resp, err := post(ctx, c, t.Name(), t.base()+"/bot"+t.Token+"/sendMessage", nil, body, t.secrets())
	if err != nil {
		return err
	}
	return checkStatus(t.Name(), resp, t.secrets(), func(status int, b []byte, e *SendError) {
		// {"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}
		var r struct {
			OK          bool   `json:"ok"`
			ErrorCode   int    `json:"error_code"`
			Description string `json:"description"`
			Parameters  struct {
				RetryAfter int `json:"retry_after"`
			} `json:"parameters"`
		}
		if json.Unmarshal(b, &r) != nil {
			return
		}
		if r.Description != "" {
			e.Msg = r.Description
		}
		if r.Parameters.RetryAfter > 0 && r.Parameters.RetryAfter < 1e6 {
			e.RetryAfter = max(e.RetryAfter, time.Duration(r.Parameters.RetryAfter)*time.Second)
		}
		if status/100 == 2 && !r.OK && r.ErrorCode != 0 {
			e.Status = r.ErrorCode
			e.Temporary = temporaryStatus(r.ErrorCode)
		}
	})
}

func (t Telegram) secrets() []string {
	s := []string{t.Token}
	if _, secret, ok := strings.Cut(t.Token, ":"); ok {
		s = append(s, secret)
	}
	return s
}

func (t Telegram) String() string {
	s := "telegram chat " + t.ChatID + " token ***"
	if t.BaseURL != "" {
		s += " via " + redactURL(t.BaseURL)
	}
	return s
}

// GoString keeps %#v from printing the token.
func (t Telegram) GoString() string { return t.String() }

// LogValue keeps slog from printing the token.
func (t Telegram) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Slack posts {"text": ...} to an incoming webhook. The title is bold;
// &, < and > are escaped as Slack requires.
type Slack struct {
	WebhookURL string // https://hooks.slack.com/services/…; a secret
}

// Name implements Sink.
func (Slack) Name() string { return "slack" }

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Send implements Sink.
func (s Slack) Send(ctx context.Context, c *http.Client, n Notification) error {
	text := slackEscaper.Replace(n.Text)
	if n.Title != "" {
		text = "*" + slackEscaper.Replace(n.Title) + "*\n" + text
	}
	body, _ := json.Marshal(map[string]string{"text": truncate(strings.TrimRight(text, "\n"), SlackMaxText)})
	resp, err := post(ctx, c, s.Name(), s.WebhookURL, nil, body, s.secrets())
	if err != nil {
		return err
	}
	return checkStatus(s.Name(), resp, s.secrets(), nil)
}

func (s Slack) secrets() []string { return urlSecrets(s.WebhookURL) }

func (s Slack) String() string { return "slack " + redactURL(s.WebhookURL) }

// GoString keeps %#v from printing the webhook URL.
func (s Slack) GoString() string { return s.String() }

// LogValue keeps slog from printing the webhook URL.
func (s Slack) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Discord posts {"content": ...} to a channel webhook, with mentions
// disabled so a log line cannot ping @everyone.
type Discord struct {
	WebhookURL string // https://discord.com/api/webhooks/<id>/<token>; a secret
}

// Name implements Sink.
func (Discord) Name() string { return "discord" }

// Send implements Sink.
func (d Discord) Send(ctx context.Context, c *http.Client, n Notification) error {
	text := n.Text
	if n.Title != "" {
		text = "**" + n.Title + "**\n" + text
	}
	body, _ := json.Marshal(struct {
		Content         string `json:"content"`
		AllowedMentions struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}{Content: truncate(strings.TrimRight(text, "\n"), DiscordMaxText), AllowedMentions: struct {
		Parse []string `json:"parse"`
	}{Parse: []string{}}})
	resp, err := post(ctx, c, d.Name(), d.WebhookURL, nil, body, d.secrets())
	if err != nil {
		return err
	}
	return checkStatus(d.Name(), resp, d.secrets(), func(status int, b []byte, e *SendError) {
		// 429: {"message": "You are being rate limited.", "retry_after": 0.64, "global": false}
		var r struct {
			Message    string  `json:"message"`
			RetryAfter float64 `json:"retry_after"`
		}
		if json.Unmarshal(b, &r) != nil {
			return
		}
		if r.Message != "" {
			e.Msg = r.Message
		}
		if r.RetryAfter > 0 && r.RetryAfter < 1e6 {
			e.RetryAfter = max(e.RetryAfter, time.Duration(r.RetryAfter*float64(time.Second)))
		}
	})
}

func (d Discord) secrets() []string { return urlSecrets(d.WebhookURL) }

func (d Discord) String() string { return "discord " + redactURL(d.WebhookURL) }

// GoString keeps %#v from printing the webhook URL.
func (d Discord) GoString() string { return d.String() }

// LogValue keeps slog from printing the webhook URL.
func (d Discord) LogValue() slog.Value { return slog.StringValue(d.String()) }

// plainMessage is the title on the first line, then the text.
func plainMessage(n Notification) string {
	if n.Title == "" {
		return n.Text
	}
	if n.Text == "" {
		return n.Title
	}
	return n.Title + "\n" + n.Text
}

// post sends body. A transport error is returned without the URL: the
// *url.Error net/http returns spells the whole URL, and ours hold secrets.
func post(ctx context.Context, c *http.Client, sink, u string, h http.Header, body []byte, secrets []string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, &SendError{Sink: sink, Msg: "bad URL"}
	}
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tradecache-notify")
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &SendError{Sink: sink, Temporary: true, Msg: newScrubber(secrets).Replace(err.Error())}
	}
	return resp, nil
}

// maxErrorBody bounds what is read of an error response.
const maxErrorBody = 64 << 10

// checkStatus turns resp into nil (2xx) or a *SendError; parse refines the
// error from the body (it also sees 2xx bodies, for Telegram's ok:false).
// The service's message is scrubbed of secrets before it is cut short, so
// no part of one survives (a server may echo the URL it was sent to).
func checkStatus(sink string, resp *http.Response, secrets []string, parse func(status int, body []byte, e *SendError)) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &SendError{
		Sink:       sink,
		Status:     resp.StatusCode,
		Temporary:  temporaryStatus(resp.StatusCode),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if resp.StatusCode/100 != 2 {
		e.Msg = strings.TrimSpace(string(b))
		if e.Msg == "" {
			e.Msg = http.StatusText(resp.StatusCode)
		}
	}
	if parse != nil {
		parse(resp.StatusCode, b, e)
	}
	if e.Status/100 == 2 {
		return nil
	}
	e.Msg = truncate(newScrubber(secrets).Replace(strings.ToValidUTF8(e.Msg, "?")), 200)
	return e
}

func temporaryStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

// parseRetryAfter reads a Retry-After header: seconds (Discord sends a
// fraction) or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f > 0 && f < 1e6 {
			return time.Duration(f * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// truncate shortens s to at most limit UTF-16 code units, ending it with
// "…" when cut. Invalid UTF-8 is replaced first, so the result is valid.
func truncate(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit { // bytes ≥ code units
		return s
	}
	units := 0
	for _, r := range s {
		units += utf16.RuneLen(r)
	}
	if units <= limit {
		return s
	}
	units = 0
	for i, r := range s {
		n := utf16.RuneLen(r)
		if units+n > limit-1 { // room for the ellipsis
			return s[:i] + "…"
		}
		units += n
	}
	return s // unreachable
}

// redactURL keeps the scheme and host of u: webhook URLs carry their
// secret in the path (Slack, Discord) or query, Telegram's in the path.
func redactURL(u string) string {
	if u == "" {
		return `""`
	}
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "***"
	}
	return p.Scheme + "://" + p.Host + "/***"
}
