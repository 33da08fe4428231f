package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/keyspace"
)

// cacheCmd operates the tiered cache by hand: keys are named by kind and
// parts, so they get the registry's TTL like any write of the project.
func cacheCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: cache get|set|del KIND [PART...] [VALUE|-], or cache flush --yes KIND|--dir DIR", errUsage)
	}
	sub, rest := args[0], args[1:]
	if sub == "flush" {
		return cacheFlush(ctx, rest, getenv, stdout, stderr)
	}
	var ttl *time.Duration
	extra := func(fs *flag.FlagSet) {
		ttl = fs.Duration("ttl", 0, "set: TTL instead of the kind's (must be positive)")
	}
	return withConfig("cache "+sub, rest, getenv, stderr, extra, func(c config.Config) error {
		reg, err := c.Keyspace()
		if err != nil {
			return err
		}
		args := c.Args
		var value []byte
		if sub == "set" {
			if len(args) < 2 {
				return fmt.Errorf("%w: cache set KIND [PART...] VALUE|-", errUsage)
			}
			v := args[len(args)-1]
			args = args[:len(args)-1]
			if v == "-" {
				if value, err = io.ReadAll(io.LimitReader(os.Stdin, maxValue+1)); err != nil {
					return fmt.Errorf("cache set: read stdin: %w", err)
				}
				if len(value) > maxValue {
					return fmt.Errorf("%w: cache set: value on stdin exceeds %d bytes (Redis's bulk limit)", errUsage, maxValue)
				}
			} else {
				value = []byte(v)
			}
		}
		if len(args) == 0 {
			return fmt.Errorf("%w: cache %s: name a key kind (tradecache keys kinds lists them)", errUsage, sub)
		}
		key, err := buildKey(reg, args[0], args[1:])
		if err != nil {
			return fmt.Errorf("%w: cache %s: %w", errUsage, sub, err)
		}
		if *ttl != 0 {
			if key, err = key.WithTTL(*ttl); err != nil {
				return fmt.Errorf("%w: cache %s: %w", errUsage, sub, err)
			}
		}
		tc, err := connectCache(ctx, c)
		if err != nil {
			return err
		}
		defer tc.Close()
		switch sub {
		case "get":
			v, ok, err := tc.Get(ctx, key)
			if err != nil {
				return err
			}
			if !ok {
				return &exitError{code: 1, msg: "miss: " + key.Name()}
			}
			stdout.Write(v)
			if len(v) > 0 && v[len(v)-1] != '\n' {
				fmt.Fprintln(stdout)
			}
		case "set":
			if err := tc.Set(ctx, key, value); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "set %s (%d bytes, TTL %v)\n", key.Name(), len(value), key.TTL())
		case "del":
			if err := tc.Delete(ctx, key); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: cache: unknown subcommand %q (get, set, del)", errUsage, sub)
		}
		if tc.Tier() != cache.TierRedis {
			return fmt.Errorf("cache %s: Redis went away during the call", sub)
		}
		return nil
	})
}

// maxValue is Redis's default proto-max-bulk-len.
const maxValue = 512 << 20

func buildKey(reg *keyspace.Registry, kind string, parts []string) (keyspace.Key, error) {
	if kind == keyspace.KindKline && len(parts) == 2 {
		return reg.Kline(parts[0], parts[1]) // the interval's TTL
	}
	return reg.Key(kind, parts...)
}

// connectCache returns a tiered cache on Redis. By hand there is no point in
// the memory tier: it would vanish with this process.
func connectCache(ctx context.Context, c config.Config) (*cache.Cache, error) {
	if c.RedisURL == "" {
		return nil, fmt.Errorf("%w: no Redis configured: set --redis or REDIS_URL (the memory tier lives inside a node, not here)", errUsage)
	}
	cc, err := c.CacheConfig()
	if err != nil {
		return nil, err
	}
	cc.CallTimeout = max(cc.CallTimeout, 2*time.Second)
	cc.Logger = quietLogger()
	tc, err := cache.New(cc)
	if err != nil {
		return nil, err
	}
	if err := tc.Connect(ctx); err != nil {
		tc.Close()
		return nil, fmt.Errorf("redis %s unreachable: %w", cache.Redact(c.RedisURL), err)
	}
	return tc, nil
}
