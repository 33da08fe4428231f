// Package eventlog publishes logs as bus events, as Jesse's logger does:
// an slog.Handler that passes every record on to the next handler and
// publishes records at Info and above as events "info_log" and "error_log"
// (the bus adds the mode: "live.info_log").
//
// # Payload
//
// Jesse's log dict {id, session_id, timestamp, message}, plus the level and
// the record's attributes:
//
//	{"id": "<uuid>", "session_id": "…", "timestamp": <ms>, "level": "WARN",
//	 "message": "…", "attrs": {"k": v, "group": {…}}, "node_id": "…"}
//
// Info and Warn records are info_log (the level tells them apart); Error and
// above are error_log, published once (Jesse's logger.error also logs the
// message as info, so errors appear twice; we do not copy that). Attribute
// values are converted when the record is handled, so a value changed after
// logging is not seen: strings, numbers and booleans as such, NaN and
// infinities as strings, durations and times as text, errors as their
// message, other values as their JSON when it marshals and fmt's %+v
// otherwise.
//
// # Bounds and policies
//
// Handle never waits on the bus. A record to publish passes a token bucket
// (Config.Rate per second, Config.Burst; 50 and 100 by default) and then a
// bounded queue (Config.Queue, 1024) that Run drains; a record refused by
// either is not published and is counted. When drops stop for Config.Quiet
// (1 s), or at the latest every Config.SummaryEvery (1 min) during a long
// storm, Run publishes one info_log "N log events dropped" summary (level
// WARN), outside the bucket. The in-process history keeps the last
// Config.History records of each kind (1000 info + 1000 error), whether or
// not they were published.
//
// # Recursion
//
// A handler that publishes through a bus that logs through the same handler
// could feed itself. Three things prevent it:
//   - Run publishes with a context marked by WithoutPublish. Records logged
//     with that context (slog's *Context methods, LogAttrs) go to the next
//     handler and the history but are not published; package bus logs with
//     the context it is given, and its Publish does not log at all (it
//     returns errors).
//   - The handler never logs itself: publish failures are counted.
//   - Anything that still loops (a logger called without the context) is
//     bounded by the token bucket and the queue: it costs at most Rate
//     events a second and never blocks logging.
package eventlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/bus"
)

// Event names, without the bus's mode prefix.
const (
	EventInfo  = "info_log"
	EventError = "error_log"
)

// Config configures a Handler. Zero fields take the defaults.
type Config struct {
	// Level is the lowest level published and kept in the history (Info).
	Level slog.Leveler
	// Rate and Burst shape the token bucket of published records (50/s,
	// burst 100). A negative Rate turns the limit off.
	Rate  float64
	Burst int
	// Queue bounds the records waiting for Run to publish them (1024).
	Queue int
	// History is how many records of each kind (info, error) History keeps
	// (1000).
	History int
	// SessionID is Jesse's session_id; NodeID, when set, is added as node_id.
	SessionID, NodeID string
	// PublishTimeout bounds each Publish call of Run (1 s); the bus applies
	// its own, usually shorter, deadline too.
	PublishTimeout time.Duration
	// Quiet is how long drops must stop before the summary is published,
	// and how often Run checks (1 s). SummaryEvery is the longest a storm
	// goes without a summary (1 min).
	Quiet, SummaryEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.Level == nil {
		c.Level = slog.LevelInfo
	}
	if c.Rate == 0 {
		c.Rate = 50
	}
	if c.Burst <= 0 {
		c.Burst = 100
	}
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.History <= 0 {
		c.History = 1000
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = time.Second
	}
	if c.Quiet <= 0 {
		c.Quiet = time.Second
	}
	if c.SummaryEvery <= 0 {
		c.SummaryEvery = time.Minute
	}
	return c
}

// Record is a published log record: Jesse's log dict plus level, attrs and
// node_id.
type Record struct {
	ID        string         `json:"id"`
	SessionID string         `json:"session_id"`
	Timestamp int64          `json:"timestamp"` // Unix ms: the record's time, or when it was handled if it had none
	Level     string         `json:"level"`     // slog's level name: "INFO", "WARN", "ERROR"
	Message   string         `json:"message"`
	Attrs     map[string]any `json:"attrs,omitempty"`
	NodeID    string         `json:"node_id,omitempty"`
	// Time is the slog record's time, zero when it had none.
	Time time.Time `json:"-"`
	// IsError: published as error_log.
	IsError bool `json:"-"`

	seq uint64 // order of handling, for History
}

