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
	"github.com/tradecache/tradecache/node"
)

// redisCmd is the settings of a command that talks to Redis directly:
// the connection and the key registry.
type redisCmd struct {
	redis node.Redis
	keys  node.Keys
}

func (r *redisCmd) groups() []config.Group {
	return []config.Group{config.Redis(&r.redis), config.Keys(&r.keys)}
}

func keysAudit(ctx context.Context, e *env, args []string) error {
	var rc redisCmd
	var asJSON, memory, progress bool
	var match string
	var pause time.Duration
	cmd := config.Command{Name: "keys audit", Summary: "Scans Redis for keys without a TTL (exit status 1 if any) and sums keys, memory and TTLs by key family.",
		Groups: rc.groups(),
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
			fs.BoolVar(&memory, "memory", true, "measure memory per key with MEMORY USAGE")
			fs.BoolVar(&progress, "progress", false, "print progress to stderr while scanning")
			fs.StringVar(&match, "match", "*", "SCAN MATCH pattern")
			fs.DurationVar(&pause, "pause", 0, "pause between SCAN batches, to spare a busy server")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	cl, err := rawClient(rc.redis)
	if err != nil {
		return err
	}
	defer cl.Close()
	reg, err := rc.keys.Registry()
	if err != nil {
		return err
	}
	opt := keyaudit.Options{Match: match, Memory: memory, Pause: pause, Group: keyaudit.FamilyOf(reg)}
	if progress {
		opt.Progress = func(n int) { fmt.Fprintf(e.stderr, "\rscanned %d keys", n) }
	}
	rep, err := keyaudit.Audit(ctx, cl, opt)
	if progress {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printAudit(e.stdout, rep)
	}
	if !rep.OK() {
		return &exitError{code: 1, msg: fmt.Sprintf("%d keys without TTL", rep.NoTTLCount)}
	}
	return nil
}

func keysLs(ctx context.Context, e *env, args []string) error {
	var rc redisCmd
	var limit int
	cmd := config.Command{Name: "keys ls", Args: "[PATTERN]", Summary: "Lists keys matching PATTERN (default *) with their TTL.", MaxArgs: 1,
		Groups: []config.Group{config.Redis(&rc.redis)},
		Flags:  func(fs *flag.FlagSet) { fs.IntVar(&limit, "limit", 1000, "list at most this many keys") }}
	r, err := e.parse(cmd, args)
	if err != nil {
		return err
	}
	pattern := "*"
	if len(r.Args) > 0 {
		pattern = r.Args[0]
	}
	cl, err := rawClient(rc.redis)
	if err != nil {
		return err
	}
	defer cl.Close()
	return listKeys(ctx, cl, pattern, limit, e.stdout)
}

func keysKinds(_ context.Context, e *env, args []string) error {
	var k node.Keys
	cmd := config.Command{Name: "keys kinds", Summary: "Prints the key registry: every key kind, its Redis type, key pattern and TTL.",
		Groups: []config.Group{config.Keys(&k), config.Election(&k)}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	reg, err := k.Registry()
	if err != nil {
		return err
	}
	fmt.Fprint(e.stdout, reg.Table())
	return nil
}

// rawClient connects to the configured Redis directly (no memory tier):
// keys and bench speak to Redis itself.
func rawClient(r node.Redis) (valkey.Client, error) {
	if r.URL == "" {
		return nil, fmt.Errorf("%w: no Redis configured: set --redis or REDIS_URL (or REDIS_HOST)", errUsage)
	}
	opt, err := cache.RedisOptions(r.URL)
	if err != nil {
		return nil, err
	}
	opt.Dialer.Timeout = max(r.Timeout, 2*time.Second)
	cl, err := valkey.NewClient(*opt)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cache.Redact(r.URL), err)
	}
	return cl, nil
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
	// Every master of a cluster holds its own keys.
	masters, err := keyaudit.Masters(ctx, cl, 5*time.Second)
	if err != nil {
		return fmt.Errorf("keys ls: %w", err)
	}
	n := 0
	for _, node := range masters {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				return fmt.Errorf("keys ls: scan: %w", err)
			}
			cmds := make(valkey.Commands, len(e.Elements))
			for i, k := range e.Elements {
				cmds[i] = node.B().Pttl().Key(k).Build()
			}
			for i, r := range node.DoMulti(ctx, cmds...) {
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
				break
			}
		}
	}
	return nil
}
