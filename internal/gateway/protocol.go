package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// Message types a client sends.
const (
	typeAuth        = "auth"
	typeSubscribe   = "subscribe"
	typeUnsubscribe = "unsubscribe"
)

// maxPatternLen bounds one subscription pattern. Event names are short
// ("live.book_ticker"); the bound keeps a hostile client's set small.
const maxPatternLen = 128

// Errors answered to a client in {"type":"error","error":"…"}. Their text is
// part of the protocol: constant, never an echo of client input.
var (
	errInvalidJSON     = errors.New("invalid JSON")
	errUnknownType     = errors.New("unknown message type")
	errTooManyPatterns = errors.New("too many patterns")
	errPatternTooLong  = errors.New("pattern too long")
	errBadPattern      = errors.New("invalid pattern: printable ASCII, '*' only at the end")
	errBinary          = errors.New("binary messages are not supported")
	errAlreadyAuthed   = errors.New("already authenticated")
)

// clientMessage is a message a client sends: auth, subscribe or
// unsubscribe. Unknown fields are ignored so clients can add their own.
type clientMessage struct {
	Type   string   `json:"type"`
	Token  string   `json:"token,omitempty"`
	Events []string `json:"events,omitempty"`
}

// parseClientMessage decodes and validates one client message. maxPatterns
// bounds len(Events). Pattern rules: 1..maxPatternLen bytes of printable
// ASCII (0x21–0x7e); '*' only as the last byte (a prefix match; "*" alone
// matches every event).
func parseClientMessage(b []byte, maxPatterns int) (clientMessage, error) {
	var m clientMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return clientMessage{}, errInvalidJSON
	}
	switch m.Type {
	case typeAuth:
		m.Events = nil
		return m, nil
	case typeSubscribe, typeUnsubscribe:
	default:
		return clientMessage{}, errUnknownType
	}
	m.Token = ""
	if len(m.Events) > maxPatterns {
		return clientMessage{}, errTooManyPatterns
	}
	for _, p := range m.Events {
		if err := checkPattern(p); err != nil {
			return clientMessage{}, err
		}
	}
	return m, nil
}

func checkPattern(p string) error {
	if len(p) > maxPatternLen {
		return errPatternTooLong
	}
	if p == "" {
		return errBadPattern
	}
	for i := 0; i < len(p); i++ {
		b := p[i]
		if b < 0x21 || b > 0x7e || b == '*' && i != len(p)-1 {
			return errBadPattern
		}
	}
	return nil
}

// matcher is a client's compiled subscription set. It is immutable: the
// reader goroutine builds a new one per (un)subscribe and publishes it with
// an atomic store, so the fan-out reads it without a lock.
type matcher struct {
	patterns []string            // sorted, unique: what the client is told
	all      bool                // "*" is in the set
	exact    map[string]struct{} // patterns without '*'
	prefixes []string            // patterns with a trailing '*', without it
}

func newMatcher(patterns []string) *matcher {
	m := &matcher{patterns: patterns}
	for _, p := range patterns {
		switch {
		case p == "*":
			m.all = true
		case strings.HasSuffix(p, "*"):
			m.prefixes = append(m.prefixes, p[:len(p)-1])
		default:
			if m.exact == nil {
				m.exact = make(map[string]struct{})
			}
			m.exact[p] = struct{}{}
		}
	}
	return m
}

// match reports whether event name is in the set.
func (m *matcher) match(name string) bool {
	if m.all {
		return true
	}
	if _, ok := m.exact[name]; ok {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// subscribe returns the set with ps added; ok is false (and the set
// unchanged) if it would exceed limit patterns.
func (m *matcher) subscribe(ps []string, limit int) (*matcher, bool) {
	var cur []string
	if m != nil {
		cur = m.patterns
	}
	next := slices.Concat(cur, ps)
	slices.Sort(next)
	next = slices.Compact(next)
	if len(next) > limit {
		return m, false
	}
	return newMatcher(next), true
}

// unsubscribe returns the set without ps (exact pattern strings: "live.*"
// removes the pattern "live.*", not "live.kline").
func (m *matcher) unsubscribe(ps []string) *matcher {
	if m == nil {
		return newMatcher(nil)
	}
	next := slices.DeleteFunc(slices.Clone(m.patterns), func(p string) bool { return slices.Contains(ps, p) })
	return newMatcher(next)
}

func (m *matcher) list() []string {
	if m == nil || m.patterns == nil {
		return []string{}
	}
	return m.patterns
}

// Server → client control messages.
type serverMessage struct {
	Type   string   `json:"type"`
	Events []string `json:"events,omitempty"`
	Error  string   `json:"error,omitempty"`
}

func subscribedReply(m *matcher) []byte {
	// Events must be present even when empty: marshal by hand around the list.
	ev, _ := json.Marshal(m.list())
	b := make([]byte, 0, len(ev)+40)
	b = append(b, `{"type":"subscribed","events":`...)
	b = append(b, ev...)
	return append(b, '}')
}

func errorReply(err error) []byte {
	b, _ := json.Marshal(serverMessage{Type: "error", Error: err.Error()})
	return b
}
