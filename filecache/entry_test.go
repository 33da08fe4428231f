package filecache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEntryRoundTrip(t *testing.T) {
	tests := []struct {
		ttl   time.Duration
		key   string
		value []byte
	}{
		{time.Hour, "", nil},
		{Never, "k", []byte("v")},
		{time.Nanosecond, "a\x00b/../c", bytes.Repeat([]byte{0xff}, 1000)},
		{time.Duration(1<<63 - 1), strings.Repeat("κ", 5000), []byte{}},
	}
	for _, tt := range tests {
		b := appendEntry(nil, tt.ttl, 1234, tt.key, tt.value)
		if int64(len(b)) != entrySize(len(tt.key), len(tt.value)) {
			t.Errorf("size %d, entrySize says %d", len(b), entrySize(len(tt.key), len(tt.value)))
		}
		e, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		want := []any{int64(tt.ttl), int64(1234), tt.key, string(tt.value)}
		if diff := cmp.Diff(want, []any{e.ttl, e.setAt, string(e.key), string(e.value)}); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		// Every single-byte change and every truncation is rejected.
		for i := range b {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			if _, err := decodeEntry(c); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
		for n := range len(b) {
			if _, err := decodeEntry(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated to %d: %v", n, err)
			}
		}
	}
}

// The streaming writer (large entries) and appendEntry agree.
func TestWriteEntryLarge(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	v := bytes.Repeat([]byte("0123456789"), smallEntry/5)
	mustSet(t, c, "large", v, time.Minute)
	if g := get(t, c, "large"); !bytes.Equal(g.V, v) {
		t.Fatal("large value mangled")
	}
	// Overwrite a large entry with a small one: the recycled file shrinks.
	mustSet(t, c, "large", []byte("x"), time.Minute)
	if g := get(t, c, "large"); string(g.V) != "x" {
		t.Fatalf("got %q", g.V)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, time.Hour, 1, "key", []byte("value")))
	f.Add(appendEntry(nil, Never, 0, "", nil))
	f.Add(appendEntry(nil, time.Second, -1, "a/../b\x00", bytes.Repeat([]byte{0}, 100)))
	f.Add([]byte{})
	f.Add([]byte(magic))
	f.Add(appendEntry(nil, time.Hour, 1, "key", []byte("value"))[:headerSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		end := len(b) - trailerSize
		if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
			t.Fatal("accepted a bad checksum")
		}
		if e.ttl != int64(Never) && e.ttl <= 0 {
			t.Fatalf("accepted ttl %d", e.ttl)
		}
		// Accepted bytes are exactly what the encoder writes.
		if re := appendEntry(nil, time.Duration(e.ttl), e.setAt, string(e.key), e.value); !bytes.Equal(re, b) {
			t.Fatal("re-encoding differs")
		}
		// The header alone agrees with the whole.
		if _, err := parseHeader(b, int64(len(b))); err != nil {
			t.Fatalf("parseHeader rejects an accepted entry: %v", err)
		}
		// Any corrupted byte is rejected.
		c := bytes.Clone(b)
		c[int(e.setAt&0x7fffffff)%len(c)] ^= 0x80
		if _, err := decodeEntry(c); err == nil {
			t.Fatal("accepted a flipped byte")
		}
	})
}
