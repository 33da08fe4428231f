//go:build !linux

package filecache

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// fileStamp identifies one version of a file: its inode and its mtime.
type fileStamp struct {
	fi    fs.FileInfo
	mtime int64 // unix nanoseconds
	size  int64
}

func (s fileStamp) regular() bool { return s.fi != nil && s.fi.Mode().IsRegular() }
func (s fileStamp) same(o fileStamp) bool {
	return s.fi != nil && o.fi != nil && os.SameFile(s.fi, o.fi)
}

func stampOf(fi fs.FileInfo) fileStamp {
	return fileStamp{fi: fi, mtime: fi.ModTime().UnixNano(), size: fi.Size()}
}

// handle is an open file that readFile returns for touch and close.
type handle struct {
	f    *os.File
	path string
}

func (h handle) close() { h.f.Close() }

// touch sets the file's atime and mtime.
func (h handle) touch(t time.Time) error { return os.Chtimes(h.path, t, t) }

// readFile reads the whole file at path and returns it still open, to be
// closed by the caller when err is nil. An error wrapping ErrCorrupt comes
// with the stamp of the file judged.
func readFile(path string) ([]byte, fileStamp, handle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, handle{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileStamp{}, handle{}, err
	}
	s := stampOf(fi)
	if err := checkSize(s); err != nil {
		f.Close()
		return nil, s, handle{}, err
	}
	buf := make([]byte, s.size)
	if _, err := io.ReadFull(f, buf); err != nil {
		f.Close()
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, s, handle{}, corruptf("truncated while read")
		}
		return nil, s, handle{}, err
	}
	return buf, s, handle{f, path}, nil
}

// readHead reads the first len(b) bytes of the file at path, returning how
// many it read.
func readHead(path string, b []byte) (int, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fileStamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fileStamp{}, err
	}
	n, err := io.ReadFull(f, b)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return n, stampOf(fi), err
}

// lstamp stats path without following a symlink.
func lstamp(path string) (fileStamp, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return stampOf(fi), nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
