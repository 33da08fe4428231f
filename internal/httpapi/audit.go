package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/tradecache/tradecache/internal/keyaudit"
)

// Auditor runs (or returns a recent) keys audit of the node's Redis.
type Auditor func(ctx context.Context) (keyaudit.Report, error)

func (s *Server) auditRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/keys/audit", s.guard(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Audit == nil {
			writeCode(w, http.StatusNotFound, CodeUnknown, "no Redis configured: nothing to audit (the memory tier holds at most --memory-entries entries, each with a TTL)")
			return
		}
		rep, err := s.Audit(r.Context())
		// An audit of a large Redis may take longer than the write timeout
		// (the Auditor bounds it): the answer gets a write timeout of its
		// own from now.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.Limits.WithDefaults().WriteTimeout))
		if err != nil {
			readerError(w, err)
			return
		}
		writeJSON(w, rep)
	})))
}
