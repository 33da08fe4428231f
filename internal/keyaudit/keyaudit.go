// Package keyaudit scans a Redis/Valkey keyspace for keys without a TTL
// (every key of a trading system's cache must expire) and summarises key count, memory and TTL spread by
// key family.
//
// It walks the keyspace with SCAN and asks PTTL (and MEMORY USAGE) for each
// batch in one pipelined round trip, so a large keyspace is audited without
// KEYS and without blocking the server: each server-side step is one SCAN
// page or one batch of O(1) commands, and Options.Pause spaces batches out
// further on a busy production server. On a cluster every primary is
// scanned.
package keyaudit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/keyspace"
)

// Options tune an audit. The zero value audits everything.
type Options struct {
	// Match is the SCAN MATCH glob ("*" by default).
	Match string
	// Count is SCAN's COUNT hint, the batch size (1000 by default).
	Count int64
	// Memory asks MEMORY USAGE for every key (an extra O(1) command each).
	Memory bool
	// Pause sleeps between batches to leave room for other clients.
	Pause time.Duration
	// Group maps a key to its family ("market:kline:*:*"). By default the
	// family is the key up to its first ':'.
	Group func(key string) string
	// MaxListed bounds how many TTL-less key names the report keeps (100 by
	// default); NoTTLCount counts all of them.
	MaxListed int
	// Progress, when set, is called after each batch with the keys scanned so far.
	Progress func(scanned int)
	// Timeout bounds each Redis round trip (5 s by default).
	Timeout time.Duration
}

// TTL spread buckets, in Report.Spread and Family.Spread order.
var Buckets = []string{"none", "<1m", "1m-10m", "10m-1h", "1h-1d", ">=1d"}

// Family is the summary of one key family.
type Family struct {
	Name   string `json:"name"`
	Keys   int    `json:"keys"`
	Bytes  int64  `json:"bytes"`
	NoTTL  int    `json:"no_ttl"`
	Spread []int  `json:"ttl_spread"` // counts per Buckets
}

