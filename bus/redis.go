package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valkey-io/valkey-go"
)

// RedisSource gives the Redis client while Redis is reachable and nil
// otherwise. *cache.Cache implements it, so the bus follows the cache's
// view of Redis instead of probing on its own. The clients it gives are
// all of one mode (a cluster's or not) for its life.
type RedisSource interface {
	Redis() valkey.Client
}

// ErrUnavailable is wrapped by Publish errors when the source has no Redis
// client (Redis down, or not connected yet).
var ErrUnavailable = errors.New("bus: redis unavailable")

// ErrQueueFull is returned by PublishAsync when its queue is full: the
// event is dropped and counted.
var ErrQueueFull = errors.New("bus: async publish queue full")

// RedisConfig configures a Redis bus. Zero fields take the defaults.
type RedisConfig struct {
	// Channel is the full channel name events are published on, e.g.
	// "8080:channel:1" (keyspace.Registry.Channel). Required.
	Channel string
	// Pattern is the PSUBSCRIBE pattern; by default Channel up to its last
	// ':' followed by '*' ("8080:channel:*"), as Jesse's relay subscribes.
	Pattern string
	// Mode prefixes event names: "<Mode>.<name>" (default "live").
	Mode string
	// Publisher is the envelope's id: the node id (default: the process
	// id, as Jesse).
	Publisher string
	// PublishTimeout bounds each PUBLISH, and each pipeline of queued
	// events Run sends (default 250 ms).
	PublishTimeout time.Duration
	// CompressAbove: payloads whose JSON is longer are compressed
	// (default 64 KiB; negative: only PublishCompressed compresses).
	CompressAbove int
	// AsyncQueue and AsyncQueueBytes bound PublishAsync's queue (default
	// 8192 events and 16 MiB of envelopes; an event is dropped when either
	// is full, except into an empty queue): a leader's flush at 500
	// symbols queues a thousand events at once, while Run may wait tens
	// of milliseconds behind the flush's scripts on the connection they
	// share.
	AsyncQueue, AsyncQueueBytes int
	// Queue and QueueBytes bound each Subscribe call's queue of messages
	// received and not yet handed to fn (4096 messages, 64 MiB).
	Queue, QueueBytes int
	// BackoffMin and BackoffMax bound the resubscribe backoff (100 ms, 5 s).
	BackoffMin, BackoffMax time.Duration
	// Logger receives one line when a subscription or the async publisher
	// starts failing, and one when the async publisher recovers
	// (slog.Default() if nil). Publish returns its errors, never logs them.
	Logger *slog.Logger
}

