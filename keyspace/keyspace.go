// Package keyspace is the one registry of every Redis key pattern, pub/sub
// channel and TTL that tradecache writes, the Go form of a trading system's
// redis_ttl.py: no other package spells a key.
//
// A Key is only obtainable from a Registry, and it carries the TTL of its
// kind, so the write APIs of this project (cache.Set and friends) cannot
// write a key without an expiry: a zero Key, or a kind declared with a zero
// or negative TTL, is an error, never "forever".
//
// The defaults are the trading system's table:
//
//	kind              key                                TTL
//	positions         ats:positions:cache                300 s
//	balance           ats:balance:cache:{ASSET}          300 s
//	kline             market:kline:{SYMBOL}:{interval}   max(600 s, 2 × interval), at most 48 h
//	ticker_24h        ticker_24h:{SYMBOL}                30 s
//	market_ticker_24h market:ticker_24h                  120 s
//	book_ticker       market:book_ticker                 30 s
//	symbol_info       symbol_info:{SYMBOL}               3600 s
//	listen_key        listen_key:{account}               3300 s
//	market_ws_leader  market_ws_leader                   30 s
//	account_leader    account_leader:{account}           30 s
//	leader_epoch      leader_epoch:{lease}               7 days, refreshed while anyone leads
//	exchange_info     exchange_info                      3600 s
//	unknown_symbol    unknown_symbol:{SYMBOL}            60 s
//	account_assets    account_assets:{account}           300 s
//	rest_weight       rest_weight:{egress}               120 s
//	rest_cooldown     rest_cooldown:{egress}             the exchange's Retry-After (120 s without one)
//	market_ws_group   market_ws_leader:{group}           30 s (one stream group's lease, several groups only)
//	market_nodes      market_nodes                       30 s, refreshed by every heartbeat
//
// An optional global prefix (Config.Prefix) is prepended to every key and
// channel so several deployments can share one Redis. TTLs are overridable
// per kind (Config.TTL). A program embedding tradecache declares its own
// kinds with Register, each with its TTL, and builds keys for them with Key.
//
// Every kind also bounds what is read from its keys (Kind.MaxValue: 4 KiB
// for a kline member, a ticker, a book ticker field or a balance, 64 KiB
// for a symbol's exchangeInfo entry, 1 MiB for the positions, 1 KiB for a
// listen key, a lease or an epoch), and the registry caps them all
// (Config.MaxValue, DefaultMaxValue by default). A Key carries its limit
// (Key.MaxValue) like its TTL, so readers check a value's size in Redis
// before fetching it: a value written by hand, however large, never
// reaches a node's memory.
//
// Parts substituted into a pattern ({SYMBOL}, {ASSET}, …) are validated:
// empty parts, and parts holding ':', white space, control characters or the
// glob metacharacters SCAN patterns use (* ? [ ] \) are rejected, so a key
// always parses back into the kind and parts it was built from.
package keyspace

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind names of the built-in key kinds.
const (
	KindPositions       = "positions"
	KindBalance         = "balance"
	KindKline           = "kline"
	KindTicker24h       = "ticker_24h"
	KindMarketTicker24h = "market_ticker_24h"
	KindBookTicker      = "book_ticker"
	KindSymbolInfo      = "symbol_info"
	KindListenKey       = "listen_key"
	KindMarketWSLeader  = "market_ws_leader"
	KindLeaderEpoch     = "leader_epoch"
	KindAccountLeader   = "account_leader"
	KindExchangeInfo    = "exchange_info"
	KindUnknownSymbol   = "unknown_symbol"
	KindAccountAssets   = "account_assets"
	KindRESTWeight      = "rest_weight"
	KindRESTCooldown    = "rest_cooldown"
	KindSlotFence       = "slot_fence"
	// KindMarketWSGroup is the lease of one stream group when the streams
	// are cut into several; KindMarketNodes the membership of the nodes
	// that share them.
	KindMarketWSGroup = "market_ws_group"
	KindMarketNodes   = "market_nodes"
)

