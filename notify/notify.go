package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Notification is one message to the sinks. The webhook sink posts it as
// JSON with the field names below; the chat sinks show Title then Text.
type Notification struct {
	Event string          `json:"event"` // the bus event it came from, or a name of the caller's choosing
	Title string          `json:"title"`
	Text  string          `json:"text"`
	Data  json.RawMessage `json:"data,omitempty"` // the event's payload, for the webhook
	Time  time.Time       `json:"time"`           // zero = when Notify was called
}

// Bounds applied by Notify, before any sink's own limit.
const (
	MaxTitle = 1 << 10  // UTF-16 code units of Title kept
	MaxText  = 64 << 10 // UTF-16 code units of Text kept
)

// Rate is a token bucket: up to Burst sends at once, then one per Every.
// Every == 0 means no limit.
type Rate struct {
	Every time.Duration
	Burst int
}

// DefaultRate is the rate limit of the sink named sink unless WithRate
// says otherwise: Telegram allows about one message per second in a chat
// and Discord's webhooks 5 per 2 s; every other sink gets 1/s with a burst
// of 5.
func DefaultRate(sink string) Rate {
	switch sink {
	case "telegram":
		return Rate{time.Second, 1}
	case "discord":
		return Rate{400 * time.Millisecond, 5}
	}
	return Rate{time.Second, 5}
}

// Option configures a Notifier beyond Config.
type Option func(*options)

type options struct {
	client        *http.Client
	logger        *slog.Logger
	backoffMin    time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	rates         map[string]Rate
	sinks         []Sink
}

// WithHTTPClient sets the client of every request (default: a client that
// does not follow redirects; each request's deadline is Config.Timeout).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithLogger sets where delivery failures (Warn) and retries (Debug) are
// logged; the default discards them. Nothing is logged at Error level, so
// a node that turns its error logs into events cannot loop through here.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBackoff sets the retry backoff: min doubled per attempt, capped at
// max, then jittered into [d/2, d]. Default 1 s and 30 s.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = min, max }
}

// WithMaxRetryAfter caps the wait a service may ask for with 429 (default
// 5 min), so a flood ban does not park a sink for hours.
func WithMaxRetryAfter(d time.Duration) Option { return func(o *options) { o.maxRetryAfter = d } }

// WithRate sets the rate limit of the sink named sink ("telegram", …).
func WithRate(sink string, r Rate) Option {
	return func(o *options) {
		if o.rates == nil {
			o.rates = map[string]Rate{}
		}
		o.rates[sink] = r
	}
}

// WithSink adds a sink of the caller's own, beside Config's. Its name must
// be unique.
func WithSink(s Sink) Option { return func(o *options) { o.sinks = append(o.sinks, s) } }

// Notifier queues notifications and delivers them to every sink. It is
// safe for concurrent use; Run does the delivering.
type Notifier struct {
	cfg           Config
	log           *slog.Logger
	client        *http.Client
	workers       []*worker // one per sink, in Config order then WithSink's
	dedupe        *deduper  // nil when off
	scrub         *strings.Replacer
	maxAttempts   int
	timeout       time.Duration
	backoffMin    time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration

	running      atomic.Bool
	received     atomic.Uint64
	deduplicated atomic.Uint64
}

// worker delivers to one sink from its own queue, so a slow or failing
// sink only ever delays itself.
type worker struct {
	sink   Sink
	q      *queue
	bucket bucket // used by the worker's goroutine only

	sent, failed, retries atomic.Uint64
}

