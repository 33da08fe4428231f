package binance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tradecache/tradecache/exchange"
)

var (
	errStale     = errors.New("stale: no frame received in time")
	errOversized = errors.New("frame above MaxFrame")
	errAckTimout = errors.New("SUBSCRIBE not acknowledged in time")
)

// wsConn is one WebSocket connection. Its reading goroutine (started by
// dialConn) owns two helpers, a pinger and a staleness watchdog, and
// closes done when all three have exited.
type wsConn struct {
	sl   *slot
	id   uint64
	c    *websocket.Conn
	last atomic.Int64 // unix nanoseconds of the last frame of any kind

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error // why it ended; written once (once), read after done

	mu      sync.Mutex
	pending map[int64]chan error

	// Owned by the reading goroutine: the kline frame decoded in place,
	// and the symbols and intervals seen, so that a kline costs one
	// allocation (its decimals) on the way to OnEvent.
	kf    KlineFrame
	names map[string]string
}

// streamURL returns base + path + "/stream?streams=" (combined mode with
// an empty list; streams are added with SUBSCRIBE).
func streamURL(base, path string) string {
	return base + path + "/stream?streams="
}

func dialConn(ctx context.Context, sl *slot) (*wsConn, error) {
	s := sl.s
	wc := &wsConn{
		sl:      sl,
		id:      s.connIDs.Add(1),
		done:    make(chan struct{}),
		pending: map[int64]chan error{},
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	h := http.Header{}
	h.Set("User-Agent", s.cfg.UserAgent)
	c, _, err := websocket.Dial(dctx, streamURL(s.cfg.BaseURL, sl.path), &websocket.DialOptions{
		HTTPClient: s.cfg.HTTPClient,
		HTTPHeader: h,
		OnPingReceived: func(context.Context, []byte) bool {
			wc.touch()
			return true // answer with a pong
		},
		OnPongReceived: func(context.Context, []byte) { wc.touch() },
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(s.cfg.MaxFrame)
	wc.c = c
	wc.touch()
	cctx, ccancel := context.WithCancel(ctx)
	wc.cancel = ccancel
	s.c.connections.Add(1)
	go wc.run(cctx)
	return wc, nil
}

func (wc *wsConn) touch() { wc.last.Store(time.Now().UnixNano()) }

func (wc *wsConn) lastFrame() time.Time { return time.Unix(0, wc.last.Load()) }

// fail records the first reason the connection ends and tears it down.
func (wc *wsConn) fail(err error) {
	wc.once.Do(func() { wc.err = err })
	wc.cancel()
	_ = wc.c.CloseNow()
}

// close ends the connection with reason and waits for its goroutines.
func (wc *wsConn) close(reason error) {
	wc.fail(reason)
	<-wc.done
}

func (wc *wsConn) run(ctx context.Context) {
	s := wc.sl.s
	var helpers sync.WaitGroup
	helpers.Go(func() {
		// No pong timeout: a market stream's gaps are the consumer's to
		// repair (its OnConnect backfill, kline gap checks); silence
		// alone resets it.
		p := &pinger{c: wc.c, interval: s.cfg.PingInterval, last: wc.lastFrame}
		_ = p.run(ctx)
	})
	helpers.Go(func() {
		if err := watchStale(ctx, wc.lastFrame, s.cfg.StaleAfter); err != nil {
			s.c.stale.Add(1)
			s.log.Warn("binance stream stale; resetting", "conn", wc.sl.name, "silent_for", time.Since(wc.lastFrame()).Round(time.Millisecond))
			wc.fail(err)
		}
	})
	// The reads take a context that never ends, which spares the
	// WebSocket library a cancellation hook per message; the end of ctx
	// closes the connection instead, which ends the read just the same.
	helpers.Go(func() {
		<-ctx.Done()
		wc.fail(ctx.Err())
	})
	err := wc.readLoop(context.WithoutCancel(ctx))
	wc.fail(err)
	helpers.Wait()
	wc.mu.Lock()
	for id, ch := range wc.pending {
		delete(wc.pending, id)
		close(ch)
	}
	wc.mu.Unlock()
	s.c.connections.Add(-1)
	close(wc.done)
}

// watchStale returns errStale once last() is older than after, or nil
// when ctx ends.
func watchStale(ctx context.Context, last func() time.Time, after time.Duration) error {
	t := time.NewTimer(after)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			idle := time.Since(last())
			if idle >= after {
				return errStale
			}
			t.Reset(after - idle)
		}
	}
}

func (wc *wsConn) readLoop(ctx context.Context) error {
	s := wc.sl.s
	var buf bytes.Buffer
	for {
		_, r, err := wc.c.Reader(ctx)
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				s.c.oversized.Add(1)
				return fmt.Errorf("%w (%d bytes): %v", errOversized, s.cfg.MaxFrame, err)
			}
			return err
		}
		wc.touch() // once per message: a clock read is a visible part of a frame's cost
		s.c.frames.Add(1)
		wc.handle(buf.Bytes())
		if buf.Cap() > 1<<20 {
			buf = bytes.Buffer{} // do not pin a rare huge frame's buffer
		}
	}
}

