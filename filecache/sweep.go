package filecache

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// kind classifies a name found in a shard directory.
type kind int

const (
	kindOther kind = iota // not ours: left alone
	kindEntry             // 64 lowercase hex digits
	kindTemp              // tempPrefix...
)

func classify(name string) kind {
	if strings.HasPrefix(name, tempPrefix) {
		return kindTemp
	}
	if len(name) != 64 {
		return kindOther
	}
	for i := range len(name) {
		if c := name[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return kindOther
		}
	}
	return kindEntry
}

// eachName calls fn for every name in shard directory i, reading the
// directory a batch at a time so that memory stays bounded however many
// files the shard holds.
func (c *Cache) eachName(ctx context.Context, i int, fn func(dir, name string)) error {
	dir := c.shardDir(i)
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer d.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := d.Readdirnames(256)
		for _, n := range names {
			fn(dir, n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// measure sets the approximate size and count from a walk of the shards
// (lstat only). Open's one O(n) step.
func (c *Cache) measure(mark bool) error {
	var bytes, entries int64
	var markErr error
	for i := range 256 {
		err := c.eachName(context.Background(), i, func(dir, name string) {
			if classify(name) != kindEntry {
				return
			}
			if fi, err := os.Lstat(dir + string(filepath.Separator) + name); err == nil && fi.Mode().IsRegular() {
				bytes += fi.Size()
				entries++
				if mark && markErr == nil {
					markErr = c.markFile(name)
				}
			}
		})
		if err = cmp.Or(err, markErr); err != nil {
			return fmt.Errorf("filecache: %w", err)
		}
	}
	c.bytes.Store(bytes)
	c.entries.Store(entries)
	return c.measureTable()
}

// candidate is an entry the eviction walk may remove.
type candidate struct {
	path   string
	expire int64 // unix nanos, MaxInt64 for Never
	access int64 // mtime, unix nanos
	size   int64
}

// before orders candidates for eviction: expiring soonest first, then least
// recently used.
func (a candidate) before(b candidate) bool {
	if a.expire != b.expire {
		return a.expire < b.expire
	}
	return a.access < b.access
}

// maxCandidates bounds the eviction walk's memory (~150 bytes each). When
// freeing the budget takes more entries than this, eviction walks again.
const maxCandidates = 16384

// evictHeap keeps the best candidates (a max-heap on before, the worst
// kept at the top) whose sizes add up to at least need bytes, and at most
// maxCandidates of them.
type evictHeap struct {
	c     []candidate
	total int64
	need  int64
}

func (h *evictHeap) Len() int           { return len(h.c) }
func (h *evictHeap) Less(i, j int) bool { return h.c[j].before(h.c[i]) }
func (h *evictHeap) Swap(i, j int)      { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *evictHeap) Push(x any)         { h.c = append(h.c, x.(candidate)) }
func (h *evictHeap) Pop() any {
	x := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return x
}

func (h *evictHeap) offer(x candidate) {
	if len(h.c) > 0 && h.total >= h.need && !x.before(h.c[0]) {
		return // worse than all we keep, and we keep enough
	}
	heap.Push(h, x)
	h.total += x.size
	for len(h.c) > 0 && (len(h.c) > maxCandidates || h.total-h.c[0].size >= h.need) {
		h.total -= heap.Pop(h).(candidate).size
	}
}

// walkResult is what a walk found left in the directory.
type walkResult struct {
	bytes, entries int64
	removed        int
}

// walk visits every file of the cache: it removes abandoned temp files,
// corrupt entries (by their header and size; the checksum is Get's) and
// expired entries, offers the rest to h when h is not nil, and measures
// what is left.
func (c *Cache) walk(ctx context.Context, h *evictHeap) (walkResult, error) {
	var r walkResult
	now := c.now().UnixNano()
	for i := range 256 {
		err := c.eachName(ctx, i, func(dir, name string) {
			path := dir + string(filepath.Separator) + name
			switch classify(name) {
			case kindTemp:
				fi, err := os.Lstat(path)
				if err != nil {
					return
				}
				dead, unlock := abandonedTemp(path, fi, time.Now())
				if dead && os.Remove(path) == nil {
					c.tempRemoved.Add(1)
					r.removed++
				}
				unlock()
			case kindEntry:
				c.walkEntry(path, now, h, &r)
			}
		})
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

func (c *Cache) walkEntry(path string, now int64, h *evictHeap, r *walkResult) {
	var hb [headerSize]byte
	n, st, err := readHead(path, hb[:])
	if err != nil && st == (fileStamp{}) {
		return // gone, or unreadable: not ours to judge
	}
	var hdr header
	switch {
	case !st.regular():
		err = corruptf("not a regular file")
	case err != nil && n < headerSize:
		return // an I/O error, not corruption
	default:
		hdr, err = parseHeader(hb[:n], st.size)
	}
	if err != nil {
		if c.removeIfUnchanged(path, st, nil) {
			c.corrupt.Add(1)
			if c.onCorrupt != nil {
				c.onCorrupt(&CorruptError{Path: path, Err: err})
			}
			r.removed++
		}
		return
	}
	exp := expireAt(st.mtime, hdr.ttl)
	if exp <= now {
		if c.removeIfUnchanged(path, st, nil) {
			c.expired.Add(1)
			r.removed++
		}
		return
	}
	r.bytes += st.size
	r.entries++
	if h != nil {
		h.offer(candidate{path: path, expire: exp, access: st.mtime, size: st.size})
	}
}

// Sweep walks the whole directory and removes expired entries, corrupt
// entries (judged by header and size; Get also verifies the checksum) and
// temp files whose writer died. It returns how many files it removed. It
// also re-measures the approximate size. Callers run it periodically, or
// run Run.
func (c *Cache) Sweep(ctx context.Context) (removed int, err error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	n, bad, err := c.sweepTable(ctx)
	for _, e := range bad {
		if c.onCorrupt != nil {
			c.onCorrupt(e)
		}
	}
	if err != nil {
		return n, err
	}
	r, err := c.walk(ctx, nil)
	if err != nil {
		return n + r.removed, err
	}
	c.bytes.Store(r.bytes)
	c.entries.Store(r.entries)
	return n + r.removed, nil
}

// Run sweeps every Options.SweepEvery until ctx ends or the cache is
// closed, then returns nil. A failed sweep is counted in
// Stats.SweepErrors and retried at the next tick. The caller owns the
// goroutine: Open never starts one.
func (c *Cache) Run(ctx context.Context) error {
	t := time.NewTicker(c.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return nil
		case <-t.C:
			if _, err := c.Sweep(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				c.sweepErrors.Add(1)
			}
		}
	}
}

// evict brings the directory down to 90% of MaxBytes: entries expiring
// soonest first, then least recently used. It walks the directory, so a
// Set pays O(n) once per ~10% of the budget written. One goroutine evicts
// at a time; others carry on.
func (c *Cache) evict() {
	if !c.evictMu.TryLock() {
		return
	}
	defer c.evictMu.Unlock()
	c.measureTableUse()
	target := c.fileBudget() / 10 * 9
	for range 8 {
		need := c.bytes.Load() - target
		if need <= 0 {
			return
		}
		h := &evictHeap{need: need}
		c.evictWalks.Add(1)
		r, err := c.walk(context.Background(), h)
		if err != nil {
			return
		}
		// The walk measured the directory; free against that.
		need = r.bytes - target
		cands := h.c
		slices.SortFunc(cands, func(a, b candidate) int {
			if a.before(b) {
				return -1
			}
			if b.before(a) {
				return 1
			}
			return 0
		})
		var freed, n int64
		for _, x := range cands {
			if freed >= need {
				break
			}
			if c.removeCandidate(x) {
				freed += x.size
				n++
			}
		}
		c.evictions.Add(uint64(n))
		c.bytes.Store(r.bytes - freed)
		c.entries.Store(r.entries - n)
		if r.bytes-freed <= target || n == 0 {
			return
		}
	}
}

// removeCandidate removes an eviction candidate unless it was renewed or
// replaced since the walk saw it.
func (c *Cache) removeCandidate(x candidate) bool {
	st, err := lstamp(x.path)
	if err != nil || st.mtime != x.access || st.size != x.size || !st.regular() {
		return false
	}
	return c.discard(x.path) == nil
}

// Flush removes every entry in the directory, whichever process wrote it,
// and every abandoned temp file. Temp files of writers still running are
// left to them: their Set lands after the Flush.
func (c *Cache) Flush() error {
	if c.closed.Load() {
		return ErrClosed
	}
	var errs []error
	if err := c.flushTable(); err != nil {
		errs = append(errs, err)
	}
	var bytes, entries int64
	for i := range 256 {
		err := c.eachName(context.Background(), i, func(dir, name string) {
			path := dir + string(filepath.Separator) + name
			switch classify(name) {
			case kindEntry:
				fi, err := os.Lstat(path)
				if err != nil {
					return
				}
				if err := os.Remove(path); err != nil {
					if !errors.Is(err, fs.ErrNotExist) && len(errs) < 10 {
						errs = append(errs, err)
					}
					return
				}
				bytes += fi.Size()
				entries++
			case kindTemp:
				fi, err := os.Lstat(path)
				if err != nil {
					return
				}
				dead, unlock := abandonedTemp(path, fi, time.Now())
				if dead && os.Remove(path) == nil {
					c.tempRemoved.Add(1)
				}
				unlock()
			}
		})
		if err != nil && len(errs) < 10 {
			errs = append(errs, err)
		}
	}
	c.bytes.Add(-bytes)
	c.entries.Add(-entries)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("filecache: flush: %w", err)
	}
	return nil
}
