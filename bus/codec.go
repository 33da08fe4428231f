package bus

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/jsonscan"
)

// MaxDecompressed bounds the payload Decode inflates from a compressed
// envelope (16 MiB): a few kilobytes of gzip can hold gigabytes of zeros,
// and a subscriber must not be the one that pays for it.
const MaxDecompressed = 16 << 20

// DefaultCompressAbove is the payload size above which publishers compress
// (64 KiB), as Jesse does for its big "trades" event.
const DefaultCompressAbove = 64 << 10

// ErrMalformed is wrapped by every Decode error: the message is not an
// envelope this package accepts.
var ErrMalformed = errors.New("bus: malformed envelope")

// Encode builds the envelope of event (the full name, "live.kline") from
// publisher and data, which is marshalled to JSON. With compress the payload
// travels as a JSON string holding base64(gzip(JSON)) and is_compressed is
// true. The envelope is always valid UTF-8 JSON.
func Encode(publisher, event string, data any, compress bool) ([]byte, error) {
	raw, _, _, err := encode(publisher, event, data, compress, -1)
	return raw, err
}

// encode is Encode with automatic compression: the payload is compressed
// when compress is set or when its JSON is longer than above (above < 0:
// never automatically). It returns the envelope, the payload's plain JSON
// and whether it compressed.
//
// An uncompressed envelope is built in one allocation: the header with
// is_compressed false, then the payload appended in place (plain is the
// envelope's slice of it, capped). A payload that turns out to need
// compressing gets an envelope of its own.
func encode(publisher, event string, data any, compress bool, above int) (raw, plain []byte, compressed bool, err error) {
	if event == "" {
		return nil, nil, false, errors.New("bus: encode: empty event name")
	}
	if !utf8.ValidString(event) || !utf8.ValidString(publisher) {
		return nil, nil, false, fmt.Errorf("bus: encode %q: event name or publisher is not valid UTF-8", event)
	}
	b := make([]byte, 0, len(publisher)+len(event)+envelopeOverhead+payloadHint(data))
	b = append(b, `{"id":`...)
	if b, err = appendString(b, publisher); err != nil {
		return nil, nil, false, fmt.Errorf("bus: encode %s: %w", event, err)
	}
	b = append(b, `,"event":`...)
	if b, err = appendString(b, event); err != nil {
		return nil, nil, false, fmt.Errorf("bus: encode %s: %w", event, err)
	}
	b = append(b, `,"is_compressed":`...)
	head := len(b) // the header up to is_compressed's value
	b = append(b, `false,"data":`...)
	at := len(b)
	b, ok := appendMarket(b, data)
	if !ok {
		js, err := json.Marshal(data)
		if err != nil {
			return nil, nil, false, fmt.Errorf("bus: encode %s: %w", event, err)
		}
		b = append(b, js...)
	}
	if !utf8.Valid(b[at:]) { // a json.RawMessage passes through unchecked
		return nil, nil, false, fmt.Errorf("bus: encode %s: data is not valid UTF-8", event)
	}
	if !compress && (above < 0 || len(b)-at <= above) {
		b = append(b, '}')
		return b, b[at : len(b)-1 : len(b)-1], false, nil
	}
	plain = b[at:len(b):len(b)]
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain) // a bytes.Buffer does not fail
	zw.Close()
	payload, err := json.Marshal(base64.StdEncoding.EncodeToString(z.Bytes()))
	if err != nil {
		return nil, nil, false, fmt.Errorf("bus: encode %s: %w", event, err)
	}
	raw = make([]byte, 0, head+len(payload)+len(`true,"data":}`))
	raw = append(raw, b[:head]...)
	raw = append(raw, `true,"data":`...)
	raw = append(raw, payload...)
	return append(raw, '}'), plain, true, nil
}

// envelopeOverhead is the envelope's bytes besides its id, event name and
// payload: {"id":"","event":"","is_compressed":false,"data":}.
const envelopeOverhead = len(`{"id":"","event":"","is_compressed":false,"data":}`)

// payloadHint is the room an envelope's buffer leaves for the payload of
// data: what its JSON usually takes, so that it is appended in place.
func payloadHint(data any) int {
	switch v := data.(type) {
	case *exchange.Kline, *exchange.Ticker24h:
		return 512
	case *exchange.BookTicker:
		return 256
	case json.RawMessage:
		return len(v)
	}
	return 256
}

