package binance

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tradecache/tradecache/exchange"
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
// whether the exchange sent it or the client refused the request locally:
// during the cooldown that followed one, or because the weight budget
// (RESTConfig.Budget) refused it.
var ErrRateLimited = errors.New("binance: rate limited")

// ErrClockSkew matches (errors.Is) an *APIError with Binance code -1021:
// the request's timestamp was outside recvWindow (or more than 1 s ahead
// of the server). Call REST.SyncTime, then retry.
var ErrClockSkew = errors.New("binance: timestamp outside recvWindow (clock skew)")

// ErrBadSignature matches an *APIError with code -1022: the signature did
// not verify (wrong APISecret, or the query was altered in transit).
var ErrBadSignature = errors.New("binance: signature not valid")

// ErrUnauthorized matches an *APIError with code -2015 ("Invalid API-key,
// IP, or permissions for action."), -2014 (API-key format invalid) or
// -2008 (invalid API-key ID), and an HTTP 401 without a Binance code.
var ErrUnauthorized = errors.New("binance: API key refused")

// ErrNoCredentials is returned, without a request, by account calls on a
// REST client configured without APIKey (or, for signed calls, APISecret).
var ErrNoCredentials = errors.New("binance: no API credentials configured")

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
	// refused locally, during a cooldown or by the weight budget.
	NotSent bool
	// Err is the budget's refusal behind a NotSent error, nil otherwise.
	Err error
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
		s += " (request not sent)"
	}
	return s
}

// Unwrap returns the budget's refusal behind a NotSent error.
func (e *APIError) Unwrap() error { return e.Err }

// Is makes errors.Is match the sentinels: ErrRateLimited for 429 and 418,
// ErrClockSkew for -1021, ErrBadSignature for -1022, ErrUnauthorized for
// -2015/-2014/-2008 (or a bare 401), and exchange.ErrListenKeyNotFound for
// -1125.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.HTTPStatus == 429 || e.HTTPStatus == 418
	case ErrClockSkew:
		return e.Code == -1021
	case ErrBadSignature:
		return e.Code == -1022
	case ErrUnauthorized:
		return e.Code == -2015 || e.Code == -2014 || e.Code == -2008 || (e.Code == 0 && e.HTTPStatus == 401)
	case exchange.ErrListenKeyNotFound:
		return e.Code == -1125
	}
	return false
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func fieldErr(obj string, key []byte, err error) error {
	return malformed("%s field %q: %v", obj, key, err)
}
