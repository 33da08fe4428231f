// Package leader elects one node to hold a resource (the exchange's market
// streams) with a lease in Redis, and hands the leadership to the leader's
// work as a context.
//
// # Lease
//
// The lease is one key (market_ws_leader) holding {"node":…,"epoch":…,
// "nonce":…} with a TTL (30 s by default). A node acquires it with a Lua script that sets it
// only if absent and takes the next epoch from a counter key
// (leader_epoch:market_ws_leader, which also has a TTL, refreshed on every
// renewal so it outlives any lease). The JSON value is the node's token. The
// leader renews every TTL/3 with compare-and-pexpire in Lua: it extends the
// lease only while the key still holds its token.
//
// # Leadership is a context
//
// Run calls work with a context that is cancelled the moment leadership may
// be lost: a renewal that finds another token, or no successful renewal
// before the lease could have expired. The deadline is kept on the monotonic
// clock from the time each acquire or renewal was *sent*, less a safety
// margin, so a paused process (SIGSTOP, a long GC, a frozen VM) finds its
// context cancelled as soon as it runs again.
//
// A context is not enough on its own: between waking from a pause and the
// cancellation, the work may already be issuing a write. So every write of
// the leader is fenced: Term.Fence gives the lease key and the token, and
// the writer's Lua script refuses to write unless the lease key still holds
// that token (see marketdata). On a single Redis or a Sentinel setup the
// check and the write are one atomic step.
//
// # Redis Cluster: per-slot fences
//
// On a cluster (keys under cluster naming, keyspace.Config.HashTags) the
// lease and the data live in different slots, often on different masters,
// and one script cannot touch both. There each slot a leader writes has a
// fence of its own for the lease, slot_fence:{tag}:{lease}, holding the
// newest term ("epoch:nonce") of that lease that wrote the slot (one per
// lease: several leases — stream groups — write one shared hash, and
// their epochs do not compare). A fenced write (Fence.For) checks it in the
// write's own script: a term older than the fence's, or the same epoch
// with another nonce, is refused; a newer one advances the fence and
// writes. And before each batch of writes the leader checks that the lease
// still holds its token (Fence.Held), which a single Redis does inside
// every script.
//
// Slot fences compare epochs, so there an epoch must never go back: it is
// at least Redis's clock in milliseconds when the lease is acquired, so a
// counter lost with a master (an increment not replicated, a restart
// without persistence, an eviction) does not hand out an epoch older than
// one a fence holds. (A new master whose clock lags the old one's hands
// out epochs that fences refuse for as long as the lag: each refusal ends
// the term, and a later acquisition passes them.)
//
// What that guarantees: once a later leader has written a slot, no write
// of an earlier term lands in it, atomically per slot. What it does not:
// between a lease takeover and the new leader's first write to a slot, a
// deposed leader that has not noticed yet (it passed Held just before) can
// still write that slot; writes of one batch to several slots are not
// atomic together; and replication is asynchronous, so a master that
// fails over may lose an acknowledged write, a fence included.
//
// # Failover (Sentinel)
//
// Replication is asynchronous: a master that dies may take its last writes
// with it, the latest epoch increment and lease included. A failover that
// outlasts the lease ends the term (no renewal succeeds in time) and a node
// acquires the lease on the promoted replica; one quicker than the lease
// lets the leader renew the copy the replica holds and keep its term. The
// epoch is then only as monotonic as replication made it: a lost increment
// is handed out again (except under cluster naming, see above). The token
// stays unique all the same — each acquisition draws a random nonce into
// it — so no write fenced by a lost term's token can pass the check of a
// later one.
//
// On a clean shutdown the leader releases the lease (delete if it still
// holds its token), so a follower takes over within its next attempt
// (Config.RetryEvery, 1 s) instead of waiting out the TTL.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/keyspace"
)

// RedisSource gives the Redis client while Redis is reachable, nil
// otherwise. *cache.Cache satisfies it.
type RedisSource interface {
	Redis() valkey.Client
}

