package marketdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/lifecycle"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/ratelimit"
)

// buffer holds updates between flushes. Its size is bounded by the
// configured series and symbols: one entry per (series, open time), per
// symbol, per market symbol (capped).
type buffer struct {
	maxMarket int

	mu      sync.Mutex // guards everything below
	klines  map[keyspace.Key]map[int64]exchange.Kline
	oldest  map[keyspace.Key]time.Time    // receipt time of the oldest unflushed update per series
	tickers map[string]exchange.Ticker24h // configured symbols
	market  map[string]exchange.Ticker24h // whole market
	books   map[string]exchange.BookTicker
}

func newBuffer(maxMarket int) *buffer {
	b := &buffer{maxMarket: maxMarket}
	b.reset()
	return b
}

func (b *buffer) reset() {
	b.klines = map[keyspace.Key]map[int64]exchange.Kline{}
	b.oldest = map[keyspace.Key]time.Time{}
	b.tickers = map[string]exchange.Ticker24h{}
	b.market = map[string]exchange.Ticker24h{}
	b.books = map[string]exchange.BookTicker{}
}

// take swaps the buffer's contents out.
func (b *buffer) take() (klines map[keyspace.Key]map[int64]exchange.Kline, oldest map[keyspace.Key]time.Time, tickers, market map[string]exchange.Ticker24h, books map[string]exchange.BookTicker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	klines, oldest, tickers, market, books = b.klines, b.oldest, b.tickers, b.market, b.books
	b.reset()
	return
}

// restore puts back klines whose write failed, under newer ones that
// arrived meanwhile.
func (b *buffer) restore(key keyspace.Key, ks map[int64]exchange.Kline, oldest time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.oldest[key]; !ok || oldest.Before(o) {
		b.oldest[key] = oldest
	}
	cur := b.klines[key]
	if cur == nil {
		b.klines[key] = ks
		return
	}
	for t, k := range ks {
		if _, newer := cur[t]; !newer {
			cur[t] = k
		}
	}
}

