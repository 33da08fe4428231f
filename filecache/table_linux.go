//go:build linux

package filecache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The slot table holds the small entries: one file, root/slots, mapped
// into every process that opens the cache. See the package doc (Slot
// table) for why; this file is its layout and its concurrency protocol.
//
//	off              size          what
//	0                4096          magic "TCfcSLOT", version, slot size, ways, buckets
//	4096             buckets*4096  the buckets, one page each
//
// A bucket is a meta line of 64 bytes, then tableWays slots of slotSize
// bytes: one page, so a lookup costs one page walk (TLB miss) and a few
// cache lines. The meta line: seq (uint64), the slots' tags (uint32
// each, 0 for an empty slot) and flags (uint32). A slot: the entry's last
// access (int64 unix nanoseconds: its sliding expiry), the entry's length
// (uint32), four reserved bytes, then the entry encoded as in an entry file
// (header, key, value, CRC32C).
//
// Writers of a bucket hold its lock: a mutex in the process and an
// open-file-description lock (F_OFD_SETLKW) on its meta line across
// processes, which the kernel releases when the holder dies. A writer
// makes seq odd, writes, and makes it even again. Readers take no lock:
// they read seq, the tags and a slot, and read seq again; a change or an
// odd seq sends them round again (a seqlock). A reader that keeps finding
// seq odd takes the lock: an odd seq under the lock was left by a writer
// that died mid-write, and the checksum of every slot tells what it tore.
// The checksum also backs the seqlock on processors that may reorder the
// reader's loads.
const (
	tableName       = "slots"
	tableMagic      = "TCfcSLOT"
	tableVersion    = 1
	tableHeaderSize = 4096
	pageSize        = 4096
	tableWays       = 8
	metaSize        = 64
	slotSize        = (pageSize - metaSize) / tableWays // 504
	bucketSize      = pageSize
	slotHeadSize    = 16
	// maxSlotEntry is the largest encoded entry a slot holds; a larger
	// one is stored in a file.
	maxSlotEntry = slotSize - slotHeadSize
	// flagFiles marks a bucket some of whose keys may have an entry file
	// (a large entry, or one written before the table existed). Set, never
	// cleared while the table exists: a cleared flag could hide a file
	// that a later eviction from the table would bring back stale.
	flagFiles = 1
)

// tableSize is the size of a table file of n buckets.
func tableSize(n uint32) int64 { return tableHeaderSize + int64(n)*bucketSize }

// minBuckets is the smallest table made: below it (a budget under
// 128 KiB) every entry is a file.
const minBuckets = 16

// bucketsFor is the number of buckets of a table of at most bytes, 0 when
// fewer than minBuckets fit.
func bucketsFor(bytes int64) uint32 {
	n := (bytes - tableHeaderSize) / bucketSize
	if n < minBuckets {
		return 0
	}
	return uint32(min(n, 1<<24)) // 64 GiB of slots
}

// table is an open slot table.
type table struct {
	path    string
	f       *os.File
	fd      int
	mem     []byte
	buckets uint32
	ro      bool // mapped read-only: every write is errReadOnly
	mu      [256]sync.Mutex
}

// openTable opens root's table, creating one of at most bytes when there
// is none and create is set. It returns nil, nil when there is none and
// none is to be made. An existing table keeps its geometry whatever bytes
// says: every process sharing the directory must see the same one.
func openTable(root string, bytes int64, create bool) (*table, error) {
	path := root + string(os.PathSeparator) + tableName
	f, err := openTableFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		n := bucketsFor(bytes)
		if !create || n == 0 {
			return nil, nil
		}
		switch err := createTable(root, path, n); {
		case errors.Is(err, errNoLinks):
			return nil, nil // every entry in a file, as before tables
		case err != nil:
			return nil, fmt.Errorf("filecache: create %s: %w", path, err)
		}
		f, err = openTableFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("filecache: %w", err)
	}
	t, err := mapTable(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

// openTableFile opens the table for reading and writing, or only for
// reading where it may not be written (a cache inspected by another user,
// a read-only mount): Gets work, writes fail with the lock's error.
func openTableFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) {
		return os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	return f, err
}

// errNoLinks is createTable's error on a file system without hard links
// (vfat, some shared folders): the cache goes on without a table.
var errNoLinks = errors.New("no hard links")

