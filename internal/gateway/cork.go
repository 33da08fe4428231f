package gateway

import (
	"net"
	"sync"
)

// corkConn sits under coder/websocket's connection and lets the writer
// batch frames into one write system call. coder flushes every message to
// the connection; while corked, those writes are appended to a buffer,
// and Uncork writes the buffer out at once. On loopback, the send system
// call (which also runs the receiver's TCP input) is most of a frame's
// cost, so batching is what makes fan-out to 1000s of clients affordable.
//
// Frames of the connection are still serialized by coder's own lock; mu
// only guards the cork state against the writer goroutine toggling it
// while a ping or close frame is being written.
type corkConn struct {
	net.Conn
	pool *sync.Pool // of *[]byte, shared by the gateway's connections

	mu     sync.Mutex // guards corked and buf; held across the flushing write
	corked bool
	buf    *[]byte // from pool while corked with data; nil otherwise
}

// corkMax bounds the buffer: past it, what is buffered is written out.
const corkMax = 32 << 10

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		if c.buf == nil {
			c.buf = c.pool.Get().(*[]byte)
		}
		if len(*c.buf)+len(p) <= corkMax {
			*c.buf = append(*c.buf, p...)
			return len(p), nil
		}
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

// Cork starts buffering writes.
func (c *corkConn) Cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// Uncork writes out the buffer and stops buffering.
func (c *corkConn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	err := c.flushLocked()
	if c.buf != nil {
		*c.buf = (*c.buf)[:0]
		c.pool.Put(c.buf)
		c.buf = nil
	}
	return err
}

func (c *corkConn) flushLocked() error {
	if c.buf == nil || len(*c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(*c.buf)
	*c.buf = (*c.buf)[:0]
	return err
}

func newCorkPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		b := make([]byte, 0, 16<<10)
		return &b
	}}
}