// Stats is a snapshot of a Handler's counters.
type Stats struct {
	Published     uint64 // records published (summaries included)
	PublishErrors uint64 // Publish calls that failed
	RateLimited   uint64 // records not published: over the rate
	QueueFull     uint64 // records not published: the queue was full
	Suppressed    uint64 // records not published: logged with a WithoutPublish context
	Summaries     uint64 // "N log events dropped" events published
	Queued        int    // records waiting for Run
}

// Handler is the slog.Handler. Handlers made by WithAttrs and WithGroup
// share the original's queue, bucket, history and counters. Its methods are
// safe for concurrent use.
type Handler struct {
	next slog.Handler
	c    *core
	goas []groupOrAttrs // WithGroup and WithAttrs calls, in order
}

// groupOrAttrs is one WithGroup (group set) or WithAttrs call.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

type item struct {
	name string
	rec  Record
}

// core is what a Handler and its derivatives share.
type core struct {
	cfg   Config
	pub   bus.Publisher
	queue chan item
	seq   atomic.Uint64

	bucketMu sync.Mutex // guards tokens, last
	tokens   float64
	last     time.Time

	histMu    sync.Mutex // guards info, errs
	info, err ring

	pending atomic.Uint64 // records dropped since the last summary

	published, publishErrors, rateLimited, queueFull, suppressed, summaries atomic.Uint64
}

// New returns a Handler that passes records to next (nil: none) and
// publishes them on pub, which must not be nil. Run must be going for
// records to be published.
func New(next slog.Handler, pub bus.Publisher, cfg Config) *Handler {
	if pub == nil {
		panic("eventlog: New with a nil bus.Publisher")
	}
	if next == nil {
		next = slog.DiscardHandler
	}
	cfg = cfg.withDefaults()
	return &Handler{next: next, c: &core{
		cfg:    cfg,
		pub:    pub,
		queue:  make(chan item, cfg.Queue),
		tokens: float64(cfg.Burst),
		info:   ring{max: cfg.History},
		err:    ring{max: cfg.History},
	}}
}

type noPublishKey struct{}

// WithoutPublish marks ctx so that records logged with it are not
// published (they still reach the next handler and the history). Run
// publishes with such a context, so a bus that logs while publishing cannot
// feed itself.
func WithoutPublish(ctx context.Context) context.Context {
	return context.WithValue(ctx, noPublishKey{}, true)
}

func suppressed(ctx context.Context) bool {
	return ctx != nil && ctx.Value(noPublishKey{}) != nil
}

// Enabled reports whether level is published or the next handler wants it.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.c.cfg.Level.Level() || h.next.Enabled(ctx, level)
}

// Handle passes r to the next handler (when it is enabled for r's level)
// and, at Level and above, keeps r in the history and queues it for
// publishing, unless the bucket or the queue refuse it. It never blocks on
// the bus; it returns the next handler's error.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	c := h.c
	if r.Level < c.cfg.Level.Level() {
		return err
	}
	rec := h.record(r)
	c.remember(rec)
	switch {
	case suppressed(ctx):
		c.suppressed.Add(1)
	case !c.allow(time.Now()):
		c.rateLimited.Add(1)
		c.pending.Add(1)
	default:
		name := EventInfo
		if rec.IsError {
			name = EventError
		}
		select {
		case c.queue <- item{name, rec}:
		default:
			c.queueFull.Add(1)
			c.pending.Add(1)
		}
	}
	return err
}

// WithAttrs returns a Handler whose records carry attrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(h.next.WithAttrs(attrs), groupOrAttrs{attrs: attrs})
}

// WithGroup returns a Handler whose later attributes are nested in name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(h.next.WithGroup(name), groupOrAttrs{group: name})
}