// createTable writes a table of n buckets under a temp name and links it
// to path: a process that finds path finds a whole header, and of two
// processes creating at once the first link wins and both use its table.
func createTable(root, path string, n uint32) error {
	// The temp file is made in a shard directory, where a sweep removes
	// it should this process die before the end.
	f, tmp, err := createTemp(root + string(os.PathSeparator) + "00")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		os.Remove(tmp)
	}()
	var h [tableHeaderSize]byte
	copy(h[:], tableMagic)
	binary.LittleEndian.PutUint32(h[8:], tableVersion)
	binary.LittleEndian.PutUint32(h[12:], slotSize)
	binary.LittleEndian.PutUint32(h[16:], tableWays)
	binary.LittleEndian.PutUint32(h[20:], n)
	if _, err := f.WriteAt(h[:], 0); err != nil {
		return err
	}
	if err := f.Truncate(tableSize(n)); err != nil {
		return err
	}
	// The file is sparse: a bucket's page is reserved by its first writer
	// (see begin).
	err = os.Link(tmp, path)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%w: %w", errNoLinks, err)
	}
	return err
}

func mapTable(path string, f *os.File) (*table, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("filecache: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("filecache: %s is not a usable slot table: "+format+" (remove it, with no process using the cache, to start an empty one)", append([]any{path}, args...)...)
	}
	if !fi.Mode().IsRegular() {
		return nil, bad("not a regular file")
	}
	var h [24]byte
	if n, _ := f.ReadAt(h[:], 0); n < len(h) {
		return nil, bad("%d bytes", fi.Size())
	}
	if string(h[:8]) != tableMagic {
		return nil, bad("bad magic %q", h[:8])
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != tableVersion {
		return nil, bad("version %d, this build reads %d", v, tableVersion)
	}
	slot, ways, n := binary.LittleEndian.Uint32(h[12:]), binary.LittleEndian.Uint32(h[16:]), binary.LittleEndian.Uint32(h[20:])
	if slot != slotSize || ways != tableWays || n == 0 || n > 1<<24 {
		return nil, bad("geometry %d×%d×%d", n, ways, slot)
	}
	if fi.Size() != tableSize(n) {
		return nil, bad("%d bytes, want %d for %d buckets", fi.Size(), tableSize(n), n)
	}
	fd := int(f.Fd())
	prot := unix.PROT_READ | unix.PROT_WRITE
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil && fl&unix.O_ACCMODE == unix.O_RDONLY {
		prot = unix.PROT_READ
	}
	mem, err := unix.Mmap(fd, 0, int(fi.Size()), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("filecache: mmap %s: %w", path, err)
	}
	// Lookups are random: without this, every page fault reads ahead
	// dozens of neighbouring pages into memory (a thousand Sets cost
	// ~80 MB of resident pages instead of ~8).
	if err := unix.Madvise(mem, unix.MADV_RANDOM); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("filecache: madvise %s: %w", path, err)
	}
	return &table{path: path, f: f, fd: fd, mem: mem, buckets: n, ro: prot == unix.PROT_READ}, nil
}

func (t *table) close() {
	unix.Munmap(t.mem)
	t.f.Close()
}

// bytes is the table file's size.
func (t *table) bytes() int64 { return int64(len(t.mem)) }

// used is the disk the table file holds: the file is sparse, and a
// bucket's page is allocated at its first write.
func (t *table) used() int64 {
	var st unix.Stat_t
	if err := unix.Fstat(t.fd, &st); err != nil {
		return t.bytes()
	}
	return min(st.Blocks*512, t.bytes())
}

// pair is where a key may be: either of two buckets (b1 also holds the
// key's flagFiles), under a tag.
type pair struct{ b1, b2, tag uint32 }

// way is the key's preferred slot in either bucket.
func (p pair) way() int { return int(p.tag>>1) % tableWays }

// locate returns the buckets and the tag of a key's SHA-256. Two choices
// keep a bucket from overflowing long before the table is full: with one,
// 100,000 keys in 32,768 buckets of 8 overflow ~130 buckets.
func (t *table) locate(sum *[32]byte) pair {
	n := uint64(t.buckets)
	return pair{
		b1:  uint32(binary.LittleEndian.Uint64(sum[0:8]) % n),
		b2:  uint32(binary.LittleEndian.Uint64(sum[16:24]) % n),
		tag: binary.LittleEndian.Uint32(sum[8:12]) | 1,
	}
}

