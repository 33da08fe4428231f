// Command tradecache is the one binary of tradecache: a node (serve), the
// simulated exchange (sim), the key audit (keys), the cache by hand
// (cache), benchmarks (bench), the effective configuration (config) and
// its version. It parses the command line and calls the packages: a node
// is assembled by package node, settings are loaded by internal/config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/tradecache/tradecache/internal/config"
)

// version is set with -ldflags "-X main.version=…"; otherwise the module
// version from the build info.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

// exitError carries an exit status other than 1 with a message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// env is what every command gets from the process.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// parse loads cmd's settings from args; -h prints its usage to stdout.
func (e *env) parse(cmd config.Command, args []string) (*config.Result, error) {
	r, err := cmd.Parse(args, e.getenv, e.stdout)
	switch {
	case errors.Is(err, config.ErrHelp):
		return r, err
	case err != nil:
		return r, fmt.Errorf("%w: %w", errUsage, err)
	}
	return r, nil
}

// command is one leaf of the command tree.
type command struct {
	path     string // "keys audit"
	synopsis string // "[--json] [--memory]", shown in the top-level usage
	summary  string
	run      func(ctx context.Context, e *env, args []string) error
}

// commands is every command, in the order the usage lists them.
func commands() []command {
	return []command{
		{"serve", "[flags]", "run a node (--demo: simulated exchange, embedded memory tier, no Redis needed)", serveCmd},
		{"sim", "[--listen A] [--speed N]", "a simulated Binance USDⓈ-M futures exchange (REST + streams)", simCmd},
		{"keys audit", "[--json] [--memory]", "keys without TTL (exit 1 if any), count/memory/TTL by family", keysAudit},
		{"keys ls", "[PATTERN]", "list keys with their TTL", keysLs},
		{"keys kinds", "", "the key registry: every kind, its Redis type, pattern and TTL", keysKinds},
		{"cache get", "KIND [PART...]", "read a key of the tiered cache (Redis)", cacheGetSetDel("get")},
		{"cache set", "KIND [PART...] VALUE|-", "write a key with its kind's TTL (string kinds only)", cacheGetSetDel("set")},
		{"cache del", "KIND [PART...]", "delete a key", cacheGetSetDel("del")},
		{"cache flush", "--yes KIND | --yes --dir DIR", "delete every key of a kind from Redis, or empty a file cache directory", cacheFlush},
		{"cache stats", "--dir DIR [--json]", "what a file cache directory holds: entries, bytes, expired, corrupt", cacheStats},
		{"bench cache", "[--concurrency N]", "tiered cache throughput and latency (and redis-benchmark's)", benchCacheCmd},
		{"bench filecache", "[--entries 1000,10000]", "file cache sets and hits at several sizes", benchFilecacheCmd},
		{"bench ingest", "--redis URL", "exchange stream → leader → Redis, events/s and the node's CPU", benchIngestCmd},
		{"bench fanout", "[--clients N]", "/ws fan-out: messages/s delivered and latency", benchFanoutCmd},
		{"bench all", "--redis URL [--baseline F]", "every bench in one sitting, a table beside an earlier run", benchAllCmd},
		{"config check", "[flags]", "the effective configuration of serve with sources, secrets redacted", configCheck},
		{"version", "", "print the version", func(_ context.Context, e *env, args []string) error {
			fmt.Fprintln(e.stdout, "tradecache", buildVersion())
			return nil
		}},
	}
}

// hiddenCommands are run by dispatch but not listed: processes that
// tradecache starts itself.
func hiddenCommands() []command {
	return []command{
		{"bench fanout-clients", "", "the client process of bench fanout (started by it, settings in its environment)", benchFanoutClientsCmd},
		{"bench ingest-sim", "", "the exchange process of bench ingest (started by it, settings in its environment)", benchIngestSimCmd},
		{"bench ingest-sub", "", "the event subscriber process of bench ingest --subscriber (started by it, settings in its environment)", benchIngestSubCmd},
	}
}

// usage lists the commands whose path starts with prefix ("" = all).
func usage(w io.Writer, prefix string) {
	if prefix == "" {
		fmt.Fprint(w, "tradecache — storage, caching and market data for a trading system\n\n")
	}
	fmt.Fprintln(w, "usage:")
	for _, c := range commands() {
		if prefix != "" && !strings.HasPrefix(c.path, prefix+" ") {
			continue
		}
		line := "  tradecache " + c.path
		if c.synopsis != "" {
			line += " " + c.synopsis
		}
		fmt.Fprintf(w, "%-58s %s\n", line, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'tradecache COMMAND -h' for a command's flags. Flags also read environment variables and .env.")
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr, "")
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		usage(stdout, "")
		return 0
	case "--version", "-version":
		args[0] = "version"
	}
	err := dispatch(ctx, e, args)
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(stderr, "tradecache:", ee.msg)
		}
		return ee.code
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "tradecache:", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	default:
		fmt.Fprintln(stderr, "tradecache:", err)
		return 1
	}
}

// dispatch finds the command named by the first one or two words.
func dispatch(ctx context.Context, e *env, args []string) error {
	cmds := commands()
	for _, c := range cmds {
		if c.path == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	for _, c := range hiddenCommands() {
		if len(args) > 1 && c.path == args[0]+" "+args[1] {
			return c.run(ctx, e, args[2:])
		}
	}
	group := false
	for _, c := range cmds {
		if strings.HasPrefix(c.path, args[0]+" ") {
			group = true
			if len(args) > 1 && c.path == args[0]+" "+args[1] {
				return c.run(ctx, e, args[2:])
			}
		}
	}
	switch {
	case !group:
		usage(e.stderr, "")
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	case len(args) == 1:
		usage(e.stderr, args[0])
		return fmt.Errorf("%w: %s needs a subcommand", errUsage, args[0])
	case args[1] == "-h" || args[1] == "--help" || args[1] == "-help" || args[1] == "help":
		usage(e.stdout, args[0])
		return nil
	}
	usage(e.stderr, args[0])
	return fmt.Errorf("%w: %s: unknown subcommand %q", errUsage, args[0], args[1])
}

// quietLogger is for one-shot commands: tier changes are not news there.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "(devel)"
}
