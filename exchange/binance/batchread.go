package binance

import (
	"context"
	"net"
	"net/http"
	"time"
)

// A market stream's frames come a few hundred bytes at a time: at Binance's
// cadence (every kline stream updates every 250 ms) a connection of 1,000
// streams gets a frame every quarter of a millisecond, and a reader that
// is woken for each one pays a scheduler wake-up and a read(2) per frame,
// which cost more than decoding it. batchConn waits a little after a read
// that drained the socket, so that the next read takes every frame that
// arrived meanwhile in one go into a buffer of its own. The wait only
// happens after a drained read: a connection with more queued than the
// buffer holds is read back to back, so the throughput is not capped.
//
// The delay a frame gains is at most the wait (milliseconds), against a
// buffer flushed to Redis every 100 ms; the connection's watchdog and
// pings run on their own and tolerate it by orders of magnitude.

// DefaultReadBatch is the wait after a read that drained a stream
// connection's socket.
const DefaultReadBatch = 20 * time.Millisecond

// readBatchBuffer is one batched read's most: 64 KiB, a second of
// 1,000 streams' kline frames at Binance's cadence.
const readBatchBuffer = 64 << 10

type batchConn struct {
	net.Conn
	wait    time.Duration
	buf     []byte
	r, w    int
	err     error // a read's error, returned once its bytes are consumed
	drained bool  // the last read returned less than the buffer holds
}

func (c *batchConn) Read(p []byte) (int, error) {
	if c.r == c.w {
		if c.err != nil {
			return 0, c.err
		}
		if c.drained {
			time.Sleep(c.wait)
		}
		n, err := c.Conn.Read(c.buf)
		c.r, c.w, c.err = 0, n, err
		c.drained = n < len(c.buf)
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// batchingClient returns a client whose connections read in batches
// (batchConn) and otherwise behave as hc's: its Transport cloned with the
// dialer wrapped. A client whose Transport is not an *http.Transport is
// returned as it is (its connections cannot be reached).
func batchingClient(hc *http.Client, wait time.Duration) *http.Client {
	if wait <= 0 {
		return hc
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return hc
	}
	t = t.Clone()
	dial := t.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &batchConn{Conn: conn, wait: wait, buf: make([]byte, readBatchBuffer)}, nil
	}
	// TLS is layered over DialContext's connection, so wss:// batches
	// too (a Transport with a TLS dialer of its own does not).
	c := *hc
	c.Transport = t
	return &c
}
