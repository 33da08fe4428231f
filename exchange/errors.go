package exchange

import "errors"

// Errors a reader of exchange data returns, shared so that a consumer (the
// HTTP API) can tell them apart without importing the reader.
var (
	// ErrUnknownSymbol: the exchange does not list the symbol.
	ErrUnknownSymbol = errors.New("unknown symbol")
	// ErrNoBalance: the account holds no such asset.
	ErrNoBalance = errors.New("no such asset")
)