// maxInterned bounds a connection's table of names beyond its streams'.
const maxInterned = 64

// intern returns the string of name when the connection has seen it, and
// keeps it while the table has room; "" otherwise.
func (wc *wsConn) intern(name []byte) string {
	if s, ok := wc.names[string(name)]; ok {
		return s
	}
	if wc.names == nil {
		wc.names = map[string]string{}
	}
	if len(wc.names) >= len(wc.sl.streams)+maxInterned {
		return ""
	}
	s := string(name)
	wc.names[s] = s
	return s
}

// handle processes one message. Nothing here ends the connection.
func (wc *wsConn) handle(b []byte) {
	s := wc.sl.s
	// Klines, most of the traffic, take the one-pass decoder; anything it
	// does not take, errors included, goes the general way below.
	if wc.kf.decodePlain(b) {
		if name, ok := wc.sl.set[string(wc.kf.Stream)]; ok {
			wc.sl.deliver(wc.id, exchange.Event{Kind: exchange.EventKline, Stream: name, EventTime: wc.kf.EventTime, Kline: wc.kf.kline(wc.intern)})
			return
		}
	}
	f, err := parseFrame(b)
	if err != nil {
		wc.drop(&s.c.malformed, "malformed", b, err)
		return
	}
	switch f.kind {
	case frameControl:
		wc.ack(f)
	case frameData:
		if _, ok := wc.sl.set[f.stream]; !ok {
			wc.drop(&s.c.unknown, "unknown stream", b, nil)
			return
		}
		ev, err := decodePayload(f.stream, f.data)
		if err != nil {
			if isUnknown(err) {
				wc.drop(&s.c.unknown, "unknown event", b, err)
			} else {
				wc.drop(&s.c.malformed, "malformed", b, err)
			}
			return
		}
		wc.sl.deliver(wc.id, ev)
	default:
		wc.drop(&s.c.unknown, "unknown frame", b, nil)
	}
}

func (wc *wsConn) drop(n *atomic.Int64, what string, b []byte, err error) {
	n.Add(1)
	log := wc.sl.s.log
	if log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("binance stream frame dropped", "conn", wc.sl.name, "why", what, "err", err, "frame", string(b[:min(len(b), 256)]))
	}
}

// ack matches a control reply with its request.
func (wc *wsConn) ack(f frame) {
	s := wc.sl.s
	wc.mu.Lock()
	ch, ok := wc.pending[f.id]
	delete(wc.pending, f.id)
	wc.mu.Unlock()
	if !ok {
		wc.drop(&s.c.unknown, "unmatched reply", nil, fmt.Errorf("id %d", f.id))
		return
	}
	var err error
	if f.hasErr {
		err = fmt.Errorf("binance: SUBSCRIBE %d: error %d: %s", f.id, f.code, f.msg)
	}
	ch <- err // buffered
}

type controlMsg struct {
	Method string   `json:"method"`
	Params []string `json:"params"`
	ID     int64    `json:"id"`
}

// subscribe sends SUBSCRIBE in batches of at most MaxSubscribeBatch names,
// at most ControlRate messages per second, then waits for every ack. An
// error reply is logged and counted, not fatal (Binance closes the
// connection itself when it means it); a missing ack is fatal.
func (wc *wsConn) subscribe(ctx context.Context, names []string) error {
	s := wc.sl.s
	p := pacer{interval: time.Duration(float64(time.Second) / s.cfg.ControlRate)}
	var waits []chan error
	for i := 0; i < len(names); i += s.cfg.MaxSubscribeBatch {
		batch := names[i:min(i+s.cfg.MaxSubscribeBatch, len(names))]
		if err := p.wait(ctx); err != nil {
			return err
		}
		id := s.ids.Add(1)
		ch := make(chan error, 1)
		wc.mu.Lock()
		wc.pending[id] = ch
		wc.mu.Unlock()
		waits = append(waits, ch)
		msg, _ := json.Marshal(controlMsg{Method: "SUBSCRIBE", Params: batch, ID: id})
		wctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
		err := wc.c.Write(wctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("binance: SUBSCRIBE: %w", err)
		}
	}
	deadline := time.NewTimer(s.cfg.AckTimeout)
	defer deadline.Stop()
	for _, ch := range waits {
		select {
		case err, ok := <-ch:
			if !ok {
				return fmt.Errorf("binance: connection lost while subscribing: %w", wc.err)
			}
			if err != nil {
				s.c.controlErrors.Add(1)
				s.log.Error("binance SUBSCRIBE refused", "conn", wc.sl.name, "err", err)
			}
		case <-deadline.C:
			s.c.controlErrors.Add(1)
			return errAckTimout
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pacer spaces calls to wait at least interval apart.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func (p *pacer) wait(ctx context.Context) error {
	now := time.Now()
	if d := p.next.Sub(now); d > 0 {
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
		now = time.Now()
	}
	p.next = now.Add(p.interval)
	return nil
}