// New builds a Notifier; Run starts its goroutines. A Config without sinks
// is valid: Notify then discards everything.
func New(cfg Config, opts ...Option) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{backoffMin: time.Second, backoffMax: 30 * time.Second, maxRetryAfter: 5 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.client == nil {
		o.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.backoffMin <= 0 || o.backoffMax < o.backoffMin {
		return nil, errors.New("notify: WithBackoff: want 0 < min <= max")
	}
	n := &Notifier{
		cfg:           cfg,
		log:           o.logger,
		client:        o.client,
		maxAttempts:   cmpOr(cfg.MaxAttempts, DefaultMaxAttempts),
		timeout:       cmpOr(cfg.Timeout, DefaultTimeout),
		backoffMin:    o.backoffMin,
		backoffMax:    o.backoffMax,
		maxRetryAfter: o.maxRetryAfter,
	}
	switch w := cfg.DedupeWindow; {
	case w == 0:
		n.dedupe = newDeduper(DefaultDedupeWindow)
	case w > 0:
		n.dedupe = newDeduper(w)
	}
	var sinks []Sink
	if cfg.Webhook != nil {
		sinks = append(sinks, *cfg.Webhook)
	}
	if cfg.Telegram != nil {
		sinks = append(sinks, *cfg.Telegram)
	}
	if cfg.Slack != nil {
		sinks = append(sinks, *cfg.Slack)
	}
	if cfg.Discord != nil {
		sinks = append(sinks, *cfg.Discord)
	}
	sinks = append(sinks, o.sinks...)
	seen := map[string]bool{}
	var secrets []string
	for _, s := range sinks {
		if ss, ok := s.(interface{ secrets() []string }); ok {
			secrets = append(secrets, ss.secrets()...)
		}
		name := s.Name()
		if seen[name] {
			return nil, fmt.Errorf("notify: two sinks named %q", name)
		}
		seen[name] = true
		r, ok := o.rates[name]
		if !ok {
			r = DefaultRate(name)
		}
		if r.Every < 0 || (r.Every > 0 && r.Burst < 1) {
			return nil, fmt.Errorf("notify: rate of %s: want Every >= 0 and Burst >= 1", name)
		}
		n.workers = append(n.workers, &worker{
			sink:   s,
			q:      newQueue(cmpOr(cfg.QueueSize, DefaultQueueSize)),
			bucket: bucket{every: r.Every, burst: float64(r.Burst)},
		})
	}
	for name := range o.rates {
		if !seen[name] {
			return nil, fmt.Errorf("notify: WithRate: no sink named %q", name)
		}
	}
	n.scrub = newScrubber(secrets)
	return n, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// urlSecrets are the parts of a webhook URL that may hold its secret.
func urlSecrets(u string) []string {
	out := []string{u}
	if p, err := url.Parse(u); err == nil {
		out = append(out, p.Path, p.EscapedPath(), p.RawQuery)
		if p.User != nil {
			out = append(out, p.User.String())
		}
		for seg := range strings.SplitSeq(p.Path, "/") {
			if len(seg) >= 16 { // a token-like segment (Discord's, Slack's)
				out = append(out, seg)
			}
		}
	}
	return out
}

// newScrubber masks every secret (longest first, so a URL is masked whole
// rather than around its token). Secrets shorter than 4 bytes ("/") are
// skipped: they would mangle every message and hide nothing.
func newScrubber(secrets []string) *strings.Replacer {
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return len(s) < 4 })
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	secrets = slices.Compact(secrets)
	var args []string
	for _, s := range secrets {
		args = append(args, s, "***")
	}
	return strings.NewReplacer(args...)
}

// Config returns the configuration n was built with.
func (n *Notifier) Config() Config { return n.cfg }

// Notify queues x for every sink and returns at once: it never blocks on
// a sink. A repeat of a notification sent within the dedupe window is
// counted instead of queued (see the package doc). Each sink's queue holds
// Config.QueueSize notifications; when full, the oldest is dropped.
func (n *Notifier) Notify(x Notification) {
	n.received.Add(1)
	now := time.Now()
	if x.Time.IsZero() {
		x.Time = now
	}
	x.Title = truncate(x.Title, MaxTitle)
	x.Text = truncate(x.Text, MaxText)
	if n.dedupe != nil {
		admit, summary := n.dedupe.admit(x, now)
		if summary != nil {
			n.enqueue(*summary)
		}
		if !admit {
			n.deduplicated.Add(1)
			return
		}
	}
	n.enqueue(x)
}

func (n *Notifier) enqueue(x Notification) {
	for _, w := range n.workers {
		w.q.push(x)
	}
}