// Config configures an Elector.
type Config struct {
	// Lease is the lease key (keyspace's MarketWSLeader); its TTL is the
	// lease TTL. Epoch is its counter key (keyspace's LeaderEpoch).
	Lease, Epoch keyspace.Key
	// NodeID identifies this node in the lease.
	NodeID string
	// RetryEvery is how often a follower tries to acquire (default 1 s).
	RetryEvery time.Duration
	// CallTimeout bounds each Redis call (default TTL/10, at most 1 s).
	CallTimeout time.Duration
	// Logger gets one line per change of leadership.
	Logger *slog.Logger
	// Keys, when its keys are named for a cluster, makes every term's
	// Fence per slot (see Redis Cluster above); nil or standard naming: the
	// lease itself fences.
	Keys *keyspace.Registry
}

// Term is one tenure of leadership.
type Term struct {
	Epoch int64
	Fence Fence
}

// Fence is what a fenced write checks: the lease key must hold Token. The
// zero Fence checks nothing (a node writing without election).
type Fence struct {
	Key   string
	Token string

	// Under cluster naming: the registry building each slot's fence, the
	// term, and the fences' TTL; slots is nil on a single Redis.
	slots *keyspace.Registry
	epoch int64
	nonce string
	ttl   time.Duration
}

// For returns KEYS[1] and ARGV[1] of a fenced write of data: the lease and
// the token on a single Redis, or when data shares the lease's hash tag
// (the account's keys and its lease); under cluster naming data's slot fence and
// the term ("#epoch:nonce:ttl-ms"), which FenceCheck compares with what
// the fence holds. Without a fence, data itself and "" (no check).
func (f Fence) For(data keyspace.Key) (key, token string, err error) {
	switch {
	case f.Token == "":
		return data.Name(), "", nil
	case f.slots == nil, keyspace.HashTag(data.Name()) == keyspace.HashTag(f.Key):
		// One slot holds the lease and data: the lease itself fences.
		return f.Key, f.Token, nil
	}
	sf, err := f.slots.SlotFence(data, f.Key)
	if err != nil {
		return "", "", fmt.Errorf("leader: fence: %w", err)
	}
	return sf.Name(), "#" + strconv.FormatInt(f.epoch, 10) + ":" + f.nonce + ":" + ms(f.ttl), nil
}

// Slotted reports whether writes are fenced per slot (Redis Cluster), so
// the lease must be checked apart before writing (Held).
func (f Fence) Slotted() bool { return f.slots != nil && f.Token != "" }

// Held checks that the lease still holds the token: the check a single
// Redis makes inside every fenced script, which a cluster's per-slot
// fences cannot. A lease held by another term is ErrFenced.
func (f Fence) Held(ctx context.Context, cl valkey.Client) error {
	if f.Token == "" {
		return nil
	}
	v, err := cl.Do(ctx, cl.B().Get().Key(f.Key).Build()).ToString()
	switch {
	case valkey.IsValkeyNil(err):
		return fmt.Errorf("%w: lease %s expired", ErrFenced, f.Key)
	case err != nil:
		return fmt.Errorf("leader: check lease: %w", err)
	case v != f.Token:
		return fmt.Errorf("%w: lease %s held by another term", ErrFenced, f.Key)
	}
	return nil
}

// ErrFenced is a write refused because its term's lease is lost.
var ErrFenced = errors.New("FENCED lease not held")

// Elector campaigns for the lease and runs the leader's work.
type Elector struct {
	cfg   Config
	redis RedisSource

	mu      sync.Mutex // guards leading and term
	leading bool
	term    Term

	lastErr string // last acquire error logged; Run's goroutine only
}

// New returns an Elector; it does no I/O.
func New(redis RedisSource, cfg Config) (*Elector, error) {
	if err := cfg.Lease.Valid(); err != nil {
		return nil, fmt.Errorf("leader: lease key: %w", err)
	}
	if err := cfg.Epoch.Valid(); err != nil {
		return nil, fmt.Errorf("leader: epoch key: %w", err)
	}
	if cfg.NodeID == "" {
		return nil, errors.New("leader: empty NodeID")
	}
	if cfg.Lease.TTL() < 300*time.Millisecond {
		return nil, fmt.Errorf("leader: lease TTL %v is too short", cfg.Lease.TTL())
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = min(cfg.Lease.TTL()/10, time.Second)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Elector{cfg: cfg, redis: redis}, nil
}

// Leading reports whether this node holds the lease now, and its term.
func (e *Elector) Leading() (bool, Term) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading, e.term
}

