package filecache

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Never, passed as Set's expire, stores an entry that does not expire. It
// can still be deleted, flushed or evicted by the size budget.
const Never time.Duration = -1

// Defaults for the zero Options.
const (
	DefaultExpire     = time.Hour
	DefaultMaxBytes   = 256 << 20
	DefaultSweepEvery = 10 * time.Minute
)

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("filecache: closed")
	// ErrInvalidExpire is returned by Set for a negative expire other
	// than Never.
	ErrInvalidExpire = errors.New("filecache: negative expire (use Never for no expiry)")
	// ErrTooLarge is returned by Set for an entry larger than MaxBytes,
	// or too large for the table and larger than the files' share of
	// MaxBytes (what the table's written pages leave), or with a value
	// over 2 GiB.
	ErrTooLarge = errors.New("filecache: entry larger than the cache's budget")
	// ErrKeyTooLong is returned by Set for a key over MaxKeyLen bytes.
	ErrKeyTooLong = errors.New("filecache: key longer than MaxKeyLen")
	// ErrNotCache is returned by OpenExisting for a directory that does
	// not exist or does not hold a file cache.
	ErrNotCache = errors.New("filecache: not a file cache directory")
)

// Options configures a Cache. The zero value is usable.
type Options struct {
	// MaxBytes is the size budget of the slot table and the entry files
	// together, 0 for DefaultMaxBytes (see the package doc, Size budget):
	// the table evicts within its buckets once they are full; the files
	// get what the table's written pages leave, and a Set that takes them
	// over it evicts files down to 90% of it, those expiring soonest
	// first, then the least recently used.
	MaxBytes int64
	// DefaultExpire is the expiry of a Set with expire 0; 0 for
	// DefaultExpire (1h).
	DefaultExpire time.Duration
	// Sync makes Set msync a small entry's bucket, and fsync a large
	// entry before renaming it into place and the directory after. Off
	// by default: the rename is atomic either way, so a crash never
	// exposes a torn entry under a key's name; without Sync
	// a power loss may lose the latest writes (and a file system without
	// ordered data may leave an empty or torn file, which reads as a
	// corrupt entry and is dropped alone).
	Sync bool
	// Now is the clock, time.Now when nil.
	Now func() time.Time
	// OnCorrupt, when set, is called (synchronously, by the goroutine that
	// found it) for every corrupt entry dropped. It may call the Cache.
	OnCorrupt func(*CorruptError)
	// SweepEvery is Run's period, 0 for DefaultSweepEvery.
	SweepEvery time.Duration
	// TableBytes is the size of the slot table that Open creates for
	// small entries (see the package doc), within MaxBytes: 0 for half of
	// MaxBytes, negative for none (every entry in a file of its own). Its
	// file is sparse and counts against MaxBytes by the pages written. A
	// table that exists is used whatever this says, with its own size, so
	// that every process sharing the directory sees the same entries.
	// Where memory-mapped files are not coherent between processes (a
	// network file system), create the cache with -1. Processes sharing a
	// directory must agree: one that opened it before another made a
	// table keeps writing files the table does not know of.
	TableBytes int64
}

// CorruptError describes a corrupt entry file that was dropped.
type CorruptError struct {
	Path string // the entry file
	Key  string // the key being read, or "" when found by a sweep
	Err  error  // wraps ErrCorrupt, or the I/O error that made it unreadable
}

