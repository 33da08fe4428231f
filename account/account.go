// Package account keeps an exchange account's positions and balances in
// Redis from the exchange's user data stream: with Redis up they are written
// only to Redis, without it to the node's memory tier, and reads prefer Redis.
//
// One node per account holds the user data stream: the one holding the
// account's lease (account_leader:{account}, elected like the market stream
// leader, see package leader). It
//
//   - reuses the account's listenKey from listen_key:{account} (TTL 3300 s)
//     so every node shares one key, creates one when there is none, keeps
//     it alive every KeepAlive (30 min), and replaces it on -1125 or
//     listenKeyExpired;
//   - seeds positions and balances from REST (signed /fapi/v3/account and
//     /fapi/v3/positionRisk) at every (re)connection (the stream
//     reconnects too when a ping goes unanswered: a stalled exchange may
//     have lost events, which carry no sequence numbers), and again every
//     Reseed (2 min), so the keys (TTL 300 s) never expire under readers,
//     and once Redis answers again after failing: a master that failed
//     over may have lost writes it acknowledged (replication is
//     asynchronous), and no later delta would tell; also after a delta
//     whose write failed. A seed that fails (the REST call, or a write) is
//     retried after 1 s, doubling to 10 s, until one succeeds
//     (Stats.SeedRetries), not left to the next Reseed;
//   - merges each ACCOUNT_UPDATE into Redis: positions by (symbol, position
//     side) — the event is a delta, a symbol it does not mention is left
//     as it was, and a position keeps the positionRisk fields the stream
//     does not carry (markPrice, liquidationPrice, notional, margins…) from
//     the last seed — and each balance into its asset's key, keeping the
//     seed's availableBalance, which the stream lacks; flat positions are
//     removed; an asset the account did not hold joins the list of assets.
//     A delta that finds no stored positions or list of assets (expired,
//     lost with Redis, or holding what no reader could use: not JSON, not
//     an array of positions or asset names, over the key's limit, or a key
//     of another Redis type, which the fenced script deletes) cannot be
//     complete: it is written and a REST seed follows at once
//     (Stats.Unknown counts the positions');
//   - publishes order updates, positions and balances as events
//     (live.orders, live.positions, live.balance), and each seed as
//     live.account_snapshot (exchange.AccountSnapshot: every position and
//     balance), since a seed may carry changes no delta announced: a fill
//     while no node held the stream, or while the stream reconnected.
//
// Keys and values:
//
//	ats:positions:cache        JSON array of positions (REST positionRisk names), 300 s
//	ats:balance:cache:{ASSET}  JSON balance object, 300 s
//	account_assets:{account}   JSON array of the assets held (each seed's, plus new ones), 300 s
//
// With Redis, writes go only to Redis, through Lua scripts fenced by the
// lease: a deposed leader writes nothing. Readers use Redis first and the
// REST read-through on a miss, storing what they load only while no node
// holds the stream (its lease does not exist): a REST snapshot stored
// unfenced, or outside the holder's write lock, could overwrite a newer
// delta. A balance asked for an asset missing from
// account_assets:{account} is ErrNoBalance without a request: a junk
// asset costs Redis reads, not signed REST calls. With Redis down, the
// node holds the stream for itself and writes to the tiered cache's
// memory tier; readers read it there.
//
// The holder's REST calls (seeds, listenKey upkeep) run at System priority
// in the REST weight budget (package ratelimit), so read-throughs, at the
// caller's priority (User by default), never starve them.
//
// API keys and secrets never reach this package: the REST client holds
// them.
package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"
	"golang.org/x/sync/singleflight"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/lifecycle"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/ratelimit"
)

// UserStreamer runs an account's user data stream until ctx ends.
type UserStreamer interface {
	Run(ctx context.Context) error
}

// StreamFactory builds a user data stream. listenKey is called at each
// (re)connection; onConnect after each, when a gap may lie behind;
// onExpired when the exchange says the key expired.
type StreamFactory func(listenKey func(context.Context) (string, error), onEvent func(exchange.UserEvent), onConnect func(), onExpired func(key string)) (UserStreamer, error)

// EventPublisher publishes without blocking (bus.Redis.PublishAsync).
type EventPublisher interface {
	PublishAsync(name string, data any) error
}

