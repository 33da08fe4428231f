package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/node"
)

// cacheGetSetDel operates the tiered cache by hand: keys are named by kind
// and parts, so they get the registry's TTL like any write of the project.
// Each kind is handled in the Redis type the project keeps it in: set
// writes string kinds only, get reads sorted sets and hashes as such, and
// the keys of the nodes' own protocols (leases, epochs) are never written
// or deleted by hand.
func cacheGetSetDel(sub string) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		var rc redisCmd
		var ttl time.Duration
		cmd := config.Command{Name: "cache " + sub, Args: "KIND [PART...]", MaxArgs: -1, Groups: rc.groups()}
		switch sub {
		case "get":
			cmd.Summary = "Prints the value of a key named by its kind and parts (tradecache keys kinds lists them); exit status 1 on a miss."
		case "set":
			cmd.Args += " VALUE|-"
			cmd.Summary = "Writes a string-kind key with its kind's TTL; VALUE - reads stdin."
			cmd.Flags = func(fs *flag.FlagSet) {
				fs.DurationVar(&ttl, "ttl", 0, "TTL instead of the kind's (must be positive)")
			}
		case "del":
			cmd.Summary = "Deletes a key named by its kind and parts."
		}
		r, err := e.parse(cmd, args)
		if err != nil {
			return err
		}
		reg, err := rc.keys.Registry()
		if err != nil {
			return err
		}
		args = r.Args
		var value []byte
		if sub == "set" {
			if len(args) < 2 {
				return fmt.Errorf("%w: usage: tradecache cache set KIND [PART...] VALUE|-", errUsage)
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
		kind, ok := reg.Lookup(args[0])
		if !ok {
			return fmt.Errorf("%w: cache %s: unknown kind %q (tradecache keys kinds lists them)", errUsage, sub, args[0])
		}
		if err := handWritable(kind, sub); err != nil {
			return fmt.Errorf("%w: cache %s: %w", errUsage, sub, err)
		}
		key, err := buildKey(reg, args[0], args[1:])
		if err != nil {
			return fmt.Errorf("%w: cache %s: %w", errUsage, sub, err)
		}
		if ttl != 0 {
			if key, err = key.WithTTL(ttl); err != nil {
				return fmt.Errorf("%w: cache %s: %w", errUsage, sub, err)
			}
		}
		if sub == "get" && kind.RedisType() != keyspace.TypeString {
			cl, err := rawClient(rc.redis)
			if err != nil {
				return err
			}
			defer cl.Close()
			return getTyped(ctx, cl, kind, key, e.stdout)
		}
		tc, err := connectCache(ctx, rc.redis)
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
			e.stdout.Write(v)
			if len(v) > 0 && v[len(v)-1] != '\n' {
				fmt.Fprintln(e.stdout)
			}
		case "set":
			if err := tc.Set(ctx, key, value); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "set %s (%d bytes, TTL %v)\n", key.Name(), len(value), key.TTL())
		case "del":
			if err := tc.Delete(ctx, key); err != nil {
				return err
			}
		}
		if tc.Tier() != cache.TierRedis {
			return fmt.Errorf("cache %s: Redis went away during the call", sub)
		}
		return nil
	}
}

// handWritable refuses what would corrupt a running system: a write of a
// key in another type than its readers expect, and any write or delete of
// a lease or epoch (a hand-made lease stops every node from streaming
// until it expires; a lost epoch breaks fencing).
func handWritable(k keyspace.Kind, sub string) error {
	switch {
	case sub == "get":
		return nil
	case k.Internal:
		return fmt.Errorf("%s keys belong to the nodes' leader election and are never %s by hand", k.Name, map[string]string{"set": "written", "del": "deleted"}[sub])
	case sub == "set" && k.RedisType() != keyspace.TypeString:
		return fmt.Errorf("%s keys are Redis %ss written by the leader; cache set writes strings only (cache del or cache flush removes them)", k.Name, k.RedisType())
	}
	return nil
}

// getTyped prints a sorted set (members, oldest score first) or a hash
// (field, a tab, the value), one per line.
func getTyped(ctx context.Context, cl valkey.Client, k keyspace.Kind, key keyspace.Key, w io.Writer) error {
	var lines []string
	switch k.RedisType() {
	case keyspace.TypeZSet:
		m, err := cl.Do(ctx, cl.B().Zrange().Key(key.Name()).Min("0").Max("-1").Build()).AsStrSlice()
		if err != nil {
			return fmt.Errorf("cache get: %w", err)
		}
		lines = m
	case keyspace.TypeHash:
		m, err := cl.Do(ctx, cl.B().Hgetall().Key(key.Name()).Build()).AsStrMap()
		if err != nil {
			return fmt.Errorf("cache get: %w", err)
		}
		for f, v := range m {
			lines = append(lines, f+"\t"+v)
		}
	}
	if len(lines) == 0 {
		return &exitError{code: 1, msg: "miss: " + key.Name()}
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return nil
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
func connectCache(ctx context.Context, r node.Redis) (*cache.Cache, error) {
	if r.URL == "" {
		return nil, fmt.Errorf("%w: no Redis configured: set --redis or REDIS_URL (the memory tier lives inside a node, not here)", errUsage)
	}
	cc, err := r.CacheConfig()
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
		return nil, fmt.Errorf("redis %s unreachable: %w", cache.Redact(r.URL), err)
	}
	return tc, nil
}
