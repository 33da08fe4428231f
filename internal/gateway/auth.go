package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
)

// GenerateToken returns a new random token: 32 bytes from crypto/rand,
// base64url without padding (43 characters). `serve --demo` prints one.
func GenerateToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("gateway: generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// tokens holds the SHA-256 of each accepted token. Comparing digests of
// equal length in constant time means neither a token's content nor its
// length leaks through timing.
type tokens [][sha256.Size]byte

func newTokens(ts []string) (tokens, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("gateway: at least one token is required")
	}
	out := make(tokens, 0, len(ts))
	for i, t := range ts {
		if t == "" {
			return nil, fmt.Errorf("gateway: token %d is empty", i)
		}
		out = append(out, sha256.Sum256([]byte(t)))
	}
	return out, nil
}

// valid reports whether t is one of the tokens. It compares against every
// token, without an early exit.
func (ts tokens) valid(t string) bool {
	h := sha256.Sum256([]byte(t))
	ok := 0
	for i := range ts {
		ok |= subtle.ConstantTimeCompare(h[:], ts[i][:])
	}
	return ok == 1
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110 §11.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
