package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
)

// recConn records what is written to it.
type recConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func TestAppendTextFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte("x"), n)
		b := appendTextFrame(nil, p)
		if b[0] != 0x81 {
			t.Fatalf("%d: first byte %#x, want FIN+text", n, b[0])
		}
		var got, hdr int
		switch l := int(b[1]); {
		case l < 126:
			got, hdr = l, 2
		case l == 126:
			got, hdr = int(binary.BigEndian.Uint16(b[2:])), 4
		default:
			got, hdr = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if got != n || len(b) != hdr+n || b[1]&0x80 != 0 {
			t.Errorf("%d bytes: header says %d, frame %d bytes (header %d), mask bit %v", n, got, len(b), hdr, b[1]&0x80 != 0)
		}
	}
}

func TestCorkBatchesAndStopsAfterClose(t *testing.T) {
	rc := &recConn{}
	c := &corkConn{Conn: rc, pool: newCorkPool()}
	c.Cork()
	for range 3 {
		if err := c.appendText([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	// A control frame from coder (a pong) joins the batch, whole.
	if _, err := c.Write([]byte{0x8a, 0}); err != nil {
		t.Fatal(err)
	}
	if len(rc.writes) != 0 {
		t.Fatalf("%d writes while corked", len(rc.writes))
	}
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat(appendTextFrame(nil, []byte("hello")), 3), 0x8a, 0)
	if len(rc.writes) != 1 || !bytes.Equal(rc.writes[0], want) {
		t.Fatalf("writes %q, want one %q", rc.writes, want)
	}

	// A batch larger than corkMax goes out in several writes, frames whole.
	big := bytes.Repeat([]byte("y"), corkMax/3)
	c.Cork()
	for range 4 {
		if err := c.appendText(big); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Uncork()
	var all []byte
	for _, w := range rc.writes[1:] {
		if len(w) > corkMax {
			t.Errorf("a write of %d bytes, over corkMax", len(w))
		}
		all = append(all, w...)
	}
	if frame := appendTextFrame(nil, big); !bytes.Equal(all, bytes.Repeat(frame, 4)) {
		t.Errorf("%d bytes written, want 4 whole frames of %d", len(all), len(frame))
	}

	// After coder's close frame, no data frame.
	if _, err := c.Write([]byte{opCloseByte, 2, 0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	c.Cork()
	if err := c.appendText([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("appendText after a close frame = %v, want net.ErrClosed", err)
	}
	_ = c.Uncork()

	// closeData (the handshake is starting) refuses them too.
	c2 := &corkConn{Conn: &recConn{}, pool: newCorkPool()}
	c2.closeData()
	if err := c2.appendText([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("appendText after closeData = %v", err)
	}
}