// buckets lists p's buckets, once each, in lock order.
func (p pair) list() []uint32 {
	switch {
	case p.b1 == p.b2:
		return []uint32{p.b1}
	case p.b1 < p.b2:
		return []uint32{p.b1, p.b2}
	}
	return []uint32{p.b2, p.b1}
}

func (t *table) metaOff(b uint32) int64 { return tableHeaderSize + int64(b)*bucketSize }

func (t *table) seq(b uint32) *uint64 {
	return (*uint64)(unsafe.Pointer(&t.mem[t.metaOff(b)]))
}

func (t *table) tag(b uint32, w int) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.mem[t.metaOff(b)+8+int64(w)*4]))
}

func (t *table) flags(b uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.mem[t.metaOff(b)+8+tableWays*4]))
}

func (t *table) slotOff(b uint32, w int) int64 {
	return t.metaOff(b) + metaSize + int64(w)*slotSize
}

// warm loads a word of each cache line slot w of bucket b spans (eight
// or nine), whose values it discards: the processor fetches them all at
// once, ahead of the reads that need them.
func (t *table) warm(b uint32, w int) {
	off := t.slotOff(b, w)
	for i := int64(0); i < slotSize; i += 64 {
		_ = atomic.LoadUint32((*uint32)(unsafe.Pointer(&t.mem[(off+i)&^3])))
	}
	_ = atomic.LoadUint32((*uint32)(unsafe.Pointer(&t.mem[(off+slotSize-4)&^3])))
}

// access is a slot's last access, read and written atomically: a hit
// renews it without the lock.
func (t *table) access(b uint32, w int) *int64 {
	return (*int64)(unsafe.Pointer(&t.mem[t.slotOff(b, w)]))
}

// slotLen is the length of the entry in a slot, or -1 if it cannot be one.
func (t *table) slotLen(b uint32, w int) int {
	n := binary.LittleEndian.Uint32(t.mem[t.slotOff(b, w)+8:])
	if n < minEntrySize || n > maxSlotEntry {
		return -1
	}
	return int(n)
}

// slotBytes is a slot's entry, in the mapping (n from slotLen).
func (t *table) slotBytes(b uint32, w int, n int) []byte {
	off := t.slotOff(b, w) + slotHeadSize
	return t.mem[off : off+int64(n) : off+int64(n)]
}

// errReadOnly is every write's error on a table this process may only
// read (see openTableFile).
var errReadOnly = errors.New("the slot table is open read-only (no write permission)")

// readOnly reports whether the table was mapped read-only: Gets then leave
// expired and damaged slots, and access times, alone.
func (t *table) readOnly() bool { return t.ro }

// errFault is returned when touching the mapping faulted: the table file
// was truncated behind our back, or a block could not be allocated.
var errFault = errors.New("memory fault in the slot table (truncated by another program, or the disk is full)")

// guard turns a fault in the mapping into an error; deferred by every
// operation that touches it, after debug.SetPanicOnFault(true).
func guard(old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		if re, ok := r.(runtime.Error); ok {
			if _, ok := re.(interface{ Addr() uintptr }); ok {
				*err = errFault
				return
			}
		}
		panic(r)
	}
}

// lock takes the locks of buckets bs (in lock order, from pair.list or
// one bucket): the stripes' mutexes in this process, in stripe order, then
// open-file-description locks on their meta lines across processes, in
// bucket order.
func (t *table) lock(bs ...uint32) error {
	if t.ro {
		return errReadOnly
	}
	st := t.stripes(bs)
	for _, i := range st {
		t.mu[i].Lock()
	}
	for k, b := range bs {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: t.metaOff(b), Len: metaSize}
		for {
			err := unix.FcntlFlock(uintptr(t.fd), unix.F_OFD_SETLKW, &lk)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				t.unlockOFD(bs[:k])
				for _, i := range st {
					t.mu[i].Unlock()
				}
				return &fs.PathError{Op: "lock", Path: t.path, Err: err}
			}
			break
		}
	}
	return nil
}

func (t *table) unlock(bs ...uint32) {
	t.unlockOFD(bs)
	for _, i := range t.stripes(bs) {
		t.mu[i].Unlock()
	}
}

func (t *table) unlockOFD(bs []uint32) {
	for _, b := range bs {
		lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: t.metaOff(b), Len: metaSize}
		for unix.FcntlFlock(uintptr(t.fd), unix.F_OFD_SETLK, &lk) == unix.EINTR {
		}
	}
}

