package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tradecache/tradecache/exchange"
)

// AccountReader is what the account routes read (for example *account.Node).
type AccountReader interface {
	Positions(ctx context.Context) ([]exchange.Position, error)
	Balance(ctx context.Context, asset string) (exchange.Balance, error)
}

func (s *Server) accountRoutes(mux *http.ServeMux) {
	if s.Account == nil {
		mux.Handle("GET /api/v1/positions", s.guard(true, http.HandlerFunc(noAccount)))
		mux.Handle("GET /api/v1/balance", s.guard(true, http.HandlerFunc(noAccount)))
		return
	}
	mux.Handle("GET /api/v1/positions", s.guard(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps, err := s.Account.Positions(r.Context())
		if err != nil {
			readerError(w, err)
			return
		}
		writeJSON(w, ps)
	})))
	mux.Handle("GET /api/v1/balance", s.guard(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asset := r.URL.Query().Get("asset")
		if asset == "" {
			mandatory("asset").write(w)
			return
		}
		b, err := s.Account.Balance(r.Context(), asset)
		if errors.Is(err, exchange.ErrNoBalance) {
			writeCode(w, http.StatusNotFound, CodeUnknown, err.Error())
			return
		}
		if err != nil {
			readerError(w, err)
			return
		}
		writeJSON(w, b)
	})))
}

func noAccount(w http.ResponseWriter, _ *http.Request) {
	writeCode(w, http.StatusNotFound, CodeUnknown, "no exchange account configured (set --api-key and --api-secret, or BINANCE_API_KEY and BINANCE_API_SECRET)")
}
