package sim

import "time"

// interval is one kline interval of Binance USDⓈ-M futures.
type interval struct {
	name  string
	ms    int64 // fixed length; 0 for 1M
	week  bool  // bars open on Monday 00:00 UTC
	month bool  // calendar months, UTC
}

const (
	minuteMs = int64(time.Minute / time.Millisecond)
	dayMs    = 24 * 60 * minuteMs
	// mondayMs is the offset of the first Monday after the Unix epoch
	// (1970-01-05, the epoch being a Thursday).
	mondayMs = 4 * dayMs
)

// intervals lists every interval futures REST and streams accept. "1s" is
// refused on futures (measured: -1120), so it is not here.
var intervals = func() map[string]interval {
	m := map[string]interval{}
	for _, iv := range []interval{
		{name: "1m", ms: minuteMs},
		{name: "3m", ms: 3 * minuteMs},
		{name: "5m", ms: 5 * minuteMs},
		{name: "15m", ms: 15 * minuteMs},
		{name: "30m", ms: 30 * minuteMs},
		{name: "1h", ms: 60 * minuteMs},
		{name: "2h", ms: 120 * minuteMs},
		{name: "4h", ms: 240 * minuteMs},
		{name: "6h", ms: 360 * minuteMs},
		{name: "8h", ms: 480 * minuteMs},
		{name: "12h", ms: 720 * minuteMs},
		{name: "1d", ms: dayMs},
		{name: "3d", ms: 3 * dayMs},
		{name: "1w", ms: 7 * dayMs, week: true},
		{name: "1M", month: true},
	} {
		m[iv.name] = iv
	}
	return m
}()

func floorMod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// open returns the open time of the bar containing t (ms).
func (iv interval) open(t int64) int64 {
	switch {
	case iv.month:
		u := time.UnixMilli(t).UTC()
		return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	case iv.week:
		return t - floorMod(t-mondayMs, iv.ms)
	default:
		return t - floorMod(t, iv.ms)
	}
}

// next returns the open time of the bar after the one opening at open.
func (iv interval) next(open int64) int64 {
	if iv.month {
		u := time.UnixMilli(open).UTC()
		return time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	}
	return open + iv.ms
}

// back returns the open time n bars before the bar opening at open.
func (iv interval) back(open int64, n int) int64 {
	if iv.month {
		u := time.UnixMilli(open).UTC()
		return time.Date(u.Year(), u.Month()-time.Month(n), 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	}
	return open - int64(n)*iv.ms
}