func (e *CorruptError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("filecache: %s (key %.64q): %v", e.Path, e.Key, e.Err)
	}
	return fmt.Sprintf("filecache: %s: %v", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Stats is a snapshot of a Cache's counters since Open. Bytes and Entries
// are this process's approximation of the directory: measured at Open and
// by every Sweep or eviction walk, maintained by this process's Set and
// Delete, blind to other processes in between.
type Stats struct {
	Hits        uint64
	Misses      uint64 // includes expired and corrupt entries read
	Sets        uint64
	Deletes     uint64 // Delete calls that removed a file
	Expired     uint64 // expired entries removed, by Get or a walk
	Corrupt     uint64 // corrupt entries dropped
	Evictions   uint64 // entries removed by the size budget
	EvictWalks  uint64 // walks made by eviction
	TempRemoved uint64 // abandoned temp files removed
	SweepErrors uint64 // Run's sweeps that failed
	// GetErrors, SetErrors and DeleteErrors count calls that failed on the
	// file system (an I/O error, a full disk, a permission): neither a
	// miss nor a caller's mistake (ErrClosed, ErrInvalidExpire,
	// ErrTooLarge, ErrKeyTooLong), which are not counted.
	GetErrors, SetErrors, DeleteErrors uint64
	Bytes                              int64 // approximate bytes of entries, in the table and in files
	Entries                            int64 // approximate number of entries
	TableBytes                         int64 // size of the slot table file, 0 without one
	MaxBytes                           int64
}

// Cache is a persistent file cache rooted at one directory. It is safe for
// concurrent use by goroutines, and several processes may share the
// directory. See the package doc for the design.
type Cache struct {
	root          string
	maxBytes      int64
	defaultExpire time.Duration
	sync          bool
	now           func() time.Time
	onCorrupt     func(*CorruptError)
	sweepEvery    time.Duration

	// tab is the slot table (nil: none). tabMu is held for reading by
	// every operation that touches it and for writing by Close, which
	// unmaps it.
	tab   *table
	tabMu sync.RWMutex
	// tabUsed is the disk the table holds (its file is sparse: the pages
	// of buckets written so far), as last measured or grown by this
	// process; the files' budget is MaxBytes less it.
	tabUsed atomic.Int64

	closed     atomic.Bool
	noExchange atomic.Bool // the file system refused RENAME_EXCHANGE
	spareMu    sync.Mutex
	spares     []spare
	done       chan struct{}
	closeOnce  sync.Once
	evictMu    sync.Mutex // one eviction walk at a time

	bytes, entries   atomic.Int64 // entry files
	tbytes, tentries atomic.Int64 // entries in the table

	hits, misses, sets, deletes             atomic.Uint64
	expired, corrupt, evictions, evictWalks atomic.Uint64
	tempRemoved, sweepErrors                atomic.Uint64
	getErrors, setErrors, deleteErrors      atomic.Uint64
}

// Open opens (creating it if needed) the cache rooted at dir. It creates
// the 256 shard directories and measures the entries already there, which
// is its only O(n) work; it starts no goroutine.
func Open(dir string, opts Options) (*Cache, error) {
	return openDir(dir, opts, true)
}

// OpenExisting opens a file cache that Open created before; it creates
// nothing. A directory that does not exist, or lacks the cache's shard
// directories, is refused with ErrNotCache: a mistyped path given to a
// destructive tool (flush) must not become a new, empty cache.
func OpenExisting(dir string, opts Options) (*Cache, error) {
	return openDir(dir, opts, false)
}

func openDir(dir string, opts Options, create bool) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("filecache: empty directory")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filecache: %w", err)
	}
	if opts.MaxBytes < 0 || opts.DefaultExpire < 0 || opts.SweepEvery < 0 || opts.TableBytes > cmpOr(opts.MaxBytes, DefaultMaxBytes)/4*3 {
		return nil, errors.New("filecache: negative option, or TableBytes over three quarters of MaxBytes")
	}
	c := &Cache{
		root:          root,
		maxBytes:      cmpOr(opts.MaxBytes, DefaultMaxBytes),
		defaultExpire: cmpOr(opts.DefaultExpire, DefaultExpire),
		sync:          opts.Sync,
		now:           opts.Now,
		onCorrupt:     opts.OnCorrupt,
		sweepEvery:    cmpOr(opts.SweepEvery, DefaultSweepEvery),
		done:          make(chan struct{}),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if !create {
		for _, d := range []string{root, c.shardDir(0), c.shardDir(255)} {
			if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("%w: %s (no directory %s)", ErrNotCache, dir, d)
			}
		}
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("filecache: %w", err)
	}
	for i := range 256 {
		d := c.shardDir(i)
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("filecache: %w", err)
		}
		// A shard must be a real directory: a symlink would take the
		// cache's writes and Flush's deletions outside the root.
		fi, err := os.Lstat(d)
		if err != nil {
			return nil, fmt.Errorf("filecache: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("filecache: %s is not a directory (%s)", d, fi.Mode().Type())
		}
	}
	tableBytes := cmpOr(opts.TableBytes, c.maxBytes/2)
	c.tab, err = openTable(root, tableBytes, create && opts.TableBytes >= 0)
	if err != nil {
		return nil, err
	}
	// Open marks the table's buckets of the entry files it finds (files
	// written before the table, or by a process that died before marking);
	// OpenExisting, for tools that inspect or flush, writes nothing.
	if err := c.measure(create); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func cmpOr[T int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Dir returns the cache's root directory, made absolute.
func (c *Cache) Dir() string { return c.root }

// Close marks the cache closed: later calls return ErrClosed and Run
// returns. It removes the spare files it kept for recycling (see
// spare.go). It is idempotent and never fails.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.dropSpares()
		c.tabMu.Lock()
		if c.tab != nil {
			c.tab.close()
			c.tab = nil
		}
		c.tabMu.Unlock()
	})
	return nil
}

