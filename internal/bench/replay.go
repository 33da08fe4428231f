package bench

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// replayFeed serves kline frames in Binance's combined-stream format as
// fast as a connection takes them, for the ingest bench to measure the
// node rather than the simulator: each frame is a template with its times
// written in, and frames go out in batches of raw WebSocket frames, one
// write system call per batch. It speaks just enough WebSocket for the
// node's client (no compression, no fragmentation): it answers SUBSCRIBE,
// sends klines on the kline streams and nothing on the others, and drops
// every other client frame (pings included: the node tells a
// live connection by the frames it receives).
type replayFeed struct {
	ctx context.Context
	wg  sync.WaitGroup
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func (f *replayFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "a WebSocket upgrade only", http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
	if rw.Flush() != nil {
		conn.Close()
		return
	}
	f.wg.Go(func() { f.serve(conn, rw.Reader) })
}

// serve reads the client's frames (SUBSCRIBE is answered, the streams
// added) while another goroutine writes klines of the streams subscribed.
func (f *replayFeed) serve(conn net.Conn, br *bufio.Reader) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go func() { <-ctx.Done(); conn.Close() }()
	var mu sync.Mutex // guards streams, acks and the connection's writes
	var streams []string
	var acks [][]byte
	subscribed := make(chan struct{}, 1)
	go func() {
		defer cancel()
		for {
			op, payload, err := readClientFrame(br)
			if err != nil {
				return
			}
			if op != 1 { // text: a control message; the rest is dropped
				if op == 8 {
					return
				}
				continue
			}
			var m struct {
				Method string   `json:"method"`
				Params []string `json:"params"`
				ID     int64    `json:"id"`
			}
			if json.Unmarshal(payload, &m) != nil || m.Method != "SUBSCRIBE" {
				continue
			}
			mu.Lock()
			for _, name := range m.Params {
				if strings.Contains(name, "@kline_") {
					streams = append(streams, name) // the others get nothing
				}
			}
			acks = append(acks, []byte(`{"result":null,"id":`+strconv.FormatInt(m.ID, 10)+`}`))
			mu.Unlock()
			select {
			case subscribed <- struct{}{}:
			default:
			}
		}
	}()
	var buf, frame []byte
	for i := 0; ctx.Err() == nil; {
		mu.Lock()
		buf = buf[:0]
		for _, a := range acks {
			buf = appendServerFrame(buf, a)
		}
		acks = acks[:0]
		n := len(streams)
		now := time.Now().UnixMilli()
		for range 64 {
			if n == 0 {
				break
			}
			frame = appendKlineFrame(frame[:0], streams[i%n], now, i)
			buf = appendServerFrame(buf, frame)
			i++
		}
		mu.Unlock()
		if len(buf) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-subscribed:
			}
			continue
		}
		if _, err := conn.Write(buf); err != nil {
			return
		}
	}
}

// appendKlineFrame appends an in-progress kline update of stream
// ("<symbol>@kline_<interval>") at now.
func appendKlineFrame(b []byte, stream string, now int64, seq int) []byte {
	sym, iv, _ := strings.Cut(stream, "@kline_")
	ivMs := int64(60_000)
	if iv == "5m" {
		ivMs = 300_000
	}
	open := now - now%ivMs
	b = append(b, `{"stream":"`...)
	b = append(b, stream...)
	b = append(b, `","data":{"e":"kline","E":`...)
	b = strconv.AppendInt(b, now, 10)
	b = append(b, `,"s":"`...)
	b = appendUpper(b, sym)
	b = append(b, `","k":{"t":`...)
	b = strconv.AppendInt(b, open, 10)
	b = append(b, `,"T":`...)
	b = strconv.AppendInt(b, open+ivMs-1, 10)
	b = append(b, `,"s":"`...)
	b = appendUpper(b, sym)
	b = append(b, `","i":"`...)
	b = append(b, iv...)
	b = append(b, `","f":100,"L":200,"o":"83120.10","c":"83091.`...)
	b = strconv.AppendInt(b, int64(10+seq%90), 10)
	b = append(b, `","h":"83125.00","l":"83080.00","v":"52.318","n":304,"x":false,"q":"4347921.33","V":"20.114","Q":"1671540.12","B":"0"}}}`...)
	return b
}

func appendUpper(b []byte, s string) []byte {
	for i := range len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// appendServerFrame appends p as one unmasked text frame.
func appendServerFrame(b, p []byte) []byte {
	b = append(b, 0x81)
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

var errClientFrame = errors.New("replay: bad client frame")

// readClientFrame reads one masked client frame: its opcode and payload.
func readClientFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if h[1]&0x80 == 0 || n > 1<<20 {
		return 0, nil, errClientFrame
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= mask[i%4]
	}
	return h[0] & 0x0f, p, nil
}
