package sim

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RESTStats are counters of the REST side: what clients cost the exchange.
type RESTStats struct {
	Requests    int64            `json:"requests"`    // weighted requests answered, refused ones included
	Weight      int64            `json:"weight"`      // their weight, summed
	RateLimited int64            `json:"rateLimited"` // answered 429 or 418
	ByPath      map[string]int64 `json:"byPath"`      // requests by path ("/fapi/v1/exchangeInfo")
	// WeightByMinute is the weight charged in each UTC minute (unix
	// seconds / 60) of the real wall clock, the last restMinutesKept ones.
	WeightByMinute map[int64]int64 `json:"weightByMinute"`
}

const restMinutesKept = 10

// maxPathsCounted bounds RESTStats.ByPath: well above the routes served.
const maxPathsCounted = 64

// restCounters backs RESTStats.
type restCounters struct {
	mu    sync.Mutex
	stats RESTStats
}

func (c *restCounters) count(path string, weight int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.stats
	if st.ByPath == nil {
		st.ByPath, st.WeightByMinute = map[string]int64{}, map[int64]int64{}
	}
	st.Requests++
	st.Weight += int64(weight)
	// Paths are a client's to choose: beyond the ones served, and a bound,
	// they count as "other" so the map cannot grow with random paths.
	if _, seen := st.ByPath[path]; !seen && len(st.ByPath) >= maxPathsCounted {
		path = "other"
	}
	st.ByPath[path]++
	m := now.Unix() / 60
	st.WeightByMinute[m] += int64(weight)
	for k := range st.WeightByMinute {
		if k <= m-restMinutesKept {
			delete(st.WeightByMinute, k)
		}
	}
}

// RESTStats returns the REST counters.
func (s *Server) RESTStats() RESTStats {
	s.rest.mu.Lock()
	defer s.rest.mu.Unlock()
	st := s.rest.stats
	st.ByPath, st.WeightByMinute = maps.Clone(st.ByPath), maps.Clone(st.WeightByMinute)
	if st.ByPath == nil {
		st.ByPath, st.WeightByMinute = map[string]int64{}, map[int64]int64{}
	}
	return st
}

// RESTRefusal makes the REST side refuse every weighted request as a
// rate-limited Binance does, whatever the weight used.
type RESTRefusal struct {
	Status     int           // 429, or 418 (an IP ban); 0 ends a refusal
	RetryAfter time.Duration // sent as Retry-After, in whole seconds (at least 1)
	Duration   time.Duration // how long the refusal lasts; 0: until the next SetRESTRefusal
}

type refusalState struct {
	mu    sync.Mutex
	r     RESTRefusal
	until time.Time // real time; zero: until replaced
}

// SetRESTRefusal starts (or, with Status 0, ends) a REST refusal.
func (s *Server) SetRESTRefusal(r RESTRefusal) error {
	if r.Status != 0 && r.Status != http.StatusTooManyRequests && r.Status != 418 {
		return fmt.Errorf("sim: refusal status %d: want 429 or 418", r.Status)
	}
	if r.RetryAfter < 0 || r.Duration < 0 {
		return fmt.Errorf("sim: negative refusal durations %v, %v", r.RetryAfter, r.Duration)
	}
	s.refusal.mu.Lock()
	defer s.refusal.mu.Unlock()
	s.refusal.r, s.refusal.until = r, time.Time{}
	if r.Duration > 0 {
		s.refusal.until = time.Now().Add(r.Duration)
	}
	return nil
}

// active returns the refusal in force at now, if any.
func (f *refusalState) active(now time.Time) (RESTRefusal, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.r.Status == 0 {
		return RESTRefusal{}, false
	}
	if !f.until.IsZero() && !now.Before(f.until) {
		f.r, f.until = RESTRefusal{}, time.Time{}
		return RESTRefusal{}, false
	}
	return f.r, true
}

// refuse answers a request as rate-limited: status, Retry-After, -1003.
func (s *Server) refuse(w http.ResponseWriter, ip string, status int, retryAfter time.Duration, now time.Time) {
	secs := max(int64((retryAfter+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.rest.mu.Lock()
	s.rest.stats.RateLimited++
	s.rest.mu.Unlock()
	msg := fmt.Sprintf("Too many requests; current limit of IP(%s) is %d requests per minute. Please use the websocket for live updates to avoid polling the API.", ip, s.cfg.WeightLimit)
	if status == 418 {
		msg = fmt.Sprintf("Way too many requests; IP(%s) banned until %d. Please use the websocket for live updates to avoid bans.", ip, now.Add(time.Duration(secs)*time.Second).UnixMilli())
	}
	writeErr(w, status, -1003, msg)
}

func (s *Server) handleRESTRefusal(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ref RESTRefusal
	var err error
	if v := q.Get("status"); v != "" {
		if ref.Status, err = strconv.Atoi(v); err != nil {
			writeErr(w, http.StatusBadRequest, -1102, fmt.Sprintf("sim: invalid status %q", v))
			return
		}
	}
	for name, p := range map[string]*time.Duration{"retryAfter": &ref.RetryAfter, "duration": &ref.Duration} {
		if v := q.Get(name); v != "" {
			if *p, err = time.ParseDuration(v); err != nil {
				writeErr(w, http.StatusBadRequest, -1102, fmt.Sprintf("sim: invalid %s %q", name, v))
				return
			}
		}
	}
	if err := s.SetRESTRefusal(ref); err != nil {
		writeErr(w, http.StatusBadRequest, -1102, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": ref.Status, "retryAfterMs": ref.RetryAfter.Milliseconds(), "durationMs": ref.Duration.Milliseconds()})
}