func (c RedisConfig) withDefaults() (RedisConfig, error) {
	if c.Channel == "" {
		return c, errors.New("bus: RedisConfig.Channel is empty")
	}
	if c.Pattern == "" {
		c.Pattern = DefaultPattern(c.Channel)
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Publisher == "" {
		c.Publisher = strconv.Itoa(os.Getpid())
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 250 * time.Millisecond
	}
	if c.CompressAbove == 0 {
		c.CompressAbove = DefaultCompressAbove
	}
	if c.AsyncQueue == 0 {
		c.AsyncQueue = 8192
	}
	if c.AsyncQueueBytes == 0 {
		c.AsyncQueueBytes = 16 << 20
	}
	if c.Queue == 0 {
		c.Queue = 4096
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = 64 << 20
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 100 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.PublishTimeout < 0, c.BackoffMin < 0, c.BackoffMax < c.BackoffMin:
		return c, errors.New("bus: negative duration or BackoffMax < BackoffMin in RedisConfig")
	case c.AsyncQueue < 0, c.AsyncQueueBytes < 0, c.Queue < 0, c.QueueBytes < 0:
		return c, errors.New("bus: negative queue bound in RedisConfig")
	}
	return c, nil
}

// DefaultPattern is the subscription pattern for channel: its text up to
// the last ':' (glob characters escaped) followed by '*'. A channel without
// ':' is matched exactly.
func DefaultPattern(channel string) string {
	i := strings.LastIndexByte(channel, ':')
	if i < 0 {
		return globEscape(channel)
	}
	return globEscape(channel[:i+1]) + "*"
}

func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Redis is the bus on Redis pub/sub, Jesse's wire format on one channel.
//
// Publish sends one PUBLISH bounded by PublishTimeout (and ctx). With no
// Redis client (the source reports Redis down) or on any failure it returns
// an error wrapping the operation and counts it; events are never dropped
// silently and a caller never waits beyond the deadline. Pub/sub has no
// replay: an event published while Redis is down is lost for subscribers,
// and the caller knows it.
//
// PublishAsync is for callers that must not wait at all: it encodes the
// event and puts it in a bounded queue (AsyncQueue events, AsyncQueueBytes)
// that Run drains in order; when the queue is full the event is dropped
// and counted in Stats.DroppedAsync. Without Run the queue only fills. Run sends what has
// queued in one pipeline (up to 256 events or 256 KiB, in order, within
// one PublishTimeout): a leader publishing thousands of
// events a second then pays a round trip per flush, not per event.
//
// On a Redis Cluster the bus publishes with sharded pub/sub: SPUBLISH on
// Channel itself, which lives on the master of the channel name's slot,
// so events do not cross the whole cluster bus; Subscribe SSUBSCRIBEs the
// channel and keeps the PSUBSCRIBE of Pattern too, for publishers that
// PUBLISH (Jesse's processes): sharded pub/sub has no patterns, and the
// two never deliver one message twice. On a single Redis nothing changes:
// PUBLISH on "<APP_PORT>:channel:1" and PSUBSCRIBE "<APP_PORT>:channel:*",
// as Jesse.
//
// Subscribe PSUBSCRIBEs Pattern and delivers every valid envelope; invalid
// messages are counted (Stats.Malformed) and skipped. Each Subscribe call
// has a bounded queue (Queue, QueueBytes) between the client and fn, with
// Local's policy: when full, messages are dropped for that subscriber and
// counted (Stats.DroppedSlow). After a connection
// failure the client resubscribes by itself; when it gives up, or the
// source has no client, Subscribe retries with a capped jittered backoff
// (BackoffMin doubling to BackoffMax).
type Redis struct {
	src   RedisSource
	cfg   RedisConfig
	async chan asyncEvent // PublishAsync's queue, drained by Run
	// asyncBytes is the envelopes' bytes in async (AsyncQueueBytes).
	asyncBytes atomic.Int64
	st         counters

	// The one Redis subscription every Subscribe call of this bus shares
	// (subscription below), under subMu.
	subMu     sync.Mutex
	subQueues map[*queue]func(up bool) // the Subscribe calls' queues and state callbacks (nil: none)
	subCancel context.CancelFunc       // ends the receivers; nil: none running
	subDone   chan struct{}            // closed when the receivers have returned
	subUp     [2]bool                  // the pattern, the sharded subscription in place
}

type asyncEvent struct {
	ev         Event
	compressed bool
}

// NewRedis returns a Redis bus on the clients src gives. It does no I/O
// and starts no goroutine. Make one per client and channel pattern: a bus
// ends its subscription with PUNSUBSCRIBE on the client's connection,
// which would end another's of the same pattern there too.
func NewRedis(src RedisSource, cfg RedisConfig) (*Redis, error) {
	if src == nil {
		return nil, errors.New("bus: NewRedis: nil RedisSource")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Redis{src: src, cfg: cfg, async: make(chan asyncEvent, cfg.AsyncQueue)}, nil
}

// Channel is the channel events are published on.
func (r *Redis) Channel() string { return r.cfg.Channel }

// Pattern is the pattern Subscribe listens on.
func (r *Redis) Pattern() string { return r.cfg.Pattern }

// Publish publishes data as event "<mode>.<name>", compressed when its JSON
// exceeds CompressAbove, and returns once Redis accepted it or within
// PublishTimeout with an error.
func (r *Redis) Publish(ctx context.Context, name string, data any) error {
	return r.publish(ctx, name, data, false)
}

// PublishCompressed is Publish with the payload always compressed.
func (r *Redis) PublishCompressed(ctx context.Context, name string, data any) error {
	return r.publish(ctx, name, data, true)
}

func (r *Redis) publish(ctx context.Context, name string, data any, compress bool) error {
	ev, compressed, err := makeEvent(ctx, r.cfg.Publisher, r.cfg.Mode, name, data, compress, r.cfg.CompressAbove)
	if err != nil {
		r.st.publishErrors.Add(1)
		return err
	}
	return r.send(ctx, ev, compressed)
}

// send PUBLISHes an encoded event within PublishTimeout.
func (r *Redis) send(ctx context.Context, ev Event, compressed bool) error {
	cl := r.src.Redis()
	if cl == nil {
		r.st.publishErrors.Add(1)
		return fmt.Errorf("bus: publish %s: %w", ev.Name, ErrUnavailable)
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	if err := cl.Do(cctx, r.publishCmd(cl, ev)).Error(); err != nil {
		r.st.publishErrors.Add(1)
		return fmt.Errorf("bus: publish %s: %w", ev.Name, err)
	}
	r.st.countPublished(compressed)
	return nil
}

// Bounds of one pipeline of queued events that Run sends.
const (
	maxAsyncBatch = 256
	// maxAsyncBytes keeps a pipeline within what a slow link carries in
	// a fraction of PublishTimeout, and short ahead of the cache's calls
	// that share the connection.
	maxAsyncBytes = 256 << 10
)

// takeAsync appends to batch, which holds one event, the events queued
// behind it, within maxAsyncBatch and maxAsyncBytes.
func (r *Redis) takeAsync(batch []asyncEvent) []asyncEvent {
	size := len(batch[0].ev.Raw)
	for len(batch) < maxAsyncBatch && size < maxAsyncBytes {
		select {
		case a := <-r.async:
			batch = append(batch, r.took(a))
			size += len(a.ev.Raw)
		default:
			return batch
		}
	}
	return batch
}

// sendBatch publishes events in one pipeline, in order, within one
// PublishTimeout, and counts each one published or failed; those that
// fail because ctx ended (Run stopping) count as dropped, as the queue's
// leftovers do. It returns the first error.
func (r *Redis) sendBatch(ctx context.Context, batch []asyncEvent) error {
	cl := r.src.Redis()
	if cl == nil {
		r.st.publishErrors.Add(uint64(len(batch)))
		return fmt.Errorf("bus: publish %d events: %w", len(batch), ErrUnavailable)
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	cmds := make(valkey.Commands, len(batch))
	for i, a := range batch {
		cmds[i] = r.publishCmd(cl, a.ev)
	}
	var first error
	for i, res := range cl.DoMulti(cctx, cmds...) {
		if err := res.Error(); err != nil {
			if ctx.Err() != nil {
				r.st.droppedAsync.Add(1)
			} else {
				r.st.publishErrors.Add(1)
			}
			if first == nil {
				first = fmt.Errorf("bus: publish %s: %w", batch[i].ev.Name, err)
			}
			continue
		}
		r.st.countPublished(batch[i].compressed)
	}
	return first
}

// publishCmd is the command that publishes ev on the channel.
func (r *Redis) publishCmd(cl valkey.Client, ev Event) valkey.Completed {
	if cl.Mode() == valkey.ClientModeCluster {
		// Sharded: the message goes to the channel's slot alone instead of
		// being broadcast over the whole cluster bus.
		return cl.B().Spublish().Channel(r.cfg.Channel).Message(valkey.BinaryString(ev.Raw)).Build()
	}
	return cl.B().Publish().Channel(r.cfg.Channel).Message(valkey.BinaryString(ev.Raw)).Build()
}

// PublishAsync encodes data as event "<mode>.<name>" and queues it for Run
// to publish; it never blocks. It returns an encoding error, or ErrQueueFull
// (wrapped) when the queue is full and the event was dropped. Errors of the
// PUBLISH itself are counted in Stats.PublishErrors.
func (r *Redis) PublishAsync(name string, data any) error {
	ev, compressed, err := makeEvent(context.Background(), r.cfg.Publisher, r.cfg.Mode, name, data, false, r.cfg.CompressAbove)
	if err != nil {
		r.st.publishErrors.Add(1)
		return err
	}
	n := int64(len(ev.Raw))
	if prev := r.asyncBytes.Add(n) - n; prev > 0 && prev+n > int64(r.cfg.AsyncQueueBytes) {
		r.asyncBytes.Add(-n)
		r.st.droppedAsync.Add(1)
		return fmt.Errorf("bus: publish %s: %w (%d bytes queued)", ev.Name, ErrQueueFull, prev)
	}
	select {
	case r.async <- asyncEvent{ev, compressed}:
		return nil
	default:
		r.asyncBytes.Add(-n)
		r.st.droppedAsync.Add(1)
		return fmt.Errorf("bus: publish %s: %w", ev.Name, ErrQueueFull)
	}
}

// took accounts for a taken from the queue.
func (r *Redis) took(a asyncEvent) asyncEvent {
	r.asyncBytes.Add(-int64(len(a.ev.Raw)))
	return a
}

// Run publishes the events PublishAsync queues, in order: what has queued
// when it looks goes in one pipeline (at most 256 events, 256 KiB), within
// PublishTimeout. It returns nil when ctx ends; events still
// queued then are dropped and counted.
func (r *Redis) Run(ctx context.Context) error {
	failing := false
	var batch []asyncEvent
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case a := <-r.async:
					r.took(a)
					r.st.droppedAsync.Add(1)
				default:
					return nil
				}
			}
		case a := <-r.async:
			batch = r.takeAsync(append(batch[:0], r.took(a)))
			err := r.sendBatch(ctx, batch)
			clear(batch) // the events' payloads are garbage now
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				failing = true
				r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "bus async publish failing", slog.String("channel", r.cfg.Channel), slog.Any("err", err))
			case err == nil && failing:
				failing = false
				r.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "bus async publish recovered", slog.String("channel", r.cfg.Channel))
			}
		}
	}
}

