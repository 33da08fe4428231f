// Package jsonscan holds the token scanners of the project's strict JSON
// validators (the exchange decoders' member scanner and the bus's envelope
// check): each accepts exactly what encoding/json.Valid accepts for its
// token, in a loop over the bytes instead of encoding/json's state function
// per byte. Strings are not checked for valid UTF-8, as encoding/json does
// not; callers check the strings they keep. Every function is
// bounds-checked and never panics.
package jsonscan

// MaxDepth is encoding/json's limit on nested arrays and objects.
const MaxDepth = 10000

// String returns the index just past the valid JSON string starting at
// b[i] (a quote), or -1: control characters must be escaped, and an escape
// is one of \" \\ \/ \b \f \n \r \t or \u and four hex digits.
func String(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return j + 1
		case c < 0x20:
			return -1
		case c == '\\':
			j++
			if j >= len(b) {
				return -1
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return -1
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return -1
					}
				}
				j += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Number returns the index just past the JSON number starting at b[i]
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?), or -1.
func Number(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == d {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == d {
			return -1
		}
	}
	return i
}

// Literal returns the index just past lit (true, false, null) at b[i], or
// -1.
func Literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// Scalar returns the index just past the string, number or literal at
// b[i] (i < len(b)), or -1.
func Scalar(b []byte, i int) int {
	switch b[i] {
	case '"':
		return String(b, i)
	case 't':
		return Literal(b, i, "true")
	case 'f':
		return Literal(b, i, "false")
	case 'n':
		return Literal(b, i, "null")
	}
	return Number(b, i)
}
