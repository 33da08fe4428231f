package keyspace

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Intervals are Binance's kline intervals, in order, with their durations
// (a month counted as 30 days, which is all a TTL needs).
var intervals = []struct {
	name string
	d    time.Duration
}{
	{"1m", time.Minute}, {"3m", 3 * time.Minute}, {"5m", 5 * time.Minute},
	{"15m", 15 * time.Minute}, {"30m", 30 * time.Minute},
	{"1h", time.Hour}, {"2h", 2 * time.Hour}, {"4h", 4 * time.Hour},
	{"6h", 6 * time.Hour}, {"8h", 8 * time.Hour}, {"12h", 12 * time.Hour},
	{"1d", 24 * time.Hour}, {"3d", 72 * time.Hour}, {"1w", 7 * 24 * time.Hour},
	{"1M", 30 * 24 * time.Hour},
}

// IntervalDuration returns the length of a Binance kline interval ("1m", "4h",
// "1M"). Intervals are case-sensitive: "1m" is a minute, "1M" a month.
func IntervalDuration(interval string) (time.Duration, error) {
	for _, iv := range intervals {
		if iv.name == interval {
			return iv.d, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown kline interval %q", ErrInvalidPart, interval)
}

// Intervals lists the supported kline intervals, shortest first.
func Intervals() []string {
	out := make([]string, len(intervals))
	for i, iv := range intervals {
		out[i] = iv.name
	}
	return out
}

// KlineTTL is the TTL of the kline key of an interval: the kline kind's TTL
// (600 s by default) as a floor, two bars of the interval, at most
// KlineTTLCap. The leader refreshes it on every write, so it only matters
// once nobody writes: long intervals keep their window through a failover
// without holding memory for days.
func (r *Registry) KlineTTL(interval string) (time.Duration, error) {
	d, err := IntervalDuration(interval)
	if err != nil {
		return 0, err
	}
	k, _ := r.Lookup(KindKline)
	return min(max(k.TTL, klineBars*d), max(k.TTL, KlineTTLCap)), nil
}

// Positions is ats:positions:cache.
func (r *Registry) Positions() Key { return r.must(KindPositions) }

// Balance is ats:balance:cache:{ASSET}.
func (r *Registry) Balance(asset string) (Key, error) { return r.Key(KindBalance, asset) }

// Kline is market:kline:{SYMBOL}:{interval}, with the interval's TTL.
func (r *Registry) Kline(symbol, interval string) (Key, error) {
	ttl, err := r.KlineTTL(interval)
	if err != nil {
		return Key{}, err
	}
	k, err := r.Key(KindKline, symbol, interval)
	if err != nil {
		return Key{}, err
	}
	k.ttl = ttl
	return k, nil
}

// Ticker24h is ticker_24h:{SYMBOL}.
func (r *Registry) Ticker24h(symbol string) (Key, error) { return r.Key(KindTicker24h, symbol) }

// MarketTicker24h is market:ticker_24h.
func (r *Registry) MarketTicker24h() Key { return r.must(KindMarketTicker24h) }

// BookTicker is market:book_ticker.
func (r *Registry) BookTicker() Key { return r.must(KindBookTicker) }

// SymbolInfo is symbol_info:{SYMBOL}.
func (r *Registry) SymbolInfo(symbol string) (Key, error) { return r.Key(KindSymbolInfo, symbol) }

// ListenKey is listen_key:{account}.
func (r *Registry) ListenKey(account string) (Key, error) { return r.Key(KindListenKey, account) }

// MarketWSLeader is market_ws_leader.
func (r *Registry) MarketWSLeader() Key { return r.must(KindMarketWSLeader) }

// AccountLeader is account_leader:{account}, the user data stream lease.
func (r *Registry) AccountLeader(account string) (Key, error) {
	return r.Key(KindAccountLeader, account)
}

// LeaderEpoch is the fencing epoch counter of a lease key: "leader_epoch:market_ws_leader".
func (r *Registry) LeaderEpoch(lease Key) (Key, error) {
	part, err := r.leasePart(lease.Name())
	if err != nil {
		return Key{}, err
	}
	if !r.hashTags {
		return r.Key(KindLeaderEpoch, part)
	}
	// Under cluster naming the counter shares the lease's slot, since one
	// script reads both: "{market}:leader_epoch:market_ws_leader".
	r.mu.RLock()
	c := r.kinds[KindLeaderEpoch]
	r.mu.RUnlock()
	return r.build(c, HashTag(lease.Name()), []string{part})
}

// leasePart is a lease's name as one key part: without the prefix and,
// under cluster naming, without its hash tag's braces (and the word tag
// in front); ':' becomes '.' (account_leader:main counts in
// leader_epoch:account_leader.main).
func (r *Registry) leasePart(lease string) (string, error) {
	name, ok := strings.CutPrefix(lease, r.prefix)
	if !ok {
		return "", fmt.Errorf("keyspace: lease %q lacks prefix %q", lease, r.prefix)
	}
	if r.hashTags {
		name = strings.TrimPrefix(name, "{"+HashTag(lease)+"}:")
		name = strings.NewReplacer("{", "", "}", "").Replace(name)
	}
	return strings.ReplaceAll(name, ":", "."), nil
}

// SlotFence is the fence a lease keeps in the slot data lives in, under
// cluster naming: slot_fence:{tag}:{lease} with data's hash tag. A
// leader's fenced scripts on a cluster check it instead of the lease,
// which lives in another slot; each lease has its own, since epochs of
// different leases (stream groups writing one shared hash) do not
// compare. Under standard naming there is none (an error).
func (r *Registry) SlotFence(data Key, lease string) (Key, error) {
	if !r.hashTags {
		return Key{}, fmt.Errorf("keyspace: slot fence of %q: keys are not named for a cluster", data.Name())
	}
	tag := HashTag(data.Name())
	if tag == data.Name() {
		return Key{}, fmt.Errorf("keyspace: slot fence of %q: the key has no hash tag", data.Name())
	}
	part, err := r.leasePart(lease)
	if err != nil {
		return Key{}, err
	}
	return r.Key(KindSlotFence, tag, part)
}

// ExchangeInfo is exchange_info, the whole exchange's symbols.
func (r *Registry) ExchangeInfo() Key { return r.must(KindExchangeInfo) }

// UnknownSymbol is unknown_symbol:{SYMBOL}, the negative cache of a symbol
// the exchange does not list.
func (r *Registry) UnknownSymbol(symbol string) (Key, error) {
	return r.Key(KindUnknownSymbol, symbol)
}

// AccountAssets is account_assets:{account}, the assets an account holds.
func (r *Registry) AccountAssets(account string) (Key, error) {
	return r.Key(KindAccountAssets, account)
}

// RESTWeight is rest_weight:{egress}, the REST weight budget shared by the
// nodes egressing as egress.
func (r *Registry) RESTWeight(egress string) (Key, error) { return r.Key(KindRESTWeight, egress) }

// RESTCooldown is rest_cooldown:{egress}, the 429/418 cooldown shared by
// the nodes egressing as egress. Write it with the exchange's Retry-After
// (Key.WithTTL); the kind's TTL is for a refusal without one.
func (r *Registry) RESTCooldown(egress string) (Key, error) { return r.Key(KindRESTCooldown, egress) }

// must builds a built-in key without parts; New registered it.
func (r *Registry) must(kind string) Key {
	k, err := r.Key(kind)
	if err != nil {
		panic(err) // unreachable: built-in kinds are registered by New
	}
	return k
}

// Table renders every kind, its Redis type ("internal" for keys only the
// project's own protocols write), key pattern (prefix included), TTL, the
// largest value read (MAX: per member of a sorted set, per field of a hash),
// its hash tag under cluster naming (SLOT) and value format, the naming, and the kline TTL of each interval. It is the golden
// file's content and what `tradecache keys kinds` prints.
func (r *Registry) Table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tTYPE\tKEY\tTTL\tMAX\tSLOT\tVALUE")
	for _, k := range r.sortedKinds() {
		typ := k.RedisType()
		if k.Internal {
			typ += ",internal"
		}
		slot := k.Slot
		switch {
		case k.Name == KindLeaderEpoch:
			slot = "the lease's"
		case slot == "":
			slot = k.Name
		}
		front := ""
		if r.hashTags && !strings.HasPrefix(slot, "{") {
			front = "{" + slot + "}:"
			if k.Name == KindLeaderEpoch {
				front = "{lease's tag}:"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s%s\t%s\t%s\t%s\t%s\n", k.Name, typ, r.prefix, front, k.Pattern, k.TTL, FormatSize(r.maxValueOf(k)), slot, k.Value)
	}
	tw.Flush()
	if r.hashTags {
		b.WriteString("\nNAMING cluster: each key carries its SLOT as a Redis Cluster hash tag, a placeholder's value in braces (market:kline:{BTCUSDT}:1m) or a word in front ({market}:market_ws_leader)\n")
	} else {
		b.WriteString("\nNAMING standard: the names above; SLOT is the hash tag each kind takes under cluster naming (--key-naming cluster)\n")
	}
	b.WriteString("\nKLINE INTERVAL TTL\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, iv := range Intervals() {
		ttl, _ := r.KlineTTL(iv)
		fmt.Fprintf(tw, "%s\t%s\n", iv, ttl)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nMAX VALUE CAP %s\n", FormatSize(r.maxValue))
	fmt.Fprintf(&b, "\nCHANNEL %s\n", r.prefix+r.channel)
	return b.String()
}

// FormatSize writes a byte count the way ParseSize reads it: "4KiB",
// "1MiB", or bytes ("1500B") when it is not a whole number of KiB.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ParseSize reads a byte count: a number of bytes ("65536", "65536B") or
// of KiB or MiB ("64KiB", "1MiB"; KB and MB are taken as the same
// powers of two).
func ParseSize(s string) (int, error) {
	num, mult := strings.TrimSpace(s), 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"B", 1}} {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > math.MaxInt32/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes, KiB or MiB (\"65536\", \"64KiB\", \"1MiB\")", s)
	}
	return n * mult, nil
}

// MarketWSGroup is market_ws_leader:{group}, the lease of one stream group
// when the market streams are cut into several (group: "g0", "g1", …).
func (r *Registry) MarketWSGroup(group string) (Key, error) {
	return r.Key(KindMarketWSGroup, group)
}

// MarketNodes is market_nodes, the heartbeats of the nodes sharing the
// stream groups.
func (r *Registry) MarketNodes() Key { return r.must(KindMarketNodes) }
