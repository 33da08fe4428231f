package store

// Error is the kind of a failure reported by the store. The kinds are
// constants, not package variables; match them with errors.Is, which sees
// through the wrapping that adds the operation and the route:
//
//	if errors.Is(err, store.ErrDuplicateOrder) { … }
type Error string

// Error returns the kind's text.
func (e Error) Error() string { return string(e) }

// Kinds of failure.
const (
	// ErrInvalid reports an argument the store cannot hold: an empty
	// exchange, symbol or id, a non-finite number, a non-positive timestamp.
	ErrInvalid Error = "invalid argument"
	// ErrInvalidCandle reports a candle with a timestamp that is zero,
	// negative, not an integer or not aligned to its timeframe, or with a
	// NaN or infinite value.
	ErrInvalidCandle Error = "invalid candle"
	// ErrUnknownTimeframe reports a timeframe outside Timeframes().
	ErrUnknownTimeframe Error = "unknown timeframe"
	// ErrTooOld reports a late candle older than every candle of a full
	// series: keeping it would evict it at once.
	ErrTooOld Error = "candle older than the retained window"
	// ErrGenerated reports a direct write to a timeframe that the store
	// generates from 1m candles (see Store.EnableGeneration).
	ErrGenerated Error = "timeframe is generated from 1m candles"
	// ErrCapacity reports a configuration that cannot do what was asked,
	// such as generating 1D candles from a 1m series holding fewer than
	// 1440 candles.
	ErrCapacity Error = "capacity too small"
	// ErrDuplicateOrder reports an order whose id or exchange id is already
	// held for its route.
	ErrDuplicateOrder Error = "duplicate order"
	// ErrNotFound reports an update or removal of something the store does
	// not hold.
	ErrNotFound Error = "not found"
)