// stripes returns the mutex stripes of bs, once each, in order.
func (t *table) stripes(bs []uint32) []uint32 {
	n := uint32(len(t.mu))
	if len(bs) == 1 || bs[0]%n == bs[1]%n {
		return []uint32{bs[0] % n}
	}
	if bs[0]%n < bs[1]%n {
		return []uint32{bs[0] % n, bs[1] % n}
	}
	return []uint32{bs[1] % n, bs[0] % n}
}

// begin starts a write of bucket b, whose lock is held: seq goes odd. A
// bucket never written has its page's blocks reserved first, so a full
// disk is an error here rather than a fault in the middle of a write.
func (t *table) begin(b uint32) error {
	s := atomic.LoadUint64(t.seq(b))
	if s == 0 {
		err := unix.Fallocate(t.fd, 0, t.metaOff(b), bucketSize)
		if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			return &fs.PathError{Op: "fallocate", Path: t.path, Err: err}
		}
	}
	atomic.StoreUint64(t.seq(b), s|1)
	return nil
}

// end finishes a write begun by begin: seq goes even, past every value
// readers saw before.
func (t *table) end(b uint32) {
	atomic.StoreUint64(t.seq(b), atomic.LoadUint64(t.seq(b))+1)
}

// slotRead is what a lookup found in a slot.
type slotRead struct {
	b      uint32
	way    int // -1: no slot of the key
	buf    []byte
	access int64
	flags  uint32
	// corrupt is a slot (of bucket cb) with the key's tag whose entry did
	// not decode, -1 if none.
	cb      uint32
	corrupt int
	cerr    error
}

// optimisticTries is how often a lookup reads a bucket without its lock
// before taking it.
const optimisticTries = 64

// find looks key up in p's buckets. The entry comes back decoded from a
// copy the caller owns; flags are b1's.
func (t *table) find(p pair, key string) (r slotRead, e entry, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	r = slotRead{way: -1, corrupt: -1}
	// Both meta lines, and the key's preferred slot in each bucket (where
	// chooseWay puts it when it can), are loaded before any is looked at:
	// in a table larger than the processor's caches a hit then waits for
	// one round of cache misses rather than two or three in a row.
	pw := p.way()
	_ = atomic.LoadUint64(t.seq(p.b2))
	t.warm(p.b1, pw)
	t.warm(p.b2, pw)
	for i, b := range [2]uint32{p.b1, p.b2} {
		if i == 1 && b == p.b1 {
			break
		}
		br, be, err := t.findIn(b, p.tag, key)
		if err != nil {
			return r, e, err
		}
		if i == 0 {
			r.flags = br.flags
		}
		if br.corrupt >= 0 {
			r.cb, r.corrupt, r.cerr = b, br.corrupt, br.cerr
		}
		if br.way >= 0 {
			r.b, r.way, r.buf, r.access = b, br.way, br.buf, br.access
			return r, be, nil
		}
	}
	return r, e, nil
}

// findIn looks key up in bucket b.
func (t *table) findIn(b, tag uint32, key string) (slotRead, entry, error) {
	for try := 0; try < optimisticTries; try++ {
		s1 := atomic.LoadUint64(t.seq(b))
		if s1&1 != 0 {
			runtime.Gosched()
			continue
		}
		r, e := t.scan(b, tag, key)
		if atomic.LoadUint64(t.seq(b)) == s1 {
			return r, e, nil
		}
	}
	if t.ro {
		// No lock to take: the checksum judges what a writer tore.
		r, e := t.scan(b, tag, key)
		return r, e, nil
	}
	if err := t.lock(b); err != nil {
		return slotRead{}, entry{}, err
	}
	defer t.unlock(b)
	if s := atomic.LoadUint64(t.seq(b)); s&1 != 0 {
		// Odd under the lock: its writer died mid-write. Even again,
		// readers stop coming here; the checksum judges what it tore.
		atomic.StoreUint64(t.seq(b), s+1)
	}
	r, e := t.scan(b, tag, key)
	return r, e, nil
}

