package cache

import (
	"slices"
	"sync"
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
}

// memTier is the bounded fallback: an LRU with expiry checked on read, so it
// owns no goroutine. It uses golang-lru's non-thread-safe core under its own
// mutex because write-back needs "remove this entry only if it is still the
// one I wrote back", which the thread-safe wrapper cannot express.
type memTier struct {
	ttl time.Duration

	mu        sync.Mutex // guards lru and evictions
	lru       *simplelru.LRU[string, *entry]
	evictions uint64
}

func newMemTier(size int, ttl time.Duration) *memTier {
	l, err := simplelru.NewLRU[string, *entry](size, nil)
	if err != nil {
		panic(err) // size is validated by Config.withDefaults
	}
	return &memTier{ttl: ttl, lru: l}
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
		return nil
	}
	return e
}

// put stores val (copied) or a tombstone for key written now with ttl.
func (m *memTier) put(key string, val []byte, tomb bool, ttl time.Duration, now time.Time) {
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
	if m.lru.Add(key, e) {
		m.evictions++
	}
}

func (m *memTier) remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
}

// removeIf removes key only while it still holds e.
func (m *memTier) removeIf(key string, e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.lru.Peek(key); ok && cur == e {
		m.lru.Remove(key)
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
	return keys, ents
}

func (m *memTier) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

func (m *memTier) evicted() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.evictions
}
