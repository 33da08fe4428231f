//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filecache

import (
	"io/fs"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock on f without waiting. A writer holds
// it on its temp file until the rename; it dies with the writer.
func lockFile(f *os.File) bool {
	return flock(f) == nil
}

func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); err != nil {
		return err
	}
	return lerr
}

// abandonedTemp reports whether the temp file at path has no live writer:
// its writer's lock is gone. It returns with the file locked (through the
// returned closer) so that the caller removes it before any writer could
// lock it again; writers never reuse a temp name, so none will.
func abandonedTemp(path string, _ fs.FileInfo, _ time.Time) (bool, func()) {
	f, err := os.Open(path)
	if err != nil {
		return false, func() {}
	}
	if flock(f) != nil {
		f.Close()
		return false, func() {}
	}
	// The inode we locked may no longer be the one named path: a Set may
	// have swapped another file under that temp name since our open, and
	// removing by name would then unlink a live spare. While path names the
	// inode we hold locked, no writer holds that name.
	if !stillNamed(f, path) {
		f.Close()
		return false, func() {}
	}
	return true, func() { f.Close() }
}

// nlink is the file's link count.
func nlink(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
