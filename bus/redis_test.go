package bus_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

// startCache returns a Cache on r with Run going, on the Redis tier: the
// RedisSource a node gives its bus.
func startCache(t *testing.T, r *testenv.Redis) *cache.Cache {
	t.Helper()
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{
		Redis: opt, CallTimeout: 200 * time.Millisecond,
		ProbeMin: 20 * time.Millisecond, ProbeMax: 200 * time.Millisecond,
		HealthInterval: 100 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache Run: %v", err)
		}
	})
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis }, "cache never reached redis")
	return c
}

// newRedisBus returns a Redis bus on its own channel of r, with Run going,
// on a Cache of its own.
func newRedisBus(t *testing.T, r *testenv.Redis, cfg bus.RedisConfig) (*bus.Redis, *cache.Cache) {
	t.Helper()
	c := startCache(t, r)
	if cfg.Channel == "" {
		cfg.Channel = testenv.Prefix(t) + "8080:channel:1"
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	b, err := bus.NewRedis(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runBus(t, b))
	return b, c
}

// runBus runs b's Run in a goroutine; the returned stop ends it and waits.
func runBus(t *testing.T, b *bus.Redis) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bus Run: %v", err)
		}
	}
}

func gzipBase64(t testing.TB, plain []byte) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(plain)
	zw.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func rawPublish(t *testing.T, c valkey.Client, channel, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Publish().Channel(channel).Message(msg).Build()).Error(); err != nil {
		t.Fatalf("PUBLISH: %v", err)
	}
}

// What Jesse's sync_publish puts on the channel reaches our subscribers.
func TestRedisJesseEnvelope(t *testing.T) {
	r := testenv.Shared(t)
	b, _ := newRedisBus(t, r, bus.RedisConfig{})
	rec := record(t, b, nil)
	ready(t, b, rec)
	raw := r.Client(t)

	logDict := `{"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "session_id": "s1", "timestamp": 1700000000000, "message": "hello"}`
	trades := `[{"id": 1, "qty": 0.5, "symbol": "BTC-USDT"}]`
	rawPublish(t, raw, b.Channel(), `{"id": 4242, "event": "livetrade.info_log", "is_compressed": false, "data": `+logDict+`}`)
	rawPublish(t, raw, b.Channel(), `{"id": 4242, "event": "backtest.trades", "is_compressed": true, "data": "`+gzipBase64(t, []byte(trades))+`"}`)
	// Any channel the pattern matches is delivered, as Jesse's relay does.
	other := strings.TrimSuffix(b.Channel(), "1") + "2"
	rawPublish(t, raw, other, `{"id": 7, "event": "candles.progressbar", "is_compressed": false, "data": {"current": 10}}`)

	want := []struct{ name, data string }{
		{"livetrade.info_log", logDict},
		{"backtest.trades", trades},
		{"candles.progressbar", `{"current": 10}`},
	}
	for _, w := range want {
		testenv.Eventually(t, 5*time.Second, func() bool { return len(rec.named(w.name)) == 1 }, "%s not received", w.name)
		ev := rec.named(w.name)[0]
		if ev.Publisher != "4242" && ev.Publisher != "7" {
			t.Errorf("%s: Publisher = %q, want Jesse's pid", w.name, ev.Publisher)
		}
		var got, wantv any
		json.Unmarshal([]byte(w.data), &wantv)
		if err := json.Unmarshal(ev.Data, &got); err != nil {
			t.Fatalf("%s: data %s: %v", w.name, ev.Data, err)
		}
		if diff := cmp.Diff(wantv, got); diff != "" {
			t.Errorf("%s: data (-want +got):\n%s", w.name, diff)
		}
	}
}

