package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/keyspace"
)

// Defaults.
const (
	// DefaultLimit is the weight per minute the budget allows: Binance's
	// 2400 per IP, less room for tools it does not see.
	DefaultLimit = 2000
	// DefaultUserShare is the part of the window User requests may use.
	DefaultUserShare = 0.5
	// DefaultCallTimeout bounds each Redis call of the budget.
	DefaultCallTimeout = 250 * time.Millisecond
	// Window is the length of the counting window (aligned to the minute).
	Window = time.Minute
)

// Priority ranks a request against the budget.
type Priority int

const (
	// User is a read-through a user triggered: it may use Config.UserShare
	// of the window. The default of a context that names none.
	User Priority = iota
	// System is the node's own upkeep (backfill, account seeds, listenKey,
	// exchangeInfo): it may use the whole window.
	System
)

func (p Priority) String() string {
	if p == System {
		return "system"
	}
	return "user"
}

type priorityKey struct{}

// WithPriority returns ctx naming p as the priority of the REST requests
// made with it.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf is the priority ctx names; User when it names none.
func PriorityOf(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return User
}

// Refusal reasons.
const (
	ReasonBudget   = "budget"   // the window's weight for this priority is spent
	ReasonCooldown = "cooldown" // the exchange answered 429/418 and asked to wait
)

// Refusal is the error of a refused Acquire: nothing may be sent before
// RetryAt.
type Refusal struct {
	Reason   string // ReasonBudget or ReasonCooldown
	Priority Priority
	// Status is the exchange's status behind a cooldown (429 or 418);
	// 429 for a spent budget.
	Status int
	Until  time.Time // the next window, or the end of the cooldown
	// Weight is what the request asked; Used and Ceiling the window's
	// weight and this priority's ceiling (budget refusals).
	Weight, Used, Ceiling int
}

func (e *Refusal) Error() string {
	if e.Reason == ReasonCooldown {
		return fmt.Sprintf("REST cooldown after HTTP %d: nothing is sent until %s", e.Status, e.Until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("REST weight budget spent: %d of %d (%s) used this minute, request weight %d; next window at %s",
		e.Used, e.Ceiling, e.Priority, e.Weight, e.Until.UTC().Format(time.RFC3339))
}

// RetryAt is when the request may be tried again.
func (e *Refusal) RetryAt() time.Time { return e.Until }

// HTTPStatus is the status the refusal stands for: 429, or 418 during a
// ban.
func (e *Refusal) HTTPStatus() int { return e.Status }

// Config configures a Budget.
type Config struct {
	// Egress names the identity the exchange counts by (the IP requests
	// leave from); it is the {egress} of the keys. Required: a key part
	// (no ':', spaces or glob characters; see EgressOf).
	Egress string
	// Limit is the weight per minute System requests may use (default
	// DefaultLimit, 2000).
	Limit int
	// UserShare is the part of Limit User requests may use, in (0, 1]
	// (default DefaultUserShare, 0.5).
	UserShare float64
	// Keys builds rest_weight:{egress} and rest_cooldown:{egress}.
	Keys *keyspace.Registry
	// Redis returns the client to share the budget through, or nil while
	// Redis is unreachable (cache.Cache.Redis); nil: the budget is this
	// node's alone.
	Redis func() valkey.Client
	// CallTimeout bounds each Redis call (default 250 ms); a call that
	// fails is decided in memory.
	CallTimeout time.Duration
	// Logger gets one line per cooldown started, and one when Redis fails
	// and when it answers again (slog.Default() if nil).
	Logger *slog.Logger
}

// Budget is a REST weight budget. Its methods are safe for concurrent use.
type Budget struct {
	cfg       Config
	userLimit int
	weightKey keyspace.Key
	coolKey   keyspace.Key

	mu         sync.Mutex // guards the local view below and failing
	window     int64      // unix minute the local view belongs to
	used       int        // weight used in window, as known here
	coolUntil  time.Time  // end of the cooldown known here
	coolStatus int
	failing    bool // Redis failed since it last answered

	st stats
}

type stats struct {
	granted     [2]atomic.Uint64    // weight granted, by priority
	refused     [2][2]atomic.Uint64 // [reason: budget, cooldown][priority]
	cooldowns   [2]atomic.Uint64    // cooldowns started here: 429, 418
	redisErrors atomic.Uint64
	shared      atomic.Bool // the last decision was made on Redis
}

// New returns a Budget. It does no I/O.
func New(cfg Config) (*Budget, error) {
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.UserShare == 0 {
		cfg.UserShare = DefaultUserShare
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Limit < 1:
		return nil, fmt.Errorf("ratelimit: limit %d < 1", cfg.Limit)
	case cfg.UserShare <= 0 || cfg.UserShare > 1:
		return nil, fmt.Errorf("ratelimit: user share %v outside (0, 1]", cfg.UserShare)
	case cfg.Keys == nil:
		return nil, errors.New("ratelimit: no key registry")
	}
	b := &Budget{cfg: cfg, userLimit: max(1, int(float64(cfg.Limit)*cfg.UserShare))}
	b.st.shared.Store(cfg.Redis != nil)
	var err error
	if b.weightKey, err = cfg.Keys.RESTWeight(cfg.Egress); err != nil {
		return nil, fmt.Errorf("ratelimit: egress: %w", err)
	}
	if b.coolKey, err = cfg.Keys.RESTCooldown(cfg.Egress); err != nil {
		return nil, fmt.Errorf("ratelimit: egress: %w", err)
	}
	return b, nil
}

// EgressOf is the default egress identity of a REST base URL: its host
// and port, with characters a key part cannot hold replaced by '_'
// ("https://fapi.binance.com" → "fapi.binance.com", "http://127.0.0.1:9090"
// → "127.0.0.1_9090").
func EgressOf(baseURL string) string {
	host := baseURL
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		host = u.Host
	}
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "default"
	}
	return string(b[:min(len(b), keyspace.MaxPartLen)])
}