// MaxPartLen bounds one substituted part of a key.
const MaxPartLen = 128

// Kline TTL policy: the kline kind's TTL is a floor; an interval keeps its
// key for two bars, but never more than KlineTTLCap.
const (
	klineBars   = 2
	KlineTTLCap = 48 * time.Hour
)

// ErrInvalidPart reports a key part that cannot be used in a key.
var ErrInvalidPart = errors.New("keyspace: invalid key part")

// ErrNoTTL reports a zero or negative TTL where one is required.
var ErrNoTTL = errors.New("keyspace: a Redis key needs a positive TTL")

// Kind declares one family of keys.
type Kind struct {
	// Name identifies the kind ("balance"); lower-case letters, digits, '_'.
	Name string
	// Pattern is the key with {placeholders} for its parts, without the
	// global prefix: "ats:balance:cache:{ASSET}". A placeholder written in
	// upper case ({SYMBOL}) has its value upper-cased when a key is built.
	Pattern string
	// TTL is the expiry of every key of the kind; it must be positive.
	TTL time.Duration
	// Value documents the value format, for the README and non-Go readers.
	Value string
	// Type is the Redis type the project keeps the key in; "" is a string.
	// Writing a key in another type breaks its readers and writers
	// (WRONGTYPE), so tools that write by hand must respect it.
	Type string
	// Internal marks a key of the project's own protocols (a lease, an
	// epoch counter): written only by the code that owns it, never by hand.
	Internal bool
	// MaxValue bounds, in bytes, what the project reads from one key of
	// the kind: a string's value, one member of a sorted set, one field's
	// value of a hash. Readers check the size in Redis before fetching and
	// refuse (or skip) a larger value, so it never crosses the wire. 0
	// takes the registry's cap (Config.MaxValue), which also bounds every
	// kind's own limit.
	MaxValue int
	// Slot chooses the hash tag of the kind's keys under cluster naming
	// (Config.HashTags): one of the pattern's placeholders, written with
	// its braces ("{SYMBOL}": the part's value becomes the tag,
	// "market:kline:{BTCUSDT}:1m"), or a word that cluster naming puts
	// in front of the key ("market": "{market}:market_ws_leader"). Keys
	// that one script touches share a tag, so they share a slot. Empty:
	// the kind's name is the word. Standard naming ignores it.
	Slot string
}

// Redis types of key kinds.
const (
	TypeString = "string"
	TypeZSet   = "zset"
	TypeHash   = "hash"
)

// RedisType is the Redis type of k's keys.
func (k Kind) RedisType() string {
	if k.Type == "" {
		return TypeString
	}
	return k.Type
}

// Key is a validated Redis key together with the TTL it must be written
// with and the largest value it may be read with. The zero Key is invalid;
// obtain keys from a Registry.
type Key struct {
	name     string
	kind     string
	ttl      time.Duration
	maxValue int
}

// Name is the full key, prefix included.
func (k Key) Name() string { return k.name }

// String is the full key, prefix included.
func (k Key) String() string { return k.name }

// Kind is the name of the key's kind.
func (k Key) Kind() string { return k.kind }

// TTL is the expiry the key must be written with.
func (k Key) TTL() time.Duration { return k.ttl }

// MaxValue is the largest value, in bytes, read from the key (for a sorted
// set, one member; for a hash, one field's value): its kind's MaxValue
// bounded by the registry's cap. A zero Key has none (0).
func (k Key) MaxValue() int { return k.maxValue }

// Valid reports whether k came from a Registry with a positive TTL.
func (k Key) Valid() error {
	if k.name == "" {
		return errors.New("keyspace: zero Key (build keys with a Registry)")
	}
	if k.ttl <= 0 {
		return fmt.Errorf("%w: key %q has TTL %v", ErrNoTTL, k.name, k.ttl)
	}
	return nil
}