// Stats returns the current counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits:         c.hits.Load(),
		Misses:       c.misses.Load(),
		Sets:         c.sets.Load(),
		Deletes:      c.deletes.Load(),
		Expired:      c.expired.Load(),
		Corrupt:      c.corrupt.Load(),
		Evictions:    c.evictions.Load(),
		EvictWalks:   c.evictWalks.Load(),
		TempRemoved:  c.tempRemoved.Load(),
		SweepErrors:  c.sweepErrors.Load(),
		GetErrors:    c.getErrors.Load(),
		SetErrors:    c.setErrors.Load(),
		DeleteErrors: c.deleteErrors.Load(),
		Bytes:        max(c.bytes.Load(), 0) + max(c.tbytes.Load(), 0),
		Entries:      max(c.entries.Load(), 0) + max(c.tentries.Load(), 0),
		TableBytes:   c.tableBytes(),
		MaxBytes:     c.maxBytes,
	}
}

const hexDigits = "0123456789abcdef"

func (c *Cache) shardDir(i int) string {
	return c.root + string(filepath.Separator) + string([]byte{hexDigits[i>>4], hexDigits[i&15]})
}

// tableBytes is the table file's size, 0 without one.
func (c *Cache) tableBytes() int64 {
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	if c.tab == nil {
		return 0
	}
	return c.tab.bytes()
}

// paths returns the shard directory and the entry file of key: the file is
// named by the hex SHA-256 of the key, in the shard of its first byte, so
// no key can name a path outside the root.
func (c *Cache) paths(key string) (dir, path string) {
	sum := sha256.Sum256([]byte(key))
	return c.pathsOf(&sum)
}

func (c *Cache) pathsOf(sum *[32]byte) (dir, path string) {
	b := make([]byte, 0, len(c.root)+2+2+64)
	b = append(b, c.root...)
	b = append(b, filepath.Separator)
	b = hex.AppendEncode(b, sum[:1])
	n := len(b)
	b = append(b, filepath.Separator)
	b = hex.AppendEncode(b, sum[:])
	path = string(b)
	return path[:n], path
}

// expireAt is the unix-nanosecond deadline of an entry last accessed at
// access, saturating; math.MaxInt64 for Never.
func expireAt(access, ttl int64) int64 {
	if ttl < 0 || access > math.MaxInt64-ttl {
		return math.MaxInt64
	}
	return access + ttl
}

