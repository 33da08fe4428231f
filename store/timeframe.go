package store

import (
	"fmt"
	"time"
)

// timeframe is a candle timeframe known to the store; the zero value is
// invalid.
type timeframe uint8

const (
	tf1m timeframe = iota + 1
	tf3m
	tf5m
	tf15m
	tf30m
	tf45m
	tf1h
	tf2h
	tf3h
	tf4h
	tf6h
	tf8h
	tf12h
	tf1D
	tf3D
	tf1W
	tfEnd // one past the last timeframe
)

// Timeframe lengths in milliseconds.
const (
	minuteMs = int64(60_000)
	dayMs    = 24 * 60 * minuteMs
	weekMs   = 7 * dayMs
	// mondayOffsetMs moves week buckets from Thursday (1970-01-01, the Unix
	// epoch, was a Thursday) to Monday 1970-01-05.
	mondayOffsetMs = 4 * dayMs
)

// Timeframes returns the timeframes the store knows, shortest first, in
// Jesse's spelling: 1m 3m 5m 15m 30m 45m 1h 2h 3h 4h 6h 8h 12h 1D 3D 1W.
// The lower-case spellings "1d", "3d" and "1w" are accepted everywhere as
// the same timeframes. Months ("1M") are not supported: they have no fixed
// length.
func Timeframes() []string {
	out := make([]string, 0, tfEnd-1)
	for tf := tf1m; tf < tfEnd; tf++ {
		out = append(out, tf.String())
	}
	return out
}

// TimeframeDuration returns the length of a timeframe ("5m", "1D", …).
func TimeframeDuration(timeframe string) (time.Duration, error) {
	tf, err := parseTimeframe(timeframe)
	if err != nil {
		return 0, fmt.Errorf("store: timeframe duration: %w", err)
	}
	return time.Duration(tf.minutes()) * time.Minute, nil
}

// parseTimeframe maps a timeframe name to its timeframe.
func parseTimeframe(s string) (timeframe, error) {
	switch s {
	case "1m":
		return tf1m, nil
	case "3m":
		return tf3m, nil
	case "5m":
		return tf5m, nil
	case "15m":
		return tf15m, nil
	case "30m":
		return tf30m, nil
	case "45m":
		return tf45m, nil
	case "1h":
		return tf1h, nil
	case "2h":
		return tf2h, nil
	case "3h":
		return tf3h, nil
	case "4h":
		return tf4h, nil
	case "6h":
		return tf6h, nil
	case "8h":
		return tf8h, nil
	case "12h":
		return tf12h, nil
	case "1D", "1d":
		return tf1D, nil
	case "3D", "3d":
		return tf3D, nil
	case "1W", "1w":
		return tf1W, nil
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownTimeframe, s)
}

// String returns Jesse's name of the timeframe.
func (tf timeframe) String() string {
	switch tf {
	case tf1m:
		return "1m"
	case tf3m:
		return "3m"
	case tf5m:
		return "5m"
	case tf15m:
		return "15m"
	case tf30m:
		return "30m"
	case tf45m:
		return "45m"
	case tf1h:
		return "1h"
	case tf2h:
		return "2h"
	case tf3h:
		return "3h"
	case tf4h:
		return "4h"
	case tf6h:
		return "6h"
	case tf8h:
		return "8h"
	case tf12h:
		return "12h"
	case tf1D:
		return "1D"
	case tf3D:
		return "3D"
	case tf1W:
		return "1W"
	}
	return fmt.Sprintf("timeframe(%d)", uint8(tf))
}

// minutes returns the length of the timeframe in minutes.
func (tf timeframe) minutes() int64 {
	switch tf {
	case tf1m:
		return 1
	case tf3m:
		return 3
	case tf5m:
		return 5
	case tf15m:
		return 15
	case tf30m:
		return 30
	case tf45m:
		return 45
	case tf1h:
		return 60
	case tf2h:
		return 120
	case tf3h:
		return 180
	case tf4h:
		return 240
	case tf6h:
		return 360
	case tf8h:
		return 480
	case tf12h:
		return 720
	case tf1D:
		return 1440
	case tf3D:
		return 3 * 1440
	case tf1W:
		return 7 * 1440
	}
	return 0
}

// bucketing aligns timestamps to the buckets of one timeframe.
type bucketing struct {
	ms     int64 // bucket length
	offset int64 // bucket boundaries are at offset + k*ms
}

// bucketingFor returns the bucketing of tf; mondayWeeks moves 1W
// boundaries from Thursday to Monday.
func bucketingFor(tf timeframe, mondayWeeks bool) bucketing {
	b := bucketing{ms: tf.minutes() * minuteMs}
	if tf == tf1W && mondayWeeks {
		b.offset = mondayOffsetMs
	}
	return b
}

// start returns the start of the bucket holding ts: ts - ts%ms when the
// offset is zero.
func (b bucketing) start(ts int64) int64 {
	r := (ts - b.offset) % b.ms
	if r < 0 {
		r += b.ms
	}
	return ts - r
}