// Malformed messages on the channel are counted and skipped; the
// subscription carries on. Well-formed envelopes whose compressed payload
// cannot be read are delivered, Opaque, to be relayed as they are.
func TestRedisMalformedSkipped(t *testing.T) {
	r := testenv.Shared(t)
	b, _ := newRedisBus(t, r, bus.RedisConfig{})
	rec := record(t, b, nil)
	ready(t, b, rec)
	raw := r.Client(t)
	bomb := gzipBase64(t, append(append([]byte(`"`), bytes.Repeat([]byte("0"), bus.MaxDecompressed+1)...), '"'))
	bad := []string{
		`not json`,
		`{"id": 1, "event": "", "is_compressed": false, "data": 1}`,
		`{"id": 1, "event": "live.bad", "is_compressed": false}`,
		`{"id": 1, "event": "live.bad", "is_compressed": false, "data": NaN}`,
		`{"id": 1, "event": "live.bad", "is_compressed": true, "data": {}}`,
		"{\"id\": 1, \"event\": \"live.bad\", \"data\": \"\xff\"}",
	}
	opaque := []string{
		`{"id": 1, "event": "live.opaque", "is_compressed": true, "data": "!!not base64"}`,
		`{"id": 1, "event": "live.opaque", "is_compressed": true, "data": "` + bomb + `"}`,
	}
	for _, m := range append(bad, opaque...) {
		rawPublish(t, raw, b.Channel(), m)
	}
	rawPublish(t, raw, b.Channel(), `{"id": 1, "event": "live.ok", "is_compressed": false, "data": 1}`)
	// On a cluster the client sends each PUBLISH through any node, so
	// messages may arrive in another order: wait for all of them.
	testenv.Eventually(t, 5*time.Second, func() bool {
		return len(rec.named("live.ok")) == 1 && len(rec.named("live.opaque")) == len(opaque) && b.Stats().Malformed == uint64(len(bad))
	}, "not every message received: ok %d, opaque %d, malformed %d", len(rec.named("live.ok")), len(rec.named("live.opaque")), b.Stats().Malformed)
	time.Sleep(50 * time.Millisecond) // nothing more comes
	if got := b.Stats().Malformed; got != uint64(len(bad)) {
		t.Errorf("Stats.Malformed = %d, want %d", got, len(bad))
	}
	if got := rec.named("live.bad"); len(got) != 0 {
		t.Errorf("%d malformed events delivered", len(got))
	}
	got := rec.named("live.opaque")
	if len(got) != len(opaque) {
		t.Fatalf("%d opaque events delivered, want %d", len(got), len(opaque))
	}
	for _, ev := range got {
		if !ev.Opaque || ev.Data != nil || !slices.Contains(opaque, string(ev.Raw)) {
			t.Errorf("opaque event: Opaque %v, %d bytes of data, raw intact %v", ev.Opaque, len(ev.Data), slices.Contains(opaque, string(ev.Raw)))
		}
	}
}

// Redis restarted under a subscription: the bus resubscribes by itself and
// receives what is published afterwards.
func TestRedisResubscribeAfterRestart(t *testing.T) {
	r := testenv.Start(t)
	b, _ := newRedisBus(t, r, bus.RedisConfig{})
	rec := record(t, b, nil)
	ready(t, b, rec)

	r.Restart(t)
	i := 0
	testenv.Eventually(t, 20*time.Second, func() bool {
		b.Publish(context.Background(), "after", i) // fails until the cache is back on Redis
		i++
		return len(rec.named("live.after")) > 0
	}, "no event received after the restart (stats %+v)", b.Stats())
	if s := b.Stats(); s.Resubscribes < 1 {
		t.Errorf("Stats.Resubscribes = %d after a restart, want ≥ 1", s.Resubscribes)
	}
}

// With Redis hung or dead, Publish returns an error within PublishTimeout
// and counts it.
func TestRedisPublishRedisDown(t *testing.T) {
	const timeout = 150 * time.Millisecond
	const slack = 150 * time.Millisecond // scheduler, race detector
	r := testenv.Start(t)
	b, c := newRedisBus(t, r, bus.RedisConfig{PublishTimeout: timeout})
	mustPublish(t, b, "warm", 1)

	publish := func(what string) error {
		t.Helper()
		before := b.Stats().PublishErrors
		t0 := time.Now()
		err := b.Publish(context.Background(), "down", what)
		if el := time.Since(t0); el > timeout+slack {
			t.Errorf("%s: Publish took %v, deadline %v", what, el, timeout)
		}
		if err == nil {
			t.Fatalf("%s: Publish succeeded", what)
		}
		if !strings.Contains(err.Error(), "bus: publish live.down") {
			t.Errorf("%s: error %q does not name the operation", what, err)
		}
		if got := b.Stats().PublishErrors; got != before+1 {
			t.Errorf("%s: PublishErrors went from %d to %d", what, before, got)
		}
		return err
	}

	r.Pause(t)
	publish("paused")
	r.Resume(t)

	r.Stop(t)
	publish("stopped")
	// Once the cache has noticed, there is no client: ErrUnavailable.
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierMemory }, "cache did not notice the outage")
	if err := publish("stopped, memory tier"); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish with no Redis = %v, want ErrUnavailable", err)
	}
	// PublishAsync does not block either; Run counts the failure.
	before := b.Stats().PublishErrors
	if err := b.PublishAsync("down", "async"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return b.Stats().PublishErrors > before }, "async publish failure not counted")
}