// scan reads bucket b for key, once.
func (t *table) scan(b, tag uint32, key string) (slotRead, entry) {
	r := slotRead{b: b, way: -1, corrupt: -1, flags: atomic.LoadUint32(t.flags(b))}
	for w := range tableWays {
		if atomic.LoadUint32(t.tag(b, w)) != tag {
			continue
		}
		n := t.slotLen(b, w)
		if n < 0 {
			r.corrupt, r.cerr = w, corruptf("slot length out of range")
			continue
		}
		buf := make([]byte, n)
		copy(buf, t.slotBytes(b, w, n))
		e, err := decodeEntry(buf)
		if err != nil {
			r.corrupt, r.cerr = w, err
			continue
		}
		if string(e.key) == key {
			r.way, r.buf, r.access = w, buf, atomic.LoadInt64(t.access(b, w))
			return r, e
		}
	}
	return r, entry{}
}

// keyAt reports whether slot w of bucket b (lock held) holds a valid entry
// of key, and its header.
func (t *table) keyAt(b uint32, w int, tag uint32, key string) (header, bool) {
	if atomic.LoadUint32(t.tag(b, w)) != tag {
		return header{}, false
	}
	n := t.slotLen(b, w)
	if n < 0 {
		return header{}, false
	}
	e, err := decodeEntry(t.slotBytes(b, w, n))
	if err != nil || string(e.key) != key {
		return header{}, false
	}
	return e.header, true
}

// slotHeader decodes the header of slot w (lock held or not: a torn read
// gives a wrong answer, which callers re-check under the lock).
func (t *table) slotHeader(b uint32, w int) (header, int, error) {
	n := t.slotLen(b, w)
	if n < 0 {
		return header{}, 0, corruptf("slot length out of range")
	}
	h, err := parseHeader(t.slotBytes(b, w, n), int64(n))
	return h, n, err
}

// putResult is what put displaced.
type putResult struct {
	grew    bool // the bucket's page was allocated (its first write)
	oldLen  int  // the length of the entry replaced or dropped, 0 if none
	sameKey bool // the entry replaced was the key's own
	expired bool // the slot reused held an expired entry
	evicted bool // a live entry of another key was evicted for room
}

// put stores enc, the encoding of key's entry, in one of p's buckets at
// access time now; before runs first (with the locks held, nothing written
// yet, given b1's flags), and gives up with its error.
func (t *table) put(p pair, key string, enc []byte, now int64, before func(flags uint32) error) (res putResult, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	bs := p.list()
	if err := t.lock(bs...); err != nil {
		return res, err
	}
	defer t.unlock(bs...)
	if before != nil {
		if err := before(atomic.LoadUint32(t.flags(p.b1))); err != nil {
			return res, err
		}
	}
	b, w := t.chooseWay(p, key, now, &res)
	res.grew = atomic.LoadUint64(t.seq(b)) == 0
	if err := t.begin(b); err != nil {
		return putResult{}, err
	}
	defer t.end(b)
	off := t.slotOff(b, w)
	atomic.StoreUint32(t.tag(b, w), 0)
	atomic.StoreInt64(t.access(b, w), now)
	binary.LittleEndian.PutUint32(t.mem[off+8:], uint32(len(enc)))
	binary.LittleEndian.PutUint32(t.mem[off+12:], 0)
	copy(t.mem[off+slotHeadSize:], enc)
	atomic.StoreUint32(t.tag(b, w), p.tag)
	return res, nil
}

// chooseWay picks the slot for key in p's buckets (locks held): its own,
// else an empty one, else an expired or damaged one, else the one expiring
// soonest (least recently used among equals), which is evicted.
func (t *table) chooseWay(p pair, key string, now int64, res *putResult) (uint32, int) {
	type slot struct {
		b uint32
		w int
	}
	empty, stale, victim := slot{w: -1}, slot{w: -1}, slot{w: -1}
	var staleLen int
	var staleExpired bool
	var vexp, vacc int64
	free := 0 // empty slots in empty.b
	for i, b := range [2]uint32{p.b1, p.b2} {
		if i == 1 && b == p.b1 {
			break
		}
		n, first := 0, -1
		for w := range tableWays {
			if atomic.LoadUint32(t.tag(b, w)) == 0 {
				if first < 0 || w == p.way() {
					first = w // the preferred slot if empty (see find)
				}
				n++
			}
		}
		// An empty slot in the emptier bucket: placing by load is what
		// keeps two choices from overflowing a bucket while the table
		// has room (first-fit in b1 evicts at half load).
		if n > free {
			empty, free = slot{b, first}, n
		}
		for w := range tableWays {
			tg := atomic.LoadUint32(t.tag(b, w))
			if tg == 0 {
				continue
			}
			h, n, err := t.slotHeader(b, w)
			if err != nil {
				if stale.w < 0 {
					stale, staleLen, staleExpired = slot{b, w}, 0, false
				}
				continue
			}
			if _, ok := t.keyAt(b, w, p.tag, key); ok {
				res.oldLen, res.sameKey = n, true
				return b, w
			}
			acc := atomic.LoadInt64(t.access(b, w))
			exp := expireAt(acc, h.ttl)
			if exp <= now {
				if stale.w < 0 {
					stale, staleLen, staleExpired = slot{b, w}, n, true
				}
				continue
			}
			if victim.w < 0 || exp < vexp || exp == vexp && acc < vacc {
				victim, vexp, vacc = slot{b, w}, exp, acc
			}
		}
	}
	switch {
	case empty.w >= 0:
		return empty.b, empty.w
	case stale.w >= 0:
		res.oldLen, res.expired = staleLen, staleExpired
		return stale.b, stale.w
	}
	_, n, _ := t.slotHeader(victim.b, victim.w)
	res.oldLen, res.evicted = n, true
	return victim.b, victim.w
}

