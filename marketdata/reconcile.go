package marketdata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/lifecycle"
	"github.com/tradecache/tradecache/leader"
)

// reconcileTick is how often the reconciler calls due while a
// reconciliation is pending or running, scanEvery how often otherwise;
// maxScanGap bounds the time between two walks of every series (see due).
const (
	reconcileTick = 50 * time.Millisecond
	scanEvery     = 250 * time.Millisecond
	maxScanGap    = 5 * time.Second
)

// job is one series' reconciliation, as scheduled.
type job struct {
	st      *seriesState
	reasons int
	// from is the first bar to compare; -1: the whole window.
	from int64
	// closed is the newest bar known closed when it was scheduled; newest
	// the newest bar any event was for.
	closed, newest int64
	conflicts      int
}

// reconcileLoop runs the term's reconciliations until ctx ends or a write
// is fenced. A failed one is retried, with a capped backoff, until it
// succeeds: a gap must not wait for the next disturbance.
func (n *Node) reconcileLoop(ctx context.Context, s sink, ig *integrity) error {
	if n.rest == nil {
		return nil
	}
	t := time.NewTimer(reconcileTick)
	defer t.Stop()
	failing := map[*seriesState]error{}
	for {
		// While nothing is pending the loop wakes at scanEvery only: an
		// idle leader's wake-ups are most of what it costs.
		t.Reset(ig.nextLook())
		if jobs := ig.due(time.Now()); len(jobs) > 0 {
			if err := ig.run(ctx, s, jobs, failing); err != nil {
				return err
			}
			if ctx.Err() == nil {
				var one error
				for _, err := range failing {
					one = err
					break
				}
				ig.b.sg.sh.backfilled(one)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-ig.wake:
		}
	}
}

// closedBar returns the newest bar of st known closed: the one before the
// newest bar seen or before the exchange clock's, or the newest itself
// once its final arrived. The caller holds ig.mu.
func (ig *integrity) closedBar(st *seriesState) int64 {
	c := st.newest - 1
	if _, ok := st.final(st.newest); ok {
		c = st.newest
	}
	if clk := ig.clock.Load(); clk > 0 {
		c = max(c, st.bars.at(clk)-1)
	}
	return c
}

// silence asks for a reconciliation of st if a whole bar has closed after
// the first one whose final never came, and nothing has asked for one
// yet. The caller holds ig.mu.
func (ig *integrity) silence(st *seriesState, now time.Time) {
	if st.good >= 0 && st.reasons == 0 && !st.running && ig.closedBar(st) >= st.good+2 {
		ig.disturbLocked(st, reasonSilence, st.good+1, now)
	}
}

// nextLook is how long the reconciler may wait before calling due again
// (a disturbance wakes it earlier).
func (ig *integrity) nextLook() time.Duration {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	if len(ig.pending) > 0 {
		return reconcileTick
	}
	return scanEvery
}

// due raises the disturbances the clock reveals (silence, verification)
// and returns the reconciliations due now, marking them running.
//
// It looks at as few series as it can: silence only changes when the
// exchange's clock enters another minute (every bar of every interval
// starts on a minute), so every series is walked then, or after
// maxScanGap; verifications come due in the order of ig.list (they are
// spread over VerifyEvery in that order and each moves on by
// VerifyEvery), so a cursor meets them; and only the series with a
// pending reconciliation are looked at for one that is due. At 1,000
// series, a walk every 50 ms — a few cache misses per series — was a
// visible part of an idle leader's CPU.
func (ig *integrity) due(now time.Time) []job {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	if minute := ig.clock.Load() / msMinute; minute != ig.scannedMinute || now.Sub(ig.scanned) >= maxScanGap {
		ig.scanned, ig.scannedMinute = now, minute
		for _, st := range ig.list {
			ig.silence(st, now)
		}
	}
	if ig.cfg.VerifyEvery > 0 {
		for range ig.list {
			st := ig.list[ig.verifyNext]
			if now.Before(st.nextVerify) {
				break
			}
			st.nextVerify = st.nextVerify.Add(ig.cfg.VerifyEvery)
			if st.nextVerify.Before(now) {
				st.nextVerify = now.Add(ig.cfg.VerifyEvery)
			}
			if st.good >= 0 {
				ig.disturbLocked(st, reasonVerify, max(ig.closedBar(st)-int64(ig.cfg.VerifyDepth)+1, 0), now)
			}
			ig.verifyNext = (ig.verifyNext + 1) % len(ig.list)
		}
	}
	if len(ig.pending) == 0 {
		return nil
	}
	// In ig.list's order, so that a term's first reconciliations go in
	// name order.
	cands := make([]*seriesState, 0, len(ig.pending))
	for st := range ig.pending {
		if st.reasons != 0 && !st.running && !now.Before(st.due) {
			cands = append(cands, st)
		}
	}
	slices.SortFunc(cands, func(a, b *seriesState) int { return cmp.Compare(a.idx, b.idx) })
	var jobs []job
	for _, st := range cands {
		closed := ig.closedBar(st)
		from := st.from
		if from < 0 && st.good >= 0 && st.reasons&reasonStart == 0 {
			from = st.good + 1
		}
		if from >= 0 && from > closed {
			// Nothing has closed since the last bar known good: nothing to
			// compare (a reconnect that lost nothing).
			ig.n.ist.skipped.Add(1)
			st.reasons = 0
			ig.track(st, true)
			continue
		}
		jobs = append(jobs, job{st: st, reasons: st.reasons, from: from, closed: closed, newest: st.newest, conflicts: st.conflicts})
		st.running, st.reasons, st.conflicts = true, 0, 0
	}
	return jobs
}

// run runs jobs, Concurrency at a time, and records their outcomes. It
// returns errFenced when a write was fenced.
func (ig *integrity) run(ctx context.Context, s sink, jobs []job, failing map[*seriesState]error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ig.cfg.Concurrency)
	var mu sync.Mutex // guards fenced, failing, starts, written
	var fenced bool
	starts, written, began := 0, 0, time.Now()
	for _, j := range jobs {
		g.Go(func() error {
			res, err := ig.reconcile(gctx, s, j)
			ig.finish(j, res, err)
			mu.Lock()
			defer mu.Unlock()
			if j.reasons&reasonStart != 0 {
				starts++
				for _, c := range res.repaired {
					written += c
				}
			}
			switch {
			case err == nil:
				delete(failing, j.st)
			case leader.IsFenced(err):
				fenced = true
			case gctx.Err() == nil:
				failing[j.st] = fmt.Errorf("%s %s: %w", j.st.id.symbol, j.st.id.interval, err)
			}
			return nil
		})
	}
	g.Wait()
	if fenced {
		ig.n.st.Fenced.Add(1)
		return errFenced
	}
	if starts > 0 {
		ig.n.cfg.Logger.Info("marketdata: backfilled from REST", "series", starts, "failed", len(failing),
			"klines", written, "took", time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// result is what a reconciliation compared and repaired.
type result struct {
	first, last int64 // bars compared (last < first: none)
	repaired    [numRepairs]int
}

// reconcile compares st's closed klines from j.from (or the whole window)
// with REST and writes REST's where the store differs: missing, still in
// progress, or another final. REST's finals are then the kept ones: no
// stream final can replace them, and buffered updates that disagree are
// dropped.
// maxRepublish bounds the repaired klines one reconciliation publishes as
// events.
const maxRepublish = 100

func (ig *integrity) reconcile(ctx context.Context, s sink, j job) (result, error) {
	n, st := ig.n, j.st
	res := result{first: 0, last: -1}
	window := min(n.cfg.Window, 1500)
	var start int64
	limit := window
	if j.from >= 0 {
		// From the first bar not known good to the newest closed one, and
		// one more: the open bar tells the last of them is closed.
		first := max(j.from, j.closed-int64(window)+2)
		limit = int(j.closed - first + 2)
		start = st.bars.open(first)
	}
	w := klinesWeight(limit)
	if err := n.rbudget.take(ctx, ig.cfg.WeightPerMinute, w); err != nil {
		return res, err
	}
	n.ist.weight.Add(uint64(w))
	n.ist.reconciliations[primaryReason(j.reasons)].Add(1)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ks, err := n.rest.Klines(rctx, st.id.symbol, st.id.interval, start, 0, limit)
	cancel()
	if err != nil {
		return res, err
	}

	// The closed ones: every kline but the newest bar (which the stream
	// owns while it is open), unless REST says that one is closed too.
	// The exchange's clock decides, not ours: a simulated exchange may run
	// faster.
	newest := j.newest
	for i := range ks {
		if b, ok := st.bars.index(ks[i].OpenTime); ok {
			newest = max(newest, b)
		}
	}
	type barKline struct {
		bar int64
		k   exchange.Kline
	}
	var closed []barKline
	for _, k := range ks {
		b, ok := st.bars.index(k.OpenTime)
		if !ok || k.Symbol != st.id.symbol && k.Symbol != "" || (b >= newest && !k.Closed) || !validKline(st.bars, b, &k) {
			continue
		}
		k.Symbol, k.Interval, k.Closed = st.id.symbol, st.id.interval, true
		closed = append(closed, barKline{b, k})
	}
	if len(closed) == 0 {
		return res, nil
	}
	res.first, res.last = closed[0].bar, closed[len(closed)-1].bar

	// From here to the end of the writes no flush writes: the store read
	// is the store written.
	ig.b.write.Lock()
	defer ig.b.write.Unlock()
	held, err := s.klines(ctx, st.key, min(n.cfg.Window, len(ks)+3))
	if err != nil {
		return res, err
	}
	have := make(map[int64]exchange.Kline, len(held))
	for _, k := range held {
		have[k.OpenTime] = k
	}
	var writes []exchange.Kline
	for i := range closed {
		k := &closed[i].k
		h, ok := have[k.OpenTime]
		switch {
		case !ok:
			res.repaired[repairMissing]++
		case !h.Closed:
			res.repaired[repairInProgress]++
		case !sameKline(&h, k):
			res.repaired[repairDiffers]++
		default:
			continue
		}
		writes = append(writes, *k)
	}
	if len(writes) > 0 {
		// On a cluster the lease is checked right before the write (the
		// REST call above may have waited on the weight budget); a check
		// that fails for another reason retries the reconciliation.
		if err := leaseHeld(ctx, s); err != nil {
			return res, err
		}
		r := s.putSeries(ctx, []seriesWrite{{key: st.key, ks: writes}})[0]
		if r.err != nil {
			return res, r.err
		}
		ig.n.repaired(ig.b.sg, st.key, r.rp)
		if j.reasons&reasonStart == 0 {
			// Readers that follow the events (a live Store) get the
			// repaired finals too: the newest maxRepublish of them. A
			// term's first backfill is not news: they read it at start.
			for _, k := range writes[max(0, len(writes)-maxRepublish):] {
				n.publish("kline", &k)
			}
		}
	}

	// REST's finals are kept from now on; what the buffer holds against
	// them is dropped.
	ig.b.mu.Lock()
	ig.mu.Lock()
	bm := ig.b.klines[st]
	for i := range closed {
		c := &closed[i]
		if bm != nil {
			if j := bm.index(c.k.OpenTime); j >= 0 && !sameKline(&(*bm)[j], &c.k) {
				bm.remove(j)
			}
		}
		st.keep(c.bar, klineHash(&c.k), true)
	}
	if bm != nil && len(*bm) == 0 {
		delete(ig.b.klines, st)
		delete(ig.b.oldest, st)
	}
	// Known good now up to the last bar compared, if the comparison began
	// at the first bar not known good (bars before the window's start, left
	// out, are trimmed anyway).
	if st.good < 0 && j.from < 0 || st.good >= 0 && j.from >= 0 && j.from <= st.good+1 {
		st.good = max(st.good, res.last)
		st.advance()
	}
	ig.mu.Unlock()
	ig.b.mu.Unlock()
	return res, nil
}

// finish records a reconciliation's outcome: a failure is due again after
// a capped backoff, with its reasons and those that came meanwhile.
func (ig *integrity) finish(j job, res result, err error) {
	n, st := ig.n, j.st
	if j.reasons&reasonStart != 0 {
		// The window is written (or REST failed: the stream's klines are
		// better than none meanwhile); the stream's may follow. Before
		// ig.mu: the buffer's lock comes first.
		ig.b.release(st.key)
	}
	now := time.Now()
	ig.mu.Lock()
	defer ig.mu.Unlock()
	defer func() {
		ig.track(st, true)
		// Silence that arose while it ran is found now, not at the next
		// walk of every series.
		ig.silence(st, now)
	}()
	st.running = false
	if err != nil {
		n.ist.failures.Add(1)
		st.conflicts += j.conflicts
		if st.reasons == 0 {
			st.from = j.from
		} else {
			st.from = min(st.from, j.from)
		}
		st.reasons |= j.reasons | reasonRetry
		st.due = now.Add(min(time.Second<<min(st.attempt, 5), 30*time.Second))
		if st.attempt%10 == 0 && !errors.Is(err, context.Canceled) {
			n.cfg.Logger.Warn("marketdata: reconciliation with REST failed; retrying", "symbol", st.id.symbol, "interval", st.id.interval,
				"reason", reasonNames[primaryReason(j.reasons)], "attempt", st.attempt+1, "err", err)
		}
		st.attempt++
		return
	}
	st.attempt = 0
	n.ist.settled.Add(uint64(j.conflicts))
	if res.last >= res.first {
		n.ist.compared.Add(uint64(res.last - res.first + 1))
	}
	written := 0
	for i, c := range res.repaired {
		n.ist.repaired[i].Add(uint64(c))
		written += c
	}
	if written > 0 {
		n.st.BackfillKline.Add(uint64(written))
		if j.reasons&(reasonStart|reasonReconnect|reasonGap|reasonSilence|reasonRetry) != 0 {
			n.st.Backfills.Add(1)
		}
		// A term's first reconciliation is its backfill: summed up by run.
		level := slog.LevelInfo
		if j.reasons&reasonStart != 0 {
			level = slog.LevelDebug
		}
		n.cfg.Logger.Log(context.Background(), level, "marketdata: klines repaired from REST", "symbol", st.id.symbol, "interval", st.id.interval,
			"reason", reasonNames[primaryReason(j.reasons)], "from", st.bars.open(res.first), "to", st.bars.open(res.last),
			"missing", res.repaired[repairMissing], "in_progress", res.repaired[repairInProgress], "differs", res.repaired[repairDiffers])
	}
	// What came meanwhile and this reconciliation covered needs nothing
	// more: a gap, silence or reconnect within the bars just compared.
	if st.reasons != 0 && st.reasons&^(reasonGap|reasonSilence|reasonReconnect) == 0 && st.from >= 0 && st.from <= st.good {
		st.reasons = 0
	}
}

// weightBudget is a token bucket of REST weight per minute.
type weightBudget struct {
	mu     sync.Mutex // guards tokens, last
	tokens float64
	last   time.Time
}

// take waits until w weight is available at perMinute, and takes it. A
// request heavier than the whole budget waits for a full bucket.
func (b *weightBudget) take(ctx context.Context, perMinute, w int) error {
	for {
		b.mu.Lock()
		now := time.Now()
		if b.last.IsZero() {
			b.tokens = float64(perMinute)
		} else {
			b.tokens = min(float64(perMinute), b.tokens+now.Sub(b.last).Minutes()*float64(perMinute))
		}
		b.last = now
		need := min(float64(w), float64(perMinute))
		if b.tokens >= need {
			b.tokens -= float64(w)
			b.mu.Unlock()
			return nil
		}
		wait := time.Duration((need - b.tokens) / float64(perMinute) * float64(time.Minute))
		b.mu.Unlock()
		lifecycle.Sleep(ctx, wait)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
