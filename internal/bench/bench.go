// Package bench holds the runners behind `tradecache bench cache`,
// `bench filecache`, `bench fanout` and `bench ingest`. Each measures one
// product package through its public API (the tiered cache, the file
// cache, the /ws gateway, the market data node) and returns a
// benchfmt.Report: one "<figure> <value> <unit>" line per figure, or one
// JSON object. The command line parses flags and calls Cache, Filecache,
// Fanout or Ingest; figure names are stable, so runs can be compared.
package bench

import (
	"io"
	"log/slog"
)

// discardLogger is for the packages measured: tier changes and leadership
// are not news during a benchmark.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logTo returns w, or io.Discard when w is nil.
func logTo(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
