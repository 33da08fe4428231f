package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/tradecache/tradecache/bus"
)

// HandleEvent notifies ev if Config.Match selects it (error logs and
// Config.Events) and reports whether it did. It never blocks, so it can be
// a bus.Subscriber callback.
func (n *Notifier) HandleEvent(ev bus.Event) bool {
	if !n.cfg.Match(ev.Name) {
		return false
	}
	n.Notify(Render(ev))
	return true
}

// Forward subscribes to sub and notifies the events match selects (nil:
// Config.Match) until ctx ends; it returns Subscribe's error.
func (n *Notifier) Forward(ctx context.Context, sub bus.Subscriber, match func(eventName string) bool) error {
	if match == nil {
		match = n.cfg.Match
	}
	return sub.Subscribe(ctx, func(ev bus.Event) {
		if match(ev.Name) {
			n.Notify(Render(ev))
		}
	})
}

// Render turns an event into a notification. The title is the event's
// name and its publisher ("livetrade.error_log from node-1"); the text is
// the payload's "message" when it is a string (Jesse's error_log, info_log,
// alert and notification payloads), else the payload as indented JSON.
// A payload "timestamp" in milliseconds (Jesse's logs) becomes Time; Data
// is the payload.
func Render(ev bus.Event) Notification {
	x := Notification{Event: ev.Name, Title: ev.Name, Data: ev.Data}
	if ev.Publisher != "" {
		x.Title += " from " + ev.Publisher
	}
	var p struct {
		Message   *string  `json:"message"`
		Timestamp *float64 `json:"timestamp"`
	}
	data := bytes.TrimSpace(ev.Data)
	if len(data) > 0 && data[0] == '{' && json.Unmarshal(data, &p) == nil {
		if p.Timestamp != nil && *p.Timestamp > 0 {
			x.Time = time.UnixMilli(int64(*p.Timestamp))
		}
		if p.Message != nil {
			x.Text = *p.Message
			return x
		}
	}
	var s string
	if json.Unmarshal(data, &s) == nil {
		x.Text = s
		return x
	}
	var b bytes.Buffer
	if json.Indent(&b, data, "", "  ") == nil {
		x.Text = b.String()
	} else {
		x.Text = strings.ToValidUTF8(string(data), "\uFFFD")
	}
	return x
}