func (c *Cache) ttlFor(expire time.Duration) (time.Duration, error) {
	switch {
	case expire == 0:
		return c.defaultExpire, nil
	case expire == Never:
		return Never, nil
	case expire < 0:
		return 0, ErrInvalidExpire
	}
	return expire, nil
}

// Get returns the value stored under key. A miss, an expired entry and a
// corrupt entry are all (nil, false, nil); a hit of an empty value is a
// non-nil empty slice. A hit renews the entry's expiry (sliding expiry):
// the access time in its slot, or its file's mtime; no byte of the entry
// is rewritten. The returned slice belongs to the caller.
func (c *Cache) Get(key string) ([]byte, bool, error) {
	if c.closed.Load() {
		return nil, false, ErrClosed
	}
	if len(key) > MaxKeyLen {
		c.misses.Add(1)
		return nil, false, nil
	}
	sum := sha256.Sum256([]byte(key))
	v, ok, bad, err := c.lookup(&sum, key)
	if bad != nil && c.onCorrupt != nil {
		c.onCorrupt(bad)
	}
	switch {
	case ok:
		c.hits.Add(1)
	case err == nil:
		c.misses.Add(1)
	case err != ErrClosed:
		c.getErrors.Add(1)
	}
	return v, ok, err
}

// lookup finds key in the table and, when the table does not have it and
// its bucket says a file may, in its file.
// A damaged slot it dropped comes back as bad, for OnCorrupt to be called
// once the table is released (the callback may call the Cache).
func (c *Cache) lookup(sum *[32]byte, key string) (v []byte, ok bool, bad *CorruptError, err error) {
	c.tabMu.RLock()
	if c.closed.Load() {
		c.tabMu.RUnlock()
		return nil, false, nil, ErrClosed
	}
	if c.tab != nil {
		var done bool
		v, ok, done, bad, err = c.getSlot(sum, key)
		if done || err != nil {
			c.tabMu.RUnlock()
			return v, ok, bad, err
		}
	}
	c.tabMu.RUnlock()
	_, path := c.pathsOf(sum)
	for attempt := 0; ; attempt++ {
		v, ok, retry, err := c.get(path, key, attempt < 3)
		if !retry {
			return v, ok, bad, err
		}
	}
}

// getSlot looks key up in the table. done is false when the table has no
// entry of key and its bucket may have a file of it.
func (c *Cache) getSlot(sum *[32]byte, key string) (v []byte, ok, done bool, bad *CorruptError, err error) {
	t := c.tab
	p := t.locate(sum)
	r, e, err := t.find(p, key)
	if err != nil {
		return nil, false, true, nil, fmt.Errorf("filecache: %w", err)
	}
	if r.corrupt >= 0 && !t.readOnly() {
		derr, err := t.dropCorrupt(r.cb, r.corrupt, p.tag)
		if err != nil {
			return nil, false, true, nil, fmt.Errorf("filecache: %w", err)
		}
		if derr != nil {
			c.tentries.Add(-1)
			c.corrupt.Add(1)
			bad = &CorruptError{Path: t.path, Key: key, Err: derr}
		}
	}
	if r.way < 0 {
		// Not in the table: in a file only if the bucket has files.
		return nil, false, r.flags&flagFiles == 0, bad, nil
	}
	// The table has the key's latest entry (a large Set removes it after
	// writing the file), live or not: the answer is here.
	now := c.now().UnixNano()
	if expireAt(r.access, e.ttl) <= now {
		if t.readOnly() {
			return nil, false, true, bad, nil // a process that may write removes it
		}
		n, err := t.remove(p, key, func(h header, access int64) bool { return expireAt(access, h.ttl) > now })
		if err != nil {
			return nil, false, true, bad, fmt.Errorf("filecache: %w", err)
		}
		if n > 0 {
			c.expired.Add(1)
			c.tentries.Add(-1)
			c.tbytes.Add(-int64(n))
		}
		return nil, false, true, bad, nil
	}
	if now-r.access >= renewSlack(e.ttl) {
		_ = t.touch(r.b, r.way, now) // a fault here is found by the next call
	}
	return e.value, true, true, bad, nil
}

