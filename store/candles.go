package store

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Candle is one candle row in Jesse's column order:
//
//	[timestamp, open, close, high, low, volume]
//
// Note the order O, C, H, L, not the usual O, H, L, C. The timestamp is the
// candle's open time in Unix milliseconds. Index the row with the Col
// constants.
type Candle = [6]float64

// Columns of a Candle.
const (
	ColTimestamp = 0
	ColOpen      = 1
	ColClose     = 2
	ColHigh      = 3
	ColLow       = 4
	ColVolume    = 5
)

// seriesKey names a candle series.
type seriesKey struct {
	exchange, symbol string
	tf               timeframe
}

// series is the candle ring of one (exchange, symbol, timeframe). mu guards
// every field. A 1m series also owns the generation state of its route's
// higher timeframes (gen); a generated series is marked generated and
// accepts writes only from that generation.
type series struct {
	mu        sync.RWMutex
	tf        timeframe
	ring      bounded[Candle]
	generated bool
	gen       []*genTarget // 1m series only, shortest timeframe first
}

// genTarget is one higher timeframe generated from a 1m series; it is
// guarded by the 1m series' mutex. dst has its own mutex.
type genTarget struct {
	dst    *series
	bucket bucketing
	// prefix aggregates the 1m candles of the bucket of the newest 1m
	// candle that are older than it, so that updating the forming candle
	// costs O(1): forming = prefix + newest 1m.
	prefix agg
}

// agg accumulates 1m candles, oldest first, into a candle of one bucket.
type agg struct {
	start                       int64 // bucket start
	n                           int
	open, close, high, low, vol float64
}

func (a agg) add(c Candle) agg {
	if a.n == 0 {
		a.open, a.high, a.low = c[ColOpen], c[ColHigh], c[ColLow]
	} else {
		a.high = max(a.high, c[ColHigh])
		a.low = min(a.low, c[ColLow])
	}
	a.close = c[ColClose]
	a.vol += c[ColVolume]
	a.n++
	return a
}

func (a agg) candle() Candle {
	return Candle{float64(a.start), a.open, a.close, a.high, a.low, a.vol}
}

// candleOp is what adding a candle did to a series.
type candleOp uint8

const (
	opAppend  candleOp = iota + 1 // newer than the newest: appended
	opUpdate                      // same timestamp as the newest: replaced in place
	opReplace                     // older, timestamp present: replaced
	opInsert                      // older, timestamp absent: inserted in order
)