// WithTTL returns k with another TTL. A zero or negative ttl is an error.
func (k Key) WithTTL(ttl time.Duration) (Key, error) {
	if ttl <= 0 {
		return Key{}, fmt.Errorf("%w: key %q with TTL %v", ErrNoTTL, k.name, ttl)
	}
	if k.name == "" {
		return Key{}, k.Valid()
	}
	k.ttl = ttl
	return k, nil
}

// Config adjusts the defaults.
type Config struct {
	// Prefix is prepended to every key and channel ("" by default; "prod:"
	// to share one Redis between deployments).
	Prefix string
	// TTL overrides the TTL of a kind by name. For "kline" it is the floor
	// of the per-interval TTL.
	TTL map[string]time.Duration
	// Channel is the pub/sub channel pattern; "{APP_PORT}:channel:1" by
	// default (Jesse's), where {APP_PORT} is replaced by Channel's argument.
	Channel string
	// HashTags selects cluster naming: every key carries a Redis Cluster
	// hash tag (Kind.Slot), so the keys one script touches — a lease and
	// its epoch, a series and its slot fence — hash to one slot. Off (the
	// default, standard naming), keys are the trading system's names, which a
	// single Redis or a Sentinel-managed one needs. Every process sharing
	// a Redis must use the same naming.
	HashTags bool
	// MaxValue caps, in bytes, every value read from Redis: the MaxValue
	// of a kind that declares none, and a bound on those that do
	// (DefaultMaxValue, 1 MiB, when 0). Less than MinMaxValue is an error:
	// the project's own records would no longer fit.
	MaxValue int
}

// DefaultChannel is Jesse's event channel pattern.
const DefaultChannel = "{APP_PORT}:channel:1"

// DefaultAppPort fills DefaultChannel when a deployment names no APP_PORT
// (Jesse's default), so every process of one deployment meets on
// "9000:channel:1" whatever ports its HTTP servers listen on.
const DefaultAppPort = "9000"

// DefaultMaxValue is the registry's cap on a value read from Redis when
// Config.MaxValue is 0; MinMaxValue the smallest cap allowed, the limit of
// a kline member or a ticker.
const (
	DefaultMaxValue = 1 << 20
	MinMaxValue     = maxRecord
)

// Size limits of the built-in kinds: a kline, a ticker or a book ticker
// is a few hundred bytes of JSON; a symbol's exchangeInfo entry a few KB;
// the positions of a large account a few hundred KB.
const (
	maxSmall      = 1 << 10  // a listen key, a lease, an epoch
	maxRecord     = 4 << 10  // a kline, a ticker, a book ticker, a balance
	maxSymbolInfo = 64 << 10 // an exchangeInfo entry
	maxPositions  = 1 << 20  // every position of an account
)

