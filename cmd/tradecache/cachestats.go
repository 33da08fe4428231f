package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/config"
)

// cacheStats reports what a file cache directory holds, measured by
// filecache.Inspect: the directory is opened with OpenExisting, so a
// mistyped path is refused, never created, and nothing in it changes.
// The per-process counters (hits, misses, sets, evictions) belong to the
// processes using the cache: they export them with filecache's Collector.
func cacheStats(ctx context.Context, e *env, args []string) error {
	var dir string
	var asJSON bool
	cmd := config.Command{Name: "cache stats", Summary: "Reports what a file cache directory holds (entries, bytes, expired, corrupt and temp files), changing nothing.",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "", "the file cache directory (it must exist)")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	r, err := e.parse(cmd, args)
	if err != nil {
		return err
	}
	if dir == "" || len(r.Args) > 0 {
		return fmt.Errorf("%w: usage: tradecache cache stats --dir DIR [--json]", errUsage)
	}
	fc, err := filecache.OpenExisting(dir, filecache.Options{})
	if errors.Is(err, filecache.ErrNotCache) {
		return fmt.Errorf("%w: cache stats: %w", errUsage, err)
	}
	if err != nil {
		return fmt.Errorf("cache stats: %w", err)
	}
	defer fc.Close()
	s, err := fc.Inspect(ctx)
	if err != nil {
		return fmt.Errorf("cache stats: %w", err)
	}
	var rep benchfmt.Report
	rep.Add("entries", float64(s.Entries), "entries")
	rep.Add("bytes", float64(s.Bytes), "bytes")
	rep.Add("never_expiring", float64(s.NoExpiry), "entries")
	rep.Add("expired", float64(s.Expired), "entries")
	rep.Add("expired_bytes", float64(s.ExpiredBytes), "bytes")
	rep.Add("corrupt", float64(s.Corrupt), "entries")
	rep.Add("temp_files", float64(s.TempFiles), "files")
	rep.Add("other_files", float64(s.Other), "files")
	rep.Add("table_bytes", float64(s.TableBytes), "bytes")
	rep.Add("table_used_bytes", float64(s.TableUsed), "bytes")
	if !s.OldestAccess.IsZero() {
		rep.Add("oldest_access_age", benchfmt.Round(time.Since(s.OldestAccess).Seconds(), 3), "s")
	}
	return rep.Write(e.stdout, asJSON)
}
