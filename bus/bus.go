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