// Defaults returns the table of built-in kinds.
func Defaults() []Kind {
	return []Kind{
		{Name: KindPositions, Slot: "account", Pattern: "ats:positions:cache", TTL: 300 * time.Second, MaxValue: maxPositions, Value: "JSON array of open positions with positionRisk's names (symbol, positionSide, positionAmt, entryPrice, breakEvenPrice, unRealizedProfit, marginType, isolatedWallet, updateTime)"},
		{Name: KindBalance, Slot: "account", Pattern: "ats:balance:cache:{ASSET}", TTL: 300 * time.Second, MaxValue: maxRecord, Value: "JSON object: asset, walletBalance, crossWalletBalance, availableBalance (as of the last REST seed), updateTime"},
		{Name: KindKline, Slot: "{SYMBOL}", Pattern: "market:kline:{SYMBOL}:{interval}", TTL: 600 * time.Second, Type: TypeZSet, MaxValue: maxRecord, Value: "sorted set: score = open time (ms), member = JSON kline with Binance's letters {s,i,t,T,o,h,l,c,v,q,n,V,Q,x}; the last Window klines"},
		{Name: KindTicker24h, Slot: "{SYMBOL}", Pattern: "ticker_24h:{SYMBOL}", TTL: 30 * time.Second, MaxValue: maxRecord, Value: "string: JSON 24hr ticker of one symbol (REST /fapi/v1/ticker/24hr field names)"},
		{Name: KindMarketTicker24h, Slot: "market", Pattern: "market:ticker_24h", TTL: 120 * time.Second, Type: TypeHash, MaxValue: maxRecord, Value: "hash: symbol → JSON 24hr ticker (REST field names), the whole market"},
		{Name: KindBookTicker, Slot: "market", Pattern: "market:book_ticker", TTL: 30 * time.Second, Type: TypeHash, MaxValue: maxRecord, Value: "hash: symbol → JSON book ticker {symbol,bidPrice,bidQty,askPrice,askQty,updateId,eventTime,transactTime}"},
		{Name: KindSymbolInfo, Slot: "{SYMBOL}", Pattern: "symbol_info:{SYMBOL}", TTL: 3600 * time.Second, MaxValue: maxSymbolInfo, Value: "JSON object: the symbol's entry of Binance exchangeInfo"},
		{Name: KindListenKey, Slot: "account", Pattern: "listen_key:{account}", TTL: 3300 * time.Second, MaxValue: maxSmall, Value: "string: the user data stream listenKey"},
		{Name: KindMarketWSLeader, Slot: "market", Pattern: "market_ws_leader", TTL: 30 * time.Second, Internal: true, MaxValue: maxSmall, Value: `JSON object {"node":id,"epoch":n,"nonce":hex}: the market stream leader's lease`},
		{Name: KindAccountLeader, Slot: "account", Pattern: "account_leader:{account}", TTL: 30 * time.Second, Internal: true, MaxValue: maxSmall, Value: `JSON object {"node":id,"epoch":n,"nonce":hex}: the lease of the node holding an account's user data stream`},
		{Name: KindLeaderEpoch, Pattern: "leader_epoch:{lease}", TTL: 7 * 24 * time.Hour, Internal: true, MaxValue: maxSmall, Value: "integer: fencing epoch counter of a lease, incremented on every acquisition; refreshed while anyone leads"},
		{Name: KindExchangeInfo, Slot: "market", Pattern: "exchange_info", TTL: 3600 * time.Second, Type: TypeHash, MaxValue: maxSymbolInfo, Value: "hash: symbol → the symbol's entry of Binance exchangeInfo (JSON), every listed symbol: one fetch serves every node; symbols are validated against it"},
		{Name: KindUnknownSymbol, Slot: "{SYMBOL}", Pattern: "unknown_symbol:{SYMBOL}", TTL: 60 * time.Second, MaxValue: maxSmall, Value: `string: {"code":-1121,"msg":"Invalid symbol."}: the exchange does not list the symbol (negative cache)`},
		{Name: KindAccountAssets, Slot: "account", Pattern: "account_assets:{account}", TTL: 300 * time.Second, MaxValue: maxSymbolInfo, Value: "JSON array of the assets the account holds (the last REST snapshot plus assets an ACCOUNT_UPDATE added); an asset not in it has no balance"},
		{Name: KindRESTWeight, Slot: "{egress}", Pattern: "rest_weight:{egress}", TTL: 120 * time.Second, Type: TypeHash, Internal: true, MaxValue: maxSmall, Value: "hash {window, used}: REST request weight used in the current UTC minute (window = unix minute of Redis's clock) by every node egressing as {egress}"},
		{Name: KindRESTCooldown, Slot: "{egress}", Pattern: "rest_cooldown:{egress}", TTL: 120 * time.Second, Internal: true, MaxValue: maxSmall, Value: "string: HTTP status (429 or 418) of the exchange's refusal; no node egressing as {egress} sends a REST request while it exists; TTL = the Retry-After"},
		{Name: KindSlotFence, Pattern: "slot_fence:{tag}:{lease}", Slot: "{tag}", TTL: 7 * 24 * time.Hour, Internal: true, MaxValue: maxSmall, Value: "string \"epoch:nonce\": under cluster naming, the newest term of lease {lease} that wrote the slot of hash tag {tag}; a fenced write of an older term is refused; refreshed by every fenced write"},
		{Name: KindMarketWSGroup, Slot: "{group}", Pattern: "market_ws_leader:{group}", TTL: 30 * time.Second, Internal: true, MaxValue: maxSmall, Value: `JSON object {"node":id,"epoch":n,"nonce":hex}: the lease of one stream group (g0, g1, …) when the market streams are cut into several; one group keeps market_ws_leader`},
		{Name: KindMarketNodes, Pattern: "market_nodes", TTL: 30 * time.Second, Type: TypeZSet, Internal: true, MaxValue: maxSmall, Value: "sorted set: member = node id, score = its last heartbeat (ms, Redis's clock): the nodes sharing the stream groups; members older than the TTL are dropped on every heartbeat"},
	}
}

