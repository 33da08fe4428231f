package bus

import (
	"context"
	"sync"
)

// queue is one subscriber's bounded FIFO of events, filled by publishers
// (Local) or the Redis client's reader (Redis) and drained by the
// subscriber's own goroutine. push never blocks: when the queue holds
// maxLen events, or maxBytes of envelopes (0: no byte bound), it refuses.
type queue struct {
	maxLen, maxBytes int
	notify           chan struct{} // 1-buffered: the queue became non-empty

	mu    sync.Mutex // guards buf, head, n, bytes
	buf   []Event    // ring, grown up to maxLen: an idle subscriber costs little
	head  int        // index of the oldest event
	n     int        // events queued
	bytes int        // sum of len(Raw) of the queued events
}

func newQueue(maxLen, maxBytes int) *queue {
	return &queue{maxLen: maxLen, maxBytes: maxBytes, notify: make(chan struct{}, 1)}
}

// push queues ev, or reports false when the queue is full.
func (q *queue) push(ev Event) bool {
	q.mu.Lock()
	if q.n == q.maxLen || (q.maxBytes > 0 && q.n > 0 && q.bytes+len(ev.Raw) > q.maxBytes) {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.buf) {
		buf := make([]Event, min(max(2*len(q.buf), 16), q.maxLen))
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = ev
	q.n++
	q.bytes += len(ev.Raw)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true
}

func (q *queue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return Event{}, false
	}
	ev := q.buf[q.head]
	q.buf[q.head] = Event{} // let the payload go
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.bytes -= len(ev.Raw)
	return ev, true
}

// drain calls fn for each queued event, in order, until ctx ends. Events
// left when ctx ends are discarded with the queue.
func (q *queue) drain(ctx context.Context, fn func(Event)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.notify:
		}
		for ctx.Err() == nil {
			ev, ok := q.pop()
			if !ok {
				break
			}
			fn(ev)
		}
	}
}