// acquireScript: with ARGV[5] == '1' (per-slot fences) the epoch is at
// least Redis's clock in milliseconds, so it never goes back, even when
// the counter was lost (a failover that lost an increment, a restart
// without persistence, an eviction): slot fences compare epochs.
var acquireScript = valkey.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
if ARGV[5] == '1' then
  local t = redis.call('TIME')
  local floor = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if epoch < floor then
    epoch = floor
    redis.call('SET', KEYS[2], epoch)
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local token = cjson.encode({node = ARGV[1], epoch = epoch, nonce = ARGV[4]})
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
`)

var renewScript = valkey.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`)

var releaseScript = valkey.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// nonce is 16 random hex digits: what makes every lease token unique even
// when an epoch is handed out twice (see Failover).
func nonce() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrLost is the cause of a leadership context cancelled because the lease
// was lost or could not be renewed in time.
var ErrLost = errors.New("leader: lease lost")

// Run campaigns until ctx ends. Each time this node acquires the lease it
// calls work with a context cancelled when leadership ends (cause ErrLost)
// or ctx ends, waits for work to return, and campaigns again. An error from
// work ends the term (the lease is released) and is logged, not returned:
// leadership moves on. Run returns nil when ctx ends, after releasing the
// lease if it holds it.
func (e *Elector) Run(ctx context.Context, work func(ctx context.Context, t Term) error) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if term, sent, ok := e.tryAcquire(ctx); ok {
			e.lead(ctx, term, sent, work)
		}
		t.Reset(e.cfg.RetryEvery)
	}
}

func (e *Elector) tryAcquire(ctx context.Context) (Term, time.Time, bool) {
	cl := e.redis.Redis()
	if cl == nil {
		return Term{}, time.Time{}, false
	}
	ttl := e.cfg.Lease.TTL()
	sent := time.Now()
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	slotted := "0"
	if e.cfg.Keys != nil && e.cfg.Keys.HashTags() {
		slotted = "1"
	}
	token, err := acquireScript.Exec(cctx, cl, []string{e.cfg.Lease.Name(), e.cfg.Epoch.Name()},
		[]string{e.cfg.NodeID, ms(ttl), ms(e.cfg.Epoch.TTL()), nonce(), slotted}).ToString()
	if err != nil {
		if !valkey.IsValkeyNil(err) && ctx.Err() == nil && err.Error() != e.lastErr {
			// Once per distinct error: a node that can never lead says why.
			e.cfg.Logger.Warn("leader: acquire failed", "lease", e.cfg.Lease.Name(), "err", err)
			e.lastErr = err.Error()
		}
		return Term{}, time.Time{}, false
	}
	e.lastErr = ""
	var v struct {
		Node  string `json:"node"`
		Epoch int64  `json:"epoch"`
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(token), &v); err != nil || v.Node != e.cfg.NodeID {
		e.cfg.Logger.Error("leader: unexpected lease value", "value", token, "err", err)
		return Term{}, time.Time{}, false
	}
	f := Fence{Key: e.cfg.Lease.Name(), Token: token}
	if e.cfg.Keys != nil && e.cfg.Keys.HashTags() {
		f.slots, f.epoch, f.nonce, f.ttl = e.cfg.Keys, v.Epoch, v.Nonce, e.cfg.Epoch.TTL()
	}
	return Term{Epoch: v.Epoch, Fence: f}, sent, true
}