// PublishAsync keeps order through Run, and drops (counted) when its queue
// is full.
func TestRedisPublishAsync(t *testing.T) {
	r := testenv.Shared(t)
	b, _ := newRedisBus(t, r, bus.RedisConfig{})
	rec := record(t, b, nil)
	ready(t, b, rec)
	const n = 300
	for i := range n {
		if err := b.PublishAsync("async", seqMsg{Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return len(rec.named("live.async")) >= n }, "got %d of %d async events", len(rec.named("live.async")), n)
	checkSeqs(t, rec, "live.async", 1, n)

	// Without Run, the queue fills: the rest is dropped and counted.
	nr, err := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: "x:channel:1", AsyncQueue: 4})
	if err != nil {
		t.Fatal(err)
	}
	var full int
	for i := range 10 {
		if err := nr.PublishAsync("async", i); errors.Is(err, bus.ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	s := nr.Stats()
	if full != 6 || s.DroppedAsync != 6 || s.AsyncQueued != 4 {
		t.Errorf("10 PublishAsync into a queue of 4: %d ErrQueueFull, DroppedAsync %d, AsyncQueued %d; want 6, 6, 4", full, s.DroppedAsync, s.AsyncQueued)
	}
	// Run ending drops what is left, counted.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	nr.Run(ctx)
	if s := nr.Stats(); s.DroppedAsync+s.PublishErrors != 10 || s.AsyncQueued != 0 {
		t.Errorf("after Run ended: %+v; want every event dropped or failed", s)
	}
}

// PublishAsync's queue is bounded by bytes too: large events are dropped
// once AsyncQueueBytes are queued (one always fits an empty queue), and
// what Run takes frees its bytes.
func TestRedisPublishAsyncBytes(t *testing.T) {
	b, err := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: "x:channel:1", AsyncQueue: 100, AsyncQueueBytes: 1000, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 300) // an envelope of ~360 bytes
	fill := func() (queued int) {
		for range 10 {
			if err := b.PublishAsync("big", big); err == nil {
				queued++
			} else if !errors.Is(err, bus.ErrQueueFull) {
				t.Fatal(err)
			}
		}
		return queued
	}
	if got := fill(); got != 2 {
		t.Errorf("%d events of ~360 bytes queued within 1000 bytes, want 2", got)
	}
	huge := strings.Repeat("y", 5000)
	if err := b.PublishAsync("huge", huge); !errors.Is(err, bus.ErrQueueFull) {
		t.Errorf("an event over the byte bound into a non-empty queue: %v", err)
	}
	// Run takes them (no Redis: they fail, counted) and frees the bytes.
	stop := runBus(t, b)
	testenv.Eventually(t, 5*time.Second, func() bool { return b.Stats().AsyncQueued == 0 }, "Run did not drain: %+v", b.Stats())
	stop()
	if got := fill(); got != 2 {
		t.Errorf("after Run drained the queue, %d events queued, want 2 again", got)
	}
	b2, _ := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: "x:channel:1", AsyncQueueBytes: 1000, Logger: quiet})
	if err := b2.PublishAsync("huge", huge); err != nil {
		t.Errorf("an event over the byte bound into an empty queue: %v", err)
	}
}

type nilSource struct{}

func (nilSource) Redis() valkey.Client { return nil }

