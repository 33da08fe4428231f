// Package bearer holds the tokens a node accepts, on /ws and on its HTTP
// API, and checks them: "Authorization: Bearer <token>" headers (RFC 6750)
// and tokens sent otherwise (the first message of a browser's WebSocket).
//
// Tokens are kept as SHA-256 digests and compared with crypto/subtle
// against every accepted token, without an early exit: neither a token's
// content nor its length leaks through timing. The tokens themselves are
// not kept.
package bearer

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// Generate returns a new random token: 32 bytes from crypto/rand,
// base64url without padding (43 characters).
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("bearer: generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Tokens is a set of accepted tokens. The zero value accepts none.
type Tokens struct {
	sums [][sha256.Size]byte
}

// New returns the set of ts; an empty token is an error (it would match a
// missing one).
func New(ts []string) (Tokens, error) {
	sums := make([][sha256.Size]byte, 0, len(ts))
	for i, t := range ts {
		if t == "" {
			return Tokens{}, fmt.Errorf("bearer: token %d is empty", i)
		}
		sums = append(sums, sha256.Sum256([]byte(t)))
	}
	return Tokens{sums: sums}, nil
}

// Len is the number of accepted tokens.
func (ts Tokens) Len() int { return len(ts.sums) }

// Valid reports whether t is one of the tokens, in time independent of
// which token (if any) it matches.
func (ts Tokens) Valid(t string) bool {
	h := sha256.Sum256([]byte(t))
	ok := 0
	for i := range ts.sums {
		ok |= subtle.ConstantTimeCompare(h[:], ts.sums[i][:])
	}
	return ok == 1
}

// Check is the verdict on a request's Authorization header.
type Check int

const (
	Missing Check = iota // no Authorization header
	Invalid              // another scheme, an empty token, or a token not accepted
	OK                   // a Bearer token of the set
)

// Request checks r's "Authorization: Bearer <token>" header.
func (ts Tokens) Request(r *http.Request) Check {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Missing
	}
	if tok, ok := Parse(h); ok && ts.Valid(tok) {
		return OK
	}
	return Invalid
}

// Parse extracts the token of an Authorization header value
// "Bearer <token>". The scheme is case-insensitive (RFC 9110 §11.1).
func Parse(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