var (
	errCollision = errors.New("filecache: another key's entry")
	errExpired   = errors.New("filecache: expired")
)

// get reads path once. When what it read is not a live entry of key and the
// file under path is no longer the one read (it was replaced, and the old
// one perhaps recycled, while read), it asks for a retry if mayRetry.
func (c *Cache) get(path, key string, mayRetry bool) (v []byte, ok, retry bool, err error) {
	buf, st, h, err := readFile(path)
	if err != nil && st == (fileStamp{}) {
		if isNotExist(err) {
			return nil, false, false, nil
		}
		return nil, false, false, fmt.Errorf("filecache: %w", err)
	}
	var e entry
	if err == nil {
		defer h.close()
		e, err = decodeEntry(buf)
	}
	now := c.now()
	if err == nil {
		switch {
		case string(e.key) != key:
			err = errCollision
		case expireAt(st.mtime, e.ttl) <= now.UnixNano():
			err = errExpired
		default:
			if now.UnixNano()-st.mtime >= renewSlack(e.ttl) {
				// Sliding renewal: one futimens on the inode read, no
				// byte of the entry written. If a writer replaced the
				// file meanwhile, this touches the old one: harmless.
				_ = h.touch(now)
			}
			return e.value, true, false, nil
		}
	}
	if !(errors.Is(err, ErrCorrupt) || err == errCollision || err == errExpired) {
		return nil, false, false, fmt.Errorf("filecache: %w", err)
	}
	cur, lerr := lstamp(path)
	if lerr != nil || !cur.same(st) {
		// Replaced (or removed) while we read: what we read proves
		// nothing about the current entry.
		return nil, false, mayRetry && lerr == nil, nil
	}
	switch {
	case err == errCollision:
		// A SHA-256 collision: the file is another key's entry.
	case err == errExpired:
		if c.removeIfUnchanged(path, st, &cur) {
			c.expired.Add(1)
		}
	default:
		c.drop(path, st, &cur, key, err)
	}
	return nil, false, false, nil
}

// renewSlack is the resolution of sliding renewal: a hit within it of the
// last renewal leaves the mtime alone, saving the inode write that makes a
// third of a hit's cost. It is ttl/1000, at most a second: an entry
// expires at most that much before last-hit+ttl.
func renewSlack(ttl int64) int64 {
	if ttl < 0 {
		return int64(time.Second)
	}
	return min(ttl/1000, int64(time.Second))
}

// maxEntryFile bounds the size of a file Get reads.
const maxEntryFile = minEntrySize + MaxKeyLen + math.MaxInt32

// checkSize rejects a file that cannot be an entry by its type and size.
func checkSize(s fileStamp) error {
	if !s.regular() {
		return corruptf("not a regular file")
	}
	if s.size < minEntrySize || s.size > maxEntryFile {
		return corruptf("impossible size %d", s.size)
	}
	return nil
}

// drop removes a corrupt entry file, if it is still the file found corrupt
// (cur is its fresh lstat, nil to take one), counts and reports it.
func (c *Cache) drop(path string, st fileStamp, cur *fileStamp, key string, err error) {
	if !c.removeIfUnchanged(path, st, cur) {
		return
	}
	c.corrupt.Add(1)
	if c.onCorrupt != nil {
		c.onCorrupt(&CorruptError{Path: path, Key: key, Err: err})
	}
}

