package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

// checkRow reports whether a row written by mk is intact: all its values
// derive from the same k, so a torn row (half of one write, half of
// another) fails.
func checkRow(r [6]float64) error {
	k := r[store.ColOpen]
	if r[store.ColClose] != k+0.5 || r[store.ColHigh] != k+1 || r[store.ColLow] != k-1 || r[store.ColVolume] != 2*k {
		return fmt.Errorf("torn row %v", r)
	}
	return nil
}

// checkSorted reports whether rows have strictly increasing timestamps.
func checkSorted(rows [][6]float64) error {
	for i := 1; i < len(rows); i++ {
		if rows[i][0] <= rows[i-1][0] {
			return fmt.Errorf("rows %d and %d out of order: %v, %v", i-1, i, rows[i-1][0], rows[i][0])
		}
	}
	return nil
}

// TestConcurrentSameSeries runs writers (appends, in-place updates of the
// open candle, late inserts and replacements) and readers on one series.
// Readers must see intact rows in order, and a returned slice must never
// change afterwards.
func TestConcurrentSameSeries(t *testing.T) {
	const (
		writers, readers = 4, 4
		writes           = 4000
		capacity         = 64
	)
	s := store.New(store.Config{CandleCapacity: capacity})
	var next, reads atomic.Int64
	var wg, rg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range writes {
				k := float64(w*1_000_000 + i)
				var minute int64
				switch i % 4 {
				case 0, 1:
					minute = next.Add(1) // append (late if another writer passed us)
				case 2:
					minute = next.Load() // update the open candle in place
				case 3:
					minute = next.Load() - rng.Int64N(capacity+16) // late: replace or insert, maybe too old
				}
				err := s.AddCandle(ex, sym, "1m", mk(int(minute), k))
				if err != nil && !errors.Is(err, store.ErrTooOld) {
					t.Errorf("AddCandle: %v", err)
					return
				}
			}
		})
	}
	for range readers {
		rg.Go(func() {
			var kept, keptClone [][6]float64
			var buf [][6]float64
			for {
				select {
				case <-done:
					if diff := cmp.Diff(keptClone, kept); diff != "" {
						t.Errorf("a returned slice changed after return (-then +now):\n%s", diff)
					}
					return
				default:
				}
				runtime.Gosched() // let writers run on a 2-core machine
				reads.Add(1)
				got := s.Candles(ex, sym, "1m", 32)
				buf = s.AppendCandles(buf[:0], ex, sym, "1m", 0)
				for _, rows := range [][][6]float64{got, buf} {
					if len(rows) > capacity {
						t.Errorf("%d rows > capacity %d", len(rows), capacity)
					}
					for _, r := range rows {
						if err := checkRow(r); err != nil {
							t.Error(err)
							return
						}
					}
					if err := checkSorted(rows); err != nil {
						t.Error(err)
						return
					}
				}
				if cur, ok := s.CurrentCandle(ex, sym, "1m"); ok {
					if err := checkRow(cur); err != nil {
						t.Error(err)
						return
					}
				}
				if kept == nil && len(got) == 32 {
					kept, keptClone = got, slices.Clone(got)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	t.Logf("%d reads during %d writes", reads.Load(), writers*writes)
	if n := s.Len(ex, sym, "1m"); n != capacity {
		t.Errorf("Len = %d, want %d", n, capacity)
	}
	if err := checkSorted(s.Candles(ex, sym, "1m", 0)); err != nil {
		t.Error(err)
	}
}

// aggregateByHand folds 1m rows into buckets of tfMinutes.
func aggregateByHand(rows [][6]float64, tfMinutes int64) [][6]float64 {
	var out [][6]float64
	for _, r := range rows {
		ts := int64(r[0])
		start := float64(ts - ts%(tfMinutes*60_000))
		if n := len(out); n > 0 && out[n-1][0] == start {
			o := &out[n-1]
			o[2] = r[2]
			o[3] = max(o[3], r[3])
			o[4] = min(o[4], r[4])
			o[5] += r[5]
			continue
		}
		out = append(out, [6]float64{start, r[1], r[2], r[3], r[4], r[5]})
	}
	return out
}

// TestConcurrentGeneration feeds 1m candles of one route, out of order and
// with updates, from several writers while readers read the generated
// series. Afterwards every generated candle must equal the aggregate of the
// final 1m candles: no update was lost between 1m and higher timeframes.
func TestConcurrentGeneration(t *testing.T) {
	const (
		minutes = 600
		writers = 4
		readers = 3
	)
	tfs := map[string]int64{"5m": 5, "15m": 15, "1h": 60}
	s := store.New(store.Config{})
	if err := s.EnableGeneration(ex, sym, "5m", "15m", "1h"); err != nil {
		t.Fatal(err)
	}
	// Ascending minutes with local disorder.
	rng := rand.New(rand.NewPCG(3, 4))
	order := make([]int, minutes)
	for i := range order {
		order[i] = i
	}
	for i := range order {
		j := min(i+rng.IntN(6), minutes-1)
		order[i], order[j] = order[j], order[i]
	}
	var idx atomic.Int64
	var wg, rg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; ; i++ {
				n := idx.Add(1) - 1
				if n >= minutes {
					return
				}
				minute := order[n]
				for u := range 1 + rng.IntN(3) { // the open candle, updated
					if err := s.AddCandle(ex, sym, "1m", mk(minute, float64(w*10_000+i*10+u))); err != nil {
						t.Errorf("AddCandle: %v", err)
						return
					}
				}
				if old := minute - rng.IntN(20); old >= 0 && i%3 == 0 { // a late correction
					if err := s.AddCandle(ex, sym, "1m", mk(old, float64(w*10_000+i*10+9))); err != nil {
						t.Errorf("AddCandle: %v", err)
						return
					}
				}
			}
		})
	}
	for r := range readers {
		rg.Go(func() {
			tf := []string{"5m", "15m", "1h"}[r]
			for {
				select {
				case <-done:
					return
				default:
				}
				runtime.Gosched()
				rows := s.Candles(ex, sym, tf, 0)
				if err := checkSorted(rows); err != nil {
					t.Error(err)
					return
				}
				for _, c := range rows {
					ts := int64(c[0])
					if ts%(tfs[tf]*60_000) != 0 || c[3] < max(c[1], c[2]) || c[4] > min(c[1], c[2]) || c[5] < 0 {
						t.Errorf("%s: bad candle %v", tf, c)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()

	oneMinute := s.Candles(ex, sym, "1m", 0)
	if len(oneMinute) != minutes {
		t.Fatalf("%d 1m candles, want %d", len(oneMinute), minutes)
	}
	for tf, tfMinutes := range tfs {
		if diff := cmp.Diff(aggregateByHand(oneMinute, tfMinutes), s.Candles(ex, sym, tf, 0)); diff != "" {
			t.Errorf("%s differs from the aggregate of the final 1m candles (-want +got):\n%s", tf, diff)
		}
	}
}

// TestConcurrentOrders races adds (including the same order from several
// goroutines), updates, removals and reads of one route.
func TestConcurrentOrders(t *testing.T) {
	const writers, perWriter = 4, 150
	s := store.New(store.Config{OrderHistoryCapacity: 100})
	var dupWins atomic.Int64
	var wg, rg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				o := store.Order{
					ID: fmt.Sprintf("w%d-%d", w, i), ExchangeID: fmt.Sprintf("x%d-%d", w, i),
					Exchange: ex, Symbol: sym, Side: "buy", Type: "limit",
					Qty: float64(i), Price: float64(i) * 2, Status: store.OrderActive,
				}
				if err := s.AddOrder(o); err != nil {
					t.Errorf("AddOrder: %v", err)
					return
				}
				// Every writer adds the same (active, so never dropped)
				// order: exactly one may win.
				shared := store.Order{ID: fmt.Sprintf("shared-%d", i), Exchange: ex, Symbol: sym, Status: store.OrderQueued}
				if err := s.AddOrder(shared); err == nil {
					dupWins.Add(1)
				} else if !errors.Is(err, store.ErrDuplicateOrder) {
					t.Errorf("AddOrder shared: %v", err)
				}
				switch i % 3 {
				case 0:
					o.Status, o.FilledQty = store.OrderExecuted, o.Qty
					if err := s.UpdateOrder(o); err != nil {
						t.Errorf("UpdateOrder: %v", err)
					}
				case 1:
					if err := s.RemoveOrder(ex, sym, o.ID); err != nil {
						t.Errorf("RemoveOrder: %v", err)
					}
				}
			}
		})
	}
	for range 3 {
		rg.Go(func() {
			var kept, keptClone []store.Order
			for {
				select {
				case <-done:
					if diff := cmp.Diff(keptClone, kept); diff != "" {
						t.Errorf("returned orders changed (-then +now):\n%s", diff)
					}
					return
				default:
				}
				runtime.Gosched()
				all := s.Orders(ex, sym)
				for _, o := range all {
					if o.Price != o.Qty*2 {
						t.Errorf("torn order %+v", o)
						return
					}
				}
				for _, o := range s.ActiveOrders(ex, sym) {
					if !o.Status.IsActive() {
						t.Errorf("inactive order listed as active: %+v", o)
						return
					}
				}
				if kept == nil && len(all) > 10 {
					kept, keptClone = all, slices.Clone(all)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	if got := dupWins.Load(); got != perWriter {
		t.Errorf("%d shared orders added, want %d (one per id)", got, perWriter)
	}
	// Orders i%3==2 and the shared ones stay active, never dropped.
	active := s.ActiveOrders(ex, sym)
	if want := writers*(perWriter/3) + perWriter; len(active) != want || s.ActiveOrderCount() != want {
		t.Errorf("%d active orders (count %d), want %d", len(active), s.ActiveOrderCount(), want)
	}
	if n := len(s.Orders(ex, sym)); n != len(active) {
		t.Errorf("%d orders held; beyond capacity only the %d active ones may stay", n, len(active))
	}
}

// TestConcurrentLogsVarsAndMarketData races the other writers and readers.
func TestConcurrentLogsVarsAndMarketData(t *testing.T) {
	const capacity = 50
	s := store.New(store.Config{LogCapacity: capacity, TickerThrottle: -1, OrderbookThrottle: -1})
	type pair struct{ A, B int }
	var wg, rg sync.WaitGroup
	done := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				s.AddInfoLog(int64(i), "info")
				s.AddErrorLog(int64(i), "error")
				s.SetVar("pair", pair{w*1000 + i, w*1000 + i})
				ts := int64(w*1000+i) + 1
				if _, err := s.AddTicker(ex, sym, store.Ticker{Timestamp: ts, Last: 1}); err != nil {
					t.Error(err)
				}
				if err := s.AddTrade(ex, sym, store.Trade{Timestamp: ts, Price: 1, Qty: 1}); err != nil {
					t.Error(err)
				}
				if _, err := s.AddOrderbook(ex, sym, store.Orderbook{Timestamp: ts,
					Asks: []store.Level{{Price: 2, Qty: 1}, {Price: 3, Qty: 1}},
					Bids: []store.Level{{Price: 1, Qty: 1}}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for range 3 {
		rg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				for _, logs := range [][]store.LogEntry{s.InfoLogs(0), s.ErrorLogs(10)} {
					if len(logs) > capacity {
						t.Errorf("%d log entries > %d", len(logs), capacity)
					}
					for i := 1; i < len(logs); i++ {
						if logs[i].Seq <= logs[i-1].Seq {
							t.Errorf("log sequence out of order: %d after %d", logs[i].Seq, logs[i-1].Seq)
							return
						}
					}
				}
				if v, ok := s.Var("pair"); ok && v.(pair).A != v.(pair).B {
					t.Errorf("torn var %+v", v)
				}
				// Scribbling on returned orderbooks must not reach the store.
				if ob, ok := s.CurrentOrderbook(ex, sym); ok {
					ob.Asks[0].Price = -1
				}
				for _, ob := range s.Orderbooks(ex, sym, 0) {
					ob.Bids[0].Qty = -1
				}
				if l, ok := s.BestAsk(ex, sym); ok && l.Price != 2 {
					t.Errorf("best ask %+v", l)
					return
				}
				_ = s.Tickers(ex, sym, 0)
				_ = s.TradeBuckets(ex, sym, 0)
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	for _, ob := range s.Orderbooks(ex, sym, 0) {
		if ob.Bids[0].Qty != 1 || ob.Asks[0].Price != 2 {
			t.Fatalf("stored orderbook changed by a reader: %+v", ob)
		}
	}
}

// TestConcurrentReset resets the store while it is written and read.
func TestConcurrentReset(t *testing.T) {
	s := store.New(store.Config{})
	var wg sync.WaitGroup
	var minute, ops atomic.Int64
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = s.EnableGeneration(ex, sym, "5m")
				if err := s.AddCandle(ex, sym, "1m", mk(int(minute.Add(1)), 1)); err != nil {
					t.Error(err)
					return
				}
				_ = s.Candles(ex, sym, "5m", 10)
				s.AddInfoLog(1, "x")
				_ = s.AddOrder(store.Order{ID: fmt.Sprint(minute.Load()), Exchange: ex, Symbol: sym, Status: store.OrderActive})
				ops.Add(1)
			}
		})
	}
	for i := range int64(100) {
		for ops.Load() < i*10 {
			runtime.Gosched()
		}
		s.Reset()
	}
	close(stop)
	wg.Wait()
	s.Reset()
	if s.Len(ex, sym, "1m") != 0 || s.Len(ex, sym, "5m") != 0 || len(s.InfoLogs(0)) != 0 || len(s.Orders(ex, sym)) != 0 {
		t.Error("state survived Reset")
	}
	// Generation was reset too: 5m may now be written directly.
	if err := s.AddCandle(ex, sym, "5m", store.Candle{m(0), 1, 1, 1, 1, 1}); err != nil {
		t.Errorf("5m after Reset: %v", err)
	}
}
