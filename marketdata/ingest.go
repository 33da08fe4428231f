package marketdata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/ratelimit"
)

// buffer holds updates between flushes. Its size is bounded by the
// configured series and symbols: one entry per (series, open time), per
// symbol, per market symbol (capped).
type buffer struct {
	maxMarket int
	// sg is the stream group the term streams.
	sg *streamGroup

	// write is held by a flush from taking the buffer to the end of its
	// writes, and by a reconciliation from its read of the store to the
	// end of its writes: neither overwrites what the other decided.
	write sync.Mutex

	mu sync.Mutex // guards everything below
	// klines and oldest are keyed by the term's series state: a pointer
	// hashes for nothing, where a keyspace.Key hashed its strings on
	// every event.
	klines  map[*seriesState]*pendingKlines
	oldest  map[*seriesState]time.Time    // receipt time of the oldest unflushed update per series
	tickers map[string]exchange.Ticker24h // configured symbols
	market  map[string]exchange.Ticker24h // whole market
	books   map[string]exchange.BookTicker
	// With gated set, a series' klines stay here until its term's first
	// reconciliation has written the window from REST (released): readers
	// never see a series holding only the stream's newest klines, which
	// they would take for all the history there is.
	gated    bool
	released map[keyspace.Key]bool
}

func newBuffer(maxMarket int, sg *streamGroup, gated bool) *buffer {
	b := &buffer{maxMarket: maxMarket, sg: sg, gated: gated, released: map[keyspace.Key]bool{}}
	b.reset()
	return b
}

// release lets flushes write key's klines.
func (b *buffer) release(key keyspace.Key) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.released[key] = true
}

// reset gives the buffer new maps, sized as the ones taken were: at
// Binance's cadence a flush's maps hold most series and symbols, and
// growing them again from empty every flush was a visible part of the
// leader's CPU.
func (b *buffer) reset() {
	b.klines = make(map[*seriesState]*pendingKlines, len(b.klines))
	b.oldest = make(map[*seriesState]time.Time, len(b.oldest))
	b.tickers = make(map[string]exchange.Ticker24h, len(b.tickers))
	b.market = make(map[string]exchange.Ticker24h, len(b.market))
	b.books = make(map[string]exchange.BookTicker, len(b.books))
}

// take swaps the buffer's contents out.
func (b *buffer) take() (klines map[*seriesState]*pendingKlines, oldest map[*seriesState]time.Time, tickers, market map[string]exchange.Ticker24h, books map[string]exchange.BookTicker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	klines, oldest, tickers, market, books = b.klines, b.oldest, b.tickers, b.market, b.books
	b.reset()
	if b.gated {
		for st, m := range klines {
			if !b.released[st.key] {
				b.klines[st], b.oldest[st] = m, oldest[st]
				delete(klines, st)
				delete(oldest, st)
			}
		}
	}
	return
}

// restore puts back klines whose write failed, under newer ones that
// arrived meanwhile.
func (b *buffer) restore(st *seriesState, ks *pendingKlines, oldest time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.oldest[st]; !ok || oldest.Before(o) {
		b.oldest[st] = oldest
	}
	cur := b.klines[st]
	if cur == nil {
		b.klines[st] = ks
		return
	}
	for _, k := range *ks {
		if cur.index(k.OpenTime) < 0 {
			*cur = append(*cur, k)
		}
	}
}

// pendingKlines is a series' klines between flushes, one per open time.
// Nearly always it holds one or two (the bar in progress, and the one
// that just closed), so a slice searched from its newest end costs less
// than a map, which allocated room for eight klines per series per flush.
type pendingKlines []exchange.Kline

// index returns the position of the kline opening at open, or -1.
func (p pendingKlines) index(open int64) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].OpenTime == open {
			return i
		}
	}
	return -1
}

// put adds k, replacing the kline of its open time.
func (p *pendingKlines) put(k *exchange.Kline) {
	if i := p.index(k.OpenTime); i >= 0 {
		(*p)[i] = *k
		return
	}
	*p = append(*p, *k)
}

