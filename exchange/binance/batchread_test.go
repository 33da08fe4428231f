package binance

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// scriptedConn returns its chunks one Read at a time (as a socket returns
// what has arrived), then err.
type scriptedConn struct {
	net.Conn
	chunks [][]byte
	err    error
	start  time.Time
	at     []time.Duration // when each Read came
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	c.at = append(c.at, time.Since(c.start))
	if len(c.chunks) == 0 {
		return 0, c.err
	}
	n := copy(p, c.chunks[0])
	if n < len(c.chunks[0]) {
		c.chunks[0] = c.chunks[0][n:]
	} else {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func TestBatchConnWaitsAfterDrainedReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := make([]byte, readBatchBuffer+10) // more than a batch: read back to back
		for i := range big {
			big[i] = byte(i)
		}
		inner := &scriptedConn{chunks: [][]byte{[]byte("first"), big, []byte("last")}, err: io.EOF, start: time.Now()}
		c := &batchConn{Conn: inner, wait: 20 * time.Millisecond, buf: make([]byte, readBatchBuffer)}
		var got []byte
		p := make([]byte, 4096) // the websocket library's bufio size
		for {
			n, err := c.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
		}
		want := append(append([]byte("first"), big...), "last"...)
		if string(got) != string(want) {
			t.Fatalf("read %d bytes, want the %d written, in order", len(got), len(want))
		}
		// "first" drained the socket: the next read waits. The big chunk
		// fills the buffer: read again at once. Its tail (10 bytes) drained
		// it: wait. "last" drained it: wait before meeting EOF.
		w := 20 * time.Millisecond
		if diff := cmp.Diff([]time.Duration{0, w, w, 2 * w, 3 * w}, inner.at); diff != "" {
			t.Errorf("inner reads at (-want +got):\n%s", diff)
		}
	})
}

func TestBatchConnReturnsDataBeforeError(t *testing.T) {
	inner := &errAfterData{data: []byte("tail"), err: io.ErrUnexpectedEOF}
	c := &batchConn{Conn: inner, wait: time.Millisecond, buf: make([]byte, 64)}
	p := make([]byte, 2)
	var got []byte
	var err error
	for err == nil {
		var n int
		n, err = c.Read(p)
		got = append(got, p[:n]...)
	}
	if string(got) != "tail" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %q, %v; want the data, then the error", got, err)
	}
}

// errAfterData returns its data and an error from one Read.
type errAfterData struct {
	net.Conn
	data []byte
	err  error
	done bool
}

func (c *errAfterData) Read(p []byte) (int, error) {
	if c.done {
		return 0, c.err
	}
	c.done = true
	return copy(p, c.data), c.err
}

func TestBatchingClient(t *testing.T) {
	if got := batchingClient(nil, -1); got != nil {
		t.Errorf("a negative wait changed the client")
	}
	custom := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("x") })}
	if got := batchingClient(custom, time.Millisecond); got != custom {
		t.Errorf("a client with its own RoundTripper was replaced; its connections cannot be wrapped")
	}
	base := &http.Client{Timeout: 7 * time.Second}
	got := batchingClient(base, time.Millisecond)
	if got == base || got.Timeout != base.Timeout {
		t.Fatalf("want a copy of the client with its settings, got %+v", got)
	}
	if _, ok := got.Transport.(*http.Transport); !ok || base.Transport != nil {
		t.Errorf("the copy's transport is %T and the original's was changed to %T", got.Transport, base.Transport)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
