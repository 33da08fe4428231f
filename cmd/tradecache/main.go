// Command tradecache is the one binary of tradecache: a node (serve), the
// key audit (keys), the cache by hand (cache), benchmarks (bench) and its
// version. All wiring of the packages happens here.
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

const usage = `tradecache — storage, caching and market data for a trading system

usage:
  tradecache serve [flags]                 run a node (--demo: embedded memory tier, no Redis needed)
  tradecache sim [--listen A] [--speed N]  a simulated Binance USDⓈ-M futures exchange (REST + streams)
  tradecache keys audit [--json] [--memory] keys without TTL (exit 1 if any), count/memory/TTL by prefix
  tradecache keys ls [PATTERN]             list keys with their TTL
  tradecache keys kinds                    the key registry: every kind, pattern and TTL
  tradecache cache get|set|del KIND [PART...] [VALUE|-]
                                           operate the tiered cache (Redis) by hand
  tradecache cache flush --yes KIND|--dir DIR
                                           delete a key kind from Redis, or empty a file cache
  tradecache bench cache [flags]           tiered cache throughput and latency
  tradecache config check [flags]         the effective configuration, secrets redacted, or field-level errors
  tradecache version

Every flag also reads an environment variable (and .env); run 'tradecache serve -h' for the list.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = withConfig("serve", rest, getenv, stderr, nil, func(c config.Config) error { return serve(ctx, c, stdout, stderr, getenv) })
	case "sim":
		err = simCmd(ctx, rest, stdout, stderr)
	case "keys":
		err = keysCmd(ctx, rest, getenv, stdout, stderr)
	case "cache":
		err = cacheCmd(ctx, rest, getenv, stdout, stderr)
	case "bench":
		err = benchCmd(ctx, rest, getenv, stdout, stderr)
	case "config":
		err = configCheck(rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "tradecache", buildVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tradecache: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(stderr, "tradecache:", ee.msg)
		}
		return ee.code
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "tradecache:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "tradecache:", err)
		return 1
	}
}

// withConfig parses a command's flags and runs f with the result.
func withConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet), f func(config.Config) error) error {
	var ex []func(*flag.FlagSet)
	if extra != nil {
		ex = append(ex, extra)
	}
	c, err := config.Parse(name, args, getenv, stderr, ex...)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %s: %w", errUsage, name, err)
	}
	return f(c)
}

func newLogger(c config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
