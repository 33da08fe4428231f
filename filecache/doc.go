// Package filecache is a persistent cache of byte values on the local file
// system: one file per entry, no index. It replaces the design of Jesse's
// jesse/services/cache.py, and is what that cache's users wish they had.
//
// # Layout
//
// An entry lives in root/XX/H, where H is the hex SHA-256 of the key and XX
// its first byte (256 shard directories, made by Open). A key is never
// used as a path: any string works ("/", "..", NUL, 10 KB, invalid UTF-8)
// and nothing is written outside the root. The file holds a small header
// (magic, version, sliding expiry, set time, key length, value length),
// the key, the value and a CRC32C of all of it (see entry.go). Get checks
// the checksum and compares the stored key with the one asked for, so a
// damaged file or a hash collision is a miss, never a wrong value.
//
// The directory is the index: no operation reads or writes a structure
// whose size grows with the number of entries. Get is open, fstat, read,
// close; Set writes a temp file and renames it into place. Only Open (one
// lstat per entry, to measure the cache), Sweep, Flush and eviction walk
// the directory.
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
// Expired entries are removed by the Get that finds them, and by Sweep,
// which walks the directory and removes expired entries, entries whose
// header or size is wrong, and temp files whose writer died. Callers run
// Sweep periodically, or run Run in a goroutine they own; Open starts no
// goroutine.
//
// # Writes, crashes and processes
//
// Set writes the entry to a temp file (.tmp-RANDOM) in a shard directory,
// optionally fsyncs it (Options.Sync), and renames it over the entry. A
// reader in any process sees the old entry or the new one, never a mix.
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
// Several processes can share a directory. Entries are separate files, so
// writers of different keys never touch the same file, and writers of one
// key replace it atomically: last rename wins. A corrupt, truncated or
// empty entry costs that entry only: it is deleted, counted in
// Stats.Corrupt and passed to Options.OnCorrupt.
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
// Options.MaxBytes (256 MiB by default) bounds the entry files. Open
// measures the directory once; Set and Delete maintain the total, and so
// do walks, which re-measure it. Other processes' writes are seen at the
// next walk. When a Set takes the total over the budget, it walks the
// directory and evicts down to 90% of it: entries expiring soonest first,
// then Never entries, least recently used first. The walk keeps at most
// 16384 candidates in memory, walking again if it needs more; nothing
// else is kept per key in memory.
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
