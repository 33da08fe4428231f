package cache

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// entry is one value held by the memory tier.
type entry struct {
	val  []byte
	tomb bool // a delete made while Redis was unreachable
	// memExpire ends the entry's life in memory: its write time plus the
	// shorter of the key's TTL and the memory tier's TTL.
	memExpire time.Time
	// redisExpire is when the value would have expired in Redis had the
	// write reached it: the write time plus the key's TTL. Write-back sets
	// the remaining time as the Redis TTL and compares it with the TTL left
	// on the Redis copy to tell which write is newer.
	redisExpire time.Time
	// sent holds the SHA-1s of values this node sent to Redis for the key
	// whose outcome is unknown (the call timed out or the connection broke
	// after the bytes left). Such a write can land late, when Redis resumes,
	// and then look newer than this entry by its TTL; write-back overwrites
	// a Redis copy whose value is one of these. At most maxSent, newest last.
	sent []string
}

const maxSent = 4

// memTier is the bounded fallback: an LRU with expiry checked on read, so it
// owns no goroutine. It uses golang-lru's non-thread-safe core under its own
// mutex because write-back needs "remove this entry only if it is still the
// one I wrote back", which the thread-safe wrapper cannot express.
type memTier struct {
	ttl time.Duration

	mu  sync.Mutex // guards lru, recent and evictions
	lru *simplelru.LRU[string, *entry]
	// recent maps a key to the SHA-1 of the value write-back last put in
	// Redis for it. A write that reaches memory after its key's entry was
	// written back (it read the tier just before the switch) starts with
	// that SHA-1 in its sent list: the Redis copy is older even when the two
	// writes are less than a millisecond apart. Bounded like lru.
	recent    *simplelru.LRU[string, string]
	evictions uint64
	// n mirrors lru.Len() so the Redis-tier hot path can see that memory is
	// empty without taking mu.
	n atomic.Int64
}

func newMemTier(size int, ttl time.Duration) *memTier {
	l, err := simplelru.NewLRU[string, *entry](size, nil)
	if err != nil {
		panic(err) // size is validated by Config.withDefaults
	}
	r, _ := simplelru.NewLRU[string, string](size, nil)
	return &memTier{ttl: ttl, lru: l, recent: r}
}

// get returns the live entry for key, or nil. Expired entries are removed.
func (m *memTier) get(key string, now time.Time) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lru.Get(key)
	if !ok {
		return nil
	}
	if !now.Before(e.memExpire) {
		m.lru.Remove(key)
		m.n.Store(int64(m.lru.Len()))
		return nil
	}
	return e
}

// put stores val (copied) or a tombstone for key written now with ttl.
// sent is the SHA-1 of a value whose write to Redis had an unknown outcome,
// or "". With onlyIfPresent it stores nothing and returns false unless key
// already has an entry; otherwise it returns true.
func (m *memTier) put(key string, val []byte, tomb bool, ttl time.Duration, now time.Time, sent string, onlyIfPresent bool) bool {
	e := &entry{
		tomb:        tomb,
		memExpire:   now.Add(min(ttl, m.ttl)),
		redisExpire: now.Add(ttl),
	}
	if !tomb {
		e.val = slices.Clone(val)
		if e.val == nil {
			e.val = []byte{}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.lru.Peek(key); ok {
		e.sent = prev.sent
	} else if onlyIfPresent {
		return false
	} else if h, ok := m.recent.Peek(key); ok {
		e.sent = []string{h}
	}
	if sent != "" {
		e.addSent(sent)
	}
	if m.lru.Add(key, e) {
		m.evictions++
	}
	m.n.Store(int64(m.lru.Len()))
	return true
}

func (m *memTier) remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
	m.n.Store(int64(m.lru.Len()))
}

// removeIf removes key only while it still holds e. If a newer entry took
// e's place and e's value was written to Redis (sent != ""), the newer entry
// learns that value is its own older write, so its write-back replaces it
// even when the two are less than a millisecond apart.
func (m *memTier) removeIf(key string, e *entry, sent string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.lru.Peek(key)
	switch {
	case ok && cur == e:
		m.lru.Remove(key)
		m.n.Store(int64(m.lru.Len()))
		if sent != "" {
			m.recent.Add(key, sent)
		}
	case ok && sent != "":
		cur.addSent(sent)
	}
}

// noteSent records that val, sent to Redis for key with an unknown outcome,
// may land there: the key's current entry will overwrite it.
func (m *memTier) noteSent(key, sent string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.lru.Peek(key); ok {
		cur.addSent(sent)
	}
}

// addSent appends a SHA-1 to e.sent, keeping the newest maxSent. The
// caller holds the memory tier's lock.
func (e *entry) addSent(sent string) {
	e.sent = append(slices.Clip(e.sent), sent)
	if len(e.sent) > maxSent {
		e.sent = e.sent[len(e.sent)-maxSent:]
	}
}

// snapshot returns the live entries, oldest first, dropping expired ones.
func (m *memTier) snapshot(now time.Time) (keys []string, ents []*entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.lru.Keys() {
		e, _ := m.lru.Peek(k)
		if !now.Before(e.memExpire) {
			m.lru.Remove(k)
			continue
		}
		keys = append(keys, k)
		ents = append(ents, e)
	}
	m.n.Store(int64(m.lru.Len()))
	return keys, ents
}

func (m *memTier) len() int { return int(m.n.Load()) }

func (m *memTier) evicted() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.evictions
}
