package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// registry returns a keyspace with a unique prefix and a test kind.
func registry(t *testing.T, ttl time.Duration) *keyspace.Registry {
	t.Helper()
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	if err := reg.Register(keyspace.Kind{Name: "item", Pattern: "item:{id}", TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	return reg
}

func key(t testing.TB, reg *keyspace.Registry, id string) keyspace.Key {
	t.Helper()
	k, err := reg.Key("item", id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// start returns a Cache on r (nil: embedded) with Run going, on the Redis
// tier when r is set.
func start(t *testing.T, r *testenv.Redis, cfg cache.Config) *cache.Cache {
	t.Helper()
	if r != nil {
		opt, err := cache.RedisOptions(r.URL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Redis = opt
	}
	c, err := cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if r != nil {
		testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis }, "cache never reached redis")
	}
	return c
}

// TestContract runs the same behaviour against both tiers.
func TestContract(t *testing.T) {
	for _, tier := range []string{"redis", "embedded"} {
		t.Run(tier, func(t *testing.T) {
			var r *testenv.Redis
			if tier == "redis" {
				r = testenv.Shared(t)
			}
			c := start(t, r, cache.Config{})
			reg := registry(t, time.Minute)
			ctx := context.Background()
			k := key(t, reg, "a")

			if v, ok, err := c.Get(ctx, k); err != nil || ok || v != nil {
				t.Fatalf("Get on empty = %q %v %v, want a miss", v, ok, err)
			}
			for _, val := range [][]byte{[]byte("hello"), {}, []byte("\x00binary\xff")} {
				if err := c.Set(ctx, k, val); err != nil {
					t.Fatal(err)
				}
				v, ok, err := c.Get(ctx, k)
				if err != nil || !ok || !bytes.Equal(v, val) {
					t.Fatalf("Get after Set(%q) = %q %v %v", val, v, ok, err)
				}
			}
			if err := c.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := c.Get(ctx, k); ok {
				t.Fatal("hit after Delete")
			}
			if err := c.Set(ctx, keyspace.Key{}, []byte("x")); err == nil {
				t.Fatal("Set with a zero Key succeeded")
			}

			type pos struct {
				Symbol string  `json:"symbol"`
				Amt    float64 `json:"positionAmt"`
			}
			want := []pos{{"BTCUSDT", 0.5}, {"ETHUSDT", -2}}
			pk := key(t, reg, "positions")
			if err := cache.SetJSON(ctx, c, pk, want); err != nil {
				t.Fatal(err)
			}
			got, ok, err := cache.GetJSON[[]pos](ctx, c, pk)
			if err != nil || !ok {
				t.Fatalf("GetJSON: %v %v", ok, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GetJSON (-want +got):\n%s", diff)
			}
			if _, ok, err := cache.GetJSON[[]pos](ctx, c, key(t, reg, "none")); ok || err != nil {
				t.Errorf("GetJSON miss = %v %v", ok, err)
			}
			c.Set(ctx, pk, []byte("not json"))
			if _, _, err := cache.GetJSON[[]pos](ctx, c, pk); err == nil {
				t.Error("GetJSON of a non-JSON value did not fail")
			}

			if r != nil {
				// Redis holds the value with the key's TTL; memory stays empty.
				rc := r.Client(t)
				pttl, err := rc.Do(ctx, rc.B().Pttl().Key(pk.Name()).Build()).AsInt64()
				if err != nil || pttl <= 55_000 || pttl > 60_000 {
					t.Errorf("PTTL of %s = %d %v, want about 60000", pk, pttl, err)
				}
				if s := c.Stats(); s.MemoryEntries != 0 || s.HitsMemory != 0 || s.HitsRedis == 0 {
					t.Errorf("with redis up: %+v", s)
				}
			}
		})
	}
}

func TestReplyErrorIsReturned(t *testing.T) {
	r := testenv.Shared(t)
	c := start(t, r, cache.Config{})
	reg := registry(t, time.Minute)
	k := key(t, reg, "list")
	rc := r.Client(t)
	ctx := context.Background()
	rc.Do(ctx, rc.B().Rpush().Key(k.Name()).Element("x").Build())
	rc.Do(ctx, rc.B().Expire().Key(k.Name()).Seconds(60).Build())
	if _, _, err := c.Get(ctx, k); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("Get of a list = %v, want WRONGTYPE", err)
	}
	if c.Tier() != cache.TierRedis {
		t.Fatal("a reply error switched the tier")
	}
}

func TestGetOrLoadSingleflight(t *testing.T) {
	for _, tier := range []string{"redis", "embedded"} {
		t.Run(tier, func(t *testing.T) {
			var r *testenv.Redis
			if tier == "redis" {
				r = testenv.Shared(t)
			}
			c := start(t, r, cache.Config{})
			reg := registry(t, 30*time.Second)
			k := key(t, reg, "BTCUSDT")
			var calls atomic.Int32
			release := make(chan struct{})
			load := func(ctx context.Context) ([]byte, error) {
				calls.Add(1)
				<-release
				return []byte(`{"lastPrice":"100"}`), nil
			}
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for range 100 {
				wg.Go(func() {
					v, err := c.GetOrLoad(context.Background(), k, load)
					if err == nil && string(v) != `{"lastPrice":"100"}` {
						err = fmt.Errorf("got %q", v)
					}
					errs <- err
				})
			}
			time.Sleep(50 * time.Millisecond) // let every caller miss and wait
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("loader ran %d times, want 1", n)
			}
			// The next call is a hit: no load.
			if _, err := c.GetOrLoad(context.Background(), k, load); err != nil || calls.Load() != 1 {
				t.Fatalf("second GetOrLoad: %v, %d loads", err, calls.Load())
			}
			if r != nil {
				if s := c.Stats(); s.MemoryEntries != 0 {
					t.Errorf("loaded value went to memory with redis up: %+v", s)
				}
			}
			// A loader error reaches every caller and is not cached.
			bad := key(t, reg, "BAD")
			boom := errors.New("rest: 503")
			if _, err := c.GetOrLoad(context.Background(), bad, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
				t.Fatalf("loader error = %v", err)
			}
			if _, ok, _ := c.Get(context.Background(), bad); ok {
				t.Fatal("failed load was cached")
			}
			// A caller that gives up stops waiting; the load goes on for the others.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			slow := key(t, reg, "SLOW")
			_, err := c.GetOrLoad(ctx, slow, func(context.Context) ([]byte, error) {
				time.Sleep(100 * time.Millisecond)
				return []byte("late"), nil
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("abandoned GetOrLoad = %v", err)
			}
			testenv.Eventually(t, 2*time.Second, func() bool {
				v, ok, _ := c.Get(context.Background(), slow)
				return ok && string(v) == "late"
			}, "abandoned load was not stored")
		})
	}
}

func TestGetOrLoadWritesMemoryWhenRedisIsDown(t *testing.T) {
	r := testenv.Start(t)
	c := start(t, r, cache.Config{FailureThreshold: 1, ProbeMin: time.Hour, ProbeMax: time.Hour})
	reg := registry(t, 30*time.Second)
	r.Stop(t)
	k := key(t, reg, "ETHUSDT")
	v, err := c.GetOrLoad(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("v"), nil })
	if err != nil || string(v) != "v" {
		t.Fatalf("GetOrLoad with redis down = %q %v", v, err)
	}
	if s := c.Stats(); s.Tier != cache.TierMemory || s.MemoryEntries != 1 {
		t.Fatalf("after load with redis down: %+v", s)
	}
}

func TestMemoryTierBound(t *testing.T) {
	c := start(t, nil, cache.Config{MemoryEntries: 3})
	reg := registry(t, time.Minute)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		c.Set(ctx, key(t, reg, id), []byte(id))
	}
	c.Get(ctx, key(t, reg, "a")) // a is now the most recently used
	c.Set(ctx, key(t, reg, "d"), []byte("d"))
	var held []string
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, ok, _ := c.Get(ctx, key(t, reg, id)); ok {
			held = append(held, id)
		}
	}
	if diff := cmp.Diff([]string{"a", "c", "d"}, held); diff != "" {
		t.Errorf("after eviction (-want +got):\n%s", diff)
	}
	if s := c.Stats(); s.Evictions != 1 || s.MemoryEntries != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestTierChangesAreLoggedOnceAndExported(t *testing.T) {
	r := testenv.Start(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	var changes []string
	c := start(t, r, cache.Config{
		CallTimeout: 100 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs, mu: &mu}, nil)),
		OnTierChange: func(from, to cache.Tier, _ string) {
			mu.Lock()
			changes = append(changes, to.String())
			mu.Unlock()
		},
	})
	reg := registry(t, time.Minute)
	ctx := context.Background()
	r.Stop(t)
	for i := range 50 {
		c.Set(ctx, key(t, reg, fmt.Sprint(i%5)), []byte("x"))
	}
	r.Restart(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis && c.Stats().MemoryEntries == 0 }, "no recovery")

	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"redis", "memory", "redis"}, changes); diff != "" {
		t.Errorf("tier changes (-want +got):\n%s", diff)
	}
	if n := strings.Count(logs.String(), "cache tier changed"); n != 3 {
		t.Errorf("%d tier-change log lines, want 3:\n%s", n, logs.String())
	}
	reg2 := prometheus.NewPedanticRegistry()
	reg2.MustRegister(c.Collector())
	want := `
# HELP tradecache_cache_tier 1 for the tier the cache is on, 0 for the other.
# TYPE tradecache_cache_tier gauge
tradecache_cache_tier{tier="memory"} 0
tradecache_cache_tier{tier="redis"} 1
# HELP tradecache_cache_tier_switches_total Tier changes, by the tier switched to.
# TYPE tradecache_cache_tier_switches_total counter
tradecache_cache_tier_switches_total{to="memory"} 1
tradecache_cache_tier_switches_total{to="redis"} 2
`
	if err := testutil.GatherAndCompare(reg2, strings.NewReader(want), "tradecache_cache_tier", "tradecache_cache_tier_switches_total"); err != nil {
		t.Error(err)
	}
	// Each of the 5 keys was written back at least once (a write-back racing
	// the restart may write one twice, the second time skipped as not newer).
	if s := c.Stats(); s.WrittenBack < 5 {
		t.Errorf("written back %d, want >= 5: %+v", s.WrittenBack, s)
	}
	rc := r.Client(t)
	for i := range 5 {
		if v, err := rc.Do(ctx, rc.B().Get().Key(key(t, reg, fmt.Sprint(i)).Name()).Build()).ToString(); err != nil || v != "x" {
			t.Errorf("key %d after recovery = %q %v", i, v, err)
		}
	}
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestWriteBackKeepsNewerRedisValue: a value another node wrote to Redis
// after ours is kept; an older one (from before the outage) is replaced.
func TestWriteBackKeepsNewerRedisValue(t *testing.T) {
	r := testenv.Start(t)
	reg := registry(t, time.Minute)
	ctx := context.Background()
	rc := r.Client(t)
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, FailureThreshold: 1, CallTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	older, newer := key(t, reg, "older"), key(t, reg, "newer")
	// "older" holds a value from before the outage.
	if err := c.Set(ctx, older, []byte("before-outage")); err != nil {
		t.Fatal(err)
	}
	r.Pause(t) // Redis keeps its data but answers nothing
	// This write times out and switches the tier. Its bytes are already on
	// the socket, so Redis applies it when it resumes: a timed-out write may
	// or may not land, which write-back must cope with.
	c.Set(ctx, key(t, reg, "trip"), []byte("queued"))
	c.Set(ctx, older, []byte("during-outage"))
	c.Set(ctx, newer, []byte("during-outage"))
	if c.Tier() != cache.TierMemory {
		t.Fatalf("tier %v during outage", c.Tier())
	}
	time.Sleep(20 * time.Millisecond)
	r.Resume(t)
	// Another node writes "newer" after our outage write, with the kind's TTL.
	if err := rc.Do(ctx, rc.B().Set().Key(newer.Name()).Value("other-node").Px(newer.TTL()).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- c.Run(rctx) }()
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis && c.Stats().MemoryEntries == 0 }, "no write-back")
	cancel()
	<-done
	for k, want := range map[keyspace.Key]string{older: "during-outage", newer: "other-node"} {
		got, err := rc.Do(ctx, rc.B().Get().Key(k.Name()).Build()).ToString()
		if err != nil || got != want {
			t.Errorf("%s = %q %v, want %q", k, got, err, want)
		}
		pttl, _ := rc.Do(ctx, rc.B().Pttl().Key(k.Name()).Build()).AsInt64()
		if pttl <= 0 || pttl > time.Minute.Milliseconds() {
			t.Errorf("%s PTTL %d after write-back", k, pttl)
		}
	}
	// older is written back, newer kept; trip either way.
	if s := c.Stats(); s.WrittenBack < 1 || s.SkippedNewer < 1 || s.WrittenBack+s.SkippedNewer != 3 {
		t.Errorf("stats %+v", s)
	}
}

