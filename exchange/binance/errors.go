package binance

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrUnknownEvent is returned by the decoders for well-formed input they do
// not know: an unknown event type ("markPriceUpdate", "depthUpdate"…), an
// array of such events, or a JSON object that is not a stream envelope.
// Streams counts these frames and drops them; it is not an error.
var ErrUnknownEvent = errors.New("binance: unknown event")

// ErrMalformed is wrapped by every decoding error that is not
// ErrUnknownEvent: invalid JSON, a value of the wrong type, a missing
// required field or a field that fails a sanity check.
var ErrMalformed = errors.New("binance: malformed payload")

// ErrRateLimited matches (errors.Is) an *APIError for HTTP 429 or 418,
// whether the exchange sent it or the client refused the request locally
// during the cooldown that followed.
var ErrRateLimited = errors.New("binance: rate limited")

// APIError is a non-2xx REST response, decoded from Binance's error body
// {"code":-1121,"msg":"Invalid symbol."} when it has one.
type APIError struct {
	HTTPStatus int
	Code       int    // Binance error code (negative), 0 when the body had none
	Msg        string // Binance message, or the start of a non-JSON body
	// RetryAt is set for 429/418: the client refuses every request until
	// then (client-wide cooldown, from Retry-After).
	RetryAt time.Time
	// NotSent reports that the request never left the process: it was
	// refused locally because a cooldown was in force.
	NotSent bool
}

func (e *APIError) Error() string {
	s := "binance: HTTP " + strconv.Itoa(e.HTTPStatus)
	if e.Code != 0 {
		s += " code " + strconv.Itoa(e.Code)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if !e.RetryAt.IsZero() {
		s += fmt.Sprintf(" (retry at %s)", e.RetryAt.UTC().Format(time.RFC3339))
	}
	if e.NotSent {
		s += " (request not sent: cooldown)"
	}
	return s
}

// Is makes errors.Is(err, ErrRateLimited) true for 429 and 418.
func (e *APIError) Is(target error) bool {
	return target == ErrRateLimited && (e.HTTPStatus == 429 || e.HTTPStatus == 418)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func fieldErr(obj string, key []byte, err error) error {
	return malformed("%s field %q: %v", obj, key, err)
}