// remove drops key's entry from p's buckets if it is there and keep,
// given its header and access time, returns false. It returns the removed
// entry's length, 0 if none was removed.
func (t *table) remove(p pair, key string, keep func(h header, access int64) bool) (n int, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	bs := p.list()
	if err := t.lock(bs...); err != nil {
		return 0, err
	}
	defer t.unlock(bs...)
	return t.removeLocked(bs, p.tag, key, keep)
}

// removeLocked is remove with the locks of buckets bs held.
func (t *table) removeLocked(bs []uint32, tag uint32, key string, keep func(h header, access int64) bool) (int, error) {
	for _, b := range bs {
		for w := range tableWays {
			h, ok := t.keyAt(b, w, tag, key)
			if !ok || keep != nil && keep(h, atomic.LoadInt64(t.access(b, w))) {
				continue
			}
			n := t.slotLen(b, w)
			return n, t.clear(b, w)
		}
	}
	return 0, nil
}

// clear empties slot w of bucket b, whose lock is held.
func (t *table) clear(b uint32, w int) error {
	if err := t.begin(b); err != nil {
		return err
	}
	atomic.StoreUint32(t.tag(b, w), 0)
	t.end(b)
	return nil
}

// dropCorrupt clears slot w of bucket b if, under the lock, it still holds
// tag and does not decode; it returns the decoding error then.
func (t *table) dropCorrupt(b uint32, w int, tag uint32) (derr error, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	if err := t.lock(b); err != nil {
		return nil, err
	}
	defer t.unlock(b)
	if atomic.LoadUint32(t.tag(b, w)) != tag {
		return nil, nil
	}
	n := t.slotLen(b, w)
	if n < 0 {
		derr = corruptf("slot length out of range")
	} else if _, derr = decodeEntry(t.slotBytes(b, w, n)); derr == nil {
		return nil, nil
	}
	if err := t.clear(b, w); err != nil {
		return nil, err
	}
	return derr, nil
}

// touch renews slot w's access time (sliding expiry). It takes no lock:
// if a writer replaced the slot meanwhile, the new entry's access moves
// to now, which its Set has just done anyway.
func (t *table) touch(b uint32, w int, now int64) (err error) {
	if t.ro {
		return nil
	}
	defer guard(debug.SetPanicOnFault(true), &err)
	atomic.StoreInt64(t.access(b, w), now)
	return nil
}

// hasFiles reports bucket b's flagFiles.
func (t *table) hasFiles(b uint32) (ok bool, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	return atomic.LoadUint32(t.flags(b))&flagFiles != 0, nil
}

// sync writes bucket b's page to disk (Options.Sync).
func (t *table) sync(b uint32) error {
	off := t.metaOff(b)
	if err := unix.Msync(t.mem[off:off+bucketSize], unix.MS_SYNC); err != nil {
		return &fs.PathError{Op: "msync", Path: t.path, Err: err}
	}
	return nil
}