// TestDeleteDuringOutageIsWrittenBack: a delete made while Redis was away
// removes the pre-outage copy on recovery.
func TestDeleteDuringOutageIsWrittenBack(t *testing.T) {
	r := testenv.Start(t)
	reg := registry(t, time.Minute)
	ctx := context.Background()
	c := start(t, r, cache.Config{FailureThreshold: 1, CallTimeout: 100 * time.Millisecond, ProbeMin: 20 * time.Millisecond})
	k := key(t, reg, "gone")
	c.Set(ctx, k, []byte("v"))
	r.Pause(t)
	c.Delete(ctx, k)
	if _, ok, _ := c.Get(ctx, k); ok {
		t.Fatal("hit after delete during outage")
	}
	r.Resume(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis && c.Stats().MemoryEntries == 0 }, "no write-back")
	rc := r.Client(t)
	if n, _ := rc.Do(ctx, rc.B().Exists().Key(k.Name()).Build()).AsInt64(); n != 0 {
		t.Fatal("deleted key came back")
	}
}

// TestStartsWhileRedisIsDown: a node starts on memory and moves to Redis
// when it appears.
func TestStartsWhileRedisIsDown(t *testing.T) {
	r := testenv.Start(t)
	r.Stop(t)
	opt, _ := cache.RedisOptions(r.URL())
	c, err := cache.New(cache.Config{Redis: opt, ProbeMin: 20 * time.Millisecond, ProbeMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	reg := registry(t, time.Minute)
	k := key(t, reg, "early")
	if err := c.Set(ctx, k, []byte("v")); err != nil || c.Tier() != cache.TierMemory {
		t.Fatalf("Set before Redis: %v, tier %v", err, c.Tier())
	}
	r.Restart(t)
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis && c.Stats().MemoryEntries == 0 }, "never connected")
	rc := r.Client(t)
	if v, err := rc.Do(ctx, rc.B().Get().Key(k.Name()).Build()).ToString(); err != nil || v != "v" {
		t.Fatalf("early write in redis = %q %v", v, err)
	}
	cancel()
	<-done
}