// Run delivers queued notifications until ctx ends: one goroutine per
// sink, and one that reports collapsed repeats when their window closes.
// It returns nil when ctx ends, after every goroutine has stopped;
// notifications still queued then stay queued (Stats.Sinks[i].Queued).
// Run may be called once.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	var wg sync.WaitGroup
	for _, w := range n.workers {
		wg.Go(func() { n.work(ctx, w) })
	}
	if n.dedupe != nil {
		wg.Go(func() { n.dedupe.run(ctx, n.enqueue) })
	}
	wg.Wait()
	return nil
}

func (n *Notifier) work(ctx context.Context, w *worker) {
	for ctx.Err() == nil { // checked first: what is still queued stays Queued
		x, skipped, ok := w.q.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.q.ready:
				continue
			}
		}
		if skipped > 0 {
			x.Text += fmt.Sprintf("\n(%d older notifications dropped: queue full)", skipped)
		}
		n.deliver(ctx, w, x)
	}
}

// deliver sends x to w's sink, retrying temporary failures with a capped,
// jittered exponential backoff or the wait the service asked for,
// whichever is longer, up to maxAttempts attempts.
func (n *Notifier) deliver(ctx context.Context, w *worker, x Notification) {
	name := w.sink.Name()
	for attempt := 1; ; attempt++ {
		if !w.bucket.wait(ctx) {
			return
		}
		actx, cancel := context.WithTimeout(ctx, n.timeout)
		err := w.sink.Send(actx, n.client, x)
		cancel()
		if err == nil {
			w.sent.Add(1)
			return
		}
		if ctx.Err() != nil {
			return // shutting down: neither sent nor failed
		}
		temporary, retryAfter := true, time.Duration(0)
		var se *SendError
		if errors.As(err, &se) {
			temporary, retryAfter = se.Temporary, se.RetryAfter
		}
		msg := n.scrub.Replace(err.Error())
		if !temporary || attempt >= n.maxAttempts {
			w.failed.Add(1)
			n.log.Warn("notify: delivery failed", "sink", name, "event", x.Event, "attempts", attempt, "err", msg)
			return
		}
		w.retries.Add(1)
		d := max(jitter(n.backoff(attempt)), min(retryAfter, n.maxRetryAfter))
		n.log.Debug("notify: retrying", "sink", name, "event", x.Event, "attempt", attempt, "in", d, "err", msg)
		if !sleep(ctx, d) {
			return
		}
	}
}

// backoff is the wait after failed attempt a (1-based), before jitter.
func (n *Notifier) backoff(a int) time.Duration {
	d := n.backoffMin
	for i := 1; i < a && d < n.backoffMax; i++ {
		d *= 2
	}
	return min(d, n.backoffMax)
}

// jitter spreads d over [d/2, d], so sinks failing together do not retry
// in step.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// queue is a bounded FIFO that drops its oldest entry when full: a sink
// that comes back after an outage gets the latest state, not an hour-old
// backlog. The next notification taken after drops says how many.
type queue struct {
	mu      sync.Mutex // guards buf, head, n, skipped, dropped
	buf     []Notification
	head, n int
	skipped int    // dropped since the last pop
	dropped uint64 // dropped since New
	ready   chan struct{}
}

func newQueue(size int) *queue {
	return &queue{buf: make([]Notification, size), ready: make(chan struct{}, 1)}
}

func (q *queue) push(x Notification) {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.buf[q.head] = Notification{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.skipped++
		q.dropped++
	}
	q.buf[(q.head+q.n)%len(q.buf)] = x
	q.n++
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) pop() (x Notification, skipped int, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return Notification{}, 0, false
	}
	x, q.buf[q.head] = q.buf[q.head], Notification{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	skipped, q.skipped = q.skipped, 0
	return x, skipped, true
}

func (q *queue) stats() (queued int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.dropped
}

// bucket is a token bucket; only its worker's goroutine uses it.
type bucket struct {
	every  time.Duration
	burst  float64
	tokens float64
	last   time.Time
}

// wait takes a token, sleeping until one is there; false means ctx ended.
func (b *bucket) wait(ctx context.Context) bool {
	if b.every <= 0 {
		return ctx.Err() == nil
	}
	now := time.Now()
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))/float64(b.every))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	if !sleep(ctx, time.Duration((1-b.tokens)*float64(b.every))) {
		return false
	}
	b.tokens, b.last = 0, time.Now() // the token that accrued is taken
	return true
}
