package gateway

import (
	"net"
	"sync"
)

// corkConn sits under coder/websocket's connection and lets the writer
// batch frames into one write system call. coder flushes every frame it
// writes (pings, pongs, close frames) to the connection; while corked,
// those writes are appended to a buffer, and Uncork writes the buffer out
// at once. On loopback, the send system call (which also runs the
// receiver's TCP input) is most of a frame's cost, so batching is what
// makes fan-out to 1000s of clients affordable.
//
// The writer's own messages do not go through coder at all: appendText
// frames them straight into the buffer. coder's Write costs a lock built
// on channels and selects, a deadline set-up and a copy through its
// bufio.Writer for each message: a third of the gateway's CPU at 1,000
// clients (bench fanout, CPU profile). Frames from the server are not
// masked, and the gateway does not negotiate compression, so a text frame
// is a 2–10 byte header and the message.
//
// mu serialises the two paths: coder's frames are control frames of at
// most 127 bytes, each handed over by coder in one Write (its buffer is
// 512 bytes and it flushes at the end of every frame), and each of our
// frames is appended whole under mu, so frames never interleave. Once a
// close frame has gone through, or closeData was called, appendText
// refuses: no data frame may follow a close frame.
type corkConn struct {
	net.Conn
	pool *sync.Pool // of *[]byte, shared by the gateway's connections

	mu         sync.Mutex // guards corked, buf and dataClosed; held across the flushing write
	corked     bool
	buf        *[]byte // from pool while corked with data; nil otherwise
	dataClosed bool    // a close frame was written or is about to be
}

// corkMax bounds the buffer: past it, what is buffered is written out.
const corkMax = 32 << 10

// opCloseByte is the first byte of an unfragmented close frame (FIN + opcode 8).
const opCloseByte = 0x88

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0] == opCloseByte {
		c.dataClosed = true
	}
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

// appendText buffers p as one text frame, flushing first if the buffer
// would pass corkMax. The connection must be corked. After a close frame
// it returns net.ErrClosed.
func (c *corkConn) appendText(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dataClosed {
		return net.ErrClosed
	}
	if c.buf == nil {
		c.buf = c.pool.Get().(*[]byte)
	}
	if len(*c.buf) > 0 && len(*c.buf)+len(p)+10 > corkMax {
		if err := c.flushLocked(); err != nil {
			return err
		}
	}
	*c.buf = appendTextFrame(*c.buf, p)
	if !c.corked || len(*c.buf) >= corkMax {
		return c.flushLocked()
	}
	return nil
}

// appendTextFrame appends p as an unmasked, final text frame.
func appendTextFrame(b, p []byte) []byte {
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n <= 0xffff:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

// WebSocket opcodes the gateway writes itself.
const (
	opPing = 0x9
	opPong = 0xa
)

// writeControl sends a control frame (payload ≤ 125 bytes): into the
// buffer while corked (the writer's Uncork sends it), else at once. After
// a close frame it returns net.ErrClosed. Not corked, it may block while
// the peer does not read, as long as the writer's deadline or, past it,
// the idle timeout's close lets it.
func (c *corkConn) writeControl(op byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dataClosed {
		return net.ErrClosed
	}
	frame := append([]byte{0x80 | op, byte(len(p))}, p...)
	if c.corked {
		if c.buf == nil {
			c.buf = c.pool.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, frame...)
		return nil
	}
	_, err := c.Conn.Write(frame)
	return err
}

// closeData makes appendText refuse from now on: the close handshake is
// starting.
func (c *corkConn) closeData() {
	c.mu.Lock()
	c.dataClosed = true
	c.mu.Unlock()
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
		if cap(*c.buf) <= 2*corkMax { // one huge message does not stay in the pool
			*c.buf = (*c.buf)[:0]
			c.pool.Put(c.buf)
		}
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