// Registry holds the kinds of one deployment. It is safe for concurrent use.
type Registry struct {
	prefix   string
	hashTags bool // cluster naming (Config.HashTags)
	channel  string
	maxValue int                      // the cap on every value read
	ttl      map[string]time.Duration // overrides, read-only after New

	mu    sync.RWMutex // guards kinds and order
	kinds map[string]*compiled
	order []string
}

type compiled struct {
	Kind
	segs []segment
	// Under cluster naming: the index of the segment whose value is the
	// hash tag, or -1 when the tag is the word tag, put in front.
	slotSeg int
	tag     string
}

// segment is one ':'-separated piece of a pattern: a literal or a placeholder.
type segment struct {
	lit    string
	param  string // placeholder name, without braces
	upper  bool   // upper-case the value (placeholder written in upper case)
	braced bool   // under cluster naming, the value is written in braces (a hash tag)
}

// New returns a Registry with the default kinds and cfg applied.
func New(cfg Config) (*Registry, error) {
	if err := validPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.HashTags && strings.ContainsAny(cfg.Prefix, "{}") {
		// Redis hashes the first {…} of a key: a brace in the prefix would
		// put every key in one slot, or split the keys one script touches.
		return nil, fmt.Errorf("keyspace: prefix %q holds a brace, which cluster naming reserves for hash tags", cfg.Prefix)
	}
	ch := cfg.Channel
	if ch == "" {
		ch = DefaultChannel
	}
	if err := validPrefix(ch); err != nil {
		return nil, fmt.Errorf("keyspace: channel: %w", err)
	}
	maxValue := cfg.MaxValue
	switch {
	case maxValue == 0:
		maxValue = DefaultMaxValue
	case maxValue < MinMaxValue:
		return nil, fmt.Errorf("keyspace: MaxValue %d is below %d bytes, the size limit of a kline or a ticker", cfg.MaxValue, MinMaxValue)
	}
	r := &Registry{prefix: cfg.Prefix, hashTags: cfg.HashTags, channel: ch, maxValue: maxValue, ttl: map[string]time.Duration{}, kinds: map[string]*compiled{}}
	for name, ttl := range cfg.TTL {
		if ttl <= 0 {
			return nil, fmt.Errorf("%w: TTL override for kind %q is %v", ErrNoTTL, name, ttl)
		}
		r.ttl[name] = ttl
	}
	for _, k := range Defaults() {
		if err := r.Register(k); err != nil {
			return nil, err
		}
	}
	for name := range cfg.TTL {
		if _, ok := r.kinds[name]; !ok {
			return nil, fmt.Errorf("keyspace: TTL override for unknown kind %q", name)
		}
	}
	return r, nil
}

// MustNew is New for configurations known to be valid (tests, examples).
func MustNew(cfg Config) *Registry {
	r, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return r
}

// Prefix is the global prefix.
func (r *Registry) Prefix() string { return r.prefix }

// HashTags reports whether keys are named for Redis Cluster
// (Config.HashTags).
func (r *Registry) HashTags() bool { return r.hashTags }