func (h *Handler) with(next slog.Handler, g groupOrAttrs) *Handler {
	goas := make([]groupOrAttrs, len(h.goas), len(h.goas)+1)
	copy(goas, h.goas)
	return &Handler{next: next, c: h.c, goas: append(goas, g)}
}

// record converts r, snapshotting its attributes.
func (h *Handler) record(r slog.Record) Record {
	c := h.c
	rec := Record{
		ID:        newID(),
		SessionID: c.cfg.SessionID,
		Level:     r.Level.String(),
		Message:   r.Message,
		NodeID:    c.cfg.NodeID,
		Time:      r.Time,
		IsError:   r.Level >= slog.LevelError,
		seq:       c.seq.Add(1),
	}
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	rec.Timestamp = ts.UnixMilli()

	// Groups opened by WithGroup with nothing after them are left out.
	goas := h.goas
	if r.NumAttrs() == 0 {
		for len(goas) > 0 && goas[len(goas)-1].group != "" {
			goas = goas[:len(goas)-1]
		}
	}
	root := map[string]any{}
	cur := root
	for _, g := range goas {
		if g.group != "" {
			m := map[string]any{}
			cur[g.group] = m
			cur = m
			continue
		}
		for _, a := range g.attrs {
			addAttr(cur, a)
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(cur, a)
		return true
	})
	prune(root)
	if len(root) > 0 {
		rec.Attrs = root
	}
	return rec
}

// prune removes groups left empty (a group whose attributes were all
// empty), deepest first.
func prune(m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			prune(sub)
			if len(sub) == 0 {
				delete(m, k)
			}
		}
	}
}

func addAttr(m map[string]any, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() != slog.KindGroup {
		m[a.Key] = jsonValue(a.Value)
		return
	}
	attrs := a.Value.Group()
	if len(attrs) == 0 {
		return
	}
	dst := m
	if a.Key != "" { // an empty key inlines the group
		dst = map[string]any{}
	}
	for _, ga := range attrs {
		addAttr(dst, ga)
	}
	if a.Key != "" && len(dst) > 0 {
		m[a.Key] = dst
	}
}

// jsonValue converts v to a value that marshals to JSON, now.
func jsonValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		if f := v.Float64(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
		return v.String()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	}
	x := v.Any()
	if e, ok := x.(error); ok {
		return e.Error()
	}
	if b, err := json.Marshal(x); err == nil && utf8.Valid(b) {
		return json.RawMessage(b)
	}
	return fmt.Sprintf("%+v", x)
}

// newID is a random (version 4) UUID, as Jesse's log ids.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// allow takes a token from the bucket if there is one.
func (c *core) allow(now time.Time) bool {
	if c.cfg.Rate < 0 {
		return true
	}
	c.bucketMu.Lock()
	defer c.bucketMu.Unlock()
	if !c.last.IsZero() {
		if d := now.Sub(c.last); d > 0 {
			c.tokens = min(float64(c.cfg.Burst), c.tokens+d.Seconds()*c.cfg.Rate)
		}
	}
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// Run publishes queued records, one at a time and in order, and the
// summaries of dropped ones. It returns nil when ctx ends; records still
// queued then are not published.
func (h *Handler) Run(ctx context.Context) error {
	c := h.c
	tick := time.NewTicker(c.cfg.Quiet)
	defer tick.Stop()
	var seen uint64     // pending at the previous tick
	var since time.Time // first tick that saw unsummarised drops
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-c.queue:
			c.publish(ctx, it.name, it.rec)
		case now := <-tick.C:
			n := c.pending.Load()
			if n == 0 {
				continue
			}
			if since.IsZero() {
				since = now
			}
			if n != seen && now.Sub(since) < c.cfg.SummaryEvery {
				seen = n // still dropping: wait for quiet
				continue
			}
			c.pending.Add(-n) // drops after the Load stay pending
			seen, since = 0, time.Time{}
			ts := time.Now()
			rec := Record{
				ID:        newID(),
				SessionID: c.cfg.SessionID,
				Timestamp: ts.UnixMilli(),
				Level:     slog.LevelWarn.String(),
				Message:   fmt.Sprintf("%d log events dropped (rate limit %g/s, burst %d, or full queue)", n, c.cfg.Rate, c.cfg.Burst),
				Attrs:     map[string]any{"dropped": n},
				NodeID:    c.cfg.NodeID,
				Time:      ts,
			}
			if c.publish(ctx, EventInfo, rec) {
				c.summaries.Add(1)
			}
		}
	}
}

