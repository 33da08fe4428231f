package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/config"
)

// cacheFlush empties one key kind in Redis (SCAN + UNLINK, in batches, so a
// large keyspace is not blocked), or a file cache directory. It is
// destructive, so it asks for --yes.
func cacheFlush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var dir *string
	var yes *bool
	extra := func(fs *flag.FlagSet) {
		dir = fs.String("dir", "", "flush this file cache directory instead of Redis")
		yes = fs.Bool("yes", false, "really delete")
	}
	return withConfig("cache flush", args, getenv, stderr, extra, func(c config.Config) error {
		if !*yes {
			return fmt.Errorf("%w: cache flush deletes data: add --yes", errUsage)
		}
		if *dir != "" {
			fc, err := filecache.Open(*dir, filecache.Options{})
			if err != nil {
				return fmt.Errorf("cache flush: %w", err)
			}
			defer fc.Close()
			n := fc.Stats().Entries
			if err := fc.Flush(); err != nil {
				return fmt.Errorf("cache flush: %w", err)
			}
			fmt.Fprintf(stdout, "flushed %d entries from %s\n", n, *dir)
			return nil
		}
		if len(c.Args) != 1 {
			return fmt.Errorf("%w: cache flush --yes KIND (flags before KIND; tradecache keys kinds lists them), or cache flush --yes --dir DIR", errUsage)
		}
		reg, err := c.Keyspace()
		if err != nil {
			return err
		}
		pattern, err := reg.ScanPattern(c.Args[0])
		if err != nil {
			return fmt.Errorf("%w: cache flush: %w", errUsage, err)
		}
		cl, err := rawClient(c)
		if err != nil {
			return err
		}
		defer cl.Close()
		n, err := unlinkMatching(ctx, cl, pattern)
		if err != nil {
			return fmt.Errorf("cache flush: %w", err)
		}
		fmt.Fprintf(stdout, "flushed %d keys matching %s\n", n, pattern)
		return nil
	})
}

func unlinkMatching(ctx context.Context, cl valkey.Client, pattern string) (int, error) {
	var cursor uint64
	n := 0
	for {
		e, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return n, err
		}
		if len(e.Elements) > 0 {
			if err := cl.Do(ctx, cl.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return n, err
			}
			n += len(e.Elements)
		}
		if cursor = e.Cursor; cursor == 0 {
			return n, nil
		}
	}
}
