package marketdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
)

// sink is where market data goes and is read back from: Redis (shared by
// every node) or memory (this node alone, while Redis is down).
type sink interface {
	// putKlines upserts klines (by open time) into key's window.
	putKlines(ctx context.Context, key keyspace.Key, ks []exchange.Kline) error
	// klines returns the last n klines of key, oldest first.
	klines(ctx context.Context, key keyspace.Key, n int) ([]exchange.Kline, error)
	// lastOpen returns the open time of the newest kline of key (0 if none).
	lastOpen(ctx context.Context, key keyspace.Key) (int64, error)
	// putFields sets fields of the hash key (symbol → JSON) and its TTL.
	putFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) error
	// field reads one field of the hash key.
	field(ctx context.Context, key keyspace.Key, f string) ([]byte, bool, error)
	// fields reads the whole hash key.
	fields(ctx context.Context, key keyspace.Key) (map[string][]byte, error)
	// putValue sets the string key with its TTL.
	putValue(ctx context.Context, key keyspace.Key, v []byte) error
	// replaceFields replaces the whole hash key by fields, with its TTL.
	replaceFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) error
	// age is how long ago key was last written (from its TTL left);
	// false when it does not exist.
	age(ctx context.Context, key keyspace.Key) (time.Duration, bool, error)
}

// redisSink writes with fenced Lua scripts: nothing lands once the lease
// that fence names is lost.
type redisSink struct {
	cl      valkey.Client
	fence   leader.Fence
	window  int
	timeout time.Duration
}

var putKlinesScript = valkey.NewLuaScript(leader.FenceCheck + `
for i = 4, #ARGV, 2 do
  -- A closed kline is final: an open version of it (a late, restored
  -- update) never replaces it.
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[i], ARGV[i])
  if not (old[1] and string.find(old[1], '"x":true', 1, true) and not string.find(ARGV[i+1], '"x":true', 1, true)) then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[i], ARGV[i])
    redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i+1])
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`)

var putFieldsScript = valkey.NewLuaScript(leader.FenceCheck + `
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)

// replaceFieldsScript replaces a hash whole, atomically: readers see the
// old fields or the new ones, never none. Not fenced: any node may write
// what the exchange lists. KEYS: the hash. ARGV: TTL (ms), field, value, …
var replaceFieldsScript = valkey.NewLuaScript(`
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

var putValueScript = valkey.NewLuaScript(leader.FenceCheck + `
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`)

func (s *redisSink) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *redisSink) putKlines(ctx context.Context, key keyspace.Key, ks []exchange.Kline) error {
	if err := key.Valid(); err != nil {
		return err
	}
	args := make([]string, 0, 3+2*len(ks))
	args = append(args, s.fence.Token, strconv.Itoa(s.window), ms(key.TTL()))
	for _, k := range ks {
		b, err := json.Marshal(k)
		if err != nil {
			return err
		}
		args = append(args, strconv.FormatInt(k.OpenTime, 10), string(b))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := putKlinesScript.Exec(cctx, s.cl, []string{s.fenceKey(), key.Name()}, args).Error(); err != nil {
		return fmt.Errorf("marketdata: write %s: %w", key, err)
	}
	return nil
}

// fenceKey is the lease key; without a fence, any key serves (the script
// skips the check for an empty token).
func (s *redisSink) fenceKey() string {
	if s.fence.Key == "" {
		return "unfenced"
	}
	return s.fence.Key
}

func (s *redisSink) klines(ctx context.Context, key keyspace.Key, n int) ([]exchange.Kline, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	members, err := s.cl.Do(cctx, s.cl.B().Zrange().Key(key.Name()).Min(strconv.Itoa(-n)).Max("-1").Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	out := make([]exchange.Kline, 0, len(members))
	for _, m := range members {
		var k exchange.Kline
		if err := json.Unmarshal([]byte(m), &k); err != nil {
			return nil, fmt.Errorf("marketdata: decode %s: %w", key, err)
		}
		out = append(out, k)
	}
	return out, nil
}

func (s *redisSink) lastOpen(ctx context.Context, key keyspace.Key) (int64, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	zs, err := s.cl.Do(cctx, s.cl.B().Zrange().Key(key.Name()).Min("-1").Max("-1").Withscores().Build()).AsZScores()
	if err != nil || len(zs) == 0 {
		return 0, err
	}
	return int64(zs[0].Score), nil
}

func (s *redisSink) putFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) error {
	if err := key.Valid(); err != nil {
		return err
	}
	args := make([]string, 0, 2+2*len(fields))
	args = append(args, s.fence.Token, ms(key.TTL()))
	for f, v := range fields {
		args = append(args, f, string(v))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := putFieldsScript.Exec(cctx, s.cl, []string{s.fenceKey(), key.Name()}, args).Error(); err != nil {
		return fmt.Errorf("marketdata: write %s: %w", key, err)
	}
	return nil
}

func (s *redisSink) field(ctx context.Context, key keyspace.Key, f string) ([]byte, bool, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	b, err := s.cl.Do(cctx, s.cl.B().Hget().Key(key.Name()).Field(f).Build()).AsBytes()
	if valkey.IsValkeyNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	return b, true, nil
}

func (s *redisSink) fields(ctx context.Context, key keyspace.Key) (map[string][]byte, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	m, err := s.cl.Do(cctx, s.cl.B().Hgetall().Key(key.Name()).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("marketdata: read %s: %w", key, err)
	}
	out := make(map[string][]byte, len(m))
	for f, v := range m {
		out[f] = []byte(v)
	}
	return out, nil
}

func (s *redisSink) replaceFields(ctx context.Context, key keyspace.Key, fields map[string][]byte) error {
	if err := key.Valid(); err != nil {
		return err
	}
	args := make([]string, 0, 1+2*len(fields))
	args = append(args, ms(key.TTL()))
	for f, v := range fields {
		args = append(args, f, string(v))
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := replaceFieldsScript.Exec(cctx, s.cl, []string{key.Name()}, args).Error(); err != nil {
		return fmt.Errorf("marketdata: write %s: %w", key, err)
	}
	return nil
}

func (s *redisSink) age(ctx context.Context, key keyspace.Key) (time.Duration, bool, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	left, err := s.cl.Do(cctx, s.cl.B().Pttl().Key(key.Name()).Build()).AsInt64()
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("marketdata: read %s: %w", key, err)
	case left == -2:
		return 0, false, nil
	case left < 0: // no TTL: not written by us; count it stale
		return key.TTL(), true, nil
	}
	return keyAge(key, time.Duration(left)*time.Millisecond), true, nil
}

func (s *redisSink) putValue(ctx context.Context, key keyspace.Key, v []byte) error {
	if err := key.Valid(); err != nil {
		return err
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := putValueScript.Exec(cctx, s.cl, []string{s.fenceKey(), key.Name()}, []string{s.fence.Token, string(v), ms(key.TTL())}).Error(); err != nil {
		return fmt.Errorf("marketdata: write %s: %w", key, err)
	}
	return nil
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

func (m *memSink) putKlines(_ context.Context, key keyspace.Key, ks []exchange.Kline) error {
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
	return nil
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

func (m *memSink) putFields(_ context.Context, key keyspace.Key, fields map[string][]byte) error {
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
	return nil
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

func (m *memSink) putValue(ctx context.Context, key keyspace.Key, v []byte) error {
	if m.values.Redis() != nil {
		return errRedisBack
	}
	return m.values.Set(ctx, key, v)
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
