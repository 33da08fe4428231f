// Package filecache is a persistent cache of byte values on the local file
// system: small entries packed in one memory-mapped slot table, larger
// ones in a file each. It replaces the design of Jesse's
// jesse/services/cache.py, and is what that cache's users wish they had.
//
// # Layout
//
// A small entry (key and value together at most 448 bytes) lives in the
// slot table, root/slots (see Slot table below). A larger one lives in
// root/XX/H, where H is the hex SHA-256 of the key and XX its first byte
// (256 shard directories, made by Open). A key is never used as a path:
// any string works ("/", "..", NUL, 10 KB, invalid UTF-8) and nothing is
// written outside the root. An entry, in a slot or a file, is a small header
// (magic, version, sliding expiry, set time, key length, value length),
// the key, the value and a CRC32C of all of it (see entry.go). Get checks
// the checksum and compares the stored key with the one asked for, so a
// damaged entry or a hash collision is a miss, never a wrong value.
//
// No operation reads or writes a structure whose size grows with the
// number of entries: a Get of a small entry reads two buckets of the table
// at most; of a large one, open, fstat, read, close. Only Open (which
// measures the cache), Sweep, Flush, Inspect and file eviction walk.
//
// # Slot table
//
// One file per entry costs the kernel a dentry, an inode and a page-cache
// page per entry, and a Get touches all three: on the development VM a hit
// slowed from 2.5 µs at 1,000 entries to 6.4 µs at 100,000, as the kernel's
// structures outgrew the CPU caches (a bare open+fstat+pread+close loop
// shows the same). The table packs small entries densely in one file that
// every process maps (MAP_SHARED): a hit is a hash, two cache-line reads
// and a copy, with no system call.
//
// The table is a hash table of 4 KiB buckets, each a meta line (a
// sequence number, eight tags, flags) and eight 504-byte slots. A key may
// live in either of two buckets chosen by its SHA-256, and a new one goes
// to the emptier (two choices placed by load: a table three-quarters full
// has evicted nothing yet). When both are full, Set evicts the entry
// expiring soonest, then the least recently used, of those sixteen: the
// table's size is its budget, and it never walks. Its size is fixed when
// it is created (Options.TableBytes, half of MaxBytes by default).
//
// Within its bucket a new key takes its preferred slot (from its tag)
// when that is empty, and a lookup loads both buckets' meta lines and
// both preferred slots before looking at any: in a table larger than the
// processor's caches the misses then overlap instead of following each
// other (meta line, then slot). What a hit at 100,000 entries still pays
// beyond one at 1,000 is mostly the memory hierarchy's: copying an entry
// from a random one of 100,000 records in plain memory costs ~200 ns more
// than from one of 1,000 on the development VM (BenchmarkMemoryFloor),
// whatever the layout, and 2 MiB pages (tried: they take the table's disk
// and memory in 2 MiB steps) saved only ~7 % there, the VM's own memory
// being mapped in 4 KiB pages by its host.
//
// Writers lock a bucket with a mutex and an open-file-description lock
// (fcntl F_OFD_SETLKW, released by the kernel when the holder dies), so
// processes and goroutines exclude each other per bucket. Readers take no
// lock: the bucket's sequence number is odd during a write, and a reader
// that sees it change reads again (a seqlock); a reader that keeps seeing
// it odd takes the lock, and an odd number under the lock was left by a
// writer that died mid-write, whose torn slot the checksum rejects (the
// reader makes it even again). On processors that may reorder a reader's
// loads around the second read of seq (arm64), the checksum and the key
// comparison are what stand between a torn read and a caller. The
// sliding expiry's access time is the slot's first word, renewed by an
// atomic store. The file is sparse: a bucket's page is allocated (with
// fallocate) by its first writer, so a full disk is a Set error, not a
// fault; a fault in the mapping anyway (another program truncated the
// file) is an error from the call, not a crash.
//
// A bucket remembers (a flag, never cleared while the table lives) that
// some key of it may have an entry file: a large entry, or a file written
// before the table existed (Open flags those). A Get that misses the table
// looks for a file only then. A small Set removes the key's file before
// writing its slot, and a large Set removes the key's slot as it renames
// its file into place, both under the key's two bucket locks: the two
// steps of either are one step to the other, so an old value never comes
// back when its successor leaves the table. A cache with many large entries thus flags many buckets, and
// its misses there cost a failed open, as before the table. Every process
// sharing the directory must use a build with the table: an older one
// writes and reads files only.
//
// The table's pages a process has touched count in its resident set
// (RssFile): they are page cache, shared by every process and reclaimable
// by the kernel, at most the table's size. Walks skip the pages of buckets
// never written (SEEK_DATA), and the mapping is MADV_RANDOM, so a lookup
// brings in its own page and not its neighbours.
//
// Without Linux (mmap coherent with files, OFD locks) there is no table and
// every entry is a file; so too on a file system without hard links (the
// table is created under a temp name and linked into place), and for a
// budget under 128 KiB. A network file system wants TableBytes -1.
//
// # Expiry
//
// Set takes an expiry duration: 0 for Options.DefaultExpire (1h), Never
// for none (a local file cache can afford entries without TTL). Expiry is
// sliding, as in Jesse: a hit renews it. The entry file's mtime is the
// time of the last access, and an entry expires at mtime+expiry. Renewal
// is one futimens on the file just read: O(1), no index rewritten, no byte
// of the entry touched, and crash-safe (a metadata update is atomic; a
// lost one only makes the entry expire earlier). A hit within ttl/1000 (at
// most 1s) of the last renewal skips it: it would cost a third of the hit.
// Anything that rewrites mtimes (a copy without -p, touch) renews entries.
//
// In the table the access time is the slot's first word instead, renewed
// the same way. Expired entries are removed by the Get that finds them,
// and by Sweep, which walks the table and the directory and removes
// expired entries, entries whose header or size is wrong, and temp files
// whose writer died. Callers run Sweep periodically, or run Run in a
// goroutine they own; Open starts no goroutine.
//
// # Writes, crashes and processes
//
// A small entry is written into its slot under the bucket's lock (see Slot
// table); with Options.Sync the bucket's page is msynced before Set
// returns. A large one: Set writes the entry to a temp file (.tmp-RANDOM)
// in a shard directory, optionally fsyncs it (Options.Sync), and renames
// it over the entry. A reader in any process sees the old entry or the
// new one, never a mix.
// Sync is off by default: an fsync per Set costs milliseconds, more than
// the whole Set. Without it a power loss may lose the latest writes, and on
// a file system without ordered data leave an empty or torn file, which
// reads as corrupt and is dropped alone. With it, the entry and then its
// directory are fsynced before Set returns.
//
// Each writer holds an flock on its temp file until the rename. The kernel
// releases it when the writer dies, even by SIGKILL, so Sweep and Flush
// remove a temp file exactly when its lock can be taken, in any process,
// without guessing from its age.
//
// Several processes can share a directory. Writers of different keys lock
// different buckets or write different files; writers of one key replace
// its entry atomically: last write wins. A corrupt, truncated or empty
// entry costs that entry only: it is deleted, counted in Stats.Corrupt and
// passed to Options.OnCorrupt.
//
// # Recycled inodes
//
// Creating a file allocates an inode and replacing one frees one. On the
// development VM (ext4 without a journal, whose allocator skips inodes
// freed in the last five minutes) a create costs ~1.5 ms once files churn,
// capping Sets at a few hundred per second. So Set swaps its temp file
// with the entry it replaces (renameat2 RENAME_EXCHANGE, on Linux), keeps
// the old inode, locked, under the temp name, and overwrites it at the
// next Set: an overwrite allocates and frees nothing. A spare is never
// reachable from an entry name, so entries remain immutable under their
// names; a reader that opened the old entry just before the exchange may
// see it rewritten, which Get detects (checksum, key, or a different inode
// under the name) and reads again. A Cache keeps at most 32 spares of at
// most 1 MiB; Close removes them. Where the exchange is unavailable, Set
// renames as usual.
//
// # Size budget
//
// Options.MaxBytes (256 MiB by default) bounds the table and the entry
// files together, the files counted by their sizes (a small file holds a
// whole block on disk) and the table by the disk it holds. Its file is
// sparse: it holds the pages of the buckets written so far (it evicts
// within buckets once they are full, above), and the files get the rest,
// at least a quarter of MaxBytes (TableBytes is at most three quarters of
// it, but another process may have made a larger table), so a cache of
// mostly large entries is not held to half its budget by a table it
// barely uses. Open measures the directory once; Set and Delete maintain
// the files' total, and so do walks, which re-measure it and the table.
// Other processes' writes are seen at the next walk. When a Set takes the
// files' total over their share (a large Set, or a small one whose bucket
// took a new page), it walks the directory and evicts down to 90% of it:
// entries expiring soonest first, then Never entries, least recently used
// first. The walk keeps at most 16384 candidates in memory, walking again
// if it needs more; nothing else is kept per key in memory.
//
// # Observing a cache
//
// Stats are this process's counters since Open (hits, misses, sets,
// expirations, evictions, corrupt entries, file system errors) and its
// approximation of the directory's bytes and entries. Collector exports
// them to Prometheus (tradecache_filecache_*, labelled by directory) with
// one Register call. Inspect measures the directory itself, whichever
// processes wrote it, without changing it: live, expired, never-expiring
// and corrupt entries, temp files, bytes (tradecache cache stats --dir).
//
// # Why not Jesse's design
//
// Jesse keeps one pickled dict of every key and rewrites the whole file on
// every Set and on every hit (for the sliding renewal): O(n) per call,
// ~0.9 MB written per call at 10,000 entries, ~450 sets/s and ~250 hits/s.
// Two processes each hold their own copy of that dict and overwrite each
// other's: 151 to 500 of 1,000 keys lost in the driver's test. The index
// is rewritten in place without a temp file, so a crash or two writers
// tear it, and a torn index silently empties the cache while orphaning
// every value file; orphans are never removed, nor are entries nobody
// reads again. A cached False is a miss. Keys are used raw as file names
// (a "/" fails after the index was updated). Values are pickles, so
// anyone who can write the cache directory can run code in every process
// that reads it; here a value is bytes, checked by CRC and length, and
// nothing in a file is ever executed or trusted beyond that.
package filecache