func TestRedisOptions(t *testing.T) {
	tests := []struct {
		url     string
		addr    []string
		user    string
		pass    string
		db      int
		tls     bool
		wantErr bool
	}{
		{url: "redis://localhost:6379", addr: []string{"localhost:6379"}},
		{url: "redis://:secret@10.0.0.1:6380/2", addr: []string{"10.0.0.1:6380"}, pass: "secret", db: 2},
		{url: "rediss://app:pw@cache.example.com:6379", addr: []string{"cache.example.com:6379"}, user: "app", pass: "pw", tls: true},
		{url: "redis://h:7000?addr=h:7001&addr=h:7002", addr: []string{"h:7000", "h:7001", "h:7002"}},
		{url: "http://localhost", wantErr: true},
		{url: "redis://localhost/x", wantErr: true},
		{url: "localhost:6379", wantErr: true},
	}
	for _, tt := range tests {
		opt, err := cache.RedisOptions(tt.url)
		if tt.wantErr {
			if err == nil {
				t.Errorf("RedisOptions(%q) succeeded", tt.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("RedisOptions(%q): %v", tt.url, err)
			continue
		}
		got := []any{opt.InitAddress, opt.Username, opt.Password, opt.SelectDB, opt.TLSConfig != nil, opt.DisableCache}
		want := []any{tt.addr, tt.user, tt.pass, tt.db, tt.tls, true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RedisOptions(%q) (-want +got):\n%s", tt.url, diff)
		}
	}
	u, err := cache.JesseURL("redis.local", "6380", "p@ss", "3")
	if err != nil || u != "redis://:p%40ss@redis.local:6380/3" {
		t.Errorf("JesseURL = %q %v", u, err)
	}
	if opt, err := cache.RedisOptions(u); err != nil || opt.Password != "p@ss" || opt.SelectDB != 3 {
		t.Errorf("JesseURL round trip: %+v %v", opt, err)
	}
	if _, err := cache.JesseURL("h", "port", "", ""); err == nil {
		t.Error("bad REDIS_PORT accepted")
	}
	if got := cache.Redact("redis://u:secret@h:1/0"); strings.Contains(got, "secret") {
		t.Errorf("Redact kept the password: %s", got)
	}
}

func TestRedisOptionsPipelining(t *testing.T) {
	for _, tt := range []struct {
		url       string
		multiplex int
		delay     time.Duration
	}{
		{"redis://h:6379", -1, cache.DefaultMaxFlushDelay}, // one connection
		{"redis://h:6379?pipeline_multiplex=0", -1, cache.DefaultMaxFlushDelay},
		{"redis://h:6379?pipeline_multiplex=2&max_flush_delay=0", 2, 0},
		{"redis://h:6379?max_flush_delay=200us", -1, 200 * time.Microsecond},
	} {
		opt, err := cache.RedisOptions(tt.url)
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if opt.PipelineMultiplex != tt.multiplex || opt.MaxFlushDelay != tt.delay {
			t.Errorf("%s: PipelineMultiplex %d, MaxFlushDelay %v; want %d, %v", tt.url, opt.PipelineMultiplex, opt.MaxFlushDelay, tt.multiplex, tt.delay)
		}
	}
	for _, bad := range []string{"redis://h:6379?pipeline_multiplex=9", "redis://h:6379?pipeline_multiplex=-1", "redis://h:6379?pipeline_multiplex=x"} {
		if _, err := cache.RedisOptions(bad); err == nil || !strings.Contains(err.Error(), "pipeline_multiplex") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

// TestRedisOptionsErrorsHideThePassword: whatever is wrong with a URL, the
// error names the problem and never the password (url.Parse's own errors
// quote the whole URL).
func TestRedisOptionsErrorsHideThePassword(t *testing.T) {
	tests := []struct {
		url  string
		want string // in the error
	}{
		{"redis://user:s3cret@host:notaport", "invalid port"},
		{"redis://:s3cret@[bad", "missing ']' in host"},
		{"redis://:s3cret@ho st:6379", "invalid character"},
		{"redis://:s3cret@host:6379/%zz", "invalid URL escape"},
		{"redis://:s3cret@host:6379/x", "invalid database number"},
		{"redis://:s3cret@host:6379/0/1", "invalid URL path"},
		{"redis://:s3cret\x01@host:6379", "invalid control character"},
		{"http://:s3cret@host:6379", `scheme "http"`},
		{"redis://:s3cret@:6379?max_flush_delay=1h", "max_flush_delay"},
		// An unencoded "/" ends the authority inside the password: the
		// rest of it lands in the path.
		{"redis://:123/s3cret@host:6379", "invalid database number"},
		{"redis://u:s3/cret@host:6379", "invalid port"},
		{"redis://u:s3cret/x@host:6379", "invalid port"},
		{"redis://:s3cret@", "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := cache.RedisOptions(tt.url)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "cret") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want %q in it and no part of the password", msg, tt.want)
			}
			if got := cache.Redact(tt.url); strings.Contains(got, "cret") {
				t.Errorf("Redact = %q", got)
			}
		})
	}
}

// logCapture is a debug-level text logger whose output tests can read.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&syncWriter{w: &l.buf, mu: &l.mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the logged lines of level that contain s.
func (l *logCapture) lines(level slog.Level, s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for line := range strings.Lines(l.buf.String()) {
		if strings.Contains(line, "level="+level.String()) && strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runCache runs a Cache on url with a fast probe until the test ends.
func runCache(t *testing.T, url string, logs *logCapture) *cache.Cache {
	t.Helper()
	opt, err := cache.RedisOptions(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{Redis: opt, CallTimeout: 200 * time.Millisecond, ProbeMin: 10 * time.Millisecond, ProbeMax: 20 * time.Millisecond,
		Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// TestRedisFailureCause: a Redis that refuses the client keeps the cache on
// its memory tier, says why (LastError) and warns once however many probes
// meet the same refusal; a plain connection failure is reported without a
// warning.
func TestRedisFailureCause(t *testing.T) {
	// One server: its password and ACLs are per node.
	r := testenv.StartOne(t, testenv.RequirePass("right"))
	// A TLS server whose certificate no system root signs. (TLS to a plain
	// Redis is no test of this: Redis waits for a line the ClientHello
	// never ends, and the handshake times out like any dead server.)
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler())
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0)
	untrusted.StartTLS()
	defer untrusted.Close()
	tests := []struct {
		name  string
		url   string
		cause string // in LastError and in the one warning
		warns int
	}{
		{"wrong password", "redis://:wrong@" + r.Addr(), "WRONGPASS", 1},
		{"wrong user", "redis://nobody:right@" + r.Addr(), "WRONGPASS", 1},
		{"no password", "redis://" + r.Addr(), "NOAUTH", 1},
		{"no such database", "redis://:right@" + r.Addr() + "/99", "DB index is out of range", 1},
		{"untrusted certificate", "rediss://:right@" + untrusted.Listener.Addr().String(), "certificate", 1},
		{"nobody listening", "redis://" + deadAddr(t), "connection refused", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logCapture
			c := runCache(t, tt.url, &logs)
			testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(c.LastError(), tt.cause) }, "no %q in LastError", tt.cause)
			time.Sleep(200 * time.Millisecond) // ten more probes or so, each meeting the same cause
			type state struct {
				Tier  cache.Tier
				Cause bool
				Warns int
			}
			got := state{c.Tier(), strings.Contains(c.LastError(), tt.cause), len(logs.lines(slog.LevelWarn, tt.cause))}
			if diff := cmp.Diff(state{cache.TierMemory, true, tt.warns}, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nLastError: %s\nlogs:\n%s", diff, c.LastError(), logs.buf.String())
			}
			if strings.Contains(c.LastError(), "right") || strings.Contains(c.LastError(), "wrong") {
				t.Errorf("LastError shows a password: %s", c.LastError())
			}
		})
	}
}

// TestRedisFailureCauseClears: once Redis accepts the client, LastError is
// empty, and a refusal met later (the password changed while connections
// were re-established) is kept and warned about again.
func TestRedisFailureCauseClears(t *testing.T) {
	r := testenv.StartOne(t, testenv.RequirePass("right")) // passwords are per node
	var logs logCapture
	c := runCache(t, "redis://:new@"+r.Addr(), &logs)
	testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(c.LastError(), "WRONGPASS") }, "no WRONGPASS in LastError")
	ctx := context.Background()
	admin := r.Client(t)
	if err := admin.Do(ctx, admin.B().ConfigSet().ParameterValue().ParameterValue("requirepass", "new").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis }, "never connected with the new password")
	if e := c.LastError(); e != "" {
		t.Errorf("LastError on the Redis tier = %q", e)
	}
	// The password changes back and the cache's connections are cut: its
	// reconnections are refused, and the calls say so.
	if err := admin.Do(ctx, admin.B().ConfigSet().ParameterValue().ParameterValue("requirepass", "right").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, admin.B().ClientKill().TypeNormal().SkipmeYes().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	k := key(t, registry(t, time.Minute), "x")
	testenv.Eventually(t, 5*time.Second, func() bool {
		c.Get(ctx, k)
		return strings.Contains(c.LastError(), "WRONGPASS")
	}, "no WRONGPASS in LastError after the password changed")
	if n := len(logs.lines(slog.LevelWarn, "WRONGPASS")); n != 2 {
		t.Errorf("%d WRONGPASS warnings, want 2 (one per refusal after a connection):\n%s", n, logs.buf.String())
	}
}