// lead runs one term: work under a context, renewals at TTL/3, and a
// monotonic deadline that cancels the context if renewals stop succeeding.
func (e *Elector) lead(ctx context.Context, term Term, sent time.Time, work func(context.Context, Term) error) {
	ttl := e.cfg.Lease.TTL()
	// Stop before the lease can expire: leave a tenth of the TTL (at least
	// one call timeout) for clock drift between us and Redis.
	margin := max(ttl/10, e.cfg.CallTimeout)
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e.setLeading(true, term)
	e.cfg.Logger.Info("leader: acquired lease", "node_id", e.cfg.NodeID, "epoch", term.Epoch, "lease", e.cfg.Lease.Name())

	done := make(chan error, 1)
	go func() { done <- work(lctx, term) }()

	expiry := time.NewTimer(time.Until(sent.Add(ttl - margin)))
	defer expiry.Stop()
	renew := time.NewTicker(ttl / 3)
	defer renew.Stop()
	var reason string
loop:
	for {
		select {
		case err := <-done:
			done = nil
			reason = "work returned"
			if err != nil && ctx.Err() == nil {
				e.cfg.Logger.Error("leader: work failed; giving up the lease", "err", err)
				reason = "work failed"
			}
			break loop
		case <-ctx.Done():
			reason = "shutdown"
			break loop
		case <-expiry.C:
			cancel(ErrLost)
			reason = "lease not renewed in time"
			break loop
		case <-renew.C:
			at := time.Now()
			switch held, err := e.renew(ctx, term); {
			case err == nil && held:
				expiry.Reset(time.Until(at.Add(ttl - margin)))
			case err == nil && !held:
				cancel(ErrLost)
				reason = "lease taken by another node"
				break loop
			default:
				// Keep trying until the deadline; the expiry timer decides.
				e.cfg.Logger.Warn("leader: renew failed", "err", err)
			}
		}
	}
	cancel(ErrLost)
	if done != nil {
		<-done
	}
	e.setLeading(false, Term{})
	if reason != "lease not renewed in time" && reason != "lease taken by another node" {
		e.release(ctx, term)
	}
	e.cfg.Logger.Info("leader: stepped down", "node_id", e.cfg.NodeID, "epoch", term.Epoch, "reason", reason)
}

func (e *Elector) renew(ctx context.Context, term Term) (bool, error) {
	cl := e.redis.Redis()
	if cl == nil {
		return false, errors.New("redis unreachable")
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	n, err := renewScript.Exec(cctx, cl, []string{e.cfg.Lease.Name(), e.cfg.Epoch.Name()},
		[]string{term.Fence.Token, ms(e.cfg.Lease.TTL()), ms(e.cfg.Epoch.TTL())}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("leader: renew: %w", err)
	}
	return n == 1, nil
}

// release deletes the lease if it still holds our token, with its own short
// deadline: it runs while the node shuts down.
func (e *Elector) release(ctx context.Context, term Term) {
	cl := e.redis.Redis()
	if cl == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.CallTimeout)
	defer cancel()
	if err := releaseScript.Exec(cctx, cl, []string{e.cfg.Lease.Name()}, []string{term.Fence.Token}).Error(); err != nil {
		e.cfg.Logger.Warn("leader: release failed; the lease expires by itself", "err", err)
	}
}

func (e *Elector) setLeading(on bool, t Term) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leading, e.term = on, t
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// FenceCheck is the Lua prologue of a fenced write, with KEYS[1] and
// ARGV[1] from Fence.For. On a single Redis (the lease key and the token)
// the script stops with a FENCED error unless the lease still holds the
// token. Under cluster naming (the slot's fence and "#epoch:nonce:ttl")
// it stops when the fence holds a newer term, or the same epoch with
// another nonce (an epoch handed out twice after a failover), and else
// records this term in the fence with the TTL. An empty token (a node
// running without election, Redis having been down) skips the check.
const FenceCheck = `if ARGV[1] ~= '' then
  if string.byte(ARGV[1], 1) == 35 then
    local e, n, ttl = string.match(ARGV[1], '^#(%d+):(%w+):(%d+)$')
    if not e then return redis.error_reply('FENCED malformed term') end
    local cur = redis.call('GET', KEYS[1])
    if cur then
      local ce, cn = string.match(cur, '^(%d+):(%w+)$')
      if ce and (tonumber(ce) > tonumber(e) or (tonumber(ce) == tonumber(e) and cn ~= n)) then
        return redis.error_reply('FENCED a newer term wrote this slot')
      end
    end
    redis.call('SET', KEYS[1], e .. ':' .. n, 'PX', ttl)
  elseif redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return redis.error_reply('FENCED lease not held')
  end
end
`

// IsFenced reports whether err is a fenced write's refusal: a script's
// FENCED error or ErrFenced from Held.
func IsFenced(err error) bool {
	var ve *valkey.ValkeyError
	return errors.Is(err, ErrFenced) || errors.As(err, &ve) && strings.HasPrefix(ve.Error(), "FENCED")
}