// remove drops the kline at position i.
func (p *pendingKlines) remove(i int) { *p = slices.Delete(*p, i, i+1) }

func (n *Node) onEvent(b *buffer, ig *integrity) func(exchange.Event) {
	sg := b.sg
	symbols := sg.symbols
	return func(ev exchange.Event) {
		n.st.Events.Add(1)
		sg.sh.lastEvent.Store(sg.sh.stamp())
		ig.observe(ev.EventTime)
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev.Kind {
		case exchange.EventKline:
			st := ig.byID[seriesID{ev.Kline.Symbol, ev.Kline.Interval}]
			if st == nil {
				n.st.Ignored.Add(1)
				return
			}
			if !ig.admit(st, &ev.Kline, ev.EventTime) {
				return
			}
			m := b.klines[st]
			if m == nil {
				m = new(pendingKlines)
				b.klines[st] = m
				b.oldest[st] = time.Now()
			}
			m.put(&ev.Kline)
		case exchange.EventTicker:
			if !symbols[ev.Ticker.Symbol] {
				n.st.Ignored.Add(1)
				return
			}
			b.tickers[ev.Ticker.Symbol] = ev.Ticker
			b.putMarket(ev.Ticker)
		case exchange.EventTickers:
			for _, t := range ev.Tickers {
				b.putMarket(t)
			}
		case exchange.EventBookTicker:
			if !symbols[ev.Book.Symbol] {
				n.st.Ignored.Add(1)
				return
			}
			b.books[ev.Book.Symbol] = ev.Book
		}
	}
}

func (b *buffer) putMarket(t exchange.Ticker24h) {
	if _, ok := b.market[t.Symbol]; ok || len(b.market) < b.maxMarket {
		b.market[t.Symbol] = t
	}
}

// ingest streams the streams of group sg into s until ctx ends or a write
// is fenced. Its klines are kept equal to REST's by reconciliations
// (integrity.go, reconcile.go); its REST calls are the node's own: System
// priority in the weight budget, never starved by user read-throughs.
func (n *Node) ingest(ctx context.Context, s sink, sg *streamGroup) error {
	ctx = ratelimit.WithPriority(ctx, ratelimit.System)
	// Without REST there is no first reconciliation to wait for.
	b := newBuffer(n.cfg.MaxMarketSymbols, sg, n.rest != nil)
	ig := n.newIntegrity(b)
	// The term's pending reconciliations no longer are, once it has ended.
	defer ig.untrack()
	st, err := n.streams(slices.Clone(sg.names), n.onEvent(b, ig), func(string) {
		sg.sh.lastConnect.Store(sg.sh.stamp())
		ig.reconnected()
	})
	if err != nil {
		return fmt.Errorf("marketdata: streams: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := st.Run(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("marketdata: streams: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		t := time.NewTicker(n.cfg.FlushEvery)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				if err := n.flush(gctx, s, b); err != nil {
					return err
				}
			}
		}
	})
	g.Go(func() error { return n.reconcileLoop(gctx, s, ig) })
	g.Go(func() error {
		// A series whose key the leader replaced (another Redis type) is
		// reconciled over the whole window.
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-sg.refillWake:
				sg.refillMu.Lock()
				ids := slices.Collect(maps.Keys(sg.refills))
				clear(sg.refills)
				sg.refillMu.Unlock()
				for _, id := range ids {
					ig.refill(id)
				}
			}
		}
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

var errFenced = errors.New("marketdata: lease lost; writes fenced")

// leaseHeld checks, before a batch of writes on a cluster, that the lease
// still holds the term's token: per-slot fences check only that no newer
// term wrote a slot (leader.Fence.Held). Elsewhere every script checks
// the lease itself.
func leaseHeld(ctx context.Context, s sink) error {
	rs, ok := s.(*redisSink)
	if !ok || !rs.fence.Slotted() {
		return nil
	}
	cctx, cancel := rs.ctx(ctx)
	defer cancel()
	return rs.fence.Held(cctx, rs.cl)
}