// TestRedisPermissionErrorIsKept: a command the Redis user may not run
// returns NOPERM to its caller, the cache stays on Redis, and the cause is
// kept and warned about once however many calls meet it.
func TestRedisPermissionErrorIsKept(t *testing.T) {
	r := testenv.StartOne(t) // ACL rules are per node
	ctx := context.Background()
	admin := r.Client(t)
	if err := admin.Do(ctx, admin.B().AclSetuser().Username("reader").Rule("on", ">pw", "~*", "+@all", "-set").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	var logs logCapture
	c := runCache(t, "redis://reader:pw@"+r.Addr(), &logs)
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis }, "never connected")
	k := key(t, registry(t, time.Minute), "x")
	for range 20 {
		if err := c.Set(ctx, k, []byte("v")); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("Set as a user without SET: %v, want NOPERM", err)
		}
	}
	if _, _, err := c.Get(ctx, k); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if c.Tier() != cache.TierRedis || !strings.Contains(c.LastError(), "NOPERM") {
		t.Errorf("tier %v, LastError %q: want redis and NOPERM", c.Tier(), c.LastError())
	}
	if n := len(logs.lines(slog.LevelWarn, "NOPERM")); n != 1 {
		t.Errorf("%d NOPERM warnings, want 1:\n%s", n, logs.buf.String())
	}
}
