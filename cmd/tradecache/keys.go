package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/internal/keyaudit"
	"github.com/tradecache/tradecache/keyspace"
)

func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: keys audit | ls [PATTERN] | kinds", errUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "kinds":
		return withConfig("keys kinds", rest, getenv, stderr, nil, func(c config.Config) error {
			reg, err := c.Keyspace()
			if err != nil {
				return err
			}
			fmt.Fprint(stdout, reg.Table())
			return nil
		})
	case "audit":
		var asJSON, memory, progress *bool
		var match *string
		var pause *time.Duration
		extra := func(fs *flag.FlagSet) {
			asJSON = fs.Bool("json", false, "print the report as JSON")
			memory = fs.Bool("memory", true, "measure memory per key with MEMORY USAGE")
			progress = fs.Bool("progress", false, "print progress to stderr while scanning")
			match = fs.String("match", "*", "SCAN MATCH pattern")
			pause = fs.Duration("pause", 0, "pause between SCAN batches, to spare a busy server")
		}
		return withConfig("keys audit", rest, getenv, stderr, extra, func(c config.Config) error {
			cl, err := rawClient(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			reg, err := c.Keyspace()
			if err != nil {
				return err
			}
			opt := keyaudit.Options{Match: *match, Memory: *memory, Pause: *pause, Group: familyOf(reg)}
			if *progress {
				opt.Progress = func(n int) { fmt.Fprintf(stderr, "\rscanned %d keys", n) }
			}
			rep, err := keyaudit.Audit(ctx, cl, opt)
			if *progress {
				fmt.Fprintln(stderr)
			}
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				enc.Encode(rep)
			} else {
				printAudit(stdout, rep)
			}
			if !rep.OK() {
				return &exitError{code: 1, msg: fmt.Sprintf("%d keys without TTL", rep.NoTTLCount)}
			}
			return nil
		})
	case "ls":
		var limit *int
		extra := func(fs *flag.FlagSet) { limit = fs.Int("limit", 1000, "list at most this many keys") }
		return withConfig("keys ls", rest, getenv, stderr, extra, func(c config.Config) error {
			pattern := "*"
			if len(c.Args) > 0 {
				pattern = c.Args[0]
			}
			cl, err := rawClient(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			return listKeys(ctx, cl, pattern, *limit, stdout)
		})
	default:
		return fmt.Errorf("%w: keys: unknown subcommand %q (audit, ls, kinds)", errUsage, sub)
	}
}

// rawClient connects to the configured Redis directly (no memory tier):
// keys and bench speak to Redis itself.
func rawClient(c config.Config) (valkey.Client, error) {
	if c.RedisURL == "" {
		return nil, fmt.Errorf("%w: no Redis configured: set --redis or REDIS_URL (or REDIS_HOST)", errUsage)
	}
	opt, err := cache.RedisOptions(c.RedisURL)
	if err != nil {
		return nil, err
	}
	opt.Dialer.Timeout = max(c.RedisTimeout, 2*time.Second)
	cl, err := valkey.NewClient(*opt)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cache.Redact(c.RedisURL), err)
	}
	return cl, nil
}

// familyOf groups audited keys by registered kind ("market:kline:*:*"), and
// others by their first segment.
func familyOf(reg *keyspace.Registry) func(string) string {
	return func(key string) string {
		if kind, _, err := reg.Parse(key); err == nil {
			if p, err := reg.ScanPattern(kind); err == nil {
				return p
			}
		}
		return keyaudit.FirstSegment(key)
	}
}

func printAudit(w io.Writer, rep keyaudit.Report) {
	fmt.Fprintf(w, "keys: %d   memory: %s   without TTL: %d   (scanned in %v)\n\n", rep.Keys, bytesH(rep.Bytes), rep.NoTTLCount, rep.Elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "FAMILY\tKEYS\tMEMORY\tNO TTL\t%s\t\n", strings.Join(keyaudit.Buckets, "\t"))
	for _, f := range rep.Families {
		cells := make([]string, len(f.Spread))
		for i, n := range f.Spread {
			cells[i] = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t\n", f.Name, f.Keys, bytesH(f.Bytes), f.NoTTL, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if rep.NoTTLCount > 0 {
		fmt.Fprintf(w, "\nkeys without TTL (first %d of %d):\n", len(rep.NoTTL), rep.NoTTLCount)
		for _, k := range rep.NoTTL {
			fmt.Fprintln(w, "  "+k)
		}
	}
}

func bytesH(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func listKeys(ctx context.Context, cl valkey.Client, pattern string, limit int, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "KEY\tTTL")
	var cursor uint64
	n := 0
	for {
		e, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("keys ls: scan: %w", err)
		}
		cmds := make(valkey.Commands, len(e.Elements))
		for i, k := range e.Elements {
			cmds[i] = cl.B().Pttl().Key(k).Build()
		}
		for i, r := range cl.DoMulti(ctx, cmds...) {
			if n >= limit {
				fmt.Fprintf(tw, "… (--limit %d reached)\t\n", limit)
				return nil
			}
			p, err := r.AsInt64()
			if err != nil || p == -2 {
				continue
			}
			ttl := "none"
			if p >= 0 {
				ttl = (time.Duration(p) * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\n", e.Elements[i], ttl)
			n++
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}