func (c *core) publish(ctx context.Context, name string, rec Record) bool {
	pctx, cancel := context.WithTimeout(WithoutPublish(ctx), c.cfg.PublishTimeout)
	defer cancel()
	if err := c.pub.Publish(pctx, name, rec); err != nil {
		c.publishErrors.Add(1)
		return false
	}
	c.published.Add(1)
	return true
}

// ring keeps the last max records.
type ring struct {
	max  int
	buf  []Record
	next int // where the next record goes once buf is full
}

func (r *ring) add(rec Record) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, rec)
		return
	}
	r.buf[r.next] = rec
	r.next = (r.next + 1) % r.max
}

// all returns the records, oldest first.
func (r *ring) all() []Record {
	out := make([]Record, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

func (c *core) remember(rec Record) {
	c.histMu.Lock()
	defer c.histMu.Unlock()
	if rec.IsError {
		c.err.add(rec)
	} else {
		c.info.add(rec)
	}
}

// History returns the last n records handled at Level and above, info and
// error together, oldest first (n <= 0: all it holds). The history holds
// the last Config.History records of each kind.
func (h *Handler) History(n int) []Record {
	c := h.c
	c.histMu.Lock()
	info, errs := c.info.all(), c.err.all()
	c.histMu.Unlock()
	out := make([]Record, 0, len(info)+len(errs))
	for len(info) > 0 || len(errs) > 0 { // merge by order of handling
		if len(errs) == 0 || (len(info) > 0 && info[0].seq < errs[0].seq) {
			out, info = append(out, info[0]), info[1:]
		} else {
			out, errs = append(out, errs[0]), errs[1:]
		}
	}
	return last(out, n)
}

// Errors returns the last n error records, oldest first (n <= 0: all).
func (h *Handler) Errors(n int) []Record {
	c := h.c
	c.histMu.Lock()
	defer c.histMu.Unlock()
	return last(c.err.all(), n)
}

func last(recs []Record, n int) []Record {
	if n > 0 && len(recs) > n {
		return recs[len(recs)-n:]
	}
	return recs
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	c := h.c
	return Stats{
		Published:     c.published.Load(),
		PublishErrors: c.publishErrors.Load(),
		RateLimited:   c.rateLimited.Load(),
		QueueFull:     c.queueFull.Load(),
		Suppressed:    c.suppressed.Load(),
		Summaries:     c.summaries.Load(),
		Queued:        len(c.queue),
	}
}

var (
	descPublished = prometheus.NewDesc("tradecache_eventlog_published_total", "Log records published as bus events (summaries included).", nil, nil)
	descErrors    = prometheus.NewDesc("tradecache_eventlog_publish_errors_total", "Log records the bus refused.", nil, nil)
	descDropped   = prometheus.NewDesc("tradecache_eventlog_dropped_total", "Log records not published: reason=rate_limit, queue_full or suppressed (logged with a WithoutPublish context).", []string{"reason"}, nil)
	descQueued    = prometheus.NewDesc("tradecache_eventlog_queued", "Log records waiting to be published.", nil, nil)
)

// Collector exports Stats as Prometheus metrics (tradecache_eventlog_*).
func (h *Handler) Collector() prometheus.Collector { return collector{h} }

type collector struct{ h *Handler }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descErrors, descDropped, descQueued} {
		ch <- d
	}
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	s := k.h.Stats()
	cnt := prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descPublished, cnt, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(descErrors, cnt, float64(s.PublishErrors))
	ch <- prometheus.MustNewConstMetric(descDropped, cnt, float64(s.RateLimited), "rate_limit")
	ch <- prometheus.MustNewConstMetric(descDropped, cnt, float64(s.QueueFull), "queue_full")
	ch <- prometheus.MustNewConstMetric(descDropped, cnt, float64(s.Suppressed), "suppressed")
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(s.Queued))
}

var _ slog.Handler = (*Handler)(nil)