// With no Redis at all, Publish fails at once and Subscribe waits, retrying,
// until its ctx ends.
func TestRedisNoClient(t *testing.T) {
	b, err := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: "8080:channel:1", Logger: quiet, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := b.Publish(context.Background(), "x", 1); !errors.Is(err, bus.ErrUnavailable) {
		t.Errorf("Publish = %v, want ErrUnavailable", err)
	}
	if el := time.Since(t0); el > 50*time.Millisecond {
		t.Errorf("Publish with no client took %v", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Subscribe(ctx, func(bus.Event) { t.Error("event without Redis") }); err != nil {
		t.Errorf("Subscribe = %v, want nil", err)
	}
	if s := b.Stats(); s.PublishErrors != 1 || s.Subscribers != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestRedisConfig(t *testing.T) {
	for _, tc := range []struct{ channel, pattern string }{
		{"8080:channel:1", "8080:channel:*"},
		{"pre:fix:9000:channel:1", "pre:fix:9000:channel:*"},
		{"events", "events"},
		{"a*b[1]:channel:1", `a\*b\[1\]:channel:*`},
	} {
		if got := bus.DefaultPattern(tc.channel); got != tc.pattern {
			t.Errorf("DefaultPattern(%q) = %q, want %q", tc.channel, got, tc.pattern)
		}
	}
	if _, err := bus.NewRedis(nilSource{}, bus.RedisConfig{}); err == nil {
		t.Error("NewRedis without a channel succeeded")
	}
	if _, err := bus.NewRedis(nil, bus.RedisConfig{Channel: "c"}); err == nil {
		t.Error("NewRedis without a source succeeded")
	}
	if _, err := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: "c", BackoffMin: time.Second, BackoffMax: time.Millisecond}); err == nil {
		t.Error("NewRedis with BackoffMax < BackoffMin succeeded")
	}
}

func TestCollector(t *testing.T) {
	l := bus.NewLocal(bus.LocalConfig{})
	mustPublish(t, l, "x", 1)
	rb, err := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: "c:1"})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]prometheus.Collector{"local": l.Collector(), "redis": rb.Collector()} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := map[string]bool{}
		for _, mf := range mfs {
			got[mf.GetName()] = true
		}
		for _, want := range []string{"tradecache_bus_published_total", "tradecache_bus_publish_errors_total", "tradecache_bus_received_total", "tradecache_bus_malformed_total", "tradecache_bus_resubscribes_total", "tradecache_bus_dropped_total", "tradecache_bus_subscribers", "tradecache_bus_async_queued"} {
			if !got[want] {
				t.Errorf("%s: metric %s missing", name, want)
			}
		}
	}
}

