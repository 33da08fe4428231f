package marketdata

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
)

// Integrity configures how the streaming node keeps its klines equal to
// the exchange's REST history (see the package documentation for the
// guarantee). The zero value takes every default.
type Integrity struct {
	// ReconcileDelay is how long a disturbance waits before its series is
	// reconciled (default 250 ms): the disturbances of that time join it,
	// and after a reconnect the first events have arrived.
	ReconcileDelay time.Duration
	// VerifyEvery is the period of the background verification (default
	// 5 min; negative: none). Each series is verified once per period, the
	// series spread evenly over it.
	VerifyEvery time.Duration
	// VerifyDepth is how many of a series' newest closed klines a
	// verification compares (default 99: one request of limit 100,
	// weight 1).
	VerifyDepth int
	// WeightPerMinute bounds the REST request weight reconciliations spend
	// per minute (default 600, a quarter of Binance's 2400 per IP); beyond
	// it they wait, and go on coalescing.
	WeightPerMinute int
	// Concurrency is how many series are reconciled at once (default 4).
	Concurrency int
}

func (c Integrity) withDefaults() Integrity {
	if c.ReconcileDelay <= 0 {
		c.ReconcileDelay = 250 * time.Millisecond
	}
	if c.VerifyEvery == 0 {
		c.VerifyEvery = 5 * time.Minute
	}
	if c.VerifyDepth <= 0 {
		c.VerifyDepth = 99
	}
	if c.WeightPerMinute <= 0 {
		c.WeightPerMinute = 600
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	return c
}

// klinesWeight is the REST weight of one klines request of limit (Binance
// USDⓈ-M: ≤100 → 1, ≤500 → 2, ≤1000 → 5, above → 10).
func klinesWeight(limit int) int {
	switch {
	case limit <= 100:
		return 1
	case limit <= 500:
		return 2
	case limit <= 1000:
		return 5
	}
	return 10
}

// Why a series is reconciled. A reconciliation is counted under the first
// of its reasons in this order.
const (
	reasonRetry     = 1 << iota // an earlier reconciliation of it failed
	reasonConflict              // a final disagreed with the one kept
	reasonGap                   // a bar went by without its final
	reasonSilence               // the exchange's clock passed a bar whose final never came
	reasonStart                 // streaming started (a new term): nothing is known good
	reasonReconnect             // a stream connection was (re-)established
	reasonVerify                // the periodic verification
	numReasons      = iota
)

var reasonNames = [numReasons]string{"retry", "conflict", "gap", "silence", "start", "reconnect", "verify"}

// ReconcileReasons lists the reasons a reconciliation is counted under, in
// the order of IntegrityStats.Reconciliations.
func ReconcileReasons() []string { return reasonNames[:] }

func primaryReason(r int) int {
	for i := range numReasons {
		if r&(1<<i) != 0 {
			return i
		}
	}
	return numReasons - 1
}

// Kinds of repair, as IntegrityStats.Repaired counts them.
const (
	repairMissing    = iota // REST has a closed kline the store lacked
	repairInProgress        // the store held an in-progress version of a closed kline
	repairDiffers           // the store held a final that REST contradicts
	numRepairs
)

var repairNames = [numRepairs]string{"missing", "in_progress", "differs"}

// Kinds of kline event the integrity checks drop.
const (
	dropDuplicate = iota // a final equal to the one kept
	dropConflict         // a final that disagrees with the one kept
	dropStale            // an in-progress update of a bar that has closed
	dropInvalid          // not a kline of its series (open time, close time, prices)
	numDrops
)

var dropNames = [numDrops]string{"duplicate", "conflict", "stale", "invalid"}

// integrityStats are the node's cumulative integrity counters.
type integrityStats struct {
	conflicts       atomic.Uint64
	settled         atomic.Uint64
	reconciliations [numReasons]atomic.Uint64
	skipped         atomic.Uint64
	failures        atomic.Uint64
	compared        atomic.Uint64
	repaired        [numRepairs]atomic.Uint64
	dropped         [numDrops]atomic.Uint64
	weight          atomic.Uint64
	pending         atomic.Int64 // series with a reconciliation pending or running (this term)
}

// IntegrityStats is a snapshot of the kline integrity counters.
type IntegrityStats struct {
	// Conflicts counts finals that disagreed with the final kept for their
	// open time (first from the stream, or REST's); Settled those REST has
	// decided since.
	Conflicts, Settled uint64
	// Reconciliations counts series compared with REST, by reason (the
	// names of ReconcileReasons); Skipped the disturbances that needed no
	// request (no bar had closed since the last known good one); Failures
	// the reconciliations that failed (retried).
	Reconciliations map[string]uint64
	Skipped         uint64
	Failures        uint64
	// Compared counts closed klines compared with REST; Repaired those
	// written from REST, by kind: missing, in_progress, differs.
	Compared uint64
	Repaired map[string]uint64
	// Dropped counts kline events not written, by kind: duplicate,
	// conflict, stale (an in-progress update of a closed bar), invalid.
	Dropped map[string]uint64
	// Weight is the REST request weight reconciliations asked for.
	Weight uint64
	// Pending is the number of series whose reconciliation is pending or
	// running now.
	Pending int
}

// IntegrityStats returns the node's kline integrity counters.
func (n *Node) IntegrityStats() IntegrityStats {
	st := &n.ist
	out := IntegrityStats{
		Conflicts: st.conflicts.Load(), Settled: st.settled.Load(),
		Reconciliations: map[string]uint64{}, Skipped: st.skipped.Load(), Failures: st.failures.Load(),
		Compared: st.compared.Load(), Repaired: map[string]uint64{}, Dropped: map[string]uint64{},
		Weight: st.weight.Load(), Pending: int(st.pending.Load()),
	}
	for i, name := range reasonNames {
		out.Reconciliations[name] = st.reconciliations[i].Load()
	}
	for i, name := range repairNames {
		out.Repaired[name] = st.repaired[i].Load()
	}
	for i, name := range dropNames {
		out.Dropped[name] = st.dropped[i].Load()
	}
	return out
}

// barClock maps a series' open times to bar numbers: consecutive bars
// have consecutive numbers.
type barClock struct {
	ms    int64 // bar length; 0 for calendar months
	shift int64 // open times are shift + k·ms (weeks open on Mondays)
}

const (
	msMinute = int64(time.Minute / time.Millisecond)
	msDay    = 24 * 60 * msMinute
)

func newBarClock(interval string) barClock {
	switch interval {
	case "1M":
		return barClock{}
	case "1w":
		return barClock{ms: 7 * msDay, shift: 4 * msDay} // 1970-01-05 was a Monday
	}
	d, err := keyspace.IntervalDuration(interval)
	if err != nil {
		return barClock{ms: msMinute} // New refuses unknown intervals
	}
	return barClock{ms: d.Milliseconds()}
}

// at returns the number of the bar containing t (ms).
func (c barClock) at(t int64) int64 {
	if c.ms == 0 {
		u := time.UnixMilli(t).UTC()
		return int64(u.Year())*12 + int64(u.Month()) - 1
	}
	d := t - c.shift
	if d < 0 {
		return (d - c.ms + 1) / c.ms
	}
	return d / c.ms
}

// open returns the open time of bar i.
func (c barClock) open(i int64) int64 {
	if c.ms == 0 {
		return time.Date(int(i/12), time.Month(i%12+1), 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	}
	return c.shift + i*c.ms
}

// index returns the bar opening at open; false when no bar opens then.
func (c barClock) index(open int64) (int64, bool) {
	i := c.at(open)
	return i, c.open(i) == open
}

// canon is a decimal as compared: without trailing zeros after the point
// ("85000.10" and "85000.1" are the same price).
func canon(s string) string {
	if strings.IndexByte(s, '.') < 0 {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// klineHash identifies a kline's values (open time to taker volumes,
// decimals canonical), whatever its Closed flag.
func klineHash(k *exchange.Kline) uint64 {
	h := fnv.New64a()
	var b [20]byte
	h.Write(strconv.AppendInt(b[:0], k.OpenTime, 10))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(b[:0], k.CloseTime, 10))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(b[:0], k.Trades, 10))
	for _, s := range []string{k.Open, k.High, k.Low, k.Close, k.Volume, k.QuoteVolume, k.TakerBuyBase, k.TakerBuyQuote} {
		h.Write([]byte{0})
		h.Write([]byte(canon(s)))
	}
	return h.Sum64()
}

// sameKline reports whether a and b are the same closed kline.
func sameKline(a, b *exchange.Kline) bool {
	return a.Closed && b.Closed && klineHash(a) == klineHash(b)
}

// validKline reports whether k can be a kline of bar i of its series:
// its close time ends the bar, its prices and volumes are non-negative
// decimals (the quote and taker volumes may be absent), and
// low ≤ open, close ≤ high.
func validKline(c barClock, i int64, k *exchange.Kline) bool {
	if k.CloseTime != c.open(i+1)-1 || k.Trades < 0 {
		return false
	}
	var v [8]float64
	for j, s := range []string{k.Open, k.High, k.Low, k.Close, k.Volume, k.QuoteVolume, k.TakerBuyBase, k.TakerBuyQuote} {
		if s == "" && j > 4 {
			continue // the quote and taker volumes are optional
		}
		if j >= 4 && plainNonNegative(s) {
			continue // a volume needs no value, only to be one ≥ 0
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f != f {
			return false
		}
		v[j] = f
	}
	o, h, l, cl := v[0], v[1], v[2], v[3]
	return l <= o && l <= cl && o <= h && cl <= h
}

// plainNonNegative reports, without parsing it, that s is a decimal
// strconv.ParseFloat reads as a finite number ≥ 0: digits with at most
// one point, not too long to overflow. false says nothing.
func plainNonNegative(s string) bool {
	if s == "" || len(s) > 300 {
		return false
	}
	digits, points := 0, 0
	for i := range len(s) {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

// finalRec is the final kept for one bar: its values' hash, and whether it
// came from REST (then no stream final can dispute it).
type finalRec struct {
	bar  int64
	hash uint64
	rest bool
	set  bool
}

// seriesState is what the integrity checks know of one series during a
// term. Guarded by integrity.mu.
type seriesState struct {
	id   seriesID
	idx  int // in integrity.list
	key  keyspace.Key
	bars barClock
	// finals holds the final kept per bar for the last len(finals) bars,
	// at bar mod len.
	finals []finalRec
	// newest is the newest bar any event was for (-1: none yet).
	newest int64
	// good is the newest bar up to which every closed kline is known good:
	// compared with REST, or a final kept in order after such a bar
	// (-1: none; the term's first reconciliation covers the window).
	good int64

	// The pending reconciliation: reasons (0: none), the first bar to
	// compare (-1 with reasonStart: the whole window), when it is due.
	reasons int
	from    int64
	due     time.Time
	running bool
	attempt int // failed reconciliations in a row
	// conflicts counts the conflicts not settled yet.
	conflicts int

	nextVerify time.Time
	// loggedConflict is when a conflict of this series was last logged;
	// quiet counts those not logged since.
	loggedConflict time.Time
	quiet          int
}

// busy reports whether st's reconciliation is pending or running.
func (st *seriesState) busy() bool { return st.reasons != 0 || st.running }

// track keeps the pending count: was is st.busy() before a change. The
// caller holds ig.mu.
func (ig *integrity) track(st *seriesState, was bool) {
	if is := st.busy(); is != was {
		if is {
			ig.pending[st] = struct{}{}
			ig.n.ist.pending.Add(1)
		} else {
			delete(ig.pending, st)
			ig.n.ist.pending.Add(-1)
		}
	}
}

// untrack takes the term's pending reconciliations out of the node's
// count once the term has ended (several groups' terms share the count).
func (ig *integrity) untrack() {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	ig.n.ist.pending.Add(-int64(len(ig.pending)))
	clear(ig.pending)
}

func (st *seriesState) final(bar int64) (finalRec, bool) {
	if bar < 0 {
		return finalRec{}, false
	}
	r := st.finals[int(bar%int64(len(st.finals)))]
	return r, r.set && r.bar == bar
}

func (st *seriesState) keep(bar int64, hash uint64, rest bool) {
	st.finals[int(bar%int64(len(st.finals)))] = finalRec{bar: bar, hash: hash, rest: rest, set: true}
}

// advance moves good over the bars whose finals follow it.
func (st *seriesState) advance() {
	if st.good < 0 {
		return
	}
	for {
		if _, ok := st.final(st.good + 1); !ok {
			return
		}
		st.good++
	}
}

// integrity is one term's kline integrity state: what each series has
// kept, which series need a reconciliation, and the exchange's clock.
//
// Lock order: buffer.write (held by a flush, and by a reconciliation from
// its read of the store to the end of its writes), then buffer.mu, then
// integrity.mu.
type integrity struct {
	n   *Node
	cfg Integrity
	b   *buffer

	// clock is the exchange's clock as its events tell it: the largest
	// event time received (ms), 0 before any.
	clock atomic.Int64
	// wake tells the reconciler a reconciliation may be due.
	wake chan struct{}

	mu sync.Mutex // guards the seriesState values and pending
	// pending holds the busy series, the ones counted in the node's
	// pending: due looks among them for a reconciliation that is due.
	pending map[*seriesState]struct{}
	// scanned is when due last walked every series, scannedMinute the
	// exchange clock's minute then; verifyNext is the index in list of
	// the next series to verify.
	scanned       time.Time
	scannedMinute int64
	verifyNext    int
	// byID is the series by symbol and interval, fixed at creation
	// (read without the lock).
	byID map[seriesID]*seriesState
	list []*seriesState // in a fixed order: verification phases
}

// newIntegrity returns the state of a term that is starting: every series
// is due for a reconciliation of its whole window.
func (n *Node) newIntegrity(b *buffer) *integrity {
	cfg := n.cfg.Integrity.withDefaults()
	ig := &integrity{n: n, cfg: cfg, b: b, wake: make(chan struct{}, 1), byID: map[seriesID]*seriesState{}, pending: map[*seriesState]struct{}{}}
	keep := min(max(n.cfg.Window, cfg.VerifyDepth+2), 1500) + 2
	now := time.Now()
	for _, id := range sortedSeries(b.sg.series) {
		key := b.sg.series[id]
		st := &seriesState{id: id, idx: len(ig.list), key: key, bars: newBarClock(id.interval), finals: make([]finalRec, keep), newest: -1, good: -1}
		ig.byID[id] = st
		ig.list = append(ig.list, st)
	}
	for i, st := range ig.list {
		if cfg.VerifyEvery > 0 {
			st.nextVerify = now.Add(cfg.VerifyEvery * time.Duration(i+1) / time.Duration(len(ig.list)))
		}
		ig.disturbLocked(st, reasonStart, -1, now)
	}
	return ig
}

func sortedSeries(m map[seriesID]keyspace.Key) []seriesID {
	out := make([]seriesID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b seriesID) int {
		if c := strings.Compare(a.symbol, b.symbol); c != 0 {
			return c
		}
		return strings.Compare(a.interval, b.interval)
	})
	return out
}

// observe advances the exchange clock to an event's time.
func (ig *integrity) observe(eventTime int64) {
	for {
		c := ig.clock.Load()
		if eventTime <= c || ig.clock.CompareAndSwap(c, eventTime) {
			return
		}
	}
}

// disturbLocked asks for a reconciliation of st from bar from (-1: from
// the first bar not known good), for reason. The caller holds ig.mu.
func (ig *integrity) disturbLocked(st *seriesState, reason int, from int64, now time.Time) {
	if ig.n.rest == nil {
		return // nothing to reconcile with
	}
	defer ig.track(st, st.busy())
	if from < 0 && st.good >= 0 {
		from = st.good + 1
	}
	if st.reasons == 0 {
		st.due = now.Add(ig.cfg.ReconcileDelay)
		st.from = from
		select {
		case ig.wake <- struct{}{}:
		default:
		}
	} else if from < st.from {
		st.from = from
	}
	if reason == reasonStart {
		st.from = -1
	}
	st.reasons |= reason
}

// refill asks for a reconciliation of series id over the whole window
// (its key was replaced: nothing stored can be trusted).
func (ig *integrity) refill(id seriesID) {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	if st := ig.byID[id]; st != nil {
		ig.disturbLocked(st, reasonStart, -1, time.Now())
	}
}

// reconnected asks for every series' reconciliation after a connection
// came (back): the bars that closed meanwhile are compared with REST.
func (ig *integrity) reconnected() {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	now := time.Now()
	for _, st := range ig.list {
		ig.disturbLocked(st, reasonReconnect, -1, now)
	}
}

// admit decides whether a kline event of series key goes to the buffer.
// A final (x=true) is kept when it is the first valid one of its bar; a
// later one that disagrees is a conflict, dropped and settled by REST. An
// in-progress update is dropped once its bar has a final or a later bar
// has begun. An event for a bar after one that never had its final is a
// gap. The caller holds the buffer's lock.
func (ig *integrity) admit(st *seriesState, k *exchange.Kline, eventTime int64) bool {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	stats := &ig.n.ist
	// Invalid too: a bar after the one the exchange's clock is in, a final
	// sent before its bar closed.
	bar, ok := st.bars.index(k.OpenTime)
	clk := ig.clock.Load()
	if !ok || !validKline(st.bars, bar, k) || clk > 0 && bar > st.bars.at(clk)+1 ||
		k.Closed && eventTime > 0 && eventTime+1000 < k.CloseTime {
		stats.dropped[dropInvalid].Add(1)
		return false
	}
	if st.newest >= 0 && bar <= st.newest-int64(len(st.finals))+1 {
		stats.dropped[dropStale].Add(1) // older than anything kept
		return false
	}
	now := time.Now()
	admit := true
	if k.Closed {
		h := klineHash(k)
		if r, ok := st.final(bar); ok {
			admit = false
			if r.hash == h {
				stats.dropped[dropDuplicate].Add(1)
			} else {
				stats.dropped[dropConflict].Add(1)
				ig.conflict(st, bar, r.rest, now)
			}
		} else {
			st.keep(bar, h, false)
			if bar == st.good+1 {
				st.advance()
			}
		}
	} else if _, final := st.final(bar); final || bar < st.newest {
		stats.dropped[dropStale].Add(1)
		admit = false
	}
	if bar > st.newest {
		st.newest = bar
	}
	// A bar before this one never had its final: a gap.
	if st.good >= 0 && bar > st.good+1 {
		ig.disturbLocked(st, reasonGap, st.good+1, now)
	}
	return admit
}

// conflict records a final of bar that disagrees with the one kept. One
// REST has decided is settled at once; one the stream delivered first is
// settled by a reconciliation from that bar.
func (ig *integrity) conflict(st *seriesState, bar int64, byREST bool, now time.Time) {
	stats := &ig.n.ist
	stats.conflicts.Add(1)
	if byREST {
		stats.settled.Add(1)
	} else {
		st.conflicts++
		ig.disturbLocked(st, reasonConflict, bar, now)
	}
	// Logged once per series, then at most once an hour with the count.
	switch {
	case st.loggedConflict.IsZero():
		ig.n.cfg.Logger.Warn("marketdata: a stream repeated a closed kline with other values; the first is kept and REST decides (further conflicts of this series are counted, logged hourly)",
			"symbol", st.id.symbol, "interval", st.id.interval, "open_time", st.bars.open(bar), "kept_from_rest", byREST)
		st.loggedConflict = now
	case now.Sub(st.loggedConflict) >= time.Hour:
		ig.n.cfg.Logger.Warn("marketdata: kline conflicts continue", "symbol", st.id.symbol, "interval", st.id.interval, "since_last_log", st.quiet+1)
		st.loggedConflict, st.quiet = now, 0
	default:
		st.quiet++
	}
}

var (
	descConflicts = prometheus.NewDesc("tradecache_marketdata_kline_conflicts_total", "Stream finals that disagreed with the final kept for their open time.", nil, nil)
	descSettled   = prometheus.NewDesc("tradecache_marketdata_kline_conflicts_settled_total", "Kline conflicts REST has decided.", nil, nil)
	descRecon     = prometheus.NewDesc("tradecache_marketdata_reconciliations_total", "Series compared with REST, by reason: start, reconnect, silence, gap, conflict, retry, verify.", []string{"reason"}, nil)
	descReconFail = prometheus.NewDesc("tradecache_marketdata_reconcile_failures_total", "Reconciliations with REST that failed (retried with backoff).", nil, nil)
	descCompared  = prometheus.NewDesc("tradecache_marketdata_klines_compared_total", "Closed klines compared with REST.", nil, nil)
	descRepaired  = prometheus.NewDesc("tradecache_marketdata_klines_repaired_total", "Closed klines written from REST, by what the store held: missing, in_progress or differs.", []string{"kind"}, nil)
	descReconW    = prometheus.NewDesc("tradecache_marketdata_reconcile_weight_total", "REST request weight spent by reconciliations.", nil, nil)
	descDropped   = prometheus.NewDesc("tradecache_marketdata_kline_events_dropped_total", "Kline events not written, by reason: duplicate, conflict, stale (in-progress update of a closed bar), invalid.", []string{"reason"}, nil)
	descPending   = prometheus.NewDesc("tradecache_marketdata_reconcile_pending", "Series whose reconciliation with REST is pending or running.", nil, nil)

	integrityDescs = []*prometheus.Desc{descConflicts, descSettled, descRecon, descReconFail, descCompared, descRepaired, descReconW, descDropped, descPending}
)

// collectIntegrity sends the integrity metrics.
func (n *Node) collectIntegrity(ch chan<- prometheus.Metric) {
	st := n.IntegrityStats()
	cnt := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	cnt(descConflicts, st.Conflicts)
	cnt(descSettled, st.Settled)
	for _, r := range reasonNames {
		cnt(descRecon, st.Reconciliations[r], r)
	}
	cnt(descReconFail, st.Failures)
	cnt(descCompared, st.Compared)
	for _, r := range repairNames {
		cnt(descRepaired, st.Repaired[r], r)
	}
	cnt(descReconW, st.Weight)
	for _, r := range dropNames {
		cnt(descDropped, st.Dropped[r], r)
	}
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
}