// Register declares a kind. Its name must be new, its pattern well formed,
// its TTL positive (or overridden by Config.TTL) and its MaxValue not
// negative. Kinds declared by a program embedding tradecache get the same
// guarantees as the built-in ones.
func (r *Registry) Register(k Kind) error {
	if !validName(k.Name) {
		return fmt.Errorf("keyspace: register: invalid kind name %q (want [a-z0-9_]+)", k.Name)
	}
	if ttl, ok := r.ttl[k.Name]; ok {
		k.TTL = ttl
	}
	if k.TTL <= 0 {
		return fmt.Errorf("keyspace: register %q: %w (got %v)", k.Name, ErrNoTTL, k.TTL)
	}
	if k.MaxValue < 0 {
		return fmt.Errorf("keyspace: register %q: MaxValue %d is negative", k.Name, k.MaxValue)
	}
	segs, err := compilePattern(k.Pattern)
	if err != nil {
		return fmt.Errorf("keyspace: register %q: %w", k.Name, err)
	}
	c := &compiled{Kind: k, segs: segs, slotSeg: -1, tag: k.Name}
	switch param, isParam := strings.CutPrefix(k.Slot, "{"); {
	case isParam:
		param, _ = strings.CutSuffix(param, "}")
		c.slotSeg = slices.IndexFunc(segs, func(s segment) bool { return s.param == param })
		if c.slotSeg < 0 || k.Slot != "{"+param+"}" {
			return fmt.Errorf("keyspace: register %q: slot %q is not a placeholder of pattern %q", k.Name, k.Slot, k.Pattern)
		}
	case k.Slot != "":
		if err := ValidPart(k.Slot); err != nil {
			return fmt.Errorf("keyspace: register %q: slot: %w", k.Name, err)
		}
		c.tag = k.Slot
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[k.Name]; dup {
		return fmt.Errorf("keyspace: register: kind %q already registered", k.Name)
	}
	for _, other := range r.kinds {
		if samePattern(other.segs, segs) || sameClusterPattern(clusterSegs(other), clusterSegs(c)) {
			return fmt.Errorf("keyspace: register %q: pattern %q collides with kind %q (%q)", k.Name, k.Pattern, other.Name, other.Pattern)
		}
	}
	r.kinds[k.Name] = c
	r.order = append(r.order, k.Name)
	return nil
}

// MaxValue is the cap on every value read (Config.MaxValue, or
// DefaultMaxValue).
func (r *Registry) MaxValue() int { return r.maxValue }

// maxValueOf is the effective size limit of k: its own, bounded by the cap.
func (r *Registry) maxValueOf(k Kind) int {
	if k.MaxValue == 0 {
		return r.maxValue
	}
	return min(k.MaxValue, r.maxValue)
}

// Kinds returns every registered kind in registration order.
func (r *Registry) Kinds() []Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Kind, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.kinds[n].Kind)
	}
	return out
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.kinds[name]
	if !ok {
		return Kind{}, false
	}
	return c.Kind, true
}

// Key builds a key of the named kind from its parts, in pattern order.
func (r *Registry) Key(kind string, parts ...string) (Key, error) {
	r.mu.RLock()
	c, ok := r.kinds[kind]
	r.mu.RUnlock()
	if !ok {
		return Key{}, fmt.Errorf("keyspace: unknown kind %q", kind)
	}
	return r.build(c, "", parts)
}

// build writes a key of c from parts; under cluster naming with the word
// tag in front (tag, or the kind's own when empty), or the slot
// placeholder's value in braces.
func (r *Registry) build(c *compiled, tag string, parts []string) (Key, error) {
	kind := c.Name
	var b strings.Builder
	b.Grow(len(r.prefix) + len(c.Pattern) + 20)
	b.WriteString(r.prefix)
	if r.hashTags && c.slotSeg < 0 {
		b.WriteByte('{')
		b.WriteString(cmp.Or(tag, c.tag))
		b.WriteString("}:")
	}
	n := 0
	for i, s := range c.segs {
		if i > 0 {
			b.WriteByte(':')
		}
		if s.param == "" {
			b.WriteString(s.lit)
			continue
		}
		if n >= len(parts) {
			return Key{}, fmt.Errorf("keyspace: kind %q needs %d parts, got %d", kind, c.params(), len(parts))
		}
		p := parts[n]
		n++
		if err := ValidPart(p); err != nil {
			return Key{}, fmt.Errorf("keyspace: kind %q {%s}: %w", kind, s.param, err)
		}
		if s.upper {
			p = strings.ToUpper(p)
		}
		if r.hashTags && i == c.slotSeg {
			p = "{" + p + "}"
		}
		b.WriteString(p)
	}
	if n != len(parts) {
		return Key{}, fmt.Errorf("keyspace: kind %q needs %d parts, got %d", kind, n, len(parts))
	}
	return Key{name: b.String(), kind: kind, ttl: c.TTL, maxValue: r.maxValueOf(c.Kind)}, nil
}