// flushWorkers bounds a flush's concurrent writes.
const flushWorkers = 64

// runJobs runs jobs on at most workers goroutines and returns when all
// have returned.
func runJobs(jobs []func(), workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(jobs)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(jobs)) {
					return
				}
				jobs[i]()
			}
		})
	}
	wg.Wait()
}

// flush writes what the buffer holds. A fenced write ends the term; other
// failures put the klines back for the next flush.
func (n *Node) flush(ctx context.Context, s sink, b *buffer) error {
	b.write.Lock()
	defer b.write.Unlock()
	if err := leaseHeld(ctx, s); err != nil {
		// Nothing taken from the buffer: the next term's flush writes it,
		// or a fenced term ends with the buffer (the next leader backfills).
		if leader.IsFenced(err) {
			n.st.Fenced.Add(1)
			return errFenced
		}
		n.st.WriteErrors.Add(1)
		n.writeLog.warn(n.cfg.Logger, "lease", "marketdata: lease check failed", "err", err)
		return nil
	}
	klines, oldest, tickers, market, books := b.take()
	n.st.Flushes.Add(1)
	// One job per ticker key, and one for all klines, run by at most
	// flushWorkers goroutines: valkey-go pipelines their scripts on one
	// connection, and a goroutine per key would grow a fresh stack for
	// every key of every flush.
	var jobs []func()
	var fenced bool
	var mu sync.Mutex
	fail := func(key keyspace.Key, err error) {
		if leader.IsFenced(err) {
			n.st.Fenced.Add(1)
			mu.Lock()
			fenced = true
			mu.Unlock()
			return
		}
		n.st.WriteErrors.Add(1)
		// A failure that repeats every flush is one line a minute per key.
		n.writeLog.warn(n.cfg.Logger, key.Name(), "marketdata: write failed", "key", key.Name(), "err", err)
	}
	if len(klines) > 0 {
		// Every series in one batch: the sink writes those sharing a slot
		// (all, on one Redis) with one script.
		jobs = append(jobs, func() {
			ws := make([]seriesWrite, 0, len(klines))
			sts := make([]*seriesState, 0, len(klines))
			for st, m := range klines {
				// Taken from the buffer, m is the flush's until it puts it
				// back (restore, after which ks is not used).
				ks := *m
				if len(ks) > 1 {
					slices.SortFunc(ks, func(a, b exchange.Kline) int { return cmp.Compare(a.OpenTime, b.OpenTime) })
				}
				ws = append(ws, seriesWrite{key: st.key, ks: ks})
				sts = append(sts, st)
			}
			for i, r := range s.putSeries(ctx, ws) {
				st, key, ks := sts[i], ws[i].key, ws[i].ks
				if r.err != nil {
					fail(key, r.err)
					b.restore(st, klines[st], oldest[st])
					continue
				}
				n.repaired(b.sg, key, r.rp)
				n.st.KlinesWritten.Add(uint64(len(ks)))
				n.lat.record(time.Since(oldest[st]))
				for i := range ks {
					// By pointer, encoded before publish returns: its
					// AppendJSON writes it, and nothing is copied to the heap.
					n.publish("kline", &ks[i])
				}
			}
		})
	}
	if len(tickers) > 0 {
		jobs = append(jobs, func() {
			ws := make([]valueWrite, 0, len(tickers))
			ts := make([]exchange.Ticker24h, 0, len(tickers))
			for sym, t := range tickers {
				key, _ := n.keys.Ticker24h(sym)
				ws = append(ws, valueWrite{key: key, v: t.AppendJSON(nil)})
				ts = append(ts, t)
			}
			for i, err := range s.putValues(ctx, ws) {
				if err != nil {
					fail(ws[i].key, err)
					continue
				}
				n.publish("ticker", &ts[i])
			}
		})
	}
	if len(market) > 0 {
		jobs = append(jobs, func() {
			key := n.keys.MarketTicker24h()
			rp, err := s.putFields(ctx, key, jsonFields(market))
			if err != nil {
				fail(key, err)
				return
			}
			n.repaired(b.sg, key, rp)
		})
	}
	if len(books) > 0 {
		jobs = append(jobs, func() {
			key := n.keys.BookTicker()
			rp, err := s.putFields(ctx, key, jsonFields(books))
			if err != nil {
				fail(key, err)
				return
			}
			n.repaired(b.sg, key, rp)
			var bt exchange.BookTicker // one copy for the flush, not one per value
			for _, bt = range books {
				n.publish("book_ticker", &bt)
			}
		})
	}
	runJobs(jobs, flushWorkers)
	if fenced {
		return errFenced
	}
	return nil
}