// removeIfUnchanged removes path if it is still the file described by st
// (same inode, same mtime: neither replaced nor renewed since; cur is a
// fresh lstat of path, nil to take one), and adjusts the approximate size.
// Between the check and the unlink another process may replace the file;
// the cost of that race is one lost entry (a later miss), never a wrong
// value.
func (c *Cache) removeIfUnchanged(path string, st fileStamp, cur *fileStamp) bool {
	if cur == nil {
		s, err := lstamp(path)
		if err != nil {
			return false
		}
		cur = &s
	}
	if !cur.same(st) || cur.mtime != st.mtime {
		return false
	}
	if cur.regular() {
		if c.discard(path) != nil {
			return false
		}
	} else if os.Remove(path) != nil { // a directory goes only when empty
		return false
	}
	c.bytes.Add(-cur.size)
	c.entries.Add(-1)
	return true
}

// Set stores value under key, replacing any entry, to expire after expire
// without a hit: 0 means Options.DefaultExpire (1h), Never means no
// expiry, any other negative value is ErrInvalidExpire. A small entry is
// written into the slot table under its bucket's lock, a large one to a
// temp file in the key's shard directory renamed into place: readers (in
// any process) see the old entry or the new one, never part of one.
func (c *Cache) Set(key string, value []byte, expire time.Duration) error {
	if c.closed.Load() {
		return ErrClosed
	}
	ttl, err := c.ttlFor(expire)
	if err != nil {
		return err
	}
	if len(key) > MaxKeyLen {
		return ErrKeyTooLong
	}
	size := entrySize(len(key), len(value))
	if size > c.maxBytes || uint64(len(value)) > math.MaxInt32 {
		return ErrTooLarge
	}
	sum := sha256.Sum256([]byte(key))
	if err := c.put(&sum, key, value, ttl, size); err != nil {
		if err != ErrClosed && err != ErrTooLarge {
			c.setErrors.Add(1)
		}
		return err
	}
	return nil
}

// put writes an entry Set has validated: in the table when it is small,
// else in a file. A file is written without the table's read lock: its
// eviction walk may call OnCorrupt, which may call the Cache.
func (c *Cache) put(sum *[32]byte, key string, value []byte, ttl time.Duration, size int64) error {
	c.tabMu.RLock()
	if c.closed.Load() {
		c.tabMu.RUnlock()
		return ErrClosed
	}
	if c.tab != nil && size <= maxSlotEntry {
		grew, err := c.setSlot(sum, key, value, ttl)
		c.tabMu.RUnlock()
		if grew && c.bytes.Load() > c.fileBudget() {
			// The table took a page of disk: the files give it back.
			c.evict()
		}
		return err
	}
	table := c.tab != nil
	c.tabMu.RUnlock()
	if size > c.fileBudget() {
		return ErrTooLarge
	}
	var around func(place func() error) error
	if table {
		around = c.placeAround(sum, key)
	}
	return c.set(sum, key, value, ttl, size, around)
}

