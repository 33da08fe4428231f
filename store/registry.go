package store

import (
	"sync"
	"sync/atomic"
)

// registry maps route keys to per-route state created on first write. It
// is a copy-on-write map: lookups load the current map with one atomic
// load and take no lock, so readers and writers of different routes share
// no written memory. Creating an entry takes mu, copies the map with the
// new entry and publishes it; routes are created rarely (once per route),
// so the O(routes) copy is paid a handful of times. Each *V carries its own
// lock. mu is a leaf lock: nothing else is acquired while it is held.
type registry[K comparable, V any] struct {
	mu   sync.Mutex // serialises creations
	m    atomic.Pointer[map[K]*V]
	newV func(K) *V
}

func newRegistry[K comparable, V any](newV func(K) *V) *registry[K, V] {
	r := &registry[K, V]{newV: newV}
	m := make(map[K]*V)
	r.m.Store(&m)
	return r
}

// get returns the value of k, or nil.
func (r *registry[K, V]) get(k K) *V {
	return (*r.m.Load())[k]
}

// getOrCreate returns the value of k, creating it when absent.
func (r *registry[K, V]) getOrCreate(k K) *V {
	if v := r.get(k); v != nil {
		return v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.m.Load()
	if v := old[k]; v != nil {
		return v
	}
	m := make(map[K]*V, len(old)+1)
	for key, v := range old {
		m[key] = v
	}
	v := r.newV(k)
	m[k] = v
	r.m.Store(&m)
	return v
}

// values returns the current values, in no particular order.
func (r *registry[K, V]) values() []*V {
	m := *r.m.Load()
	out := make([]*V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// routeKey names an exchange-symbol route.
type routeKey struct {
	exchange, symbol string
}