// searchCandle returns the logical index of the first candle with a
// timestamp ≥ ts (len when none): a binary search, O(log n).
func searchCandle(b *bounded[Candle], ts float64) int {
	lo, hi := 0, b.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.at(m)[ColTimestamp] < ts {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// upsertCandle adds c to the ring, which is kept sorted by timestamp
// without duplicates: append (O(1)), update of the newest in place (O(1)),
// replacement of an older candle with the same timestamp (O(log n)), or
// insertion of a late candle (O(log n) search plus an O(n) shift).
func upsertCandle(b *bounded[Candle], c Candle) (candleOp, error) {
	n := b.len()
	if n == 0 || c[ColTimestamp] > b.at(n - 1)[ColTimestamp] {
		b.push(c)
		return opAppend, nil
	}
	if c[ColTimestamp] == b.at(n - 1)[ColTimestamp] {
		b.set(n-1, c)
		return opUpdate, nil
	}
	i := searchCandle(b, c[ColTimestamp])
	if b.at(i)[ColTimestamp] == c[ColTimestamp] { // i < n: c is older than the newest
		b.set(i, c)
		return opReplace, nil
	}
	if !b.insertAt(i, c) {
		return 0, fmt.Errorf("%w: %d is before %d, the oldest of %d held", ErrTooOld,
			int64(c[ColTimestamp]), int64(b.at(0)[ColTimestamp]), n)
	}
	return opInsert, nil
}

// aggregate returns the aggregate of the candles of the ring with
// from ≤ timestamp < to, as a candle of the bucket starting at start.
func aggregate(b *bounded[Candle], start, from, to int64) agg {
	a := agg{start: start}
	for i := searchCandle(b, float64(from)); i < b.len(); i++ {
		c := b.at(i)
		if c[ColTimestamp] >= float64(to) {
			break
		}
		a = a.add(c)
	}
	return a
}

// checkCandle validates c for a series of tf.
func (s *Store) checkCandle(tf timeframe, c Candle) error {
	ts := c[ColTimestamp]
	if !finite(c[:]...) {
		return fmt.Errorf("%w: non-finite value in %v", ErrInvalidCandle, c)
	}
	if ts <= 0 || ts != math.Trunc(ts) || ts > 1<<53 {
		return fmt.Errorf("%w: timestamp %v is not a positive integer of milliseconds", ErrInvalidCandle, ts)
	}
	if its := int64(ts); s.bucket[tf].start(its) != its {
		return fmt.Errorf("%w: timestamp %d is not aligned to %s", ErrInvalidCandle, its, tf)
	}
	return nil
}

// seriesKeyOf validates a route and timeframe.
func seriesKeyOf(exchange, symbol, timeframe string) (seriesKey, error) {
	r, err := route(exchange, symbol)
	if err != nil {
		return seriesKey{}, err
	}
	tf, err := parseTimeframe(timeframe)
	if err != nil {
		return seriesKey{}, err
	}
	return seriesKey{r.exchange, r.symbol, tf}, nil
}

// AddCandle adds c to the series (exchange, symbol, timeframe), which keeps
// candles sorted by timestamp, one per timestamp:
//
//   - newer than the newest candle: appended; when the series is full the
//     oldest candle is dropped;
//   - same timestamp as the newest (the forming candle): updated in place;
//   - older, with a timestamp present: replaced (binary search, O(log n));
//   - older, with a timestamp absent (a late candle): inserted in order.
//     The search is O(log n), the shift to make room O(n); late candles are
//     rare. A late candle older than every candle of a full series is
//     rejected with ErrTooOld.
//
// The timestamp must be a positive integer aligned to the timeframe (a
// multiple of 300000 for 5m) and every value finite, else ErrInvalidCandle.
// A timeframe generated from 1m (EnableGeneration) rejects direct writes
// with ErrGenerated.
//
// Adding a 1m candle updates the generated timeframes of the route, under
// the 1m series' lock: the candle of the bucket holding c (ts - ts%tf) is
// updated in place or appended; a late 1m candle re-aggregates its bucket
// from the stored 1m candles.
func (s *Store) AddCandle(exchange, symbol, timeframe string, c Candle) error {
	k, err := seriesKeyOf(exchange, symbol, timeframe)
	if err != nil {
		return addCandleErr(exchange, symbol, timeframe, err)
	}
	if err := s.checkCandle(k.tf, c); err != nil {
		return addCandleErr(exchange, symbol, timeframe, err)
	}
	se := s.state().candles.getOrCreate(k)
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.generated {
		return addCandleErr(exchange, symbol, timeframe, ErrGenerated)
	}
	var prev Candle
	hadPrev := false
	if len(se.gen) > 0 {
		prev, hadPrev = se.ring.last()
	}
	op, err := upsertCandle(&se.ring, c)
	if err != nil {
		return addCandleErr(exchange, symbol, timeframe, err)
	}
	if len(se.gen) > 0 {
		se.generate(op, c, prev, hadPrev)
	}
	return nil
}

func addCandleErr(exchange, symbol, timeframe string, err error) error {
	return fmt.Errorf("store: add candle %q %q %q: %w", exchange, symbol, timeframe, err)
}

// generate updates the generated timeframes after op added c to the 1m
// series se; prev was the newest candle before. se.mu is held for writing.
func (se *series) generate(op candleOp, c, prev Candle, hadPrev bool) {
	last, _ := se.ring.last()
	lastTs := int64(last[ColTimestamp])
	for _, g := range se.gen {
		lastStart := g.bucket.start(lastTs)
		switch op {
		case opAppend:
			// c is the newest. prev, now final, joins the prefix if it is
			// in the same bucket; otherwise c opens a new bucket (any
			// minutes between prev and c are missing, not invented).
			if hadPrev && g.bucket.start(int64(prev[ColTimestamp])) == lastStart {
				g.prefix = g.prefix.add(prev)
			} else {
				g.prefix = agg{start: lastStart}
			}
			g.write(g.prefix.add(c))
		case opUpdate:
			g.write(g.prefix.add(c))
		case opReplace, opInsert:
			start := g.bucket.start(int64(c[ColTimestamp]))
			if start == lastStart {
				g.prefix = aggregate(&se.ring, lastStart, lastStart, lastTs)
				g.write(g.prefix.add(last))
				continue
			}
			if se.ring.full() && int64(se.ring.at(0)[ColTimestamp]) > start {
				// Part of this bucket's 1m candles have been evicted:
				// re-aggregating would lose them. Keep the candle as is.
				continue
			}
			g.write(aggregate(&se.ring, start, start, start+g.bucket.ms))
		}
	}
}

// write stores a generated candle in the target series.
func (g *genTarget) write(a agg) {
	g.dst.mu.Lock()
	// ErrTooOld only: the bucket is older than every candle of the full
	// target series, which then has no room for it.
	_, _ = upsertCandle(&g.dst.ring, a.candle())
	g.dst.mu.Unlock()
}

// EnableGeneration makes the store generate the given timeframes of the
// route from its 1m candles, as Jesse does with generate_candles_from_1m:
// each generated candle has the timestamp of its bucket (ts - ts%tf, see
// Config.MondayWeeks for 1W), the open of its first 1m candle, the close of
// its last, the highest high, the lowest low and the summed volume.
//
// A bucket aggregates the 1m candles that exist: missing minutes are
// skipped, and no empty candle is invented for them. The newest generated
// candle is the forming one: it changes with every 1m candle of its bucket.
//
// Candles already in the 1m series are aggregated at once, so warm-up
// candles may be added before or after enabling. Generated timeframes
// reject direct writes (ErrGenerated); their rows already present stay.
// Each timeframe needs a 1m capacity of at least one bucket, else
// ErrCapacity. Enabling a timeframe twice is a no-op; "1m" is invalid.
// Reset disables all generation.
func (s *Store) EnableGeneration(exchange, symbol string, timeframes ...string) error {
	r, err := route(exchange, symbol)
	if err != nil {
		return fmt.Errorf("store: enable generation: %w", err)
	}
	tfs := make([]timeframe, 0, len(timeframes))
	for _, name := range timeframes {
		tf, err := parseTimeframe(name)
		if err != nil {
			return fmt.Errorf("store: enable generation %s %s: %w", exchange, symbol, err)
		}
		if tf == tf1m {
			return fmt.Errorf("store: enable generation %s %s: %w: 1m is the source", exchange, symbol, ErrInvalid)
		}
		if c := s.caps[tf1m]; int64(c) < tf.minutes() {
			return fmt.Errorf("store: enable generation %s %s %s: %w: 1m capacity %d < %d minutes",
				exchange, symbol, tf, ErrCapacity, c, tf.minutes())
		}
		tfs = append(tfs, tf)
	}
	st := s.state()
	src := st.candles.getOrCreate(seriesKey{r.exchange, r.symbol, tf1m})
	src.mu.Lock()
	defer src.mu.Unlock()
	for _, tf := range tfs {
		if slices.ContainsFunc(src.gen, func(g *genTarget) bool { return g.dst.tf == tf }) {
			continue
		}
		g := &genTarget{
			dst:    st.candles.getOrCreate(seriesKey{r.exchange, r.symbol, tf}),
			bucket: s.bucket[tf],
		}
		g.backfill(&src.ring)
		src.gen = append(src.gen, g)
	}
	slices.SortFunc(src.gen, func(a, b *genTarget) int { return int(a.dst.tf) - int(b.dst.tf) })
	return nil
}

// backfill marks the target generated, writes the aggregate of every
// bucket the 1m ring covers and sets the prefix. The caller holds the 1m
// series' lock.
func (g *genTarget) backfill(src *bounded[Candle]) {
	g.dst.mu.Lock()
	defer g.dst.mu.Unlock()
	g.dst.generated = true
	n := src.len()
	if n == 0 {
		return
	}
	a := agg{start: g.bucket.start(int64(src.at(0)[ColTimestamp]))}
	// When the 1m ring is full, its oldest bucket may have lost minutes to
	// eviction: skip it unless it starts exactly at the oldest candle.
	partial := src.full() && a.start != int64(src.at(0)[ColTimestamp])
	for i := range n {
		c := src.at(i)
		start := g.bucket.start(int64(c[ColTimestamp]))
		if start != a.start {
			if !partial {
				_, _ = upsertCandle(&g.dst.ring, a.candle())
			}
			partial = false
			a = agg{start: start}
		}
		if i == n-1 {
			g.prefix = a
		}
		a = a.add(c)
	}
	if !partial {
		_, _ = upsertCandle(&g.dst.ring, a.candle())
	}
}

// Candles returns a copy of the newest n candles of the series, oldest
// first; all of them when n ≤ 0 or n exceeds Len. The copy is the caller's:
// later writes do not change it. Nil when the series is unknown or empty.
func (s *Store) Candles(exchange, symbol, timeframe string, n int) [][6]float64 {
	se := s.series(exchange, symbol, timeframe)
	if se == nil {
		return nil
	}
	se.mu.RLock()
	defer se.mu.RUnlock()
	return se.ring.lastN(n)
}

// AppendCandles is Candles appending to dst, so that a caller reading on
// every tick can reuse one buffer: buf = s.AppendCandles(buf[:0], …).
func (s *Store) AppendCandles(dst [][6]float64, exchange, symbol, timeframe string, n int) [][6]float64 {
	se := s.series(exchange, symbol, timeframe)
	if se == nil {
		return dst
	}
	se.mu.RLock()
	defer se.mu.RUnlock()
	return se.ring.appendLast(dst, n)
}

// CurrentCandle returns the newest candle of the series: for a generated
// timeframe, the forming one.
func (s *Store) CurrentCandle(exchange, symbol, timeframe string) ([6]float64, bool) {
	se := s.series(exchange, symbol, timeframe)
	if se == nil {
		return Candle{}, false
	}
	se.mu.RLock()
	defer se.mu.RUnlock()
	return se.ring.last()
}

// CandleAt returns the candle of the series with timestamp ts (binary
// search, O(log n)).
func (s *Store) CandleAt(exchange, symbol, timeframe string, ts int64) ([6]float64, bool) {
	se := s.series(exchange, symbol, timeframe)
	if se == nil {
		return Candle{}, false
	}
	se.mu.RLock()
	defer se.mu.RUnlock()
	i := searchCandle(&se.ring, float64(ts))
	if i == se.ring.len() || se.ring.at(i)[ColTimestamp] != float64(ts) {
		return Candle{}, false
	}
	return se.ring.at(i), true
}

// Len returns the number of candles held by the series.
func (s *Store) Len(exchange, symbol, timeframe string) int {
	se := s.series(exchange, symbol, timeframe)
	if se == nil {
		return 0
	}
	se.mu.RLock()
	defer se.mu.RUnlock()
	return se.ring.len()
}

// series returns an existing series, or nil.
func (s *Store) series(exchange, symbol, timeframe string) *series {
	k, err := seriesKeyOf(exchange, symbol, timeframe)
	if err != nil {
		return nil
	}
	return s.state().candles.get(k)
}
