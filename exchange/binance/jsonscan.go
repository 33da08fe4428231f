package binance

// A small JSON member scanner used by all decoders instead of
// encoding/json struct tags. encoding/json matches keys case-insensitively
// when there is no exact match, and Binance payloads use keys that differ
// only in case ("e"/"E", "t"/"T", "q"/"Q", "b"/"B", "x"/"X"…): a key we do
// not declare (a field added next year) would silently land in the field of
// its case twin and break decoding. The scanner matches keys exactly,
// allocates nothing for plain keys, and lets each decoder accept numbers
// that arrive as strings and decimals that arrive as numbers.
//
// Callers run json.Valid over the whole input first; the scanner only
// splits members and values. It is bounds-checked throughout so that it
// never panics, whatever it is given.

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/tradecache/tradecache/internal/jsonscan"
)

var (
	errSyntax    = errors.New("syntax error")
	errNotObject = errors.New("not an object")
	errNotArray  = errors.New("not an array")
	errType      = errors.New("wrong type")
	errRange     = errors.New("out of range")
	errDecimal   = errors.New("not a decimal")
	errMissing   = errors.New("missing")
)

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] (a
// quote), or -1.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the value starting at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := stringEnd(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case ',', '}', ']', ':':
		return -1
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j
			}
			j++
		}
		return j
	}
}

// members calls fn with each key and raw value of the object b. Keys
// written with escapes are unescaped; plain keys alias b.
func members(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errSyntax
		}
		e := stringEnd(b, i)
		if e < 0 {
			return errSyntax
		}
		key := b[i+1 : e-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(b[i:e], &s); err != nil {
				return errSyntax
			}
			key = []byte(s)
		}
		i = skipSpace(b, e)
		if i >= len(b) || b[i] != ':' {
			return errSyntax
		}
		i = skipSpace(b, i+1)
		ve := valueEnd(b, i)
		if ve <= i {
			return errSyntax
		}
		if err := fn(key, b[i:ve]); err != nil {
			return err
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return nil
		default:
			return errSyntax
		}
	}
}

// elements calls fn with each raw element of the array b.
func elements(b []byte, fn func(val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errNotArray
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for {
		ve := valueEnd(b, i)
		if ve <= i {
			return errSyntax
		}
		if err := fn(b[i:ve]); err != nil {
			return err
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return errSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return nil
		default:
			return errSyntax
		}
	}
}

func isNull(v []byte) bool { return string(v) == "null" }

// strVal decodes a JSON string.
func strVal(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errType
	}
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') < 0 {
		if !utf8.Valid(in) {
			return "", errType
		}
		return string(in), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errType
	}
	return s, nil
}

// plainString returns the content of a string without escapes, or v
// itself when v is not a string. ok is false for a string with escapes.
func plainString(v []byte) (b []byte, quoted, ok bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		in := v[1 : len(v)-1]
		return in, true, bytes.IndexByte(in, '\\') < 0
	}
	return v, false, true
}

// intVal decodes an integer sent as a JSON number or a string ("E" is a
// string in some Binance payloads).
func intVal(v []byte) (int64, error) {
	b, _, ok := plainString(v)
	if !ok {
		return 0, errType
	}
	return parseInt(b)
}

func parseInt(b []byte) (int64, error) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, errType
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errType
		}
		if n > (1<<63)/10 {
			return 0, errRange
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, errRange
		}
	}
	if neg {
		return -int64(n), nil // -(1<<63) wraps to itself, which is right
	}
	if n == 1<<63 {
		return 0, errRange
	}
	return int64(n), nil
}

// decVal decodes a decimal that stays text: a string holding a decimal
// literal, or a JSON number, returned as its literal text.
func decVal(v []byte) (string, error) {
	b, quoted, ok := plainString(v)
	if !ok {
		return "", errDecimal
	}
	if !quoted && (len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9'))) {
		return "", errType // true, false, object, array
	}
	if !validDecimal(b) {
		return "", errDecimal
	}
	return string(b), nil
}

// maxDecimalLen bounds a decimal's text; Binance sends at most ~30.
const maxDecimalLen = 64

