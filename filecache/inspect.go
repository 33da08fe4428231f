package filecache

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// DirStats describes what a cache directory holds, whichever processes
// wrote it: Inspect measures it by reading every file's header. Unlike
// Stats, whose counters are this process's since Open, it says the same
// from any process.
type DirStats struct {
	Entries      int64 // live entry files
	Bytes        int64 // their size in bytes
	NoExpiry     int64 // live entries stored with Never
	Expired      int64 // entry files past their expiry, not removed yet (Get, Sweep and eviction remove them)
	ExpiredBytes int64 // their size in bytes
	Corrupt      int64 // entry files whose header or size is wrong (the checksum is Get's to verify)
	TempFiles    int64 // temp files: Sets in progress, spares of open caches, or left by dead writers
	Other        int64 // files in the shard directories that are not the cache's
	MaxBytes     int64 // this handle's size budget (Options.MaxBytes)
	TableBytes   int64 // the slot table file's size, 0 without one
	TableUsed    int64 // the disk the table's written pages hold (its file is sparse)
	// OldestAccess is the last access of the least recently used live
	// entry; zero when there is none.
	OldestAccess time.Time
}

// Inspect walks the directory and reports what it holds without changing
// anything: it removes nothing and renews nothing (reading a header leaves
// the file's mtime, its last access, as it was). It costs one open and a
// 36-byte read per entry.
func (c *Cache) Inspect(ctx context.Context) (DirStats, error) {
	if c.closed.Load() {
		return DirStats{}, ErrClosed
	}
	s := DirStats{MaxBytes: c.maxBytes}
	now := c.now().UnixNano()
	oldest := int64(0)
	for i := range 256 {
		err := c.eachName(ctx, i, func(dir, name string) {
			path := dir + string(filepath.Separator) + name
			switch classify(name) {
			case kindOther:
				s.Other++
			case kindTemp:
				s.TempFiles++
			case kindEntry:
				var hb [headerSize]byte
				n, st, err := readHead(path, hb[:])
				if err != nil && st == (fileStamp{}) {
					return // gone since listed, or unreadable
				}
				switch {
				case !st.regular():
					s.Corrupt++
					return
				case err != nil && n < headerSize:
					return // an I/O error, not corruption
				}
				hdr, err := parseHeader(hb[:n], st.size)
				if err != nil {
					s.Corrupt++
					return
				}
				if expireAt(st.mtime, hdr.ttl) <= now {
					s.Expired++
					s.ExpiredBytes += st.size
					return
				}
				s.Entries++
				s.Bytes += st.size
				if hdr.ttl == int64(Never) {
					s.NoExpiry++
				}
				if oldest == 0 || st.mtime < oldest {
					oldest = st.mtime
				}
			}
		})
		if err != nil {
			return s, fmt.Errorf("filecache: %w", err)
		}
	}
	if err := c.inspectTable(&s, &oldest); err != nil {
		return s, err
	}
	if oldest != 0 {
		s.OldestAccess = time.Unix(0, oldest)
	}
	return s, nil
}
