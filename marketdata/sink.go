package marketdata

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
)

// sink is where market data goes and is read back from: Redis (shared by
// every node) or memory (this node alone, while Redis is down).
type sink interface {
	// putSeries upserts klines (by open time) into each series' window,
	// and says what it removed that readers could not use; result i is
	// write i's.
	putSeries(ctx context.Context, ws []seriesWrite) []seriesResult
	// klines returns the last n klines of key, oldest first.
	klines(ctx context.Context, key keyspace.Key, n int) ([]exchange.Kline, error)
	// lastOpen returns the open time of the newest kline of key (0 if none).
	lastOpen(ctx context.Context, key keyspace.Key) (int64, error)
	// putFields sets fields of the hash key (symbol → JSON) and its TTL,
	// and says what it removed that readers could not use.
	putFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) (repair, error)
	// field reads one field of the hash key.
	field(ctx context.Context, key keyspace.Key, f string) ([]byte, bool, error)
	// fields reads the whole hash key.
	fields(ctx context.Context, key keyspace.Key) (map[string][]byte, error)
	// putValues sets string keys with their TTLs; error i is write i's.
	putValues(ctx context.Context, ws []valueWrite) []error
	// replaceFields replaces the whole hash key by fields, with its TTL.
	replaceFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) error
	// age is how long ago key was last written (from its TTL left);
	// false when it does not exist.
	age(ctx context.Context, key keyspace.Key) (time.Duration, bool, error)
}

// seriesWrite is klines to upsert into one series, oldest first.
type seriesWrite struct {
	key keyspace.Key
	ks  []exchange.Kline
}

// valueWrite is a string key's new value.
type valueWrite struct {
	key keyspace.Key
	v   []byte
}

// seriesResult is what became of one seriesWrite.
type seriesResult struct {
	rp  repair
	err error
	// checkedAll: the write checked the whole series, not only from its
	// oldest kline up.
	checkedAll bool
}

// memSink is the memory tier of market data: bounded windows of klines and
// bounded hashes, with the same TTLs as Redis, checked on read. It is used
// only while Redis is down, by the node streaming for itself.
type memSink struct {
	window    int
	maxFields int

	// values go to the tiered cache, which is on its memory tier while this
	// sink is in use and bounds it by its LRU.
	values *cache.Cache

	mu     sync.Mutex // guards series and hashes
	series map[string]*memSeries
	hashes map[string]*memHash
}

type memSeries struct {
	ks      []exchange.Kline // sorted by OpenTime, at most window
	expires time.Time
}

type memHash struct {
	m       map[string][]byte
	expires time.Time
}

func newMemSink(window, maxFields int, values *cache.Cache) *memSink {
	return &memSink{window: window, maxFields: maxFields, values: values, series: map[string]*memSeries{}, hashes: map[string]*memHash{}}
}

func (m *memSink) putKlines(_ context.Context, key keyspace.Key, ks []exchange.Kline) (repair, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[key.Name()]
	if s == nil {
		s = &memSeries{}
		m.series[key.Name()] = s
	}
	for _, k := range ks {
		i := sort.Search(len(s.ks), func(i int) bool { return s.ks[i].OpenTime >= k.OpenTime })
		if i < len(s.ks) && s.ks[i].OpenTime == k.OpenTime {
			s.ks[i] = k
			continue
		}
		s.ks = slices.Insert(s.ks, i, k)
	}
	if over := len(s.ks) - m.window; over > 0 {
		s.ks = slices.Delete(s.ks, 0, over)
	}
	s.expires = time.Now().Add(key.TTL())
	return repair{}, nil
}

func (m *memSink) putSeries(ctx context.Context, ws []seriesWrite) []seriesResult {
	res := make([]seriesResult, len(ws))
	for i, w := range ws {
		res[i].rp, res[i].err = m.putKlines(ctx, w.key, w.ks)
	}
	return res
}

func (m *memSink) klines(_ context.Context, key keyspace.Key, n int) ([]exchange.Kline, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[key.Name()]
	if s == nil || time.Now().After(s.expires) {
		return nil, nil
	}
	return slices.Clone(s.ks[max(0, len(s.ks)-n):]), nil
}

func (m *memSink) lastOpen(_ context.Context, key keyspace.Key) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[key.Name()]
	if s == nil || len(s.ks) == 0 || time.Now().After(s.expires) {
		return 0, nil
	}
	return s.ks[len(s.ks)-1].OpenTime, nil
}

func (m *memSink) putFields(_ context.Context, key keyspace.Key, fields map[string][]byte) (repair, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hashes[key.Name()]
	if h == nil || time.Now().After(h.expires) {
		h = &memHash{m: map[string][]byte{}}
		m.hashes[key.Name()] = h
	}
	for f, v := range fields {
		if _, ok := h.m[f]; !ok && len(h.m) >= m.maxFields {
			continue // bounded: a market with more symbols than maxFields keeps the first ones
		}
		h.m[f] = v
	}
	h.expires = time.Now().Add(key.TTL())
	return repair{}, nil
}

func (m *memSink) replaceFields(_ context.Context, key keyspace.Key, fields map[string][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := &memHash{m: make(map[string][]byte, min(len(fields), m.maxFields)), expires: time.Now().Add(key.TTL())}
	for f, v := range fields {
		if len(h.m) >= m.maxFields {
			break // bounded, as putFields
		}
		h.m[f] = v
	}
	m.hashes[key.Name()] = h
	return nil
}

func (m *memSink) age(_ context.Context, key keyspace.Key) (time.Duration, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hashes[key.Name()]
	now := time.Now()
	if h == nil || now.After(h.expires) {
		return 0, false, nil
	}
	return keyAge(key, h.expires.Sub(now)), true, nil
}

func (m *memSink) field(_ context.Context, key keyspace.Key, f string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hashes[key.Name()]
	if h == nil || time.Now().After(h.expires) {
		return nil, false, nil
	}
	v, ok := h.m[f]
	return v, ok, nil
}

func (m *memSink) fields(_ context.Context, key keyspace.Key) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hashes[key.Name()]
	if h == nil || time.Now().After(h.expires) {
		return map[string][]byte{}, nil
	}
	out := make(map[string][]byte, len(h.m))
	for f, v := range h.m {
		out[f] = v
	}
	return out, nil
}

// errRedisBack stops a standalone write once Redis answers again: through
// the tiered cache it would land in Redis unfenced.
var errRedisBack = errors.New("marketdata: redis is back; standalone writes stop")

func (m *memSink) putValues(ctx context.Context, ws []valueWrite) []error {
	errs := make([]error, len(ws))
	for i, w := range ws {
		if m.values.Redis() != nil {
			errs[i] = errRedisBack
			continue
		}
		errs[i] = m.values.Set(ctx, w.key, w.v)
	}
	return errs
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
