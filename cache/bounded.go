package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/keyspace"
)

// ErrOversized reports a value in Redis over its key's size limit
// (keyspace.Key.MaxValue), which was not read, or a value too large to be
// written. The error is an *OversizedError.
var ErrOversized = errors.New("cache: value over its size limit")

// OversizedError is a value over its key's size limit. Reading, only the
// first Limit+1 bytes of it were asked of Redis, never the whole.
type OversizedError struct {
	Op    string // "get" or "set"
	Key   string // the full key name
	Size  int    // the value's size in bytes (for a get, what Redis reported)
	Limit int    // the key's MaxValue
}

func (e *OversizedError) Error() string {
	if e.Op == "set" {
		return fmt.Sprintf("cache: set %s: a value of %d bytes is over the key's limit of %d bytes", e.Key, e.Size, e.Limit)
	}
	return fmt.Sprintf("cache: %s %s: Redis holds a value of %d bytes, over the key's limit of %d bytes; it was not read", e.Op, e.Key, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrOversized) hold.
func (e *OversizedError) Is(target error) bool { return target == ErrOversized }

// Reasons a value held in Redis is not used (ReportBad, the metrics).
const (
	// BadOversized: over its key's size limit; never fetched.
	BadOversized = "oversized"
	// BadUndecodable: not the format its kind holds (not JSON, or not the
	// record expected).
	BadUndecodable = "undecodable"
	// BadNoTTL: a key the project writes with a TTL holds none (written
	// by hand), so it would never be refreshed by expiring.
	BadNoTTL = "no_ttl"
	// BadWrongType: the key is another Redis type than its kind's.
	BadWrongType = "wrong_type"
)

// found is what a bounded read found.
type found int

const (
	foundNone      found = iota // no such key: a miss
	foundValue                  // a value within the limit, with a TTL (or from memory)
	foundNoTTL                  // a value within the limit, without a TTL
	foundOversized              // a value over the limit, not read
	foundWrongType              // a key of another Redis type
)

// maxValue is key's size limit; a Key from a Registry always has one.
func maxValue(key keyspace.Key) int {
	if n := key.MaxValue(); n > 0 {
		return n
	}
	return keyspace.DefaultMaxValue
}

// getRedis reads key from Redis without ever fetching more than its
// MaxValue: GETRANGE asks for the first MaxValue+1 bytes, so a longer value
// shows as one byte too many, and only then does STRLEN ask its size for
// the error. GETRANGE answers a missing key like an empty value; an empty
// answer is told apart by PTTL (-2: no key). With ttl set, PTTL goes in the
// same round trip, to find a key written without TTL (foundNoTTL); without
// it, a value is foundValue whatever its TTL. The returned error is
// already classified (errOutage for an outage; never errMiss).
func (c *Cache) getRedis(ctx context.Context, cl valkey.Client, key keyspace.Key, ttl bool) ([]byte, found, int, error) {
	limit := maxValue(key)
	cctx, cancel := c.deadline.call(ctx)
	defer cancel()
	// GETRANGE key 0 limit, read-only like the typed builder's (so retried
	// on a broken connection), with the limit's text cached: formatting it
	// for every call was 4% of the CPU at 1,024 callers. The key is not
	// declared with Keys, which hashes it (CRC16) for a Redis Cluster slot,
	// 7% of the CPU at 1,024 callers: the cache never runs on a cluster
	// (Connect refuses one), and the other clients ignore slots.
	get := cl.B().Arbitrary("GETRANGE", key.Name(), "0", c.limitText.get(limit)).ReadOnly()
	var v []byte
	var err error
	pttl := int64(0) // unknown
	if ttl {
		res := cl.DoMulti(cctx, get, cl.B().Pttl().Key(key.Name()).Build())
		var perr error
		v, err = res[0].AsBytes()
		if pttl, perr = res[1].AsInt64(); err == nil {
			err = perr
		}
	} else {
		v, err = cl.Do(cctx, get).AsBytes()
	}
	if len(v) == 0 && err == nil && !ttl {
		pttl, err = cl.Do(cctx, cl.B().Pttl().Key(key.Name()).Build()).AsInt64()
	}
	switch err := c.classify(ctx, err); {
	case err == nil, err == errMiss: // neither command answers nil
	case isWrongType(err):
		return nil, foundWrongType, 0, err
	default:
		return nil, foundNone, 0, err
	}
	switch {
	case len(v) == 0 && pttl == -2:
		return nil, foundNone, 0, nil
	case len(v) > limit:
		size := len(v)
		if n, err := cl.Do(cctx, cl.B().Strlen().Key(key.Name()).Build()).AsInt64(); err == nil {
			size = int(n)
		}
		return nil, foundOversized, size, nil
	case pttl == -1:
		return v, foundNoTTL, 0, nil
	}
	return v, foundValue, 0, nil
}

// limitText caches the decimal text of value limits (one per kind).
type limitText struct {
	m  atomic.Pointer[map[int]string]
	mu sync.Mutex // serialises copies of m
}

// maxLimitTexts bounds the cache; past it, limits are formatted each time.
const maxLimitTexts = 64

func (l *limitText) get(n int) string {
	if m := l.m.Load(); m != nil {
		if s, ok := (*m)[n]; ok {
			return s
		}
	}
	s := strconv.Itoa(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	var old map[int]string
	if p := l.m.Load(); p != nil {
		old = *p
	}
	if len(old) < maxLimitTexts {
		m := make(map[int]string, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[n] = s
		l.m.Store(&m)
	}
	return s
}

func isWrongType(err error) bool {
	ve, ok := valkey.IsValkeyErr(err)
	return ok && len(ve.Error()) >= 9 && ve.Error()[:9] == "WRONGTYPE"
}

// getUsable is Get for read-through: a value that cannot be used — over
// its limit, without TTL, of another Redis type, or refused by valid — is
// a miss, reported when report is set.
func (c *Cache) getUsable(ctx context.Context, key keyspace.Key, valid func([]byte) error, report bool) ([]byte, bool, error) {
	v, f, size, err := c.get(ctx, key, true)
	bad := func(reason, detail string) ([]byte, bool, error) {
		if report {
			c.ReportBad(key.Name(), key.Kind(), reason, detail+"; loading it again")
		}
		return nil, false, nil
	}
	switch f {
	case foundNone:
		return nil, false, err
	case foundWrongType:
		return bad(BadWrongType, err.Error())
	case foundOversized:
		return bad(BadOversized, fmt.Sprintf("a value of %d bytes, over the key's limit of %d", size, maxValue(key)))
	case foundNoTTL:
		return bad(BadNoTTL, "a value without TTL")
	}
	if valid != nil {
		if verr := valid(v); verr != nil {
			return bad(BadUndecodable, verr.Error())
		}
	}
	return v, true, nil
}

// reporter counts unusable values and logs them, each key and reason at
// most once per interval.
type reporter struct {
	every time.Duration

	mu     sync.Mutex                          // guards counts and recent
	counts map[BadCount]*atomic.Uint64         // by kind and reason
	recent *simplelru.LRU[badKey, *reportedAt] // by key name and reason
}

type badKey struct{ name, reason string }

type reportedAt struct {
	at         time.Time
	suppressed int
}

func newReporter(every time.Duration) *reporter {
	l, _ := simplelru.NewLRU[badKey, *reportedAt](1024, nil)
	return &reporter{every: every, counts: map[BadCount]*atomic.Uint64{}, recent: l}
}

// ReportBad records that key (a full key name) of kind holds something
// this node cannot use, for reason (BadOversized, BadUndecodable,
// BadNoTTL, BadWrongType). It is counted (tradecache_cache_oversized_total,
// tradecache_cache_invalid_total) every time, and logged at WARN with
// detail at most once per Config.ReportEvery per key and reason, with how
// many more were met since the last line: bad content met ten times a
// second is one line a minute. Packages reading Redis themselves (sorted
// sets, hashes) report through it too.
func (c *Cache) ReportBad(key, kind, reason, detail string) {
	r := c.bad
	r.mu.Lock()
	cnt := r.counts[BadCount{kind, reason}]
	if cnt == nil {
		cnt = new(atomic.Uint64)
		r.counts[BadCount{kind, reason}] = cnt
	}
	cnt.Add(1)
	now := time.Now()
	k := badKey{key, reason}
	last, seen := r.recent.Get(k)
	if seen && now.Sub(last.at) < r.every {
		last.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := 0
	if seen {
		suppressed = last.suppressed
	}
	r.recent.Add(k, &reportedAt{at: now})
	r.mu.Unlock()
	attrs := []any{"key", key, "kind", kind, "reason", reason, "detail", detail}
	if suppressed > 0 {
		attrs = append(attrs, "more_since_last_report", suppressed)
	}
	c.cfg.Logger.Warn("cache: unusable value in Redis", attrs...)
}

// badCounts snapshots the counts by kind and reason.
func (r *reporter) badCounts() map[BadCount]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[BadCount]uint64, len(r.counts))
	for k, v := range r.counts {
		out[k] = v.Load()
	}
	return out
}

// BadCount names one count of Stats.Bad: values of a kind found unusable
// for a reason.
type BadCount struct{ Kind, Reason string }