// Config configures a Node.
type Config struct {
	Account     string        // account name in the keys (default "main")
	KeepAlive   time.Duration // listenKey keepalive (default 30 min)
	Reseed      time.Duration // REST re-seed period (default 2 min; under the keys' TTL)
	CallTimeout time.Duration // Redis calls (default 2 s); REST calls get 10 s
	Events      EventPublisher
	Logger      *slog.Logger
}

// Node holds the account role of a process.
type Node struct {
	cfg     Config
	keys    *keyspace.Registry
	cache   *cache.Cache
	rest    exchange.AccountREST
	streams StreamFactory
	elector *leader.Elector

	positionsKey, listenKeyKey keyspace.Key
	leaseKey, assetsKey        keyspace.Key
	sf                         singleflight.Group // REST loads by readers that do not store
	streaming                  atomic.Bool
	st                         Stats
}

// Stats are cumulative counters.
type Stats struct {
	Events      atomic.Uint64 // user events received
	Seeds       atomic.Uint64 // REST seeds written
	SeedRetries atomic.Uint64 // seeds made again because one failed (REST or a write)
	Writes      atomic.Uint64 // Redis/memory writes of positions or balances
	WriteErrors atomic.Uint64
	Fenced      atomic.Uint64
	KeyRenewals atomic.Uint64 // listenKeys created after an expiry or -1125
	Unknown     atomic.Uint64 // position deltas that found no usable stored positions (a REST seed follows)
	// RedisReseeds counts REST seeds made because Redis had failed (a
	// failover may have lost acknowledged writes).
	RedisReseeds atomic.Uint64
}

// New returns a Node; it does no I/O. elector is nil without Redis.
func New(cfg Config, keys *keyspace.Registry, c *cache.Cache, rest exchange.AccountREST, streams StreamFactory, elector *leader.Elector) (*Node, error) {
	if cfg.Account == "" {
		cfg.Account = "main"
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Minute
	}
	if cfg.Reseed <= 0 {
		cfg.Reseed = 2 * time.Minute
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lk, err := keys.ListenKey(cfg.Account)
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	lease, err := keys.AccountLeader(cfg.Account)
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	assets, err := keys.AccountAssets(cfg.Account)
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	return &Node{cfg: cfg, keys: keys, cache: c, rest: rest, streams: streams, elector: elector,
		positionsKey: keys.Positions(), listenKeyKey: lk, leaseKey: lease, assetsKey: assets}, nil
}

// Streaming reports whether this node holds the user data stream.
func (n *Node) Streaming() bool { return n.streaming.Load() }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.st }

// Run plays the node's account role until ctx ends: with Redis, campaign
// for the account lease and hold the stream when elected; without, hold it
// alone, writing to the memory tier.
func (n *Node) Run(ctx context.Context) error {
	lifecycle.Role{
		Redis:      n.cache.Redis,
		Elector:    n.elector,
		Standalone: func(ctx context.Context) error { return n.hold(ctx, memWriter{n}) },
		Lead: func(ctx context.Context, cl valkey.Client, t leader.Term) error {
			return n.hold(ctx, &redisWriter{n: n, cl: cl, fence: t.Fence})
		},
		Logger: n.cfg.Logger,
		Name:   "account",
	}.Run(ctx)
	return nil
}