// Events queued while Run was not draining (a burst, a slow Redis) go out
// in pipelines of many: all of them, in order, each counted, in a handful
// of the server's reads rather than one each.
func TestRedisPublishAsyncBurst(t *testing.T) {
	r := testenv.StartOne(t) // its own server: its read count is the bus's
	ch := testenv.Prefix(t) + "8080:channel:1"
	sub, _ := newRedisBus(t, r, bus.RedisConfig{Channel: ch})
	rec := record(t, sub, nil)
	ready(t, sub, rec)

	pub, err := bus.NewRedis(startCache(t, r), bus.RedisConfig{Channel: ch, AsyncQueue: 1000, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	const n = 600 // more than one pipeline's worth
	for i := range n {
		if err := pub.PublishAsync("burst", seqMsg{Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	reads := func() int {
		info, err := r.Client(t).Do(context.Background(), r.Client(t).B().Info().Section("stats").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_reads_processed:"); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatalf("no total_reads_processed in INFO stats:\n%s", info)
		return 0
	}
	before := reads()
	defer runBus(t, pub)()
	testenv.Eventually(t, 5*time.Second, func() bool { return len(rec.named("live.burst")) >= n }, "got %d of %d queued events", len(rec.named("live.burst")), n)
	checkSeqs(t, rec, "live.burst", 1, n)
	if s := pub.Stats(); s.Published != n || s.PublishErrors != 0 || s.AsyncQueued != 0 {
		t.Errorf("after the burst: %+v; want %d published", s, n)
	}
	// The subscriber's, the caches' health checks and INFO itself read
	// too; a PUBLISH each would be 600.
	if got := reads() - before; got > n/4 {
		t.Errorf("%d queued events took %d reads of the server: not pipelined", n, got)
	}

	// With no Redis, a pipeline's events all fail, counted one by one.
	nr, err := bus.NewRedis(nilSource{}, bus.RedisConfig{Channel: ch, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := nr.PublishAsync("burst", i); err != nil {
			t.Fatal(err)
		}
	}
	stop := runBus(t, nr)
	testenv.Eventually(t, 5*time.Second, func() bool { return nr.Stats().PublishErrors == 5 }, "5 events without Redis: %+v", nr.Stats())
	stop()
}

// Subscribe calls of one bus share one subscription on the server: a
// second caller's ready comes at once, one leaving costs the other no
// event, and the last one leaving unsubscribes (PUBSUB NUMPAT back to 0).
// An event published once ready was called is received.
func TestRedisSubscriptionShared(t *testing.T) {
	r := testenv.StartOne(t) // one server: NUMPAT counts every subscription
	b, _ := newRedisBus(t, r, bus.RedisConfig{})
	subscribe := func() (*recorder, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		rec := &recorder{cancel: cancel, done: make(chan error, 1)}
		up := make(chan struct{})
		go func() {
			rec.done <- b.SubscribeReady(ctx, func(ev bus.Event) {
				rec.mu.Lock()
				rec.evs = append(rec.evs, ev)
				rec.mu.Unlock()
			}, func(ok bool) {
				if ok {
					close(up) // the first call: never true twice in a row
				}
			})
		}()
		t.Cleanup(func() { rec.stop(t) })
		select {
		case <-up:
		case <-time.After(5 * time.Second):
			t.Fatal("ready never called")
		}
		return rec, up
	}
	first, _ := subscribe()
	mustPublish(t, b, "one", 1) // right after ready: must arrive
	testenv.Eventually(t, 5*time.Second, func() bool { return len(first.named("live.one")) == 1 }, "the event published after ready was not received")
	second, _ := subscribe()
	if n := r.NumPat(t); n != 1 {
		t.Fatalf("two callers: NUMPAT %d, want one shared subscription", n)
	}
	first.stop(t)
	for i := range 20 {
		mustPublish(t, b, "two", i)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return len(second.named("live.two")) == 20 }, "the remaining caller lost events when the other left: %d of 20", len(second.named("live.two")))
	if n := r.NumPat(t); n != 1 {
		t.Fatalf("one caller left: NUMPAT %d, want 1", n)
	}
	second.stop(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return r.NumPat(t) == 0 }, "the last caller left and the subscription stayed")
	third, _ := subscribe()
	mustPublish(t, b, "three", 3)
	testenv.Eventually(t, 5*time.Second, func() bool { return len(third.named("live.three")) == 1 }, "a new caller after the last left received nothing")
}

// A payload over CompressAbove travels compressed (is_compressed true, the
// gzip in base64) and is received as the plain JSON published; one at the
// bound travels plain.
func TestRedisCompressAbove(t *testing.T) {
	r := testenv.Start(t)
	b, _ := newRedisBus(t, r, bus.RedisConfig{CompressAbove: 64})
	rec := record(t, b, nil)
	ready(t, b, rec)
	big := strings.Repeat("x", 100)  // `"xxx…"`: 102 bytes of JSON
	small := strings.Repeat("y", 62) // 64 bytes: at the bound
	mustPublish(t, b, "big", big)
	if err := b.PublishAsync("small", small); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return len(rec.named("live.big")) == 1 && len(rec.named("live.small")) == 1 }, "events not received")
	for _, tc := range []struct {
		name, data string
		compressed bool
	}{{"live.big", big, true}, {"live.small", small, false}} {
		ev := rec.named(tc.name)[0]
		var env struct {
			IsCompressed bool `json:"is_compressed"`
		}
		if err := json.Unmarshal(ev.Raw, &env); err != nil {
			t.Fatal(err)
		}
		if env.IsCompressed != tc.compressed || string(ev.Data) != `"`+tc.data+`"` {
			t.Errorf("%s: is_compressed %v (want %v), data %s", tc.name, env.IsCompressed, tc.compressed, ev.Data)
		}
	}
}

// The shared subscription's state follows the server: reported in place,
// lost when Redis goes away, in place again once resubscribed; in order,
// never true twice in a row. A caller joining while it is lost waits.
func TestRedisSubscriptionStateAcrossRestart(t *testing.T) {
	r := testenv.StartOne(t)
	b, _ := newRedisBus(t, r, bus.RedisConfig{})
	seen := reportsOf(t, b)
	testenv.Eventually(t, 5*time.Second, func() bool { return slices.Equal(seen(), []bool{true}) }, "never reported in place: %v", seen())
	r.Stop(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return slices.Equal(seen(), []bool{true, false}) }, "not reported lost with Redis stopped: %v", seen())
	// Joining while lost: no report until the server is back.
	told := reportsOf(t, b)
	time.Sleep(500 * time.Millisecond) // more than the bus's BackoffMax: its receivers went round
	if got := told(); len(got) != 0 {
		t.Fatalf("a caller joining while Redis is down was told %v", got)
	}
	r.Restart(t)
	testenv.Eventually(t, 20*time.Second, func() bool { return slices.Equal(seen(), []bool{true, false, true}) }, "not reported in place again after the restart: %v", seen())
	testenv.Eventually(t, 5*time.Second, func() bool { return slices.Equal(told(), []bool{true}) }, "the caller that joined while down was told %v, want [true]", told())
	// Steady: no report while nothing changes (the receivers go round
	// every BackoffMax, 200 ms here).
	time.Sleep(time.Second)
	if got, got2 := seen(), told(); !slices.Equal(got, []bool{true, false, true}) || !slices.Equal(got2, []bool{true}) {
		t.Fatalf("reports while nothing changed: %v and %v", got, got2)
	}
}

// The last subscriber leaving while messages flow does not stall the
// client's connection, which the cache, the lease and Publish share: its
// unsubscribe is answered while valkey-go still routes messages to the
// ending subscription. A PING on that connection, sent as it leaves,
// answers well within PublishTimeout.
func TestRedisLeavingUnderFloodKeepsTheConnection(t *testing.T) {
	r := testenv.StartOne(t)
	// A long PublishTimeout: an unsubscribe that blocked the connection
	// would hold it that long, far from a loaded machine's slowest PING.
	b, c := newRedisBus(t, r, bus.RedisConfig{PublishTimeout: 3 * time.Second})
	rc := r.Client(t)
	fctx, fstop := context.WithCancel(context.Background())
	fdone := make(chan struct{})
	go func() {
		defer close(fdone)
		cmds := make(valkey.Commands, 0, 500)
		for fctx.Err() == nil {
			cmds = cmds[:0]
			for range 500 {
				cmds = append(cmds, rc.B().Publish().Channel(b.Channel()).Message(`{"id":"x","event":"live.k","is_compressed":false,"data":1}`).Build())
			}
			rc.DoMulti(context.Background(), cmds...)
		}
	}()
	defer func() { fstop(); <-fdone }()
	var worst time.Duration
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		up := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.SubscribeReady(ctx, func(bus.Event) {}, func(ok bool) {
				if ok {
					close(up)
				}
			})
		}()
		<-up
		time.Sleep(50 * time.Millisecond)
		cancel()
		time.Sleep(2 * time.Millisecond)
		began := time.Now()
		cl := c.Redis()
		if err := cl.Do(context.Background(), cl.B().Ping().Build()).Error(); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(began))
		<-done
	}
	if worst > time.Second {
		t.Fatalf("a PING on the connection took %v while the last subscriber left under a flood", worst)
	}
	t.Logf("worst PING while leaving: %v", worst)
}

// reportsOf subscribes to b until the test ends and returns what its state
// callback was told so far.
func reportsOf(t *testing.T, b *bus.Redis) func() []bool {
	var mu sync.Mutex
	var states []bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.SubscribeReady(ctx, func(bus.Event) {}, func(up bool) {
			mu.Lock()
			states = append(states, up)
			mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(states)
	}
}
