package sim

import (
	"fmt"
	"net/http"

	"github.com/tradecache/tradecache/exchange"
)

// MaxTruthKlines bounds one ground-truth answer.
const MaxTruthKlines = 50_000

// TrueKlines returns the ground truth: the final klines of symbol and
// interval whose open time is in [start, end] (ms; end 0: no bound) and
// that have closed by the sim clock, oldest first, each with Closed set.
// They are what REST answers and what the stream's x:true update said,
// whatever fault is in force; at most MaxTruthKlines.
func (s *Server) TrueKlines(symbol, interval string, start, end int64) ([]exchange.Kline, error) {
	sy := s.byName[symbol]
	if sy == nil {
		return nil, badRequest(-1121, "Invalid symbol.")
	}
	iv, ok := intervals[interval]
	if !ok {
		return nil, badRequest(-1120, "Invalid interval.")
	}
	if end > 0 && start > end {
		return nil, badRequest(-1023, "Start time is greater than end time.")
	}
	now := s.nowMs()
	first := iv.open(start)
	if first < start {
		first = iv.next(first)
	}
	first = max(first, s.earliest(iv))
	out := []exchange.Kline{}
	for o := first; iv.next(o) <= now && (end <= 0 || o <= end); o = iv.next(o) {
		if len(out) == MaxTruthKlines {
			return nil, badRequest(-1130, fmt.Sprintf("More than %d klines: narrow startTime and endTime.", MaxTruthKlines))
		}
		out = append(out, sy.klineAt(iv, o, now).Kline)
	}
	return out, nil
}

// handleTruth answers GET /sim/truth/klines?symbol=&interval=&startTime=&endTime=
// with TrueKlines as JSON objects (Binance's single-letter kline fields).
func (s *Server) handleTruth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sym, ivName := q.Get("symbol"), q.Get("interval")
	if sym == "" {
		writeAPIError(w, mandatory("symbol"))
		return
	}
	if ivName == "" {
		writeAPIError(w, mandatory("interval"))
		return
	}
	start, _, e := intParam(q, "startTime")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	end, _, e := intParam(q, "endTime")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	ks, err := s.TrueKlines(sym, ivName, start, end)
	if err != nil {
		writeAPIError(w, err.(*apiError))
		return
	}
	writeJSON(w, http.StatusOK, ks)
}