// hold runs the user data stream and the keepalive and re-seed loops.
// Their REST calls are the node's own: System priority.
func (n *Node) hold(ctx context.Context, w writer) error {
	ctx = ratelimit.WithPriority(ctx, ratelimit.System)
	n.streaming.Store(true)
	defer n.streaming.Store(false)
	var mu sync.Mutex // serialises writes: stream events, seeds
	var current string
	listenKey := func(ctx context.Context) (string, error) {
		k, err := n.listenKey(ctx)
		mu.Lock()
		current = k
		mu.Unlock()
		return k, err
	}
	// applied counts account updates written; a REST snapshot taken while
	// one arrived is older than Redis and must not replace it.
	var applied uint64
	// seed writes a REST snapshot; false when the REST call or a write
	// failed (not when fenced: the term is over), so the loop retries.
	seed := func() bool {
		for attempt := 0; attempt < 3; attempt++ {
			mu.Lock()
			before := applied
			mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			bs, ps, err := n.rest.Account(rctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					n.cfg.Logger.Warn("account: seed from REST failed", "err", err)
				}
				return false
			}
			mu.Lock()
			if applied != before {
				mu.Unlock()
				continue // an update landed meanwhile: take a fresher snapshot
			}
			perr := w.putPositions(ctx, ps, true)
			ok := n.write(ctx, perr)
			var berr error
			if ok {
				_, berr = w.putBalances(ctx, bs, true)
				ok = n.write(ctx, berr)
			}
			if ok {
				n.st.Seeds.Add(1)
				// The seed may hold changes no delta announced (a fill
				// while no node held the stream): say so. Published
				// under mu, like deltas, so events follow the writes'
				// order (publishing never blocks).
				n.publish("account_snapshot", exchange.AccountSnapshot{
					Positions: append([]exchange.Position{}, ps...), Balances: append([]exchange.Balance{}, bs...)})
			}
			mu.Unlock()
			return ok || leader.IsFenced(perr) || leader.IsFenced(berr)
		}
		return false
	}
	// seedReq asks the loop below for a REST seed; one queued at most.
	seedReq := make(chan struct{}, 1)
	requestSeed := func() {
		select {
		case seedReq <- struct{}{}:
		default:
		}
	}
	onEvent := func(ev exchange.UserEvent) {
		n.st.Events.Add(1)
		switch ev.Kind {
		case exchange.UserAccountUpdate:
			mu.Lock()
			perr := w.putPositions(ctx, ev.Account.Positions, false)
			if errors.Is(perr, errPositionsUnknown) {
				n.st.Unknown.Add(1)
				requestSeed()
				perr = nil
			}
			ok := n.write(ctx, perr)
			bs, err := w.putBalances(ctx, ev.Account.Balances, false)
			if errors.Is(err, errAssetsUnknown) {
				requestSeed()
				err = nil
			}
			ok = n.write(ctx, err) && ok
			if !ok && !leader.IsFenced(perr) && !leader.IsFenced(err) {
				// Redis may hold less than the exchange now (a shard
				// failing over): the next seed repairs it.
				requestSeed()
			}
			applied++
			if ok {
				n.publish("positions", ev.Account.Positions)
				n.publish("balance", bs) // as written: availableBalance carried
			}
			mu.Unlock()
		case exchange.UserOrderUpdate:
			n.publish("orders", ev.Order)
		}
	}
	onExpired := func(key string) {
		n.st.KeyRenewals.Add(1)
		n.forgetListenKey(ctx, key)
	}
	onConnect := requestSeed // a (re)connection asks for a seed
	st, err := n.streams(listenKey, onEvent, onConnect, onExpired)
	if err != nil {
		return fmt.Errorf("account: stream: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	keep := time.NewTicker(n.cfg.KeepAlive)
	defer keep.Stop()
	reseed := time.NewTicker(n.cfg.Reseed)
	defer reseed.Stop()
	// Redis failures since the last look; a seed follows once they stop.
	health := time.NewTicker(redisCheck)
	defer health.Stop()
	redisErrs, failed := n.cache.Stats().RedisErrors, false
	// A seed that failed is retried with backoff (1 s doubling to 10 s; a
	// seed costs 10 of the REST budget's 2,400 weight a minute) rather
	// than left to the next Reseed: until one succeeds, Redis may hold
	// positions the exchange has moved on from.
	var retry <-chan time.Time
	backoff := time.Duration(0)
	seedOrRetry := func() {
		if seed() {
			retry, backoff = nil, 0
			return
		}
		backoff = min(max(2*backoff, time.Second), 10*time.Second)
		retry = time.After(backoff)
	}
	for {
		select {
		case <-health.C:
			switch e := n.cache.Stats().RedisErrors; {
			case e != redisErrs:
				redisErrs, failed = e, true
			case failed && n.cache.Redis() != nil:
				failed = false
				n.st.RedisReseeds.Add(1)
				seedOrRetry()
			}
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-seedReq:
			seedOrRetry()
		case <-reseed.C:
			seedOrRetry()
		case <-retry:
			n.st.SeedRetries.Add(1)
			seedOrRetry()
		case <-keep.C:
			mu.Lock()
			k := current
			mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.rest.KeepAliveListenKey(rctx, k)
			cancel()
			if errors.Is(err, exchange.ErrListenKeyNotFound) {
				// The stream will hear listenKeyExpired or be refused; drop
				// the cached key so its reconnection creates a new one.
				n.st.KeyRenewals.Add(1)
				n.forgetListenKey(ctx, k)
				// The exchange may keep the old connection open but
				// silent: reconnect now, with a new key.
				if r, ok := st.(interface{ Reconnect() }); ok {
					r.Reconnect()
				}
			} else if err != nil {
				n.cfg.Logger.Warn("account: listenKey keepalive failed", "err", err)
			} else {
				n.cache.Set(ctx, n.listenKeyKey, []byte(k)) // refresh its TTL too
			}
		}
	}
}

// redisCheck is how often the holder looks for Redis failures (to seed
// from REST once they stop).
const redisCheck = 2 * time.Second

// listenKey returns the account's shared listenKey, creating one when
// none is cached.
func (n *Node) listenKey(ctx context.Context) (string, error) {
	if v, ok, err := n.cache.Get(ctx, n.listenKeyKey); err == nil && ok && len(v) > 0 {
		return string(v), nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	k, err := n.rest.CreateListenKey(rctx)
	if err != nil {
		return "", fmt.Errorf("account: create listenKey: %w", err)
	}
	if err := n.cache.Set(ctx, n.listenKeyKey, []byte(k)); err != nil {
		return "", fmt.Errorf("account: cache listenKey: %w", err)
	}
	return k, nil
}

// forgetListenKey deletes the cached key if it is still the expired one.
func (n *Node) forgetListenKey(ctx context.Context, key string) {
	if v, ok, err := n.cache.Get(ctx, n.listenKeyKey); err == nil && ok && string(v) == key {
		n.cache.Delete(ctx, n.listenKeyKey)
	}
}

// write counts a write's outcome; a fenced write is not retried.
func (n *Node) write(_ context.Context, err error) bool {
	switch {
	case err == nil:
		n.st.Writes.Add(1)
		return true
	case leader.IsFenced(err):
		n.st.Fenced.Add(1)
	default:
		n.st.WriteErrors.Add(1)
		n.cfg.Logger.Warn("account: write failed", "err", err)
	}
	return false
}

func (n *Node) publish(name string, v any) {
	if n.cfg.Events != nil {
		n.cfg.Events.PublishAsync(name, v)
	}
}

// writer puts positions and balances where readers find them.
type writer interface {
	// putPositions merges ps by (symbol, side), or replaces all
	// (snapshot). It returns errPositionsUnknown when a delta found no
	// stored positions (expired, or lost with Redis): it is written, but
	// the account's other positions must come from a REST seed.
	putPositions(ctx context.Context, ps []exchange.Position, snapshot bool) error
	// putBalances writes each balance to its asset's key, completing a
	// stream delta's with what the stored one has, and the assets to the
	// list: replacing it (snapshot) or adding to it. It returns the
	// balances as written, and errAssetsUnknown when a delta found no
	// stored list: it is written, but the list must come from a REST seed.
	putBalances(ctx context.Context, bs []exchange.Balance, snapshot bool) ([]exchange.Balance, error)
}

// storedListLua defines storedList(key, max, good): the JSON array key
// holds, or nil when it holds none a reader could use — no key, a key of
// another Redis type (deleted here, so the write that follows may set
// it), a value over max bytes (measured, not read), not JSON, not an
// array, or an element good refuses. Bad content reads as missing rather
// than failing every write until the next seed.
const storedListLua = `
local function storedList(key, max, good)
  local t = redis.call('TYPE', key).ok
  if t == 'none' then return nil end
  if t ~= 'string' then
    redis.call('DEL', key)
    return nil
  end
  if redis.call('STRLEN', key) > max then return nil end
  local ok, v = pcall(cjson.decode, redis.call('GET', key))
  if not ok or type(v) ~= 'table' then return nil end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return nil end
  for _, e in ipairs(v) do
    if not good(e) then return nil end
  end
  return v
end
`

// mergePositionsScript applies a delta (or a snapshot, ARGV[4] = '1') to
// the positions key: a position of the delta replaces the stored one's
// fields it carries and keeps the others (the REST-only ones). It returns
// the number of open positions, or -1 after a delta met no stored
// positions a reader could use (storedList, ARGV[5] the key's size limit;
// each a position with exchange.Position's JSON types): the account's
// other positions are unknown, and the caller re-seeds.
var mergePositionsScript = valkey.NewLuaScript(leader.FenceCheck + storedListLua + `
local function position(p)
  if type(p) ~= 'table' or type(p.symbol) ~= 'string' or type(p.positionSide) ~= 'string' then return false end
  for f, v in pairs(p) do
    if v ~= cjson.null then
      if f == 'updateTime' or f == 'adl' then
        if type(v) ~= 'number' or v ~= math.floor(v) then return false end
      elseif type(v) ~= 'string' then
        return false
      end
    end
  end
  return true
end
local cur = {}
local missing = false
if ARGV[4] ~= '1' then
  cur = storedList(KEYS[2], tonumber(ARGV[5]), position)
  if not cur then cur, missing = {}, true end
end
local idx = {}
for i, p in ipairs(cur) do idx[p.symbol .. '|' .. p.positionSide] = i end
for _, p in ipairs(cjson.decode(ARGV[3])) do
  local k = p.symbol .. '|' .. p.positionSide
  if idx[k] then
    for f, v in pairs(p) do cur[idx[k]][f] = v end
  else
    table.insert(cur, p); idx[k] = #cur
  end
end
local out = {}
for _, p in ipairs(cur) do
  if tonumber(p.positionAmt) ~= 0 then table.insert(out, p) end
end
if #out == 0 then
  redis.call('SET', KEYS[2], '[]', 'PX', ARGV[2])
else
  redis.call('SET', KEYS[2], cjson.encode(out), 'PX', ARGV[2])
end
if missing then return -1 end
return #out
`)

// mergeAssetsScript writes the list of assets held, sorted: the assets of
// ARGV[3] (a JSON array) added to the list, or replacing it (ARGV[4] ==
// '1', a snapshot). It returns the number of assets, or -1 after a delta
// met no stored list a reader could use (storedList, ARGV[5] the key's
// size limit; each element a string): the list written holds the delta's
// assets only, and the caller re-seeds.
var mergeAssetsScript = valkey.NewLuaScript(leader.FenceCheck + storedListLua + `
local seen, out = {}, {}
local function add(list)
  for _, a in ipairs(list) do
    if not seen[a] then seen[a] = true; table.insert(out, a) end
  end
end
local missing = false
if ARGV[4] ~= '1' then
  local cur = storedList(KEYS[2], tonumber(ARGV[5]), function(a) return type(a) == 'string' end)
  if cur then add(cur) else missing = true end
end
add(cjson.decode(ARGV[3]))
table.sort(out)
if #out == 0 then
  redis.call('SET', KEYS[2], '[]', 'PX', ARGV[2])
else
  redis.call('SET', KEYS[2], cjson.encode(out), 'PX', ARGV[2])
end
if missing then return -1 end
return #out
`)

// putBalanceScript writes one balance, fenced: KEYS[2] its key, ARGV[2]
// the balance (a JSON object), ARGV[3] the TTL (ms). With ARGV[5] (the
// asset) set, the balance is a stream delta's, without availableBalance:
// the stored balance's is carried into it, if the stored value is a string
// of at most ARGV[4] bytes (measured, not read, beyond) decoding to that
// asset's balance. Readers write balance keys too (a read-through), so the
// stored value is read in the script that replaces it. It returns the
// value written.
var putBalanceScript = valkey.NewLuaScript(leader.FenceCheck + `
local v = ARGV[2]
local max = tonumber(ARGV[4])
if ARGV[5] ~= '' and redis.call('TYPE', KEYS[2]).ok == 'string' and redis.call('STRLEN', KEYS[2]) <= max then
  local ok, old = pcall(cjson.decode, redis.call('GET', KEYS[2]))
  if ok and type(old) == 'table' and old.asset == ARGV[5] and type(old.availableBalance) == 'string' and old.availableBalance ~= '' then
    local carried = string.sub(v, 1, -2) .. ',"availableBalance":' .. cjson.encode(old.availableBalance) .. '}'
    if string.len(carried) <= max then v = carried end
  end
end
redis.call('SET', KEYS[2], v, 'PX', ARGV[3])
return v
`)

type redisWriter struct {
	n     *Node
	cl    valkey.Client
	fence leader.Fence
}

func (w *redisWriter) putPositions(ctx context.Context, ps []exchange.Position, snapshot bool) error {
	if len(ps) == 0 && !snapshot {
		return nil
	}
	if ps == nil {
		ps = []exchange.Position{}
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	snap := "0"
	if snapshot {
		snap = "1"
	}
	cctx, cancel := context.WithTimeout(ctx, w.n.cfg.CallTimeout)
	defer cancel()
	k := w.n.positionsKey
	fk, token, err := w.fence.For(k)
	if err != nil {
		return err
	}
	n, err := mergePositionsScript.Exec(cctx, w.cl, []string{fk, k.Name()}, []string{token, ms(k.TTL()), string(b), snap, strconv.Itoa(k.MaxValue())}).AsInt64()
	if err != nil {
		return fmt.Errorf("account: write %s: %w", k, err)
	}
	if n < 0 {
		return errPositionsUnknown
	}
	return nil
}

// errPositionsUnknown: a stream delta was applied to no stored positions.
var errPositionsUnknown = errors.New("account: positions delta on a missing key; re-seeding from REST")

// errAssetsUnknown: a stream delta's assets were added to no stored list
// of assets held.
var errAssetsUnknown = errors.New("account: assets delta on a missing list; re-seeding from REST")

func (w *redisWriter) putBalances(ctx context.Context, bs []exchange.Balance, snapshot bool) ([]exchange.Balance, error) {
	out := make([]exchange.Balance, 0, len(bs))
	for _, b := range bs {
		k, err := w.n.keys.Balance(b.Asset)
		if err != nil {
			return out, err
		}
		carry := ""
		if b.AvailableBalance == "" {
			// A stream delta: the script carries what it lacks from the
			// value it replaces.
			carry = b.Asset
		}
		v, _ := json.Marshal(b)
		fk, token, err := w.fence.For(k)
		if err != nil {
			return out, err
		}
		cctx, cancel := context.WithTimeout(ctx, w.n.cfg.CallTimeout)
		written, err := putBalanceScript.Exec(cctx, w.cl, []string{fk, k.Name()},
			[]string{token, string(v), ms(k.TTL()), strconv.Itoa(k.MaxValue()), carry}).AsBytes()
		cancel()
		if err != nil {
			return out, fmt.Errorf("account: write %s: %w", k, err)
		}
		var got exchange.Balance
		if json.Unmarshal(written, &got) == nil {
			b = got
		}
		out = append(out, b)
	}
	if len(bs) == 0 && !snapshot {
		return out, nil
	}
	b, _ := json.Marshal(assetsOf(bs))
	snap := "0"
	if snapshot {
		snap = "1"
	}
	k := w.n.assetsKey
	cctx, cancel := context.WithTimeout(ctx, w.n.cfg.CallTimeout)
	defer cancel()
	fk, token, err := w.fence.For(k)
	if err != nil {
		return out, err
	}
	n, err := mergeAssetsScript.Exec(cctx, w.cl, []string{fk, k.Name()}, []string{token, ms(k.TTL()), string(b), snap, strconv.Itoa(k.MaxValue())}).AsInt64()
	if err != nil {
		return out, fmt.Errorf("account: write %s: %w", k, err)
	}
	if n < 0 {
		return out, errAssetsUnknown
	}
	return out, nil
}

// carryBalance completes a balance from the stream, which has no
// availableBalance, with the one of the stored value cur (the last REST
// seed's, kept until the next seed recomputes it), so that no reader sees
// the field vanish after a fill. It is the memory tier's; in Redis,
// putBalanceScript does the same.
func carryBalance(b exchange.Balance, cur []byte) exchange.Balance {
	var old exchange.Balance
	if json.Unmarshal(cur, &old) == nil && old.Asset == b.Asset {
		b.AvailableBalance = old.AvailableBalance
	}
	return b
}

// assetsOf lists the assets of bs, sorted, without repeats.
func assetsOf(bs []exchange.Balance) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Asset)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// memWriter writes through the tiered cache while Redis is down (its
// memory tier); only this node writes then, so the merge needs no script.
type memWriter struct{ n *Node }

// errRedisBack stops a standalone write once Redis answers again: through
// the tiered cache it would land in Redis unfenced, racing the elected
// leader. The node rejoins the election instead.
var errRedisBack = errors.New("account: redis is back; standalone writes stop")

func (w memWriter) putPositions(ctx context.Context, ps []exchange.Position, snapshot bool) error {
	if w.n.cache.Redis() != nil {
		return errRedisBack
	}
	var cur []exchange.Position
	found := true
	if !snapshot {
		cur, found, _ = cache.GetJSON[[]exchange.Position](ctx, w.n.cache, w.n.positionsKey)
	}
	if err := cache.SetJSON(ctx, w.n.cache, w.n.positionsKey, mergePositions(cur, ps)); err != nil {
		return err
	}
	if !found {
		return errPositionsUnknown
	}
	return nil
}

func (w memWriter) putBalances(ctx context.Context, bs []exchange.Balance, snapshot bool) ([]exchange.Balance, error) {
	if w.n.cache.Redis() != nil {
		return nil, errRedisBack
	}
	out := make([]exchange.Balance, 0, len(bs))
	for _, b := range bs {
		k, err := w.n.keys.Balance(b.Asset)
		if err != nil {
			return out, err
		}
		if b.AvailableBalance == "" {
			if v, ok, _ := w.n.cache.Get(ctx, k); ok {
				b = carryBalance(b, v)
			}
		}
		if err := cache.SetJSON(ctx, w.n.cache, k, b); err != nil {
			return out, err
		}
		out = append(out, b)
	}
	if len(bs) == 0 && !snapshot {
		return out, nil
	}
	assets := assetsOf(bs)
	found := true
	if !snapshot {
		var cur []string
		cur, found, _ = cache.GetJSON[[]string](ctx, w.n.cache, w.n.assetsKey)
		assets = slices.Compact(slices.Sorted(slices.Values(append(cur, assets...))))
	}
	if err := cache.SetJSON(ctx, w.n.cache, w.n.assetsKey, assets); err != nil {
		return out, err
	}
	if !found {
		return out, errAssetsUnknown
	}
	return out, nil
}

// mergePositions applies a delta by (symbol, side) and drops flat ones —
// the same rule as the Lua script.
func mergePositions(cur, delta []exchange.Position) []exchange.Position {
	idx := map[string]int{}
	for i, p := range cur {
		idx[p.Symbol+"|"+p.PositionSide] = i
	}
	for _, p := range delta {
		if i, ok := idx[p.Symbol+"|"+p.PositionSide]; ok {
			cur[i] = mergePosition(cur[i], p)
		} else {
			idx[p.Symbol+"|"+p.PositionSide] = len(cur)
			cur = append(cur, p)
		}
	}
	out := []exchange.Position{}
	for _, p := range cur {
		if !isZero(p.PositionAmt) {
			out = append(out, p)
		}
	}
	return out
}

// mergePosition is p with the fields it does not carry (a stream delta
// has none of positionRisk's REST-only ones) taken from old.
func mergePosition(old, p exchange.Position) exchange.Position {
	keep := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	keep(&p.MarkPrice, old.MarkPrice)
	keep(&p.LiquidationPrice, old.LiquidationPrice)
	keep(&p.IsolatedMargin, old.IsolatedMargin)
	keep(&p.Notional, old.Notional)
	keep(&p.MarginAsset, old.MarginAsset)
	keep(&p.InitialMargin, old.InitialMargin)
	keep(&p.MaintMargin, old.MaintMargin)
	keep(&p.PositionInitialMargin, old.PositionInitialMargin)
	keep(&p.OpenOrderInitialMargin, old.OpenOrderInitialMargin)
	keep(&p.BidNotional, old.BidNotional)
	keep(&p.AskNotional, old.AskNotional)
	keep(&p.Leverage, old.Leverage)
	if p.ADL == nil {
		p.ADL = old.ADL
	}
	return p
}

func isZero(s string) bool {
	for _, c := range s {
		if c != '0' && c != '.' && c != '-' && c != '+' {
			return false
		}
	}
	return true
}

func ms(d time.Duration) string { return fmt.Sprint(d.Milliseconds()) }
