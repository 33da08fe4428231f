package httpapi

import (
	"context"
	"net/http"

	"github.com/tradecache/tradecache/internal/keyaudit"
)

// Auditor runs (or returns a recent) keys audit of the node's Redis.
type Auditor func(ctx context.Context) (keyaudit.Report, error)

func (s *Server) auditRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/keys/audit", func(w http.ResponseWriter, r *http.Request) {
		if s.Audit == nil {
			writeError(w, http.StatusNotFound, "no Redis configured: nothing to audit (the memory tier holds at most --memory-entries entries, each with a TTL)")
			return
		}
		rep, err := s.Audit(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, rep)
	})
}
