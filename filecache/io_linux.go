//go:build linux

package filecache

import (
	"errors"
	"io/fs"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The read paths (Get, walks) use raw system calls on Linux: os.Open
// costs two extra calls (fcntl, epoll) on a regular file, and O_NOATIME
// keeps reads from dirtying the inode (our mtime-as-access-time sets
// atime = mtime, which relatime would update on every read).

// fileStamp identifies one version of a file: its inode and its mtime.
type fileStamp struct {
	dev, ino uint64
	mtime    int64 // unix nanoseconds
	size     int64
	mode     uint32
}

func (s fileStamp) regular() bool         { return s.mode&syscall.S_IFMT == syscall.S_IFREG }
func (s fileStamp) same(o fileStamp) bool { return s.dev == o.dev && s.ino == o.ino }

func stampOf(st *syscall.Stat_t) fileStamp {
	return fileStamp{dev: uint64(st.Dev), ino: uint64(st.Ino), mtime: st.Mtim.Nano(), size: st.Size, mode: st.Mode}
}

// noatime is dropped after the first EPERM (a file we do not own).
var noatime atomic.Bool

func init() { noatime.Store(true) }

func openRead(path string) (int, error) {
	for {
		flags := syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NOFOLLOW
		if noatime.Load() {
			flags |= syscall.O_NOATIME
		}
		fd, err := syscall.Open(path, flags, 0)
		switch {
		case err == nil:
			return fd, nil
		case err == syscall.EINTR:
			continue
		case err == syscall.EPERM && flags&syscall.O_NOATIME != 0:
			noatime.Store(false)
			continue
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}

// openErr turns the error of opening a symlink (O_NOFOLLOW) into a
// corrupt entry: no entry is a symlink.
func openErr(path string, err error) (fileStamp, error) {
	if errors.Is(err, syscall.ELOOP) {
		if s, lerr := lstamp(path); lerr == nil {
			return s, corruptf("not a regular file")
		}
	}
	return fileStamp{}, err
}

// handle is an open file that readFile returns for touch and close.
type handle int

func (h handle) close() { syscall.Close(int(h)) }

// touch sets the file's atime and mtime (futimens: no path lookup, and
// it touches the very inode that was read).
func (h handle) touch(t time.Time) error {
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(t.UnixNano()), syscall.NsecToTimespec(t.UnixNano())}
	_, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(h), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// readFile reads the whole file at path and returns it still open, to be
// closed by the caller when err is nil. An error wrapping ErrCorrupt comes
// with the stamp of the file judged.
func readFile(path string) ([]byte, fileStamp, handle, error) {
	fd, err := openRead(path)
	if err != nil {
		s, err := openErr(path, err)
		return nil, s, -1, err
	}
	buf, s, err := readFd(fd, path)
	if err != nil {
		syscall.Close(fd)
		return nil, s, -1, err
	}
	return buf, s, handle(fd), nil
}

func readFd(fd int, path string) ([]byte, fileStamp, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fileStamp{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	s := stampOf(&st)
	if err := checkSize(s); err != nil {
		return nil, s, err
	}
	buf := make([]byte, s.size)
	for off := 0; off < len(buf); {
		n, err := syscall.Pread(fd, buf[off:], int64(off))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, s, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return nil, s, corruptf("truncated while read")
		}
		off += n
	}
	return buf, s, nil
}

// readHead reads the first len(b) bytes of the file at path, returning how
// many it read.
func readHead(path string, b []byte) (int, fileStamp, error) {
	fd, err := openRead(path)
	if err != nil {
		s, err := openErr(path, err)
		return 0, s, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return 0, fileStamp{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	s := stampOf(&st)
	n := 0
	for n < len(b) {
		m, err := syscall.Pread(fd, b[n:], int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, s, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, s, nil
}

// lstamp stats path without following a symlink.
func lstamp(path string) (fileStamp, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Lstat(path, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fileStamp{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
		}
		return stampOf(&st), nil
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