// appendString appends s as encoding/json writes a string (s is valid
// UTF-8): as is within quotes when it holds none of the bytes encoding/json
// escapes, which is every publisher and event name in practice, or else
// through json.Marshal.
func appendString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			js, err := json.Marshal(s)
			return append(b, js...), err
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// appendMarket appends the JSON of the exchange's market types (a non-nil
// *exchange.Kline, *Ticker24h or *BookTicker), written by their AppendJSON
// byte for byte as encoding/json writes them but without its reflection,
// on the path every event of a leader takes; ok is false for any other
// value, and b is then unchanged. Only these exact types: a type embedding
// one would have AppendJSON too, and its own fields would be lost.
func appendMarket(b []byte, data any) (_ []byte, ok bool) {
	switch v := data.(type) {
	case *exchange.Kline:
		if v != nil {
			return v.AppendJSON(b), true
		}
	case *exchange.Ticker24h:
		if v != nil {
			return v.AppendJSON(b), true
		}
	case *exchange.BookTicker:
		if v != nil {
			return v.AppendJSON(b), true
		}
	}
	return b, false
}

// Decode parses an envelope, ours or Jesse's. It requires a JSON object that
// is valid UTF-8 (it is relayed to browsers as a WebSocket text frame) with
// a non-empty string "event", a "data" member (null is allowed) and, when
// present, a boolean "is_compressed" and an "id" that is a string, a number
// (Jesse's pid) or null. Unknown members are ignored; uncompressed data must
// be JSON (NaN and Infinity literals are not).
//
// Compressed data must be a string. It is decoded as base64 of gzip (what
// Jesse and this package send) or zlib, up to MaxDecompressed bytes; the
// NaN, Infinity and -Infinity literals Python's json writes inside it read
// as null. A compressed payload that cannot be read so does not make the
// envelope malformed: the event is Opaque, with no Data, and relays as is.
//
// Event.Raw is b itself, not a copy; Event.Data is plain JSON or nil, and
// may be a part of b (uncompressed data is not copied).
func Decode(b []byte) (Event, error) {
	if !utf8.Valid(b) {
		return Event{}, fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	env, ok := scanEnvelope(b)
	if !ok {
		// Anything the scan does not take as it is (an error to report, a
		// member name in other case or escaped, a value of another type)
		// goes through encoding/json, whose answer is the reference.
		env = Envelope{}
		if err := json.Unmarshal(b, &env); err != nil {
			return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if env.Event == "" {
		return Event{}, fmt.Errorf("%w: no event name", ErrMalformed)
	}
	if env.Data == nil {
		return Event{}, fmt.Errorf("%w: %s: no data", ErrMalformed, env.Event)
	}
	ev := Event{Name: env.Event, Data: env.Data, Raw: b}
	switch id := bytes.TrimSpace(env.ID); {
	case len(id) == 0 || string(id) == "null":
	case id[0] == '"':
		if err := json.Unmarshal(id, &ev.Publisher); err != nil {
			return Event{}, fmt.Errorf("%w: %s: id: %v", ErrMalformed, env.Event, err)
		}
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		ev.Publisher = string(id) // a valid JSON number (validJSON or json.Unmarshal checked it)
	default:
		return Event{}, fmt.Errorf("%w: %s: id is neither a string nor a number", ErrMalformed, env.Event)
	}
	if env.IsCompressed {
		if d := bytes.TrimSpace(env.Data); len(d) == 0 || d[0] != '"' {
			return Event{}, fmt.Errorf("%w: %s: compressed data is not a string", ErrMalformed, env.Event)
		}
		data, err := inflate(env.Data)
		if err != nil {
			ev.Data, ev.Opaque = nil, true
			return ev, nil
		}
		ev.Data = data
	}
	return ev, nil
}

// scanEnvelope reads the envelope of a common message, what json.Unmarshal
// would make of it, at a fraction of its cost (every node decodes every event
// on the channel): b, valid UTF-8 (Decode checks it first: encoding/json
// would replace invalid bytes, the scan keeps them), must be a valid JSON
// object (validJSON) whose member names are plain ASCII without escapes,
// whose "event" is a string without escapes
// and whose "is_compressed" is true or false. ok is false for anything
// else, which the caller hands to json.Unmarshal: errors, names that
// encoding/json would match regardless of case, other types. Data and ID
// are slices of b, not copies, capped so that an append to one copies.
func scanEnvelope(b []byte) (env Envelope, ok bool) {
	if !validJSON(b) {
		return Envelope{}, false
	}
	i := skipWS(b, 0)
	if i == len(b) || b[i] != '{' {
		return Envelope{}, false
	}
	i = skipWS(b, i+1)
	if b[i] == '}' {
		return env, true
	}
	for {
		// A member name: b is valid JSON, so a string runs to the next
		// unescaped quote.
		end := skipString(b, i)
		name := b[i+1 : end-1]
		for _, c := range name {
			if c == '\\' || c >= utf8.RuneSelf {
				return Envelope{}, false
			}
		}
		i = skipWS(b, end)
		i = skipWS(b, i+1) // the colon
		vend := skipValue(b, i)
		v := b[i:vend]
		switch string(name) {
		case "id":
			env.ID = v[:len(v):len(v)]
		case "data":
			env.Data = v[:len(v):len(v)]
		case "event":
			if v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
				return Envelope{}, false
			}
			env.Event = string(v[1 : len(v)-1])
		case "is_compressed":
			switch string(v) {
			case "true":
				env.IsCompressed = true
			case "false":
				env.IsCompressed = false
			default:
				return Envelope{}, false
			}
		default:
			for _, known := range [...]string{"id", "data", "event", "is_compressed"} {
				if strings.EqualFold(string(name), known) {
					return Envelope{}, false
				}
			}
		}
		i = skipWS(b, vend)
		if b[i] == '}' {
			return env, true
		}
		i = skipWS(b, i+1) // the comma
	}
}

// validJSON reports what json.Valid(b) reports: whether b is one JSON
// value with optional white space around it (strings are not checked for
// valid UTF-8, as encoding/json does not). It is one pass with a loop per
// token where encoding/json calls a state function per byte: on a kline
// event json.Valid was a quarter of a subscriber's CPU. Its tokens are
// package jsonscan's, which the exchange decoders' scanner uses too.
// FuzzValidJSON checks it against json.Valid.
func validJSON(b []byte) bool {
	var buf [32]byte
	stack := buf[:0] // the open containers: '{' or '['
	i := skipWS(b, 0)
	for {
		// A value starts at b[i].
		if i == len(b) {
			return false
		}
		if c := b[i]; c == '{' || c == '[' {
			if len(stack) == jsonscan.MaxDepth {
				return false
			}
			stack = append(stack, c)
			if i = skipWS(b, i+1); i == len(b) {
				return false
			}
			if b[i] != c+2 { // '}' is '{'+2, ']' is '['+2
				if c == '{' {
					if i = validMember(b, i); i < 0 {
						return false
					}
				}
				continue
			}
			stack = stack[:len(stack)-1] // empty
			i++
		} else if i = jsonscan.Scalar(b, i); i < 0 {
			return false
		}
		// After a value: close containers until a comma, or the end.
		for {
			i = skipWS(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i == len(b) {
				return false
			}
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipWS(b, i+1)
			if top == '{' {
				if i = validMember(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// validMember returns the index of the value after the member name and
// colon at b[i] (white space skipped), or -1.
func validMember(b []byte, i int) int {
	if i == len(b) || b[i] != '"' {
		return -1
	}
	if i = jsonscan.String(b, i); i < 0 {
		return -1
	}
	if i = skipWS(b, i); i == len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

// skipWS returns the index of the first byte of b from i that is not JSON
// white space.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the JSON string that starts at
// b[i] (a quote), in valid JSON.
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index just past the JSON value that starts at
// b[i], in valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// inflate decodes compressed data: a JSON string of base64(gzip(JSON)).
func inflate(data json.RawMessage) (json.RawMessage, error) {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, errors.New("compressed data is not a string")
	}
	z, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("compressed data: %v", err)
	}
	var zr io.Reader
	if gr, err := gzip.NewReader(bytes.NewReader(z)); err == nil {
		zr = gr
	} else if fr, zerr := zlib.NewReader(bytes.NewReader(z)); zerr == nil {
		zr = fr
	} else {
		return nil, fmt.Errorf("compressed data is neither gzip (%v) nor zlib (%v)", err, zerr)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("compressed data: %v", err)
	}
	if len(out) > MaxDecompressed {
		return nil, errors.New("compressed data inflates beyond " + strconv.Itoa(MaxDecompressed) + " bytes")
	}
	out = bytes.TrimSpace(out)
	if !utf8.Valid(out) {
		return nil, errors.New("compressed data is not valid UTF-8")
	}
	if !json.Valid(out) {
		out = nonFiniteToNull(out)
		if !json.Valid(out) {
			return nil, errors.New("compressed data is not valid JSON")
		}
	}
	return out, nil
}

// nonFiniteToNull replaces the NaN, Infinity and -Infinity literals that
// Python's json module writes (outside strings) with null, as Jesse's own
// envelope encoder does; anything else is left as it is.
func nonFiniteToNull(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		replaced := false
		for _, lit := range [...]string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(b[i:], []byte(lit)) {
				out = append(out, "null"...)
				i += len(lit) - 1
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, c)
		}
	}
	return out
}