// Subscribe calls fn, from the calling goroutine, for each valid event on
// the channel pattern until ctx ends; then it returns nil. It never gives
// up: connection failures are retried with backoff and the subscription
// re-established (Stats.Resubscribes). Events published while the
// subscription is down are not replayed.
//
// Messages go from the client's reader to a bounded queue (Queue events,
// QueueBytes) and are decoded and handed to fn by the calling goroutine.
// When fn falls behind and the queue is full, messages are dropped and
// counted (Stats.DroppedSlow): the client's connection, which the cache and
// Publish share, never waits for a slow subscriber.
//
// All Subscribe calls of one Redis share one subscription on the server:
// the first makes it, the last to end removes it (PUNSUBSCRIBE), so a
// caller may subscribe only while it has a use for the events without
// costing the others theirs.
func (r *Redis) Subscribe(ctx context.Context, fn func(Event)) error {
	return r.SubscribeReady(ctx, fn, nil)
}

// SubscribeReady is Subscribe that reports the shared subscription's
// state to ready (when not nil): true once the server has confirmed it —
// the PSUBSCRIBE, and on a cluster the SSUBSCRIBE too — (at once when it
// already is), false when it is lost (the connection broke), true again
// once resubscribed. Calls are in order and never concurrent; ready must
// not block or call the bus.
func (r *Redis) SubscribeReady(ctx context.Context, fn func(Event), ready func(up bool)) error {
	r.st.subscribers.Add(1)
	defer r.st.subscribers.Add(-1)
	q := newQueue(r.cfg.Queue, r.cfg.QueueBytes)
	r.join(q, ready)
	defer r.leave(q)
	q.drain(ctx, func(m Event) {
		ev, err := Decode(m.Raw)
		if err != nil {
			r.st.malformed.Add(1)
			return
		}
		r.st.received.Add(1)
		fn(ev)
	})
	return nil
}