func (n *Node) onEvent(b *buffer) func(exchange.Event) {
	symbols := map[string]bool{}
	for _, s := range n.cfg.Symbols {
		symbols[upper(s)] = true
	}
	return func(ev exchange.Event) {
		n.st.Events.Add(1)
		n.sh.lastEvent.Store(n.sh.stamp())
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev.Kind {
		case exchange.EventKline:
			key, ok := n.series[seriesID{ev.Kline.Symbol, ev.Kline.Interval}]
			if !ok {
				n.st.Ignored.Add(1)
				return
			}
			m := b.klines[key]
			if m == nil {
				m = map[int64]exchange.Kline{}
				b.klines[key] = m
				b.oldest[key] = time.Now()
			}
			m[ev.Kline.OpenTime] = ev.Kline
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

// ingest streams into s until ctx ends or a write is fenced. Its REST
// calls (backfill) are the node's own: System priority in the weight
// budget, never starved by user read-throughs.
func (n *Node) ingest(ctx context.Context, s sink) error {
	ctx = ratelimit.WithPriority(ctx, ratelimit.System)
	b := newBuffer(n.cfg.MaxMarketSymbols)
	backfill := make(chan struct{}, 1)
	st, err := n.streams(slices.Clone(n.names), n.onEvent(b), func(string) {
		n.sh.lastConnect.Store(n.sh.stamp())
		select {
		case backfill <- struct{}{}:
		default: // one is queued already
		}
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
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-n.refillWake:
				for attempt := 0; ; attempt++ {
					failed, err := n.refillAll(gctx, s)
					if err != nil {
						return err
					}
					if failed == 0 || gctx.Err() != nil {
						break
					}
					lifecycle.Sleep(gctx, min(time.Second<<attempt, 30*time.Second))
				}
			case <-backfill:
				// A series whose backfill failed (REST timeout, rate-limit
				// cooldown, a Redis error) is retried with a capped backoff
				// until it succeeds: a gap must not wait for the next reconnect.
				for attempt := 0; ; attempt++ {
					failed, err := n.backfillAll(gctx, s)
					if err != nil {
						return err
					}
					if failed == 0 || gctx.Err() != nil {
						break
					}
					lifecycle.Sleep(gctx, min(time.Second<<attempt, 30*time.Second))
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

// flush writes what the buffer holds. A fenced write ends the term; other
// failures put the klines back for the next flush.
func (n *Node) flush(ctx context.Context, s sink, b *buffer) error {
	klines, oldest, tickers, market, books := b.take()
	n.st.Flushes.Add(1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64) // concurrent scripts: valkey-go pipelines them on one connection
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
	for key, m := range klines {
		g.Go(func() error {
			ks := slices.SortedFunc(maps.Values(m), func(a, b exchange.Kline) int { return int(a.OpenTime - b.OpenTime) })
			rp, err := s.putKlines(gctx, key, ks)
			if err != nil {
				fail(key, err)
				b.restore(key, m, oldest[key])
				return nil
			}
			n.repaired(key, rp)
			n.st.KlinesWritten.Add(uint64(len(ks)))
			n.lat.record(time.Since(oldest[key]))
			for _, k := range ks {
				n.publish("kline", k)
			}
			return nil
		})
	}
	for sym, t := range tickers {
		g.Go(func() error {
			key, _ := n.keys.Ticker24h(sym)
			v, _ := json.Marshal(t)
			if err := s.putValue(gctx, key, v); err != nil {
				fail(key, err)
				return nil
			}
			n.publish("ticker", t)
			return nil
		})
	}
	if len(market) > 0 {
		g.Go(func() error {
			key := n.keys.MarketTicker24h()
			rp, err := s.putFields(gctx, key, jsonFields(market))
			if err != nil {
				fail(key, err)
				return nil
			}
			n.repaired(key, rp)
			return nil
		})
	}
	if len(books) > 0 {
		g.Go(func() error {
			key := n.keys.BookTicker()
			rp, err := s.putFields(gctx, key, jsonFields(books))
			if err != nil {
				fail(key, err)
				return nil
			}
			n.repaired(key, rp)
			for _, bt := range books {
				n.publish("book_ticker", bt)
			}
			return nil
		})
	}
	g.Wait()
	if fenced {
		return errFenced
	}
	return nil
}

// publish sends what was written as events; a full queue drops them
// (counted by the bus): market data is superseded by the next flush.
func (n *Node) publish(name string, vs ...any) {
	if n.cfg.Events == nil {
		return
	}
	for _, v := range vs {
		n.cfg.Events.PublishAsync(name, v)
	}
}

func jsonFields[T any](m map[string]T) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k], _ = json.Marshal(v)
	}
	return out
}

// backfillAll fills every series from REST after a gap, four at a time,
// and returns how many failed.
func (n *Node) backfillAll(ctx context.Context, s sink) (failed int, err error) {
	if n.rest == nil {
		return 0, nil
	}
	n.backfillMu.Lock()
	defer n.backfillMu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	var fenced bool
	var failure error
	var mu sync.Mutex // guards fenced, failed, failure, done
	done, total := 0, len(n.series)
	start, klines0 := time.Now(), n.st.BackfillKline.Load()
	lastReport := start
	n.cfg.Logger.Info("marketdata: backfilling", "series", total)
	for id, key := range n.series {
		g.Go(func() error {
			err := n.backfill(gctx, s, id, key, false)
			mu.Lock()
			done++
			// Progress, at most every 2 s: a backfill of many series after
			// a long gap takes a while (REST weight paces it).
			if time.Since(lastReport) > 2*time.Second && done < total {
				lastReport = time.Now()
				n.cfg.Logger.Info("marketdata: backfill progress", "done", done, "series", total)
			}
			mu.Unlock()
			switch {
			case err == nil:
			case leader.IsFenced(err):
				mu.Lock()
				fenced = true
				mu.Unlock()
			case gctx.Err() == nil:
				n.cfg.Logger.Warn("marketdata: backfill failed; retrying", "symbol", id.symbol, "interval", id.interval, "err", err)
				mu.Lock()
				failed++
				failure = fmt.Errorf("%s %s: %w", id.symbol, id.interval, err)
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	n.cfg.Logger.Info("marketdata: backfilled", "series", total, "failed", failed,
		"klines", n.st.BackfillKline.Load()-klines0, "took", time.Since(start).Round(time.Millisecond))
	if fenced {
		n.st.Fenced.Add(1)
		return failed, errFenced
	}
	if ctx.Err() == nil {
		n.sh.backfilled(failure)
	}
	return failed, nil
}

// backfill writes the closed klines from the newest one held (or the last
// Window; with scratch, always the last Window) up to now, in pages of at
// most 1500.
func (n *Node) backfill(ctx context.Context, s sink, id seriesID, key keyspace.Key, scratch bool) error {
	var from int64
	if !scratch {
		var err error
		if from, err = s.lastOpen(ctx, key); err != nil {
			return err
		}
	}
	limit := min(n.cfg.Window, 1500)
	for page := 0; page < 100; page++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ks, err := n.rest.Klines(rctx, id.symbol, id.interval, from, 0, limit)
		cancel()
		if err != nil {
			return err
		}
		// A page shorter than limit reaches the present: its last kline is
		// the open bar, which the stream owns. (The exchange's clock decides
		// what is closed, not ours: a simulated exchange may run faster.)
		final := len(ks) < limit || from == 0
		closed := ks
		if final && len(ks) > 0 && !ks[len(ks)-1].Closed {
			closed = ks[:len(ks)-1]
		}
		for i := range closed {
			closed[i].Closed = true
		}
		if len(closed) > 0 {
			rp, err := s.putKlines(ctx, key, closed)
			if err != nil {
				return err
			}
			n.repaired(key, rp)
			n.st.BackfillKline.Add(uint64(len(closed)))
		}
		if final || len(closed) == 0 {
			break
		}
		from = ks[len(ks)-1].OpenTime + 1
	}
	n.st.Backfills.Add(1)
	return nil
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
// deleted, so its history is gone — filled again from REST.
func (n *Node) repaired(key keyspace.Key, rp repair) {
	if rp.replaced != "" {
		n.st.KeysReplaced.Add(1)
		n.cache.ReportBad(key.Name(), key.Kind(), cache.BadWrongType, fmt.Sprintf("the key was a %s; the leader replaced it", rp.replaced))
		if id, ok := n.seriesOf[key.Name()]; ok {
			n.requestRefill(id)
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

// requestRefill asks the leader's backfill to fill series id again from
// REST, the last Window klines.
func (n *Node) requestRefill(id seriesID) {
	n.refillMu.Lock()
	n.refills[id] = true
	n.refillMu.Unlock()
	select {
	case n.refillWake <- struct{}{}:
	default:
	}
}

// refillAll fills the series asked for by requestRefill and returns how
// many failed (asked for again).
func (n *Node) refillAll(ctx context.Context, s sink) (failed int, err error) {
	if n.rest == nil {
		return 0, nil
	}
	n.refillMu.Lock()
	ids := slices.Collect(maps.Keys(n.refills))
	clear(n.refills)
	n.refillMu.Unlock()
	for _, id := range ids {
		err := n.backfill(ctx, s, id, n.series[id], true)
		switch {
		case err == nil:
			n.cfg.Logger.Info("marketdata: series filled again after its key was replaced", "symbol", id.symbol, "interval", id.interval)
		case leader.IsFenced(err):
			n.st.Fenced.Add(1)
			return failed, errFenced
		case ctx.Err() != nil:
			return failed, nil
		default:
			n.cfg.Logger.Warn("marketdata: filling a replaced series failed; retrying", "symbol", id.symbol, "interval", id.interval, "err", err)
			failed++
			n.refillMu.Lock()
			n.refills[id] = true
			n.refillMu.Unlock()
		}
	}
	return failed, nil
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