// validDecimal reports whether b is -?digits(.digits)?([eE][+-]?digits)?.
func validDecimal(b []byte) bool {
	if len(b) == 0 || len(b) > maxDecimalLen {
		return false
	}
	i := 0
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// boolVal decodes true/false, also when sent as a string.
func boolVal(v []byte) (bool, error) {
	b, _, _ := plainString(v)
	switch string(b) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errType
}

// maxSymbolLen bounds symbols and other names taken from the wire.
const maxSymbolLen = 64

// validName reports whether s is a sane symbol or interval: non-empty,
// bounded, valid UTF-8, no spaces or control characters.
func validName(s string) bool { return validText(s, maxSymbolLen) }

// validText reports whether s is non-empty, at most maxLen bytes, valid UTF-8
// and free of spaces and control characters.
func validText(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// The strict scanner below validates as it splits, so that a hot path can
// skip the separate json.Valid pass: it accepts exactly what json.Valid
// accepts (strings are not checked for UTF-8 there either; the decoders
// check the strings they keep).

// scanValue returns the index just past the valid JSON value starting at
// b[i] (no leading space), or -1. depth counts the enclosing containers.
func scanValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		return jsonscan.String(b, i)
	case '{', '[':
		if depth >= jsonscan.MaxDepth {
			return -1
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = jsonscan.String(b, i); i < 0 {
					return -1
				}
				i = skipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = scanValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case end:
				return i + 1
			default:
				return -1
			}
		}
	default:
		return jsonscan.Scalar(b, i)
	}
}

// objIter walks the members of a JSON object, validating each value with
// scanValue. Keys are returned raw: a key with escapes sets bad, since the
// callers of this fast path leave such objects to the general one.
//
//	it := objIter{b: v}
//	for it.next() { ... it.key, it.val ... }
//	if it.bad { ... }
//
// A caller may walk a value itself instead: member reads the key and
// leaves i at the value, and after says where the value ended.
// After a clean walk, end is the index just past the closing brace.
type objIter struct {
	b     []byte
	i     int
	depth int // containers around the object
	// valid says that b was validated already (it is a value a validating
	// walk returned): values are then only delimited, not checked again.
	valid    bool
	started  bool
	bad      bool
	end      int
	key, val []byte
}

// next reads the next member into key and val.
func (it *objIter) next() bool { return it.member() && it.value() }

// member reads the next member's key and leaves i at its value; false at
// the end of the object or on an error (then bad).
func (it *objIter) member() bool {
	if it.bad || it.end > 0 {
		return false
	}
	b := it.b
	i := skipSpace(b, it.i)
	if !it.started {
		it.started = true
		if i >= len(b) || b[i] != '{' || it.depth >= jsonscan.MaxDepth {
			it.bad = true
			return false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			it.end = i + 1
			return false
		}
	} else {
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			it.end = i + 1
			return false
		default:
			it.bad = true
			return false
		}
	}
	if i >= len(b) || b[i] != '"' {
		it.bad = true
		return false
	}
	var e int
	if it.valid {
		e = stringEnd(b, i)
	} else {
		e = jsonscan.String(b, i)
	}
	if e < 0 {
		it.bad = true
		return false
	}
	it.key = b[i+1 : e-1]
	if bytes.IndexByte(it.key, '\\') >= 0 {
		it.bad = true
		return false
	}
	i = skipSpace(b, e)
	if i >= len(b) || b[i] != ':' {
		it.bad = true
		return false
	}
	it.i = skipSpace(b, i+1)
	return true
}

// value reads the value member left i at into val.
func (it *objIter) value() bool {
	var ve int
	if it.valid {
		ve = valueEnd(it.b, it.i)
	} else {
		ve = scanValue(it.b, it.i, it.depth+1)
	}
	if ve <= it.i {
		it.bad = true
		return false
	}
	it.val = it.b[it.i:ve]
	it.i = ve
	return true
}

// after moves past a value the caller walked itself, which ended at end.
func (it *objIter) after(end int) { it.i = end }