// join adds q to the shared subscription, starting its receivers when q is
// the first (after the previous ones, if any, have unsubscribed: their
// PUNSUBSCRIBE must not reach the server after the new PSUBSCRIBE).
func (r *Redis) join(q *queue, ready func(up bool)) {
	r.subMu.Lock()
	for r.subCancel == nil && r.subDone != nil {
		done := r.subDone
		r.subMu.Unlock()
		<-done
		r.subMu.Lock()
		if r.subDone == done {
			r.subDone = nil
		}
	}
	defer r.subMu.Unlock()
	if r.subQueues == nil {
		r.subQueues = make(map[*queue]func(bool))
	}
	r.subQueues[q] = ready
	if r.subCancel != nil {
		if ready != nil && r.subUp[0] && r.subUp[1] {
			ready(true)
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.subCancel, r.subDone, r.subUp = cancel, done, [2]bool{}
	go func() {
		defer close(done)
		// The pattern subscription on every Redis; the sharded one too on
		// a cluster, where nodes SPUBLISH and Jesse-style publishers still
		// PUBLISH.
		var g sync.WaitGroup
		g.Go(func() { r.receive(ctx, false) })
		g.Go(func() { r.receive(ctx, true) })
		g.Wait()
	}()
}

// leave removes q; the last to leave ends the receivers, which unsubscribe.
func (r *Redis) leave(q *queue) {
	r.subMu.Lock()
	delete(r.subQueues, q)
	if len(r.subQueues) > 0 || r.subCancel == nil {
		r.subMu.Unlock()
		return
	}
	cancel, done := r.subCancel, r.subDone
	r.subCancel, r.subUp = nil, [2]bool{}
	r.subMu.Unlock()
	cancel()
	<-done
}

// fanOut queues a message for every Subscribe call. It runs on a receiver's
// Receive and must not block: valkey-go's reader waits for it once 16
// messages are pending, and every command of the client's connection with
// it.
func (r *Redis) fanOut(m valkey.PubSubMessage) {
	raw := []byte(m.Message) // shared, read only, by every queue
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for q := range r.subQueues {
		if !q.push(Event{Raw: raw}) {
			r.st.droppedSlow.Add(1)
		}
	}
}

// confirmed records whether the pattern (sharded: the sharded) subscription
// is in place, and tells the state callbacks when both being in place
// changes.
func (r *Redis) confirmed(sharded, up bool) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	was := r.subUp[0] && r.subUp[1]
	r.subUp[boolIndex(sharded)] = up
	if now := r.subUp[0] && r.subUp[1]; now != was {
		for _, f := range r.subQueues {
			if f != nil {
				f(now)
			}
		}
	}
}

// receive keeps a PSUBSCRIBE up (sharded: an SSUBSCRIBE, while the client
// is a cluster's) until ctx ends, handing raw messages to fanOut, and then
// unsubscribes: valkey-go's Receive leaves the server's subscription in
// place when its ctx ends. It reports to confirmed each confirmation and
// each loss (valkey-go retries a broken connection within one Receive,
// calling the return hook each time), and the sharded subscription as in
// place when the client is not a cluster's, where it has nothing to
// subscribe.
func (r *Redis) receive(ctx context.Context, sharded bool) {
	kind := "psubscribe"
	if sharded {
		kind = "ssubscribe"
	}
	// confirmations counts this receiver's confirmations, including those
	// of the client's own reconnections; every one after the first is a
	// resubscription. The hook runs on the client's pipeline goroutine,
	// hence the atomics.
	var confirmations atomic.Int64
	var ok atomic.Bool // the current attempt was confirmed
	hctx := valkey.WithOnSubscriptionHook(ctx, func(s valkey.PubSubSubscription) {
		if s.Kind != kind {
			return
		}
		if confirmations.Add(1) > 1 {
			r.st.resubscribes.Add(1)
		}
		ok.Store(true)
		r.confirmed(sharded, true)
	})
	// unsubscribing counts the unsubscribes the return hook sent; receive
	// returns once they are answered, so a next subscription on the
	// connection never precedes them.
	var unsubscribing sync.WaitGroup
	hctx = valkey.WithOnReceiveReturnHook(hctx, func(err error, c valkey.CommandClient) error {
		if ctx.Err() == nil {
			r.confirmed(sharded, false) // lost; valkey-go may be retrying
			return err
		}
		// Ended by us: unsubscribe on the subscription's own connection,
		// from another goroutine. The hook runs before valkey-go stops
		// routing messages to this Receive: waiting here for the reply
		// would leave the connection's reader blocked on a full channel,
		// and every command on the connection with it.
		unsub := c.B().Punsubscribe().Pattern(r.cfg.Pattern).Build()
		if sharded {
			unsub = c.B().Sunsubscribe().Channel(r.cfg.Channel).Build()
		}
		unsubscribing.Go(func() {
			// Not PublishTimeout: an unsubscribe answered after its caller
			// gave up would end the next subscription in valkey-go's books.
			uctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
			defer cancel()
			if uerr := c.Do(uctx, unsub).Error(); uerr != nil {
				r.cfg.Logger.LogAttrs(uctx, slog.LevelDebug, "bus unsubscribe failed; the connection's next reset ends it", slog.String("pattern", r.cfg.Pattern), slog.Any("err", uerr))
			}
		})
		return err
	})

	var backoff time.Duration
	failing := false
	for {
		if backoff > 0 && !sleep(ctx, jitter(backoff)) {
			return
		}
		var err error
		ok.Store(false)
		cl := r.src.Redis()
		switch {
		case cl == nil:
			// Any loss was reported by the return hook.
			err = ErrUnavailable
		case sharded && cl.Mode() != valkey.ClientModeCluster:
			// Not a cluster, and a source's client keeps its mode: nothing
			// to subscribe, ever.
			r.confirmed(sharded, true)
			<-ctx.Done()
			return
		case sharded:
			// Sharded pub/sub has no patterns: the one channel this
			// deployment publishes on, on the master of its slot.
			err = cl.Receive(hctx, cl.B().Ssubscribe().Channel(r.cfg.Channel).Build(), r.fanOut)
		default:
			err = cl.Receive(hctx, cl.B().Psubscribe().Pattern(r.cfg.Pattern).Build(), r.fanOut)
		}
		if ctx.Err() != nil {
			unsubscribing.Wait()
			return
		}
		if ok.Load() {
			// A subscription that worked and ended: try again soon.
			backoff, failing = r.cfg.BackoffMin, false
		} else {
			backoff = min(max(2*backoff, r.cfg.BackoffMin), r.cfg.BackoffMax)
		}
		if !failing {
			failing = true
			if err == nil {
				err = errors.New("unsubscribed by the server")
			}
			r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "bus subscription failing; retrying", slog.String("pattern", r.cfg.Pattern), slog.Any("err", err))
		}
	}
}

// unsubscribeTimeout bounds the wait for an unsubscribe's answer: a hung
// connection is reset by the client well before it.
const unsubscribeTimeout = 10 * time.Second

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Stats returns the bus's counters.
func (r *Redis) Stats() Stats {
	s := r.st.snapshot()
	s.AsyncQueued = len(r.async)
	return s
}

// Collector exports Stats as Prometheus metrics (tradecache_bus_*).
func (r *Redis) Collector() prometheus.Collector { return collector{r.Stats} }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by ±20 % so many nodes do not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
