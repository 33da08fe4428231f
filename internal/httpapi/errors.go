package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
)

// Error codes of the {"code":…,"msg":"…"} bodies every error answer has:
// Binance's code where one means the same, -1000 (Binance's unknown
// error) where none does.
const (
	// CodeUnknown: nothing of the kind here (an account or a Redis the
	// node does not have, an asset the account does not hold, a book
	// ticker the node does not keep): 404; an answer that could not be
	// encoded: 500.
	CodeUnknown = -1000
	// CodeUnavailable: Redis or the exchange failed while answering; 503
	// (Binance: internal error, unable to process the request).
	CodeUnavailable = -1001
	// CodeHostNotAllowed: Host header not allowed; 421 (Binance: not
	// authorized).
	CodeHostNotAllowed = -1002
	// CodeTooManyRequests: the exchange call behind the answer was refused
	// by the REST weight budget or a cooldown; 503 with Retry-After.
	CodeTooManyRequests = -1003
	// CodeTimeout: the answer's Redis or exchange call timed out; 503.
	CodeTimeout = -1007
	// CodeStartAfterEnd: startTime after endTime; 400.
	CodeStartAfterEnd = -1023
	// CodeIllegalChars: a parameter outside its legal range of characters
	// (a number that is not one, a symbol with other than A-Z 0-9 - _ .);
	// 400.
	CodeIllegalChars = -1100
	// CodeTooManyParams: query string too long or with too many
	// parameters; 400 (Binance: too many parameters).
	CodeTooManyParams = -1101
	// CodeMandatory: a mandatory parameter missing or empty; 400.
	CodeMandatory = -1102
	// CodeInvalidInterval: not a kline interval of USDⓈ-M futures; 400.
	CodeInvalidInterval = -1120
	// CodeInvalidSymbol: a symbol the exchange does not list, or not in
	// upper case; 400.
	CodeInvalidSymbol = -1121
	// CodeInvalidLimit: limit out of range (klines: 1..1500); 400.
	CodeInvalidLimit = -1130
	// CodeUnauthorized: no or wrong API token; 401 (Binance: invalid
	// API-key, IP, or permissions).
	CodeUnauthorized = -2015
	// CodeInvalidPath: no such route, or not with this method; 404.
	CodeInvalidPath = -5000
)

// CodeError is the body of every error answer: {"code":-1121,"msg":"…"},
// in Binance's shape.
type CodeError struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

// apiError is an error answer: its HTTP status and body.
type apiError struct {
	status int
	CodeError
}

func badRequest(code int, msg string) *apiError {
	return &apiError{http.StatusBadRequest, CodeError{code, msg}}
}

func writeCode(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(CodeError{Code: code, Msg: msg})
}

func (e *apiError) write(w http.ResponseWriter) { writeCode(w, e.status, e.Code, e.Msg) }

// Binance's refusals of parameters.
var (
	errInvalidSymbol   = badRequest(CodeInvalidSymbol, "Invalid symbol.")
	errInvalidInterval = badRequest(CodeInvalidInterval, "Invalid interval.")
	errInvalidLimit    = badRequest(CodeInvalidLimit, "Data sent for parameter 'limit' is not valid.")
	errStartAfterEnd   = badRequest(CodeStartAfterEnd, "Start time is greater than end time.")
)

func mandatory(name string) *apiError {
	return badRequest(CodeMandatory, fmt.Sprintf("Mandatory parameter '%s' was not sent, was empty/null, or malformed.", name))
}

// intParam reads an optional non-negative integer parameter.
func intParam(q url.Values, name string) (v int64, ok bool, e *apiError) {
	raw := q.Get(name)
	if raw == "" {
		return 0, false, nil
	}
	digits := len(raw) <= 20 && strings.Trim(raw, "0123456789") == ""
	v, err := strconv.ParseInt(raw, 10, 64)
	if !digits || err != nil {
		return 0, false, badRequest(CodeIllegalChars, fmt.Sprintf("Illegal characters found in parameter '%s'; legal range is '^[0-9]{1,20}$'.", name))
	}
	return v, true, nil
}

// checkSymbol refuses a symbol as Binance does before looking it up: one
// with characters other than A-Z, 0-9, '-', '_' and '.', or longer than 20,
// is -1100; one in lower case is not listed (-1121).
func checkSymbol(sym string) *apiError {
	if sym == "" {
		return mandatory("symbol")
	}
	lower := false
	for _, c := range []byte(sym) {
		switch {
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		case c >= 'a' && c <= 'z':
			lower = true
		default:
			return badRequest(CodeIllegalChars, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.")
		}
	}
	if len(sym) > 20 {
		return badRequest(CodeIllegalChars, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.")
	}
	if lower {
		return errInvalidSymbol
	}
	return nil
}

// readerError answers a reader's error (see the codes): 400 -1121 for a
// symbol the exchange does not list, 400 -1100 for a part that cannot be
// in a key, 503 -1003 with Retry-After when the REST weight budget or a
// cooldown refused the exchange call, 503 -1007 on a timeout, 503 -1001
// otherwise.
func readerError(w http.ResponseWriter, err error) {
	var retry interface{ RetryAt() time.Time }
	switch {
	case errors.Is(err, exchange.ErrUnknownSymbol):
		errInvalidSymbol.write(w)
	case errors.Is(err, keyspace.ErrInvalidPart):
		writeCode(w, http.StatusBadRequest, CodeIllegalChars, err.Error())
	case errors.Is(err, context.Canceled):
		// the client went away
	case errors.As(err, &retry):
		secs := int64(math.Ceil(time.Until(retry.RetryAt()).Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		writeCode(w, http.StatusServiceUnavailable, CodeTooManyRequests, "Too many requests to the exchange; retry after the time in Retry-After: "+err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeCode(w, http.StatusServiceUnavailable, CodeTimeout, "Timeout waiting for Redis or the exchange: "+err.Error())
	default:
		writeCode(w, http.StatusServiceUnavailable, CodeUnavailable, "Internal error; unable to process your request. Please try again: "+err.Error())
	}
}

// invalidPath answers a request no route serves, as Binance does.
func invalidPath(w http.ResponseWriter, r *http.Request) {
	writeCode(w, http.StatusNotFound, CodeInvalidPath, fmt.Sprintf("Path %s, Method %s is invalid", r.URL.Path, r.Method))
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeCode(w, http.StatusInternalServerError, CodeUnknown, "An unknown error occurred while processing the request.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