// Egress is the budget's egress identity.
func (b *Budget) Egress() string { return b.cfg.Egress }

// Ceiling is the weight per window requests of priority p may use.
func (b *Budget) Ceiling(p Priority) int {
	if p == System {
		return b.cfg.Limit
	}
	return b.userLimit
}

// Used is the weight used in the current window as this node knows it:
// the shared count at its last contact with Redis, what it spent alone
// since, and the exchange's header.
func (b *Budget) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.usedAt(time.Now())
}

func (b *Budget) usedAt(now time.Time) int {
	if minute(now) > b.window {
		return 0
	}
	return b.used
}

// CooldownUntil is the end of the cooldown this node knows of, or the zero
// time when none is in force.
func (b *Budget) CooldownUntil() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Now().Before(b.coolUntil) {
		return b.coolUntil
	}
	return time.Time{}
}

// Shared reports whether the budget's last decision was made on Redis
// (shared by every node) rather than in this node's memory.
func (b *Budget) Shared() bool { return b.st.shared.Load() }

func minute(t time.Time) int64 { return t.Unix() / 60 }

func nextWindow(t time.Time) time.Time { return t.Truncate(Window).Add(Window) }

func (b *Budget) redis() valkey.Client {
	if b.cfg.Redis == nil {
		return nil
	}
	return b.cfg.Redis()
}

// Acquire asks for weight before a request is sent, at the priority ctx
// names (PriorityOf). It returns the window the weight was counted in,
// for Observe, or a *Refusal (or ctx's error): then nothing may be sent.
// Weight 0 (requests the exchange does not weigh) is refused only during
// a cooldown.
func (b *Budget) Acquire(ctx context.Context, weight int) (int64, error) {
	weight = max(weight, 0)
	p := PriorityOf(ctx)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if cl := b.redis(); cl != nil {
		w, err := b.acquireShared(ctx, cl, weight, p)
		var r *Refusal
		switch {
		case err == nil || errors.As(err, &r):
			b.st.shared.Store(true)
			return w, b.count(weight, p, err)
		case ctx.Err() != nil:
			return 0, ctx.Err()
		}
		b.redisFailed(err)
	}
	b.st.shared.Store(false)
	w, err := b.acquireLocal(time.Now(), weight, p)
	return w, b.count(weight, p, err)
}

// count records a decision.
func (b *Budget) count(weight int, p Priority, err error) error {
	var r *Refusal
	switch {
	case err == nil:
		b.st.granted[p].Add(uint64(weight))
	case errors.As(err, &r) && r.Reason == ReasonCooldown:
		b.st.refused[1][p].Add(1)
	case r != nil:
		b.st.refused[0][p].Add(1)
	}
	return err
}

