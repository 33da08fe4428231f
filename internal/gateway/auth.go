package gateway

import "github.com/tradecache/tradecache/internal/bearer"

// GenerateToken returns a new random token: 32 bytes from crypto/rand,
// base64url without padding (43 characters). `serve --demo` prints one.
func GenerateToken() (string, error) { return bearer.Generate() }