// publish sends what was written as events; a full queue drops them
// (counted by the bus): market data is superseded by the next flush.
func (n *Node) publish(name string, v any) {
	if n.cfg.Events != nil {
		n.cfg.Events.PublishAsync(name, v)
	}
}

// jsonFields encodes each value of m (exchange.Ticker24h or BookTicker)
// as its JSON, into one shared allocation.
func jsonFields[T any, P interface {
	*T
	AppendJSON([]byte) []byte
}](m map[string]T) map[string][]byte {
	out := make(map[string][]byte, len(m))
	buf := make([]byte, 0, 256*len(m))
	for k, v := range m {
		start := len(buf)
		buf = P(&v).AppendJSON(buf)
		out[k] = buf[start:len(buf):len(buf)]
	}
	return out
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// repaired counts and reports what a leader's write removed because no
// reader could use it, and has a series whose key was of another type —
// deleted, so its history is gone — filled again from REST by the term of
// group sg.
func (n *Node) repaired(sg *streamGroup, key keyspace.Key, rp repair) {
	if rp.replaced != "" {
		n.st.KeysReplaced.Add(1)
		n.cache.ReportBad(key.Name(), key.Kind(), cache.BadWrongType, fmt.Sprintf("the key was a %s; the leader replaced it", rp.replaced))
		if id, ok := n.seriesOf[key.Name()]; ok {
			sg.requestRefill(id)
		}
	}
	for _, r := range rp.removed {
		reason := cache.BadUndecodable
		if r.size > key.MaxValue() {
			reason = cache.BadOversized
		}
		what := "field"
		if key.Kind() == keyspace.KindKline {
			what = "member at score"
			n.st.MembersRemoved.Add(1)
		} else {
			n.st.FieldsRemoved.Add(1)
		}
		n.cache.ReportBad(key.Name(), key.Kind(), reason, fmt.Sprintf("%s %s (%d bytes) removed by the leader", what, r.at, r.size))
	}
}

// requestRefill asks the group's reconciliation to fill series id again
// from REST, the whole window.
func (sg *streamGroup) requestRefill(id seriesID) {
	if _, ok := sg.series[id]; !ok {
		return
	}
	sg.refillMu.Lock()
	sg.refills[id] = true
	sg.refillMu.Unlock()
	select {
	case sg.refillWake <- struct{}{}:
	default:
	}
}

// logThrottle logs a line per key at most once per interval, and says on
// the next one how many it left out.
type logThrottle struct {
	every time.Duration

	mu   sync.Mutex // guards last
	last map[string]*throttled
}

type throttled struct {
	at      time.Time
	skipped int
}

func newLogThrottle(every time.Duration) *logThrottle {
	return &logThrottle{every: every, last: map[string]*throttled{}}
}

func (l *logThrottle) warn(log *slog.Logger, key, msg string, attrs ...any) {
	l.mu.Lock()
	t := l.last[key]
	now := time.Now()
	if t != nil && now.Sub(t.at) < l.every {
		t.skipped++
		l.mu.Unlock()
		return
	}
	if t == nil {
		t = &throttled{}
		l.last[key] = t
	}
	skipped := t.skipped
	t.at, t.skipped = now, 0
	l.mu.Unlock()
	if skipped > 0 {
		attrs = append(attrs, "more_since_last_report", skipped)
	}
	log.Warn(msg, attrs...)
}