// placeAround returns how set puts a large entry's file in place: with the
// key's buckets locked (table.placeFile), so the key's slot goes and its
// file arrives in one step against small Sets of the key.
func (c *Cache) placeAround(sum *[32]byte, key string) func(place func() error) error {
	return func(place func() error) error {
		c.tabMu.RLock()
		defer c.tabMu.RUnlock()
		t := c.tab
		if t == nil {
			return ErrClosed
		}
		p := t.locate(sum)
		n, grew, err := t.placeFile(p, key, place)
		if grew {
			c.tabUsed.Add(bucketSize)
		}
		if n > 0 {
			c.tentries.Add(-1)
			c.tbytes.Add(-int64(n))
		}
		if err != nil {
			return err
		}
		if c.sync {
			for _, b := range p.list() {
				if err := t.sync(b); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// fileBudget is the entry files' share of MaxBytes: what the table's
// written pages leave, and at least a quarter (should another process have
// made a larger table).
func (c *Cache) fileBudget() int64 {
	return max(c.maxBytes-c.tabUsed.Load(), c.maxBytes/4)
}

// setSlot stores a small entry in the table. grew reports that the table
// took another page of disk (a bucket's first write).
func (c *Cache) setSlot(sum *[32]byte, key string, value []byte, ttl time.Duration) (grew bool, err error) {
	t := c.tab
	p := t.locate(sum)
	now := c.now().UnixNano()
	bp := bufPool.Get().(*[]byte)
	enc := appendEntry((*bp)[:0], ttl, now, key, value)
	res, err := t.put(p, key, enc, now, func(flags uint32) error {
		if flags&flagFiles == 0 {
			return nil
		}
		// A file may hold an older, large entry of key: it goes first,
		// or an eviction from the table would bring it back.
		removed, err := c.removeFile(sum)
		if removed && c.sync {
			dir, _ := c.pathsOf(sum)
			err = syncDir(dir)
		}
		return err
	})
	*bp = enc
	bufPool.Put(bp)
	if err != nil {
		return false, fmt.Errorf("filecache: %w", err)
	}
	if res.grew {
		c.tabUsed.Add(bucketSize)
	}
	if c.sync {
		for _, b := range p.list() {
			if err := t.sync(b); err != nil {
				return res.grew, fmt.Errorf("filecache: %w", err)
			}
		}
	}
	c.sets.Add(1)
	c.tbytes.Add(int64(len(enc) - res.oldLen))
	switch {
	case res.evicted:
		c.evictions.Add(1)
	case res.expired:
		c.expired.Add(1)
	case !res.sameKey:
		c.tentries.Add(1)
	}
	return res.grew, nil
}

// removeFile removes the entry file of the key whose SHA-256 is sum, if
// there is one, and reports whether it did.
func (c *Cache) removeFile(sum *[32]byte) (bool, error) {
	_, path := c.pathsOf(sum)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := c.discard(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	c.bytes.Add(-fi.Size())
	c.entries.Add(-1)
	return true, nil
}

// set writes an entry file Set has validated. around, if not nil, runs
// the step that puts the file in place (see placeAround).
func (c *Cache) set(sum *[32]byte, key string, value []byte, ttl time.Duration, size int64, around func(place func() error) error) error {
	now := c.now()
	dir, path := c.pathsOf(sum)
	sp, err := c.takeSpare(dir)
	if err != nil {
		return fmt.Errorf("filecache: %w", err)
	}
	placed := false
	defer func() {
		if !placed {
			os.Remove(sp.path)
			sp.f.Close()
		}
	}()
	if err := writeEntry(sp.f, ttl, now.UnixNano(), key, value); err != nil {
		return fmt.Errorf("filecache: %w", err)
	}
	if sp.size > size {
		if err := sp.f.Truncate(size); err != nil {
			return fmt.Errorf("filecache: %w", err)
		}
	}
	if c.sync {
		if err := sp.f.Sync(); err != nil {
			return fmt.Errorf("filecache: %w", err)
		}
	}
	// The mtime is the last access: the write set it to the kernel's
	// clock, make it ours.
	if err := os.Chtimes(sp.path, now, now); err != nil {
		return fmt.Errorf("filecache: %w", err)
	}
	oldSize := int64(-1)
	swapped := false
	place := func() error {
		if !c.noExchange.Load() {
			switch err := exchange(sp.path, path); {
			case err == nil:
				swapped = true
			case errors.Is(err, fs.ErrNotExist):
				// A new key: nothing to swap with.
			default:
				// EINVAL, ENOSYS...: this file system or kernel cannot.
				c.noExchange.Store(true)
			}
		}
		if !swapped {
			if old, err := os.Lstat(path); err == nil && old.Mode().IsRegular() {
				oldSize = old.Size()
			}
			if err := os.Rename(sp.path, path); err != nil {
				return err
			}
		}
		placed = true
		return nil
	}
	if around == nil {
		err = place()
	} else {
		err = around(place)
	}
	if !placed {
		if err == ErrClosed {
			return err
		}
		return fmt.Errorf("filecache: %w", err)
	}
	placeErr := err // placed, but the table's msync failed
	// Closing releases the temp file's lock; the data is written already,
	// so a close error has nothing left to report.
	sp.f.Close()
	if swapped {
		// The replaced entry is now under the temp name: recycle it.
		oldSize = c.adopt(sp.path)
	}
	if c.sync {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("filecache: %w", err)
		}
	}
	c.sets.Add(1)
	if oldSize >= 0 {
		c.bytes.Add(size - oldSize)
	} else {
		c.bytes.Add(size)
		c.entries.Add(1)
	}
	if c.bytes.Load() > c.fileBudget() {
		c.evict()
	}
	if placeErr != nil {
		return fmt.Errorf("filecache: %w", placeErr)
	}
	return nil
}

// bufPool holds encoding buffers for entries up to smallEntry bytes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const smallEntry = 256 << 10

// writeEntry writes the encoding of an entry at the start of f: in one
// write when small, in three (header and key, value, checksum) without
// copying the value when large.
func writeEntry(f *os.File, ttl time.Duration, setAt int64, key string, value []byte) error {
	if entrySize(len(key), len(value)) <= smallEntry {
		bp := bufPool.Get().(*[]byte)
		b := appendEntry((*bp)[:0], ttl, setAt, key, value)
		_, err := f.WriteAt(b, 0)
		*bp = b
		bufPool.Put(bp)
		return err
	}
	head := make([]byte, headerSize, headerSize+len(key))
	putHeader(head, header{ttl: int64(ttl), setAt: setAt, keyLen: uint32(len(key)), valLen: uint64(len(value))})
	head = append(head, key...)
	crc := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, value)
	if _, err := f.WriteAt(head, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(value, int64(len(head))); err != nil {
		return err
	}
	_, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, crc), int64(len(head))+int64(len(value)))
	return err
}

const tempPrefix = ".tmp-"

// tempName returns a fresh temp file name in dir.
func tempName(dir string) string {
	var rnd [8]byte
	binary.LittleEndian.PutUint64(rnd[:], rand.Uint64())
	return dir + string(filepath.Separator) + tempPrefix + hex.EncodeToString(rnd[:])
}

// createTemp creates and locks a new temp file in dir. The lock (flock,
// where available) tells sweepers in any process that its writer is
// alive; the kernel releases it when the writer dies.
func createTemp(dir string) (*os.File, string, error) {
	for range 100 {
		name := tempName(dir)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if lockFile(f) && stillNamed(f, name) {
			return f, name, nil
		}
		// A sweeper locked it between our create and our lock, taking it
		// for abandoned (and may have removed it already): leave it to
		// the sweeper, take another name.
		f.Close()
	}
	return nil, "", errors.New("cannot create a temp file")
}

// stillNamed reports whether name still refers to the open file f: a
// sweeper that locked the file just before us may have removed it.
func stillNamed(f *os.File, name string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	cur, err := os.Lstat(name)
	return err == nil && os.SameFile(fi, cur)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Delete removes key's entry. Deleting a missing key is not an error.
func (c *Cache) Delete(key string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if len(key) > MaxKeyLen {
		return nil
	}
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	if c.closed.Load() {
		return ErrClosed
	}
	sum := sha256.Sum256([]byte(key))
	slot := false
	if t := c.tab; t != nil {
		p := t.locate(&sum)
		n, err := t.remove(p, key, nil)
		if err == nil && n > 0 {
			slot = true
			c.deletes.Add(1)
			c.tentries.Add(-1)
			c.tbytes.Add(-int64(n))
		}
		files, ferr := t.hasFiles(p.b1)
		if err = cmp.Or(err, ferr); err != nil {
			c.deleteErrors.Add(1)
			return fmt.Errorf("filecache: %w", err)
		}
		if !files {
			return nil
		}
		// The key may have a file too (written by a process without the
		// table): it goes, counted once.
	}
	removed, err := c.removeFile(&sum)
	if err != nil {
		c.deleteErrors.Add(1)
		return fmt.Errorf("filecache: %w", err)
	}
	if removed && !slot {
		c.deletes.Add(1)
	}
	return nil
}
