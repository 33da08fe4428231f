// Package bus carries events between tradecache's processes and to
// browsers: Jesse's envelope on Redis pub/sub, or in process when there is
// no Redis.
//
// The envelope, as Jesse publishes it on channel "<APP_PORT>:channel:1":
//
//	{"id": <publisher>, "event": "<mode>.<name>", "is_compressed": <bool>, "data": <JSON or base64(gzip(JSON))>}
//
// Where Jesse's id is the publishing process's pid (a number), ours is the
// node id (a string); decoders accept both.
//
// # Codec
//
// Encode builds an envelope; Decode parses ours and Jesse's and is strict
// about what it relays: valid UTF-8 JSON, a non-empty event name, a data
// member, and compressed data that inflates to valid JSON of at most
// MaxDecompressed (16 MiB) bytes, so a gzip bomb costs a subscriber nothing.
// Python's NaN literals are invalid JSON and rejected. Publishers compress
// payloads whose JSON exceeds CompressAbove (64 KiB by default) and, on
// request, any payload (PublishCompressed).
//
// Every event of a leader is encoded and every node decodes every event,
// so both avoid encoding/json's reflection where they can, with its output
// as the reference: Encode writes the envelope itself and the exchange's
// klines and tickers with their AppendJSON (byte for byte encoding/json's,
// fuzzed), and Decode validates a message in one pass (what json.Valid
// answers, without its state function per byte) and scans the envelopes
// publishers send, leaving anything unusual (errors, member names in
// another case) to json.Unmarshal (differential fuzz targets check both
// against encoding/json).
//
// # Implementations
//
// Redis publishes on one channel ("<APP_PORT>:channel:1", from
// keyspace.Registry.Channel) and subscribes to its pattern
// ("<APP_PORT>:channel:*"), so Jesse's processes and dashboards and
// tradecache nodes share one stream. It takes its client from a RedisSource
// (the tiered cache), which reports Redis down by returning nil.
//   - Publish: one PUBLISH bounded by PublishTimeout (250 ms); no Redis or
//     any failure is an error, wrapped with the operation and counted, never
//     swallowed. Pub/sub has no replay; the caller decides what a lost event
//     means.
//   - PublishAsync: never blocks; a bounded queue (8192 events, 16 MiB)
//     drained in order by Run, which sends what has queued in one pipeline
//     (a leader's thousands of events a second cost a round trip per
//     flush, and reach subscribers in bursts); when full the event is
//     dropped and counted.
//   - Subscribe: PSUBSCRIBE, resubscribing by itself after failures with a
//     capped jittered backoff (100 ms to 5 s); malformed messages are counted
//     and skipped. Each Subscribe call has a bounded queue (4096 messages,
//     64 MiB) between the client and fn, with Local's policy below, so a slow
//     subscriber never stalls the connection the cache shares. All calls
//     share one server subscription, made by the first and removed
//     (PUNSUBSCRIBE) by the last, so a caller may subscribe only while it
//     needs the events; SubscribeReady (ReadySubscriber) reports when that
//     subscription is in place and when it is lost.
//
// Local is the in-process bus for a node without Redis. Each Subscribe call
// has a bounded queue (4096 events); when it is full, Publish drops the
// event for that subscriber alone and counts it. Publish never blocks.
//
// Both keep per-publisher order, report Stats and export them as
// Prometheus metrics (tradecache_bus_*). conformance_test.go runs one suite
// against both.
package bus

import (
	"context"
	"encoding/json"
)

// Envelope is the wire form of an event.
type Envelope struct {
	ID           json.RawMessage `json:"id"`
	Event        string          `json:"event"`
	IsCompressed bool            `json:"is_compressed"`
	// Data is the payload's JSON, or, when IsCompressed, a JSON string
	// holding base64 of the gzip of the payload's JSON.
	Data json.RawMessage `json:"data"`
}

// Event is a received event.
type Event struct {
	Publisher string          // the envelope's id, as text (a node id, or Jesse's pid)
	Name      string          // "<mode>.<name>", e.g. "live.kline"
	Data      json.RawMessage // the payload, decompressed: always plain JSON
	Raw       []byte          // the envelope exactly as published, to relay unchanged
	// Opaque marks a well-formed envelope whose compressed payload this
	// package cannot turn into JSON (not base64 of gzip or zlib, more than
	// MaxDecompressed inflated, or not JSON even with Python's NaN and
	// Infinity read as null). Data is nil; Raw still relays it unchanged,
	// and a reader that knows the payload (Jesse's own page) reads it.
	Opaque bool
}

// Publisher publishes events named "<mode>.<name>".
type Publisher interface {
	// Publish sends data (marshalled to JSON) as event name ("kline"; the
	// publisher adds its mode: "live.kline"). It returns within the
	// publisher's deadline; an event that could not be sent is an error,
	// and counted.
	Publish(ctx context.Context, name string, data any) error
}

// Subscriber receives every event on the bus's channel.
type Subscriber interface {
	// Subscribe calls fn for each event until ctx ends, resubscribing by
	// itself after connection failures. fn is called from one goroutine
	// and must not block: hand the event to a bounded queue.
	Subscribe(ctx context.Context, fn func(Event)) error
}

// ReadySubscriber is a Subscriber that says when its subscription is in
// place, so that a caller may subscribe only while someone listens and
// still promise that every event published while it is reaches fn.
type ReadySubscriber interface {
	Subscriber
	// SubscribeReady is Subscribe that reports the subscription's state to
	// ready: true once every event published from then on reaches fn,
	// false when that stops (a lost connection), true again when it is
	// back. It may never report true (the server unreachable until ctx
	// ends). Calls are in order and never concurrent; ready must not block
	// or call the bus.
	SubscribeReady(ctx context.Context, fn func(Event), ready func(up bool)) error
}
