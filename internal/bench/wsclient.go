package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/internal/benchfmt"
)

// benchConn is a bench client's WebSocket connection, as lean as a load
// generator should be (redis-benchmark is to Redis what this is to the
// gateway): the upgrade by hand, then frames parsed straight out of one
// read buffer, many per read system call, with no allocation per frame.
// It speaks what the bench needs: masked text frames to the server;
// unfragmented text frames (what the gateway sends), ping (answered), pong
// and close (echoed) frames from it.
type benchConn struct {
	nc net.Conn
	br *bufio.Reader

	wmu sync.Mutex // serialises frames to the server

	n    atomic.Uint64 // bench events received
	hist benchfmt.Hist // publish → receipt of each; the reading goroutine's
}

// benchDial upgrades a TCP connection to u (ws://host:port/path) with a
// Bearer token, subscribes to "bench.*" and waits for the reply.
func benchDial(ctx context.Context, u *url.URL, token string, readBuf int) (*benchConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	c := &benchConn{nc: nc, br: bufio.NewReaderSize(nc, readBuf)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	if err := c.write(opText, []byte(`{"type":"subscribe","events":["bench.*"]}`)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for {
		op, p, err := c.next()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("subscribe reply: %w", err)
		}
		if op == opText && len(p) > 0 {
			break // {"type":"subscribed",…}: events flow from now on
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

// next returns the next frame: its opcode and payload, which is valid
// until the next call. Control frames are answered here (ping → pong,
// close → close echoed, then io.EOF).
func (c *benchConn) next() (byte, []byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return 0, nil, err
		}
		op := h[0] & 0x0f
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, nil, err
			}
			n = int(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return 0, nil, err
			}
			n = int(binary.BigEndian.Uint64(e[:]))
		}
		if h[1]&0x80 != 0 {
			return 0, nil, errors.New("masked frame from the server")
		}
		if n > c.br.Size() {
			// Larger than the read buffer: skipped whole (the bench's
			// events are far smaller).
			if _, err := c.br.Discard(n); err != nil {
				return 0, nil, err
			}
			continue
		}
		p, err := c.br.Peek(n)
		if err != nil {
			return 0, nil, err
		}
		_, _ = c.br.Discard(n)
		switch op {
		case opPing:
			if err := c.write(opPong, p); err != nil {
				return 0, nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			_ = c.write(opClose, p)
			return 0, nil, io.EOF
		}
		return op, p, nil
	}
}

// write sends one masked frame (payload up to 64 KiB).
func (c *benchConn) write(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := make([]byte, 0, 8+len(p))
	b = append(b, 0x80|op)
	if len(p) < 126 {
		b = append(b, 0x80|byte(len(p)))
	} else {
		b = append(b, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, x := range p {
		b = append(b, x^mask[i&3])
	}
	_, err := c.nc.Write(b)
	return err
}

// parseStamp reads the 19 decimal digits of an event's publish time.
func parseStamp(b []byte) (int64, bool) {
	var v int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		v = v*10 + int64(d-'0')
	}
	return v, true
}

// readLoop counts the bench events received and their latency until the
// connection ends.
func (c *benchConn) readLoop() {
	for {
		op, p, err := c.next()
		if err != nil {
			return
		}
		now := time.Now()
		if op != opText || len(p) < fanoutMinSize {
			continue
		}
		ts, ok := parseStamp(p[len(fanoutPrefix) : len(fanoutPrefix)+19])
		if !ok {
			continue
		}
		c.hist.Record(now.Sub(time.Unix(0, ts)))
		c.n.Add(1)
	}
}