// Report is the outcome of an audit.
type Report struct {
	Keys       int           `json:"keys"`
	Bytes      int64         `json:"bytes"`
	NoTTLCount int           `json:"no_ttl_count"`
	NoTTL      []string      `json:"no_ttl"` // at most Options.MaxListed names, sorted
	Families   []Family      `json:"families"`
	Spread     []int         `json:"ttl_spread"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// Unreached names the cluster nodes that did not answer and were not
	// scanned (a dead replica, or a dead master whose slots then went
	// unaudited).
	Unreached []string `json:"unreached,omitempty"`
}

// OK reports whether every key has a TTL.
func (r Report) OK() bool { return r.NoTTLCount == 0 }

// Audit scans the keyspace of client. On a cluster whose slots move while
// it scans (a failover: a node it listed as master answers MOVED), it
// starts again from the new masters, up to three times in all.
func Audit(ctx context.Context, client valkey.Client, opt Options) (Report, error) {
	for attempt := 1; ; attempt++ {
		rep, err := audit(ctx, client, opt)
		if err == nil || !moved(err) || attempt == 3 {
			return rep, err
		}
		select {
		case <-ctx.Done():
			return rep, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// moved reports whether err is a MOVED or ASK reply: the slot left the
// node asked.
func moved(err error) bool {
	var ve *valkey.ValkeyError
	if !errors.As(err, &ve) {
		return false
	}
	_, m := ve.IsMoved()
	_, a := ve.IsAsk()
	return m || a
}

func audit(ctx context.Context, client valkey.Client, opt Options) (Report, error) {
	start := time.Now()
	if opt.Match == "" {
		opt.Match = "*"
	}
	if opt.Count <= 0 {
		opt.Count = 1000
	}
	if opt.MaxListed <= 0 {
		opt.MaxListed = 100
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Group == nil {
		opt.Group = FirstSegment
	}
	rep := Report{Spread: make([]int, len(Buckets))}
	fams := map[string]*Family{}
	masters, unreached, err := masters(ctx, client, opt.Timeout)
	if err != nil {
		return rep, err
	}
	rep.Unreached = unreached
	for addr, node := range masters {
		var cursor uint64
		for {
			sctx, cancel := context.WithTimeout(ctx, opt.Timeout)
			e, err := node.Do(sctx, node.B().Scan().Cursor(cursor).Match(opt.Match).Count(opt.Count).Build()).AsScanEntry()
			cancel()
			if err != nil {
				return rep, fmt.Errorf("keyaudit: scan %s: %w", addr, err)
			}
			if err := auditBatch(ctx, node, e.Elements, opt, &rep, fams); err != nil {
				return rep, fmt.Errorf("keyaudit: %s: %w", addr, err)
			}
			if opt.Progress != nil {
				opt.Progress(rep.Keys)
			}
			cursor = e.Cursor
			if cursor == 0 {
				break
			}
			if opt.Pause > 0 {
				select {
				case <-ctx.Done():
					return rep, ctx.Err()
				case <-time.After(opt.Pause):
				}
			}
		}
	}
	for _, f := range fams {
		rep.Families = append(rep.Families, *f)
	}
	slices.SortFunc(rep.Families, func(a, b Family) int {
		return cmp.Or(cmp.Compare(b.Keys, a.Keys), strings.Compare(a.Name, b.Name))
	})
	slices.Sort(rep.NoTTL)
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func auditBatch(ctx context.Context, node valkey.Client, keys []string, opt Options, rep *Report, fams map[string]*Family) error {
	if len(keys) == 0 {
		return nil
	}
	per := 1
	if opt.Memory {
		per = 2
	}
	cmds := make(valkey.Commands, 0, per*len(keys))
	for _, k := range keys {
		cmds = append(cmds, node.B().Pttl().Key(k).Build())
		if opt.Memory {
			cmds = append(cmds, node.B().MemoryUsage().Key(k).Samples(0).Build())
		}
	}
	bctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	res := node.DoMulti(bctx, cmds...)
	for i, k := range keys {
		pttl, err := res[i*per].AsInt64()
		if err != nil {
			return fmt.Errorf("pttl %q: %w", k, err)
		}
		if pttl == -2 {
			continue // expired or deleted between SCAN and PTTL
		}
		var bytes int64
		if opt.Memory {
			bytes, err = res[i*per+1].AsInt64()
			if err != nil && !valkey.IsValkeyNil(err) {
				return fmt.Errorf("memory usage %q: %w", k, err)
			}
		}
		name := opt.Group(k)
		f := fams[name]
		if f == nil {
			f = &Family{Name: name, Spread: make([]int, len(Buckets))}
			fams[name] = f
		}
		b := bucket(pttl)
		f.Keys++
		f.Bytes += bytes
		f.Spread[b]++
		rep.Keys++
		rep.Bytes += bytes
		rep.Spread[b]++
		if pttl == -1 {
			f.NoTTL++
			rep.NoTTLCount++
			if len(rep.NoTTL) < opt.MaxListed {
				rep.NoTTL = append(rep.NoTTL, k)
			}
		}
	}
	return nil
}

func bucket(pttl int64) int {
	d := time.Duration(pttl) * time.Millisecond
	switch {
	case pttl < 0:
		return 0
	case d < time.Minute:
		return 1
	case d < 10*time.Minute:
		return 2
	case d < time.Hour:
		return 3
	case d < 24*time.Hour:
		return 4
	default:
		return 5
	}
}

// FirstSegment groups a key by its text up to the first ':' ("market:*").
func FirstSegment(key string) string {
	if i := strings.IndexByte(key, ':'); i >= 0 {
		return key[:i+1] + "*"
	}
	return key
}

// Masters returns one client per primary: every master of a cluster (a
// replica holds copies of its master's keys, which would count twice), or
// the client itself. A scan of every key scans each of them. A node that
// does not answer is left out, unless none answers.
func Masters(ctx context.Context, c valkey.Client, timeout time.Duration) (map[string]valkey.Client, error) {
	m, _, err := masters(ctx, c, timeout)
	return m, err
}

// masters is Masters, and the nodes that did not answer.
func masters(ctx context.Context, c valkey.Client, timeout time.Duration) (map[string]valkey.Client, []string, error) {
	nodes := c.Nodes()
	if len(nodes) <= 1 {
		return map[string]valkey.Client{"redis": c}, nil, nil
	}
	out := make(map[string]valkey.Client, len(nodes))
	var errs []error
	var unreached []string
	for addr, n := range nodes {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		role, err := n.Do(rctx, n.B().Role().Build()).ToArray()
		cancel()
		if err == nil && len(role) == 0 {
			err = errors.New("empty ROLE reply")
		}
		if err != nil {
			// A node that does not answer (a dead replica during a
			// failover) is left out; every master answering is enough.
			errs = append(errs, fmt.Errorf("role of %s: %w", addr, err))
			unreached = append(unreached, addr)
			continue
		}
		if r, _ := role[0].ToString(); r == "master" {
			out[addr] = n
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("keyaudit: no master answered: %w", errors.Join(errs...))
	}
	slices.Sort(unreached)
	return out, unreached, nil
}

// FamilyOf groups keys by the registered kind they belong to, named by its
// SCAN pattern ("market:kline:*:*"); keys of no kind by their first segment.
func FamilyOf(reg *keyspace.Registry) func(string) string {
	return func(key string) string {
		if kind, _, err := reg.Parse(key); err == nil {
			if p, err := reg.ScanPattern(kind); err == nil {
				return p
			}
		}
		return FirstSegment(key)
	}
}