// placeFile runs place, the rename that puts key's entry file in place,
// with p's buckets locked, after marking b1 as having files and removing
// key's slot: a small Set of the key, which removes the file and writes a
// slot under the same locks, comes wholly before or after it, and no crash
// leaves a slot shadowing the file or a file unmarked. It returns the
// removed slot's length and whether b1's page was allocated.
func (t *table) placeFile(p pair, key string, place func() error) (n int, grew bool, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	bs := p.list()
	if err := t.lock(bs...); err != nil {
		return 0, false, err
	}
	defer t.unlock(bs...)
	grew, err = t.markLocked(p.b1)
	if err != nil {
		return 0, false, err
	}
	if n, err = t.removeLocked(bs, p.tag, key, nil); err != nil {
		return 0, grew, err
	}
	return n, grew, place()
}

// markFiles sets bucket b's flagFiles (see the constant).
func (t *table) markFiles(b uint32) (err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	if atomic.LoadUint32(t.flags(b))&flagFiles != 0 {
		return nil
	}
	if err := t.lock(b); err != nil {
		return err
	}
	defer t.unlock(b)
	_, err = t.markLocked(b)
	return err
}

// markLocked sets bucket b's flagFiles, its lock held; grew reports that
// it allocated the bucket's page (its first write).
func (t *table) markLocked(b uint32) (grew bool, err error) {
	if atomic.LoadUint32(t.flags(b))&flagFiles != 0 {
		return false, nil
	}
	grew = atomic.LoadUint64(t.seq(b)) == 0
	if err := t.begin(b); err != nil {
		return false, err
	}
	atomic.StoreUint32(t.flags(b), atomic.LoadUint32(t.flags(b))|flagFiles)
	t.end(b)
	return grew, nil
}

// slotInfo describes one occupied slot for walks.
type slotInfo struct {
	b      uint32
	w      int
	tag    uint32
	n      int    // entry length
	hdr    header // valid when err is nil
	access int64
	err    error // the header or the length is wrong
}

// each calls fn for every occupied slot, reading each bucket without its
// lock (what it reports may be torn by a concurrent writer; fn re-checks
// under the lock before acting). It stops early when fn returns false.
func (t *table) each(fn func(s slotInfo) bool) (err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	more := true
	t.written(func(lo, hi uint32) bool {
		for b := lo; b < hi && more; b++ {
			for w := 0; w < tableWays && more; w++ {
				tg := atomic.LoadUint32(t.tag(b, w))
				if tg == 0 {
					continue
				}
				h, n, err := t.slotHeader(b, w)
				more = fn(slotInfo{b: b, w: w, tag: tg, n: n, hdr: h, access: atomic.LoadInt64(t.access(b, w)), err: err})
			}
		}
		return more
	})
	return nil
}

// written calls fn with the ranges [lo, hi) of buckets whose pages hold
// data, skipping the file's holes (SEEK_DATA, SEEK_HOLE), until fn returns
// false. A walk must not read the pages of buckets never written: reading
// a hole brings a page of zeros into memory, and a walk of a fresh table
// would cost every process that opens it the table's whole size.
func (t *table) written(fn func(lo, hi uint32) bool) {
	bucket := func(off int64) uint32 { return uint32((off - tableHeaderSize) / bucketSize) }
	end := t.bytes()
	for off := int64(tableHeaderSize); off < end; {
		d, err := unix.Seek(t.fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return // no data after off
		}
		if err != nil {
			fn(bucket(off), t.buckets) // no SEEK_DATA here: read it all
			return
		}
		h, err := unix.Seek(t.fd, d, unix.SEEK_HOLE)
		if err != nil || h > end {
			h = end
		}
		if h <= d || !fn(bucket(max(d, tableHeaderSize)), bucket(h-1)+1) {
			return
		}
		off = h
	}
}

// dropIf clears slot s.w of bucket s.b if, under the lock, it still holds
// what each reported (same tag, access and length) and cond says so; it
// reports whether it did.
func (t *table) dropIf(s slotInfo, cond func(h header, n int, access int64, herr error) bool) (ok bool, err error) {
	defer guard(debug.SetPanicOnFault(true), &err)
	if err := t.lock(s.b); err != nil {
		return false, err
	}
	defer t.unlock(s.b)
	if atomic.LoadUint32(t.tag(s.b, s.w)) != s.tag {
		return false, nil
	}
	h, n, herr := t.slotHeader(s.b, s.w)
	acc := atomic.LoadInt64(t.access(s.b, s.w))
	if acc != s.access || n != s.n || !cond(h, n, acc, herr) {
		return false, nil
	}
	if err := t.clear(s.b, s.w); err != nil {
		return false, err
	}
	return true, nil
}
