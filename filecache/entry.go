package filecache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Entry file format, version 1. All integers are little-endian.
//
//	off  size  field
//	  0     4  magic "TCfc"
//	  4     1  version (1)
//	  5     3  reserved, zero
//	  8     8  ttl: sliding expiry in nanoseconds (> 0), or -1 for Never
//	 16     8  set-at: unix nanoseconds of the Set (informational)
//	 24     4  key length
//	 28     8  value length
//	 36     -  key bytes, then value bytes
//	end-4   4  CRC32C (Castagnoli) of every byte before it
//
// The file's size must be exactly headerSize+keyLen+valLen+trailerSize. The
// last access time is not in the file: it is the file's mtime (see the
// package doc), so the bytes of an entry never change once it is renamed
// into place.
const (
	magic       = "TCfc"
	version     = 1
	headerSize  = 36
	trailerSize = 4
	// minEntrySize is the size of an entry with an empty key and value.
	minEntrySize = headerSize + trailerSize
)

// MaxKeyLen is the longest key Set accepts, in bytes.
const MaxKeyLen = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by every error describing an entry file that cannot
// be decoded: wrong magic or version, a size that disagrees with the header,
// or a checksum mismatch.
var ErrCorrupt = errors.New("filecache: corrupt entry")

// header is the fixed part of an entry.
type header struct {
	ttl    int64 // nanoseconds, or -1 (Never)
	setAt  int64 // unix nanoseconds
	keyLen uint32
	valLen uint64
}

// entry is a decoded entry; key and value alias the decoded buffer.
type entry struct {
	header
	key   []byte
	value []byte
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// entrySize is the size of the file holding a key and value of these
// lengths.
func entrySize(keyLen, valLen int) int64 {
	return int64(headerSize) + int64(keyLen) + int64(valLen) + trailerSize
}

// putHeader writes h into b[:headerSize].
func putHeader(b []byte, h header) {
	_ = b[headerSize-1]
	copy(b[0:4], magic)
	b[4] = version
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(b[8:], uint64(h.ttl))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.setAt))
	binary.LittleEndian.PutUint32(b[24:], h.keyLen)
	binary.LittleEndian.PutUint64(b[28:], h.valLen)
}

// parseHeader decodes the fixed header in b (at least headerSize bytes) of
// a file of the given size, checking everything but the checksum.
func parseHeader(b []byte, size int64) (header, error) {
	if size < minEntrySize || len(b) < headerSize {
		return header{}, corruptf("%d bytes, shorter than a header", size)
	}
	if string(b[0:4]) != magic {
		return header{}, corruptf("bad magic %q", b[0:4])
	}
	if b[4] != version {
		return header{}, corruptf("unknown version %d", b[4])
	}
	if b[5]|b[6]|b[7] != 0 {
		return header{}, corruptf("reserved bytes set")
	}
	h := header{
		ttl:    int64(binary.LittleEndian.Uint64(b[8:])),
		setAt:  int64(binary.LittleEndian.Uint64(b[16:])),
		keyLen: binary.LittleEndian.Uint32(b[24:]),
		valLen: binary.LittleEndian.Uint64(b[28:]),
	}
	if h.ttl != int64(Never) && h.ttl <= 0 {
		return header{}, corruptf("bad ttl %d", h.ttl)
	}
	if h.keyLen > MaxKeyLen {
		return header{}, corruptf("key length %d over the limit", h.keyLen)
	}
	// size >= minEntrySize > 0, so the subtraction cannot wrap and the
	// comparison needs no addition that could overflow.
	if body := uint64(size - minEntrySize); h.valLen > body || uint64(h.keyLen) != body-h.valLen {
		return header{}, corruptf("size %d disagrees with key length %d and value length %d", size, h.keyLen, h.valLen)
	}
	return h, nil
}

// decodeEntry decodes a whole entry file. The returned key and value alias
// b. It never panics, and accepts b only if its checksum matches.
func decodeEntry(b []byte) (entry, error) {
	h, err := parseHeader(b, int64(len(b)))
	if err != nil {
		return entry{}, err
	}
	end := len(b) - trailerSize
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return entry{}, corruptf("checksum %08x, want %08x", got, want)
	}
	k := headerSize + int(h.keyLen)
	return entry{header: h, key: b[headerSize:k:k], value: b[k:end:end]}, nil
}

// appendEntry appends the encoding of an entry to dst.
func appendEntry(dst []byte, ttl time.Duration, setAt int64, key string, value []byte) []byte {
	start := len(dst)
	var hb [headerSize]byte
	putHeader(hb[:], header{ttl: int64(ttl), setAt: setAt, keyLen: uint32(len(key)), valLen: uint64(len(value))})
	dst = append(dst, hb[:]...)
	dst = append(dst, key...)
	dst = append(dst, value...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}
