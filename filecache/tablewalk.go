package filecache

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
)

// The table's part of the walks (Open's measure, Sweep, Flush, Inspect).
// Each reads the table without locks and takes a bucket's lock only to
// remove a slot, after checking that it still holds what was read.

// markFile marks the table bucket of the entry file name (a hex SHA-256)
// as having files, so that a Get that misses the table looks for it.
func (c *Cache) markFile(name string) error {
	var sum [32]byte
	if c.tab == nil || c.tab.readOnly() {
		return nil
	}
	if n, err := hex.Decode(sum[:], []byte(name)); err != nil || n != len(sum) {
		return nil
	}
	return c.tab.markFiles(c.tab.locate(&sum).b1)
}

// measureTable counts the table's entries.
func (c *Cache) measureTable() error {
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	t := c.tab
	if t == nil {
		return nil
	}
	var bytes, entries int64
	err := t.each(func(s slotInfo) bool {
		if s.err == nil {
			bytes += int64(s.n)
			entries++
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("filecache: %w", err)
	}
	c.tbytes.Store(bytes)
	c.tentries.Store(entries)
	c.tabUsed.Store(t.used())
	return nil
}

// measureTableUse re-reads the disk the table holds, which other
// processes' writes grow too.
func (c *Cache) measureTableUse() {
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	if c.tab != nil {
		c.tabUsed.Store(c.tab.used())
	}
}

// sweepTable removes the table's expired and damaged entries and
// re-measures it. Damaged entries are returned, for OnCorrupt to be called
// once the table is released.
func (c *Cache) sweepTable(ctx context.Context) (removed int, bad []*CorruptError, err error) {
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	t := c.tab
	if t == nil || c.closed.Load() {
		return 0, nil, nil
	}
	now := c.now().UnixNano()
	var bytes, entries int64
	var derr error
	werr := t.each(func(s slotInfo) bool {
		if derr = ctx.Err(); derr != nil {
			return false
		}
		var ok bool
		switch {
		case s.err != nil:
			ok, derr = t.dropIf(s, func(_ header, _ int, _ int64, herr error) bool { return herr != nil })
			if ok {
				c.corrupt.Add(1)
				bad = append(bad, &CorruptError{Path: t.path, Err: s.err})
			}
		case expireAt(s.access, s.hdr.ttl) <= now:
			ok, derr = t.dropIf(s, func(h header, _ int, acc int64, herr error) bool {
				return herr == nil && expireAt(acc, h.ttl) <= now
			})
			if ok {
				c.expired.Add(1)
			}
		}
		if ok {
			removed++
		} else if s.n > 0 {
			// Live, or changed since read (renewed, rewritten): counted
			// as it was read.
			bytes += int64(s.n)
			entries++
		}
		return derr == nil
	})
	if err := cmp.Or(werr, derr); err != nil {
		return removed, bad, fmt.Errorf("filecache: %w", err)
	}
	c.tbytes.Store(bytes)
	c.tentries.Store(entries)
	c.tabUsed.Store(t.used())
	return removed, bad, nil
}

// flushTable empties the table.
func (c *Cache) flushTable() error {
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	t := c.tab
	if t == nil || c.closed.Load() {
		return nil
	}
	var derr error
	werr := t.each(func(s slotInfo) bool {
		_, derr = t.dropIf(s, func(header, int, int64, error) bool { return true })
		return derr == nil
	})
	if err := cmp.Or(werr, derr); err != nil {
		return fmt.Errorf("filecache: flush: %w", err)
	}
	// Empty, but for what other processes wrote meanwhile, which the next
	// walk counts.
	c.tentries.Store(0)
	c.tbytes.Store(0)
	return nil
}

// inspectTable adds the table's entries to s; oldest is the least recent
// access seen so far (0: none).
func (c *Cache) inspectTable(s *DirStats, oldest *int64) error {
	c.tabMu.RLock()
	defer c.tabMu.RUnlock()
	t := c.tab
	if t == nil {
		return nil
	}
	s.TableBytes, s.TableUsed = t.bytes(), t.used()
	now := c.now().UnixNano()
	err := t.each(func(x slotInfo) bool {
		switch {
		case x.err != nil:
			s.Corrupt++
		case expireAt(x.access, x.hdr.ttl) <= now:
			s.Expired++
			s.ExpiredBytes += int64(x.n)
		default:
			s.Entries++
			s.Bytes += int64(x.n)
			if x.hdr.ttl == int64(Never) {
				s.NoExpiry++
			}
			if *oldest == 0 || x.access < *oldest {
				*oldest = x.access
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("filecache: %w", err)
	}
	return nil
}
