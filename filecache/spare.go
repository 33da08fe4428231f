package filecache

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Spares: inodes recycled from replaced and deleted entries.
//
// Creating a file costs an inode allocation, and replacing one frees an
// inode; on some file systems both are slow (on an ext4 without a
// journal, the allocator skips every inode freed in the last five
// minutes, so a churning cache makes each create slower: ~1.5 ms measured
// on the development VM). So a Set swaps its temp file with the entry it
// replaces (renameat2 RENAME_EXCHANGE on Linux), which leaves the old
// inode under the temp name, and keeps that file, locked, for the next
// Set to overwrite. A spare is never reachable from an entry name: the
// exchange moves it out atomically and nothing ever links to it, so an
// entry's bytes still never change while it is under its key's name.
// A reader that opened the old entry just before the exchange may see it
// rewritten; Get detects that (checksum, key, or an inode no longer under
// the name) and reads again.

// maxSpares bounds the spare files (and descriptors) a Cache holds;
// maxSpareSize bounds the disk they may take.
const (
	maxSpares    = 32
	maxSpareSize = 1 << 20
)

// spare is a locked temp file this process owns.
type spare struct {
	f    *os.File
	path string
	size int64
}

// takeSpare returns a spare file, recycled when one is pooled, else a new
// temp file in dir.
func (c *Cache) takeSpare(dir string) (spare, error) {
	c.spareMu.Lock()
	if n := len(c.spares); n > 0 {
		sp := c.spares[n-1]
		c.spares = c.spares[:n-1]
		c.spareMu.Unlock()
		return sp, nil
	}
	c.spareMu.Unlock()
	f, path, err := createTemp(dir)
	if err != nil {
		return spare{}, err
	}
	return spare{f: f, path: path}, nil
}

// spareRoom reports whether the pool would take another spare.
func (c *Cache) spareRoom() bool {
	c.spareMu.Lock()
	defer c.spareMu.Unlock()
	return len(c.spares) < maxSpares && !c.closed.Load()
}

// adopt takes the file at tmp (a temp name only this process knows) into
// the pool, or removes it. It returns the file's size, or -1 when it could
// not stat it.
func (c *Cache) adopt(tmp string) int64 {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		os.Remove(tmp)
		return -1
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return -1
	}
	size := fi.Size()
	// The lock keeps sweepers off; a failed lock means a sweeper (or the
	// entry's writer, not done closing) holds it. A link count above one
	// would mean another name reaches the inode: never reuse it then.
	if !fi.Mode().IsRegular() || size > maxSpareSize || nlink(fi) != 1 || !lockFile(f) || !stillNamed(f, tmp) {
		f.Close()
		os.Remove(tmp)
		return size
	}
	c.spareMu.Lock()
	if len(c.spares) < maxSpares && !c.closed.Load() {
		c.spares = append(c.spares, spare{f: f, path: tmp, size: size})
		c.spareMu.Unlock()
		return size
	}
	c.spareMu.Unlock()
	f.Close()
	os.Remove(tmp)
	return size
}

// discard removes the file at path: into the spare pool when it has room,
// else unlinked.
func (c *Cache) discard(path string) error {
	if c.spareRoom() {
		tmp := tempName(filepath.Dir(path))
		if err := os.Rename(path, tmp); err == nil {
			c.adopt(tmp)
			return nil
		} else if errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Remove(path)
}

// dropSpares closes and removes every pooled spare.
func (c *Cache) dropSpares() {
	c.spareMu.Lock()
	sp := c.spares
	c.spares = nil
	c.spareMu.Unlock()
	for _, s := range sp {
		os.Remove(s.path)
		s.f.Close()
	}
}
