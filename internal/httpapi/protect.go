package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tradecache/tradecache/internal/bearer"
)

// Scope says which routes need the API token.
type Scope string

const (
	// ScopeAccount (the default) guards the account routes
	// (/api/v1/positions, /api/v1/balance) and the keys audit.
	ScopeAccount Scope = "account"
	// ScopeAll guards every route but /healthz, the dashboard's files at
	// / and /ws (which has its own tokens).
	ScopeAll Scope = "all"
)

// Auth says who may use the guarded routes.
type Auth struct {
	// Tokens are the accepted API tokens, sent as "Authorization: Bearer
	// <token>". The zero value accepts none.
	Tokens bearer.Tokens
	// Scope is which routes need a token; "" is ScopeAccount.
	Scope Scope
	// OpenWithoutToken lets the guarded routes answer without a token
	// while no token is configured: for a node that listens on loopback
	// only. Otherwise, without Tokens, they answer 401.
	OpenWithoutToken bool
}

// Limits bound what a client may send and hold. Zero fields take the
// defaults.
type Limits struct {
	ReadHeaderTimeout time.Duration // request line and headers; default 5 s
	ReadTimeout       time.Duration // the whole request, body included; default 30 s
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response (so a client that does not read is cut off); default
	// 30 s. A /ws connection is not bound by it once upgraded.
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration // a kept-alive connection between requests; default 2 min
	MaxHeaderBytes int           // request line and headers; default 64 KiB
	MaxQueryBytes  int           // query string; default 8 KiB
	MaxQueryParams int           // query parameters; default 32
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, 5*time.Second)
	def(&l.ReadTimeout, 30*time.Second)
	def(&l.WriteTimeout, 30*time.Second)
	def(&l.IdleTimeout, 2*time.Minute)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxQueryBytes <= 0 {
		l.MaxQueryBytes = 8 << 10
	}
	if l.MaxQueryParams <= 0 {
		l.MaxQueryParams = 32
	}
	return l
}

// HTTPServer returns an http.Server serving Handler within s.Limits; the
// caller sets TLSConfig and ErrorLog, and serves it.
func (s *Server) HTTPServer() *http.Server {
	l := s.Limits.WithDefaults()
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// contentSecurityPolicy lets the dashboard load its own script, style
// sheet and data, and nothing else: no inline script, no eval, no
// framing, no other origin. Inline styles are allowed because the chart
// library inserts a <style> element for its attribution logo; the
// dashboard itself writes data with textContent only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// secure sets the security headers of every response. Cache-Control is
// no-store unless the handler sets another (the dashboard's files do).
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// bounded answers 400 to a query string longer than MaxQueryBytes or with
// more than MaxQueryParams parameters, before any route parses it.
func bounded(l Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.RawQuery
		if len(q) > l.MaxQueryBytes {
			writeCode(w, http.StatusBadRequest, CodeTooManyParams, fmt.Sprintf("query string too long: %d bytes, at most %d", len(q), l.MaxQueryBytes))
			return
		}
		if n := countParams(q); n > l.MaxQueryParams {
			writeCode(w, http.StatusBadRequest, CodeTooManyParams, fmt.Sprintf("too many query parameters: %d, at most %d", n, l.MaxQueryParams))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// countParams counts the non-empty '&'-separated parts of a query string.
func countParams(q string) int {
	n := 0
	for part := range strings.SplitSeq(q, "&") {
		if part != "" {
			n++
		}
	}
	return n
}

// hosts is the Host allow-list.
type hosts struct {
	any      bool
	names    map[string]bool // host names, any port
	withPort map[string]bool // "name:port"
	suffixes []string        // ".example.com" of "*.example.com"
}

// newHosts builds the allow-list of patterns (see Server.AllowedHosts).
func newHosts(patterns []string) hosts {
	h := hosts{names: map[string]bool{}, withPort: map[string]bool{}}
	for _, p := range patterns {
		p = normalizeHost(p)
		switch {
		case p == "":
		case p == "*":
			h.any = true
		case strings.HasPrefix(p, "*."):
			h.suffixes = append(h.suffixes, p[1:])
		default:
			if name, port, err := net.SplitHostPort(p); err == nil && port != "" {
				h.withPort[normalizeHost(name)+":"+port] = true
			} else {
				h.names[strings.Trim(p, "[]")] = true
			}
		}
	}
	return h
}

func normalizeHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// allowed reports whether a request's Host header may be served. An empty
// Host (HTTP/1.0), an IP address and localhost always are: DNS rebinding,
// which this check stops, needs a name the attacker's DNS answers for, and
// a page cannot be served under an IP address or localhost by anyone but
// the machine at that address.
func (h hosts) allowed(hostport string) bool {
	if hostport == "" || h.any {
		return true
	}
	name, port, err := net.SplitHostPort(hostport)
	if err != nil {
		name, port = hostport, ""
	}
	name = normalizeHost(strings.Trim(name, "[]"))
	if i := strings.IndexByte(name, '%'); i >= 0 {
		name = name[:i] // an IPv6 zone
	}
	if name == "localhost" || net.ParseIP(name) != nil || h.names[name] {
		return true
	}
	if port != "" && h.withPort[name+":"+port] {
		return true
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// hostCheck answers 421 to a request whose Host header is not allowed.
func hostCheck(h hosts, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.allowed(r.Host) {
			writeCode(w, http.StatusMisdirectedRequest, CodeHostNotAllowed,
				fmt.Sprintf("Host %q is not served here: address the node by IP address or localhost, or add the name to --allowed-hosts (TRADECACHE_ALLOWED_HOSTS)", r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guard makes h need an API token: always for the account routes and the
// audit, and for the others only with ScopeAll.
func (s *Server) guard(always bool, h http.Handler) http.Handler {
	if !always && s.Auth.Scope != ScopeAll {
		return h
	}
	a := s.Auth
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Tokens.Len() == 0 {
			if a.OpenWithoutToken {
				h.ServeHTTP(w, r)
				return
			}
			unauthorized(w, "", "no API token is configured and this node listens beyond loopback: set --api-token (TRADECACHE_API_TOKEN) and send it as Authorization: Bearer <token>")
			return
		}
		switch a.Tokens.Request(r) {
		case bearer.OK:
			h.ServeHTTP(w, r)
		case bearer.Missing:
			unauthorized(w, "", "API token required: send Authorization: Bearer <token>")
		default:
			unauthorized(w, "invalid_token", "invalid API token")
		}
	})
}

func unauthorized(w http.ResponseWriter, bearerErr, msg string) {
	v := `Bearer realm="tradecache"`
	if bearerErr != "" {
		v += `, error="` + bearerErr + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	writeCode(w, http.StatusUnauthorized, CodeUnauthorized, msg)
}
