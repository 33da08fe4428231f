package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/internal/keyaudit"
)

// cacheFlush empties one key kind in Redis (SCAN + UNLINK, in batches, so a
// large keyspace is not blocked), or a file cache directory that exists
// (a mistyped path is refused, never created). It is destructive, so it
// asks for --yes.
func cacheFlush(ctx context.Context, e *env, args []string) error {
	var rc redisCmd
	var dir string
	var yes bool
	cmd := config.Command{Name: "cache flush", Args: "KIND", MaxArgs: 1, Groups: rc.groups(),
		Summary: "Deletes every key of a kind from Redis, or (--dir) every entry of a file cache directory.",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "", "flush this file cache directory instead of Redis (it must exist)")
			fs.BoolVar(&yes, "yes", false, "really delete")
		}}
	r, err := e.parse(cmd, args)
	if err != nil {
		return err
	}
	if !yes {
		return fmt.Errorf("%w: cache flush deletes data: add --yes", errUsage)
	}
	if dir != "" {
		if len(r.Args) > 0 {
			return fmt.Errorf("%w: cache flush: --dir and a key kind (%s) exclude each other", errUsage, r.Args[0])
		}
		fc, err := filecache.OpenExisting(dir, filecache.Options{})
		if errors.Is(err, filecache.ErrNotCache) {
			return fmt.Errorf("%w: cache flush: %w", errUsage, err)
		}
		if err != nil {
			return fmt.Errorf("cache flush: %w", err)
		}
		defer fc.Close()
		n := fc.Stats().Entries
		if err := fc.Flush(); err != nil {
			return fmt.Errorf("cache flush: %w", err)
		}
		fmt.Fprintf(e.stdout, "flushed %d entries from %s\n", n, dir)
		return nil
	}
	if len(r.Args) != 1 {
		return fmt.Errorf("%w: usage: tradecache cache flush --yes KIND (tradecache keys kinds lists them), or cache flush --yes --dir DIR", errUsage)
	}
	reg, err := rc.keys.Registry()
	if err != nil {
		return err
	}
	if k, ok := reg.Lookup(r.Args[0]); ok && k.Internal {
		return fmt.Errorf("%w: cache flush: %s keys belong to the nodes' leader election and are never deleted by hand", errUsage, k.Name)
	}
	pattern, err := reg.ScanPattern(r.Args[0])
	if err != nil {
		return fmt.Errorf("%w: cache flush: %w", errUsage, err)
	}
	cl, err := rawClient(rc.redis)
	if err != nil {
		return err
	}
	defer cl.Close()
	n, err := unlinkMatching(ctx, cl, pattern)
	if err != nil {
		return fmt.Errorf("cache flush: %w", err)
	}
	fmt.Fprintf(e.stdout, "flushed %d keys matching %s\n", n, pattern)
	return nil
}

func unlinkMatching(ctx context.Context, cl valkey.Client, pattern string) (int, error) {
	// Every master of a cluster holds its own keys; one UNLINK per key,
	// pipelined, since keys of one page may live in several slots.
	masters, err := keyaudit.Masters(ctx, cl, 5*time.Second)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, node := range masters {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return n, err
			}
			cmds := make(valkey.Commands, len(e.Elements))
			for i, k := range e.Elements {
				cmds[i] = node.B().Unlink().Key(k).Build()
			}
			for _, r := range node.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					return n, err
				}
				n++
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return n, nil
}
