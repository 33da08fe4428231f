package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// nopConn is a transport that writes nowhere.
type nopConn struct{ closed chan struct{} }

func (n *nopConn) Read(context.Context) (websocket.MessageType, []byte, error) {
	<-n.closed
	return 0, nil, context.Canceled
}
func (n *nopConn) WaitReadable()                                              {}
func (n *nopConn) Write(context.Context, websocket.MessageType, []byte) error { return nil }
func (n *nopConn) Ping(context.Context) error                                 { return nil }
func (n *nopConn) Close(websocket.StatusCode, string) error {
	n.Abort()
	return nil
}
func (n *nopConn) Abort() error {
	select {
	case <-n.closed:
	default:
		close(n.closed)
	}
	return nil
}
func (n *nopConn) SetWriteDeadline(time.Time) error { return nil }
func (n *nopConn) DiscardOnClose()                  {}
func (n *nopConn) Cork()                            {}
func (n *nopConn) Uncork() error                    { return nil }

// BenchmarkPublish measures the server's side of one event to 1000
// subscribed clients without the network: match, enqueue, writer wake-up
// and a no-op write per client.
func BenchmarkPublish(b *testing.B) {
	sub := newFakeSub()
	g, err := New(sub, Config{Tokens: []string{testToken}, ClientQueue: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Run(ctx) }()
	<-sub.ready
	for i := range 1000 {
		sl, _ := g.admit(true)
		c := g.newClient()
		c.tr = &nopConn{closed: make(chan struct{})}
		pattern := "live.*"
		if i%2 == 1 {
			pattern = "live.kline"
		}
		c.subs.Store(newMatcher([]string{pattern, "x.y"}))
		go g.serveClient(c, sl)
	}
	for g.Stats().Clients != 1000 {
		time.Sleep(time.Millisecond)
	}
	ev := event("live.kline", map[string]any{"s": "BTCUSDT", "i": "1m", "t": 1, "c": strings.Repeat("1", 120)})
	b.ReportAllocs()
	for b.Loop() {
		sub.push(ev)
	}
	b.StopTimer()
	cancel()
	<-done
}