func (c *compiled) params() int {
	n := 0
	for _, s := range c.segs {
		if s.param != "" {
			n++
		}
	}
	return n
}

// Parse splits a full key name into its kind and parts. It is the inverse of
// Key: Parse(Key(kind, parts...).Name()) returns kind and the (normalised)
// parts.
func (r *Registry) Parse(name string) (kind string, parts []string, err error) {
	rest, ok := strings.CutPrefix(name, r.prefix)
	if !ok {
		return "", nil, fmt.Errorf("keyspace: parse %q: missing prefix %q", name, r.prefix)
	}
	all := strings.Split(rest, ":")
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, n := range r.order {
		c := r.kinds[n]
		segs := all
		if r.hashTags && c.slotSeg < 0 {
			// The word tag in front: the kind's, or any for the epoch
			// counter, which takes its lease's.
			tag, ok := untag(segs[0])
			if !ok || (tag != c.tag && c.Name != KindLeaderEpoch) {
				continue
			}
			segs = segs[1:]
		}
		if len(c.segs) != len(segs) {
			continue
		}
		var ps []string
		match := true
		for i, s := range c.segs {
			if r.hashTags && i == c.slotSeg {
				v, ok := untag(segs[i])
				if !ok {
					match = false
					break
				}
				segs = slices.Clone(segs)
				segs[i] = v
			}
			if s.param == "" {
				if segs[i] != s.lit {
					match = false
					break
				}
				continue
			}
			if ValidPart(segs[i]) != nil || (s.upper && strings.ToUpper(segs[i]) != segs[i]) {
				match = false
				break
			}
			ps = append(ps, segs[i])
		}
		if match {
			return c.Name, ps, nil
		}
	}
	return "", nil, fmt.Errorf("keyspace: parse %q: no registered kind matches", name)
}

// ScanPattern is the SCAN MATCH glob for every key of a kind ("market:kline:*:*").
func (r *Registry) ScanPattern(kind string) (string, error) {
	r.mu.RLock()
	c, ok := r.kinds[kind]
	r.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("keyspace: unknown kind %q", kind)
	}
	parts := make([]string, len(c.segs))
	for i, s := range c.segs {
		switch {
		case r.hashTags && i == c.slotSeg:
			parts[i] = "{*}"
		case s.param != "":
			parts[i] = "*"
		default:
			parts[i] = globEscape(s.lit)
		}
	}
	front := ""
	if r.hashTags && c.slotSeg < 0 {
		front = "{" + globEscape(c.tag) + "}:"
		if c.Slot == "" && c.Name == KindLeaderEpoch {
			front = "{*}:"
		}
	}
	return globEscape(r.prefix) + front + strings.Join(parts, ":"), nil
}

// untag returns what a "{tag}" segment holds.
func untag(seg string) (string, bool) {
	v, ok := strings.CutPrefix(seg, "{")
	if !ok {
		return "", false
	}
	v, ok = strings.CutSuffix(v, "}")
	return v, ok && v != "" && ValidPart(v) == nil
}