// acquireScript counts weight in the shared window; see the package
// comment. KEYS: rest_weight, rest_cooldown. ARGV: weight, ceiling, TTL of
// rest_weight (ms), the caller's window and its used weight in it, the ms
// left of the cooldown the caller knows (0: none) and its status. The
// caller's cooldown starts or extends the shared one as the cooldown
// script would. Returns {1, window, used, ms to the next window} when
// granted, {0, …} when the ceiling refuses, {-1, cooldown ms left,
// status} during a cooldown.
var acquireScript = valkey.NewLuaScript(`
local cd = redis.call('PTTL', KEYS[2])
local mine = tonumber(ARGV[6])
if mine > 0 and not (cd > 0 and cd > mine - 1000) then
  redis.call('SET', KEYS[2], ARGV[7], 'PX', mine)
  cd = mine
end
if cd > 0 then
  return {-1, cd, tonumber(redis.call('GET', KEYS[2])) or 429}
end
local t = redis.call('TIME')
local sec = tonumber(t[1])
local w = math.floor(sec / 60)
local left = 60000 - ((sec % 60) * 1000 + math.floor(tonumber(t[2]) / 1000))
local cur = redis.call('HMGET', KEYS[1], 'window', 'used')
local used = 0
if tonumber(cur[1]) == w then used = tonumber(cur[2]) or 0 end
local was = used
if tonumber(ARGV[4]) == w and tonumber(ARGV[5]) > used then used = tonumber(ARGV[5]) end
local weight = tonumber(ARGV[1])
local granted = weight == 0 or used + weight <= tonumber(ARGV[2])
if granted then used = used + weight end
if used ~= was or tonumber(cur[1]) ~= w then
  redis.call('HSET', KEYS[1], 'window', w, 'used', used)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if granted then return {1, w, used, left} end
return {0, w, used, left}
`)

func (b *Budget) acquireShared(ctx context.Context, cl valkey.Client, weight int, p Priority) (int64, error) {
	b.mu.Lock()
	fw, fu := b.window, b.used
	// A cooldown this node knows of (met while Redis was unreachable, or
	// whose write to Redis failed) goes with the call, like the weight: the
	// script refuses during it and starts it in Redis for every node.
	coolLeft, coolStatus := time.Until(b.coolUntil), b.coolStatus
	b.mu.Unlock()
	coolMs := int64(0)
	if coolLeft > 0 {
		coolMs = int64((coolLeft + time.Millisecond - 1) / time.Millisecond) // rounded up: never shorter
	}
	ceiling := b.Ceiling(p)
	cctx, cancel := context.WithTimeout(ctx, b.cfg.CallTimeout)
	defer cancel()
	vs, err := acquireScript.Exec(cctx, cl, []string{b.weightKey.Name(), b.coolKey.Name()}, []string{
		strconv.Itoa(weight), strconv.Itoa(ceiling), ms(b.weightKey.TTL()), strconv.FormatInt(fw, 10), strconv.Itoa(fu),
		strconv.FormatInt(coolMs, 10), strconv.Itoa(coolStatus),
	}).AsIntSlice()
	if err != nil {
		return 0, err
	}
	if len(vs) < 3 {
		return 0, fmt.Errorf("ratelimit: acquire: unexpected reply %v", vs)
	}
	b.redisAnswered()
	now := time.Now()
	if vs[0] == -1 {
		// The later of the shared cooldown and this node's: a shared one
		// within a second of this node's was not extended.
		b.mu.Lock()
		b.noteCooldown(int(vs[2]), now.Add(time.Duration(vs[1])*time.Millisecond))
		until, status := b.coolUntil, b.coolStatus
		b.mu.Unlock()
		return 0, &Refusal{Reason: ReasonCooldown, Priority: p, Status: status, Until: until, Weight: weight}
	}
	if len(vs) < 4 {
		return 0, fmt.Errorf("ratelimit: acquire: unexpected reply %v", vs)
	}
	w, used := vs[1], int(vs[2])
	b.mu.Lock()
	b.noteUsed(w, used)
	b.mu.Unlock()
	if vs[0] == 0 {
		return 0, &Refusal{Reason: ReasonBudget, Priority: p, Status: 429, Until: now.Add(time.Duration(vs[3]) * time.Millisecond),
			Weight: weight, Used: used, Ceiling: ceiling}
	}
	return w, nil
}

// acquireLocal decides in memory with the same rules.
func (b *Budget) acquireLocal(now time.Time, weight int, p Priority) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.coolUntil) {
		return 0, &Refusal{Reason: ReasonCooldown, Priority: p, Status: b.coolStatus, Until: b.coolUntil, Weight: weight}
	}
	if m := minute(now); m > b.window {
		b.window, b.used = m, 0
	}
	ceiling := b.Ceiling(p)
	if weight > 0 && b.used+weight > ceiling {
		return 0, &Refusal{Reason: ReasonBudget, Priority: p, Status: 429, Until: nextWindow(now), Weight: weight, Used: b.used, Ceiling: ceiling}
	}
	b.used += weight
	return b.window, nil
}

// noteUsed raises the local view to a figure of window w; the caller holds
// b.mu.
func (b *Budget) noteUsed(w int64, used int) {
	switch {
	case w > b.window:
		b.window, b.used = w, used
	case w == b.window:
		b.used = max(b.used, used)
	}
}

