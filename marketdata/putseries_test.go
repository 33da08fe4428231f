package marketdata

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
)

// TestPutSeriesBatches writes more series than one script takes, among
// them a key of another type and a series holding a member no reader can
// use: every series gets its klines, window and TTL, and its own repair.
func TestPutSeriesBatches(t *testing.T) {
	r := testenv.Start(t)
	cl := r.Client(t)
	reg, err := keyspace.New(testenv.Keys(keyspace.Config{Prefix: "batch:"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := &redisSink{cl: cl, window: 3, timeout: 5 * time.Second, checks: newCheckTimes(time.Hour)}

	const series = maxScriptSeries*2 + 5
	var ws []seriesWrite
	for i := range series {
		sym := fmt.Sprintf("S%03dUSDT", i)
		key, err := reg.Kline(sym, "1m")
		if err != nil {
			t.Fatal(err)
		}
		var ks []exchange.Kline
		for j := range 4 { // one more than the window
			open := int64(j) * 60000
			ks = append(ks, exchange.Kline{Symbol: sym, Interval: "1m", OpenTime: open, CloseTime: open + 59999, Open: "1", High: "2", Low: "1", Close: "2",
				Volume: "3", QuoteVolume: "4", Trades: int64(i), TakerBuyBase: "1", TakerBuyQuote: "2", Closed: j < 3})
		}
		ws = append(ws, seriesWrite{key: key, ks: ks})
	}
	// Series 1 is a string; series 2 holds garbage at a score the write
	// does not touch.
	if err := cl.Do(ctx, cl.B().Set().Key(ws[1].key.Name()).Value("not a zset").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, cl.B().Zadd().Key(ws[2].key.Name()).ScoreMember().ScoreMember(120000, "garbage").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	ws[2].ks = ws[2].ks[3:] // only the bar in progress: the garbage at 120000 stays below it

	res := s.putSeries(ctx, ws)
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("series %d: %v", i, r.err)
		}
		if !r.checkedAll {
			t.Errorf("series %d: the first write of a key did not check it whole", i)
		}
	}
	if got := res[1].rp.replaced; got != "string" {
		t.Errorf("series 1: replaced %q, want string", got)
	}
	if diff := cmp.Diff([]removedValue{{at: "120000", size: len("garbage")}}, res[2].rp.removed, cmp.AllowUnexported(removedValue{})); diff != "" {
		t.Errorf("series 2 removed (-want +got):\n%s", diff)
	}
	for i, w := range ws {
		if i == 1 || i == 2 {
			continue
		}
		if res[i].rp.replaced != "" || len(res[i].rp.removed) != 0 {
			t.Errorf("series %d: repair %+v of a clean series", i, res[i].rp)
		}
		got, err := s.klines(ctx, w.key, 10)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w.ks[1:], got); diff != "" {
			t.Fatalf("series %d holds (-want the newest 3 +got):\n%s", i, diff)
		}
		ttl, err := cl.Do(ctx, cl.B().Pttl().Key(w.key.Name()).Build()).AsInt64()
		if err != nil || ttl <= 0 || ttl > w.key.TTL().Milliseconds() {
			t.Errorf("series %d: TTL %d ms (%v), want (0, %d]", i, ttl, err, w.key.TTL().Milliseconds())
		}
	}

	// A later write checks from its oldest kline only, until checks are due.
	again := s.putSeries(ctx, ws[:1])
	if again[0].err != nil || again[0].checkedAll {
		t.Errorf("second write: %+v, want a write checking from its oldest kline", again[0])
	}
	n, _ := cl.Do(ctx, cl.B().Zcard().Key(ws[0].key.Name()).Build()).AsInt64()
	if n != 3 {
		t.Errorf("series 0 holds %d members after a rewrite, want the window of 3", n)
	}
}

type redisSource struct{ cl valkey.Client }

func (s redisSource) Redis() valkey.Client { return s.cl }

// TestPutSeriesFencesEverySlot: under cluster naming on a single server,
// each symbol has a slot fence of its own, so a batch must not hold two
// symbols behind the first one's fence: every symbol written gets its
// fence advanced by the term.
func TestPutSeriesFencesEverySlot(t *testing.T) {
	r := testenv.StartOne(t)
	cl := r.Client(t)
	reg, err := keyspace.New(keyspace.Config{Prefix: "fences:", HashTags: true})
	if err != nil {
		t.Fatal(err)
	}
	lease := reg.MarketWSLeader()
	epoch, _ := reg.LeaderEpoch(lease)
	el, err := leader.New(redisSource{cl}, leader.Config{Lease: lease, Epoch: epoch, NodeID: "t", Keys: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	terms := make(chan leader.Term, 1)
	go el.Run(ctx, func(ctx context.Context, term leader.Term) error {
		terms <- term
		<-ctx.Done()
		return nil
	})
	var term leader.Term
	select {
	case term = <-terms:
	case <-time.After(10 * time.Second):
		t.Fatal("never led")
	}
	if !term.Fence.Slotted() {
		t.Fatal("want per-slot fences under cluster naming")
	}
	s := &redisSink{cl: cl, fence: term.Fence, window: 10, timeout: 5 * time.Second}
	var ws []seriesWrite
	for _, sym := range []string{"AAAUSDT", "BBBUSDT", "CCCUSDT"} {
		key, err := reg.Kline(sym, "1m")
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, seriesWrite{key: key, ks: []exchange.Kline{{Symbol: sym, Interval: "1m", OpenTime: 60000, CloseTime: 119999,
			Open: "1", High: "1", Low: "1", Close: "1", Volume: "1", QuoteVolume: "1", TakerBuyBase: "1", TakerBuyQuote: "1"}}})
	}
	for i, r := range s.putSeries(ctx, ws) {
		if r.err != nil {
			t.Fatalf("series %d: %v", i, r.err)
		}
	}
	for _, w := range ws {
		fence, err := reg.SlotFence(w.key, lease.Name())
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := cl.Do(ctx, cl.B().Exists().Key(fence.Name()).Build()).AsInt64(); n != 1 {
			t.Errorf("%s was written but its slot fence %s was not advanced", w.key, fence)
		}
	}
}

// TestPutKlinesScriptFailsOneSeries: a series whose write fails inside
// the script is reported alone; the others are written.
func TestPutKlinesScriptFailsOneSeries(t *testing.T) {
	r := testenv.StartOne(t)
	cl := r.Client(t)
	ctx := context.Background()
	good := `{"s":"A","i":"1m","t":60000,"T":119999,"o":"1","h":"1","l":"1","c":"1","v":"1","q":"1","n":0,"V":"1","Q":"1","x":false}`
	res, err := putKlinesScript.Exec(ctx, cl, []string{"f", "ks:a", "ks:b", "ks:c"}, []string{"", "10",
		"60000", "4096", "-inf", "1", "60000", good,
		"60000", "4096", "-inf", "1", "not-a-score", good, // ZRANGEBYSCORE refuses the score
		"60000", "4096", "-inf", "1", "60000", good,
	}).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d replies, want one per series", len(res))
	}
	for i, want := range []bool{false, true, false} {
		msg, failed := seriesFailed(res[i])
		if failed != want {
			t.Errorf("series %d failed=%v (%q), want %v", i, failed, msg, want)
		}
	}
	for _, key := range []string{"ks:a", "ks:c"} {
		if n, _ := cl.Do(ctx, cl.B().Zcard().Key(key).Build()).AsInt64(); n != 1 {
			t.Errorf("%s holds %d members, want the one written", key, n)
		}
	}
}