// HashTag is the part of a key Redis Cluster hashes to choose its slot:
// the text between the first '{' and the first '}' after it when not
// empty, else the whole key.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// Channel is the pub/sub channel for appPort ("8080:channel:1" by default).
func (r *Registry) Channel(appPort string) (string, error) {
	if err := ValidPart(appPort); err != nil {
		return "", fmt.Errorf("keyspace: channel app port: %w", err)
	}
	return r.prefix + strings.ReplaceAll(r.channel, "{APP_PORT}", appPort), nil
}

// ValidPart reports whether s can be substituted into a key pattern.
func ValidPart(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidPart)
	}
	if len(s) > MaxPartLen {
		return fmt.Errorf("%w: %d bytes long (max %d)", ErrInvalidPart, len(s), MaxPartLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidPart, s)
	}
	for _, c := range s {
		switch {
		case c == ':':
			return fmt.Errorf("%w: %q contains ':'", ErrInvalidPart, s)
		case unicode.IsSpace(c) || unicode.IsControl(c):
			return fmt.Errorf("%w: %q contains white space or a control character", ErrInvalidPart, s)
		case strings.ContainsRune(`*?[]\{}`, c):
			return fmt.Errorf("%w: %q contains %q", ErrInvalidPart, s, c)
		}
	}
	return nil
}

func validPrefix(p string) error {
	for _, c := range p {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return fmt.Errorf("keyspace: prefix %q contains white space or a control character", p)
		}
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("keyspace: prefix %q is not valid UTF-8", p)
	}
	return nil
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func compilePattern(p string) ([]segment, error) {
	if p == "" {
		return nil, errors.New("empty pattern")
	}
	var segs []segment
	seen := map[string]bool{}
	for _, s := range strings.Split(p, ":") {
		if name, ok := strings.CutPrefix(s, "{"); ok {
			name, ok = strings.CutSuffix(name, "}")
			if !ok || name == "" || strings.ContainsAny(name, "{}") {
				return nil, fmt.Errorf("malformed placeholder %q in pattern %q", s, p)
			}
			if seen[strings.ToLower(name)] {
				return nil, fmt.Errorf("placeholder {%s} twice in pattern %q", name, p)
			}
			seen[strings.ToLower(name)] = true
			segs = append(segs, segment{param: name, upper: strings.ToUpper(name) == name && strings.ToLower(name) != name})
			continue
		}
		if err := ValidPart(s); err != nil {
			return nil, fmt.Errorf("literal %q in pattern %q: %w", s, p, err)
		}
		segs = append(segs, segment{lit: s})
	}
	return segs, nil
}

// clusterSegs is the pattern of c's keys under cluster naming: with the
// word tag in front as a literal (the epoch counter's as a placeholder:
// it takes its lease's), and the slot placeholder braced.
func clusterSegs(c *compiled) []segment {
	segs := slices.Clone(c.segs)
	if c.slotSeg >= 0 {
		segs[c.slotSeg].braced = true
		return segs
	}
	front := segment{lit: "{" + c.tag + "}"}
	if c.Name == KindLeaderEpoch {
		front = segment{param: "tag", braced: true}
	}
	return append([]segment{front}, segs...)
}

// sameClusterPattern reports whether two cluster-named patterns could
// build the same key: a braced placeholder matches a braced literal or
// placeholder, any other placeholder what has no braces (parts hold none).
func sameClusterPattern(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	braced := func(s segment) bool { return s.braced || strings.HasPrefix(s.lit, "{") }
	for i := range a {
		switch {
		case a[i].param == "" && b[i].param == "":
			if a[i].lit != b[i].lit {
				return false
			}
		case braced(a[i]) != braced(b[i]):
			return false
		}
	}
	return true
}

// samePattern reports whether two patterns could build the same key.
func samePattern(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].param == "" && b[i].param == "" && a[i].lit != b[i].lit {
			return false
		}
	}
	return true
}

func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// sortedKinds is Kinds sorted by name, for stable output.
func (r *Registry) sortedKinds() []Kind {
	ks := r.Kinds()
	slices.SortFunc(ks, func(a, b Kind) int { return strings.Compare(a.Name, b.Name) })
	return ks
}