// noteCooldown extends the local cooldown; the caller holds b.mu. It
// reports whether the cooldown started or moved by more than a second.
func (b *Budget) noteCooldown(status int, until time.Time) bool {
	if !until.After(b.coolUntil) {
		return false
	}
	moved := until.Sub(b.coolUntil) > time.Second
	b.coolUntil, b.coolStatus = until, status
	return moved
}

// observeScript raises the shared window's count to the exchange's
// figure, if the answer belongs to the current window. KEYS: rest_weight.
// ARGV: window, used, TTL (ms). Returns the window's count, or -1 for an
// answer of a past window.
var observeScript = valkey.NewLuaScript(`
local w = math.floor(tonumber(redis.call('TIME')[1]) / 60)
if tonumber(ARGV[1]) ~= w then return -1 end
local cur = redis.call('HMGET', KEYS[1], 'window', 'used')
local used = 0
if tonumber(cur[1]) == w then used = tonumber(cur[2]) or 0 end
local seen = tonumber(ARGV[2])
if seen > used then
  redis.call('HSET', KEYS[1], 'window', w, 'used', seen)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return seen
end
return used
`)

// Observe reconciles the budget with the exchange's own count of the
// weight used this minute (X-MBX-USED-WEIGHT-1M), from an answer to a
// request Acquire counted in window: the budget keeps the larger figure.
// An answer to a request of a past window is ignored.
func (b *Budget) Observe(ctx context.Context, window int64, used int) {
	if used <= 0 {
		return
	}
	b.mu.Lock()
	raised := window >= b.window && (window > b.window || used > b.used)
	if raised {
		b.noteUsed(window, used)
	}
	b.mu.Unlock()
	if !raised {
		return // nothing the shared count can lack
	}
	cl := b.redis()
	if cl == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.CallTimeout)
	defer cancel()
	if err := observeScript.Exec(cctx, cl, []string{b.weightKey.Name()}, []string{strconv.FormatInt(window, 10), strconv.Itoa(used), ms(b.weightKey.TTL())}).Error(); err != nil {
		b.redisFailed(err) // the next Acquire pushes the local view
		return
	}
	b.redisAnswered()
}

// cooldownScript starts the shared cooldown unless one in force already
// lasts as long (within a second). KEYS: rest_cooldown. ARGV: wait (ms),
// status. Returns 1 when it started or extended it.
var cooldownScript = valkey.NewLuaScript(`
local p = redis.call('PTTL', KEYS[1])
if p > 0 and p > tonumber(ARGV[1]) - 1000 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return 1
`)

// Cooldown records that the exchange refused a request with status (429
// or 418) and asked to wait: no request of any node sharing the budget is
// sent before the wait is over. The node that starts a cooldown logs it.
func (b *Budget) Cooldown(ctx context.Context, status int, wait time.Duration) {
	if wait <= 0 {
		return
	}
	wait = wait.Round(time.Millisecond)
	until := time.Now().Add(wait)
	b.mu.Lock()
	started := b.noteCooldown(status, until)
	b.mu.Unlock()
	if cl := b.redis(); cl != nil {
		key, err := b.coolKey.WithTTL(wait)
		if err == nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.CallTimeout)
			n, err := cooldownScript.Exec(cctx, cl, []string{key.Name()}, []string{ms(key.TTL()), strconv.Itoa(status)}).AsInt64()
			cancel()
			if err == nil {
				b.redisAnswered()
				started = n == 1 // the deployment's view: another node may have started it
			} else {
				b.redisFailed(err)
			}
		}
	}
	if !started {
		return
	}
	if status == 418 {
		b.st.cooldowns[1].Add(1)
	} else {
		b.st.cooldowns[0].Add(1)
	}
	b.cfg.Logger.Warn("rest: exchange refused a request; no REST request is sent until the cooldown ends",
		"status", status, "retry_after", wait, "until", until.UTC().Format(time.RFC3339), "egress", b.cfg.Egress, "weight_used", b.Used())
}

// redisFailed counts a failed Redis call; the first of an outage is
// logged.
func (b *Budget) redisFailed(err error) {
	b.st.redisErrors.Add(1)
	b.mu.Lock()
	first := !b.failing
	b.failing = true
	b.mu.Unlock()
	if first {
		b.cfg.Logger.Warn("rest: weight budget: Redis failed; deciding in this node's memory until it answers", "err", err, "egress", b.cfg.Egress)
	} else {
		b.cfg.Logger.Debug("rest: weight budget: Redis failed", "err", err)
	}
}

// redisAnswered ends an outage, logged.
func (b *Budget) redisAnswered() {
	b.mu.Lock()
	was := b.failing
	b.failing = false
	b.mu.Unlock()
	if was {
		b.cfg.Logger.Info("rest: weight budget: Redis answers; the budget is shared again", "egress", b.cfg.Egress)
	}
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
