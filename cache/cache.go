// Package cache is the tiered cache of a trading system: Redis/Valkey first, a
// bounded in-memory LRU when Redis is unreachable, back to Redis by itself.
//
// # Tiers
//
// The cache is in one of two tiers. In TierRedis every read and write goes to
// Redis only and the memory tier stays empty. Every Redis call carries a
// deadline (Config.CallTimeout). A call that fails on the connection (refused,
// reset, timed out) is served by the memory tier instead: a read there, a
// write kept there. After Config.FailureThreshold consecutive connection
// failures the cache switches to TierMemory, where calls go straight to
// memory without touching Redis, so callers never queue behind a dead server.
// Run probes Redis with a capped, jittered backoff and switches back when it
// answers.
//
// A call therefore costs at most the deadline while Redis dies and the
// memory tier's microseconds once the switch is made. Errors Redis itself
// returns (WRONGTYPE, NOSCRIPT…) are not outages: they are returned.
//
// # Causes
//
// LastError keeps why Redis last failed (a refused connection, a timeout,
// WRONGPASS…) until Redis answers a connection again, so a node's health can
// say why it runs on its memory tier. A cause that is not a plain
// connection failure — authentication (WRONGPASS, NOAUTH), permissions
// (NOPERM), a database that does not exist, a TLS handshake, an unknown
// host — will not heal by waiting: it is logged at WARN with Redis's own
// words, once per change of cause, however often the probe or the commands
// meet it. Plain connection failures are logged at DEBUG (the tier change
// says at WARN that Redis is unreachable). A permission error met on the
// Redis tier stays the last error until the cache next connects: later
// successful commands of other kinds do not undo it.
//
// # Write-back
//
// Writes and deletes made in memory reach Redis when it returns, through a
// Lua script that writes only when the Redis copy is older. Every key of a
// kind is written with the kind's TTL, so the copy with more time left was
// written later: a memory entry written at t with TTL T is written back with
// TTL T-(now-t) only if Redis holds no copy, a copy without TTL, or one with
// less time left. A value another node wrote during the outage is kept. The
// comparison uses Redis's relative PTTL and our monotonic clock, so clocks of
// different hosts never meet.
//
// Two refinements close the gaps a millisecond TTL leaves:
//   - A write that timed out may still land when a hung Redis resumes, and
//     then looks newer than the writes that followed it in memory. Each
//     memory entry carries the SHA-1s of this node's writes to its key with
//     an unknown outcome (and of values write-back already put there); a
//     Redis copy holding one of those is overwritten whatever its TTL.
//   - While a key waits to be written back, reads of it come from memory and
//     writes to it join it there, so this node never races its own pending
//     write-back.
//
// The outage tests (outage_test.go) kill and pause a real redis-server under
// 64 concurrent callers and check that the last value written to every key
// is the one Redis holds afterwards.
//
// # Memory tier
//
// The memory tier is a least-recently-used map of Config.MemoryEntries
// entries (200 by default); an entry lives for the key's
// TTL or Config.MemoryTTL (5 minutes), whichever is shorter. Expiry is checked
// on read; no goroutine sweeps. When full, the least recently used entry is
// evicted, even if it has not been written back: the memory bound wins over
// completeness, and evictions are counted.
//
// # Keys
//
// Every key is a keyspace.Key, which carries its TTL: a write without TTL
// cannot be expressed. A miss is (nil, false, nil), never an error.
//
// # Bounded reads and bad content
//
// A key also carries the largest value read from it (Key.MaxValue, per
// kind, capped registry-wide). Nothing larger is ever fetched: valkey-go
// buffers a whole reply before handing it over, so the bound is enforced
// in the request. Get asks for the first MaxValue+1 bytes (GETRANGE), and
// a longer value is refused with an *OversizedError naming the key and
// its size (STRLEN), never read. Set refuses what no reader would take.
//
// Redis holds what anyone wrote there. GetOrLoad (read-through) treats
// whatever under its key it cannot use as a miss, loads the value again
// and overwrites it with the key's TTL: a value over the limit, one
// without TTL, a key of another Redis type, and — GetOrLoadValid,
// GetOrLoadJSON — a value its check refuses. Such content therefore heals
// on its next read instead of failing every read until someone deletes it.
//
// Every unusable value met is counted by kind and reason
// (tradecache_cache_oversized_total, tradecache_cache_invalid_total) and
// logged at WARN at most once per Config.ReportEvery per key and reason
// (ReportBad, which packages reading sorted sets and hashes use too).
package cache

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valkey-io/valkey-go"
	"golang.org/x/sync/singleflight"

	"github.com/tradecache/tradecache/keyspace"
)

// Tier is where the cache reads and writes.
type Tier int32

const (
	// TierMemory: the bounded in-process LRU.
	TierMemory Tier = iota
	// TierRedis: Redis/Valkey only.
	TierRedis
)

func (t Tier) String() string {
	if t == TierRedis {
		return "redis"
	}
	return "memory"
}

// Config configures a Cache. Zero fields take the documented defaults.
type Config struct {
	// Redis is the Redis/Valkey client configuration; nil runs on the memory
	// tier alone (the embedded default). Build it with RedisOptions.
	Redis *valkey.ClientOption
	// CallTimeout is the deadline of every Redis call (default 250 ms).
	// Calls whose contexts share a Done channel (a long-lived context, or
	// Background) and start around the same time share one deadline: each
	// gets at least CallTimeout less the larger of CallTimeout/32 and 1 ms,
	// never more than CallTimeout.
	CallTimeout time.Duration
	// FailureThreshold is the number of consecutive connection failures
	// that switches to the memory tier (default 3).
	FailureThreshold int
	// ProbeMin and ProbeMax bound the reconnect backoff (100 ms, 5 s).
	ProbeMin, ProbeMax time.Duration
	// MemoryEntries bounds the memory tier (default 200).
	MemoryEntries int
	// MemoryTTL caps an entry's life in the memory tier (default 5 min).
	MemoryTTL time.Duration
	// LoadTimeout bounds a GetOrLoad loader (default 10 s).
	LoadTimeout time.Duration
	// WriteBackBatch is how many entries one write-back round trip carries (64).
	WriteBackBatch int
	// HealthInterval is how often Run pings Redis while on the Redis tier,
	// so an idle node notices an outage too (default 1 s).
	HealthInterval time.Duration
	// Logger receives one line per tier change and one per change of the
	// cause of Redis failures (slog.Default() if nil).
	Logger *slog.Logger
	// OnTierChange, if set, is called after each tier change, from the
	// goroutine that made it. It must not block.
	OnTierChange func(from, to Tier, reason string)
	// ReportEvery is how often the same unusable value in Redis (one key,
	// one reason) is logged at most (default 1 min); every one is counted.
	ReportEvery time.Duration
	// RefuseCluster, when set, refuses a Redis Cluster at Connect with
	// this reason. The cache's own commands touch one key each and work
	// on a cluster; a node whose leaders run scripts over keys that do not
	// share a slot (keys not named for a cluster) sets it.
	RefuseCluster string
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.CallTimeout, 250*time.Millisecond)
	def(&c.ProbeMin, 100*time.Millisecond)
	def(&c.ProbeMax, 5*time.Second)
	def(&c.MemoryTTL, 5*time.Minute)
	def(&c.LoadTimeout, 10*time.Second)
	def(&c.HealthInterval, time.Second)
	def(&c.ReportEvery, time.Minute)
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 3
	}
	if c.MemoryEntries == 0 {
		c.MemoryEntries = 200
	}
	if c.WriteBackBatch == 0 {
		c.WriteBackBatch = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.CallTimeout < 0, c.ProbeMin < 0, c.ProbeMax < c.ProbeMin, c.MemoryTTL < 0, c.LoadTimeout < 0, c.HealthInterval < 0, c.ReportEvery < 0:
		return c, errors.New("cache: negative duration or ProbeMax < ProbeMin in Config")
	case c.FailureThreshold < 1:
		return c, fmt.Errorf("cache: FailureThreshold %d < 1", c.FailureThreshold)
	case c.MemoryEntries < 1:
		return c, fmt.Errorf("cache: MemoryEntries %d < 1", c.MemoryEntries)
	case c.WriteBackBatch < 1:
		return c, fmt.Errorf("cache: WriteBackBatch %d < 1", c.WriteBackBatch)
	}
	return c, nil
}

// Loader loads a value on a miss.
type Loader func(ctx context.Context) ([]byte, error)

// Cache is the tiered cache. Its methods are safe for concurrent use. Run
// connects to Redis and keeps the tier up to date; without Run a Cache with
// Redis configured stays on the memory tier.
type Cache struct {
	cfg Config
	mem *memTier
	sf  singleflight.Group

	tier     atomic.Int32                  // a Tier
	client   atomic.Pointer[valkey.Client] // nil until connected; owned by Run
	failures atomic.Int64                  // consecutive connection failures
	pingRTT  atomic.Int64                  // last health PING round trip, ns (0: none yet)
	kick     chan struct{}                 // wakes Run: tier dropped or memory holds entries to write back
	lastErr  atomic.Pointer[string]        // cause of the last Redis failure; nil since Redis last answered a connect

	connMu sync.Mutex // serialises connect and Close

	causeMu sync.Mutex // guards logged
	logged  string     // the cause last logged; "" since Redis last answered a connect

	bad       *reporter  // unusable values met in Redis
	deadline  *deadlines // the Redis calls' deadlines
	limitText limitText  // GETRANGE's end, by value limit
	st        counters
}

type counters struct {
	hits, misses          [2]atomic.Uint64 // by Tier
	toMemory, toRedis     atomic.Uint64
	connErrors, replyErrs atomic.Uint64
	written, skipped      atomic.Uint64
	loads, loadErrors     atomic.Uint64
}

// New returns a Cache on the memory tier. It does no I/O and starts no
// goroutine; call Run (or Connect) to reach Redis.
func New(cfg Config) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Cache{
		cfg:      cfg,
		mem:      newMemTier(cfg.MemoryEntries, cfg.MemoryTTL),
		kick:     make(chan struct{}, 1),
		bad:      newReporter(cfg.ReportEvery),
		deadline: newDeadlines(cfg.CallTimeout),
	}, nil
}

// SetLogger replaces the logger given in Config. Call it before Run: a
// node builds its event-publishing logger from a bus that needs the cache.
func (c *Cache) SetLogger(l *slog.Logger) {
	if l != nil {
		c.cfg.Logger = l
	}
}

// Embedded reports whether the cache runs without Redis by configuration.
func (c *Cache) Embedded() bool { return c.cfg.Redis == nil }

// Tier returns the current tier.
func (c *Cache) Tier() Tier { return Tier(c.tier.Load()) }

// Get returns the value of key. A miss is (nil, false, nil). The returned
// slice must not be modified.
//
// A value in Redis longer than the key's MaxValue is not read: Get asks
// Redis for one byte more than the limit and no more, and returns an
// *OversizedError (ErrOversized) naming the key and the value's size. It
// is counted and reported (ReportBad), as is a key of another Redis type
// (the WRONGTYPE error is returned).
func (c *Cache) Get(ctx context.Context, key keyspace.Key) ([]byte, bool, error) {
	if err := key.Valid(); err != nil {
		return nil, false, fmt.Errorf("cache: get: %w", err)
	}
	v, f, size, err := c.get(ctx, key, false)
	switch f {
	case foundValue, foundNoTTL:
		return v, true, nil
	case foundOversized:
		oe := &OversizedError{Op: "get", Key: key.Name(), Size: size, Limit: maxValue(key)}
		c.ReportBad(key.Name(), key.Kind(), BadOversized, oe.Error())
		return nil, false, oe
	case foundWrongType:
		c.ReportBad(key.Name(), key.Kind(), BadWrongType, err.Error())
	}
	return nil, false, err
}

// get reads key: from memory while a write to it waits there to be written
// back, else from Redis on the Redis tier (bounded by the key's MaxValue;
// with ttl, telling a value without TTL), else from memory. size is an
// oversized value's size.
func (c *Cache) get(ctx context.Context, key keyspace.Key, ttl bool) (v []byte, f found, size int, err error) {
	if cl := c.redis(); cl != nil {
		if c.mem.len() > 0 {
			// A write not yet written back is newer than Redis's copy.
			if e := c.mem.get(key.Name(), time.Now()); e != nil {
				return c.memHit(e)
			}
		}
		v, f, size, err := c.getRedis(ctx, cl, key, ttl)
		switch {
		case err == nil:
			switch f {
			case foundValue, foundNoTTL:
				c.st.hits[TierRedis].Add(1)
			case foundNone:
				c.st.misses[TierRedis].Add(1)
			}
			return v, f, size, nil
		case err != errOutage:
			return nil, f, 0, fmt.Errorf("cache: get %s: %w", key, err)
		}
	}
	return c.memHit(c.mem.get(key.Name(), time.Now()))
}

func (c *Cache) memHit(e *entry) ([]byte, found, int, error) {
	if e == nil || e.tomb {
		c.st.misses[TierMemory].Add(1)
		return nil, foundNone, 0, nil
	}
	c.st.hits[TierMemory].Add(1)
	return e.val, foundValue, 0, nil
}

// joinPending stores a write in memory if key waits there to be written
// back, and reports whether it did. Written straight to Redis instead, the
// write could be overwritten by the older pending one, since write-back
// tells old from new only to the millisecond. Check and store are one step
// under the memory tier's lock: once write-back has removed the entry, its
// value is in Redis and a direct write lands after it.
func (c *Cache) joinPending(key keyspace.Key, value []byte, tomb bool) bool {
	if c.mem.len() == 0 || !c.mem.put(key.Name(), value, tomb, key.TTL(), time.Now(), "", true) {
		return false
	}
	c.wake()
	return true
}

// Set writes value under key with the key's TTL: to Redis, or to memory when
// Redis is unreachable. A Redis outage is not an error. A value longer than
// the key's MaxValue is refused (*OversizedError): no reader would take it.
func (c *Cache) Set(ctx context.Context, key keyspace.Key, value []byte) error {
	if err := key.Valid(); err != nil {
		return fmt.Errorf("cache: set: %w", err)
	}
	if len(value) > maxValue(key) {
		return &OversizedError{Op: "set", Key: key.Name(), Size: len(value), Limit: maxValue(key)}
	}
	if cl := c.redis(); cl != nil {
		if c.joinPending(key, value, false) {
			return nil
		}
		cctx, cancel := c.deadline.call(ctx)
		err := cl.Do(cctx, cl.B().Set().Key(key.Name()).Value(valkey.BinaryString(value)).Px(key.TTL()).Build()).Error()
		cancel()
		switch err := c.classify(ctx, err); {
		case err == nil:
			return nil
		case err != errOutage:
			return fmt.Errorf("cache: set %s: %w", key, err)
		}
		// The SET may still land when Redis resumes; remember its value so
		// write-back knows that copy for ours and older.
		c.mem.put(key.Name(), value, false, key.TTL(), time.Now(), sha1hex(value), false)
		c.wake()
		return nil
	}
	c.mem.put(key.Name(), value, false, key.TTL(), time.Now(), "", false)
	c.wake()
	return nil
}

// Delete removes key. While Redis is unreachable the delete is remembered
// and written back like a write.
func (c *Cache) Delete(ctx context.Context, key keyspace.Key) error {
	if err := key.Valid(); err != nil {
		return fmt.Errorf("cache: delete: %w", err)
	}
	if cl := c.redis(); cl != nil {
		if c.joinPending(key, nil, true) {
			return nil
		}
		cctx, cancel := c.deadline.call(ctx)
		err := cl.Do(cctx, cl.B().Del().Key(key.Name()).Build()).Error()
		cancel()
		switch err := c.classify(ctx, err); {
		case err == nil:
			return nil
		case err != errOutage:
			return fmt.Errorf("cache: delete %s: %w", key, err)
		}
	}
	if c.Embedded() {
		c.mem.remove(key.Name())
		return nil
	}
	c.mem.put(key.Name(), nil, true, key.TTL(), time.Now(), "", false)
	c.wake()
	return nil
}

// GetOrLoad returns the value of key, loading it on a miss. However many
// callers miss the same key at once, load runs once and they all get its
// result. The loaded value is written to Redis with the key's TTL, and to
// memory only if that write fails. The loader runs with its own deadline
// (Config.LoadTimeout), not cancelled when the first caller gives up; a
// caller whose ctx ends stops waiting.
//
// What Redis holds under key but cannot be used is a miss too, reported
// (ReportBad) and overwritten by the loaded value with the key's TTL: a
// value over the key's MaxValue (never fetched), a value without TTL, a
// key of another Redis type. So bad content heals on its next read.
func (c *Cache) GetOrLoad(ctx context.Context, key keyspace.Key, load Loader) ([]byte, error) {
	return c.GetOrLoadValid(ctx, key, load, nil)
}

// GetOrLoadValid is GetOrLoad for values valid accepts (nil accepts all):
// a value held that valid refuses is a miss like an unusable one, reported
// as BadUndecodable, loaded again and overwritten. A loaded value valid
// refuses is an error, and is not stored.
func (c *Cache) GetOrLoadValid(ctx context.Context, key keyspace.Key, load Loader, valid func([]byte) error) ([]byte, error) {
	if err := key.Valid(); err != nil {
		return nil, fmt.Errorf("cache: get: %w", err)
	}
	v, ok, err := c.getUsable(ctx, key, valid, true)
	if err != nil || ok {
		return v, err
	}
	ch := c.sf.DoChan(key.Name(), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LoadTimeout)
		defer cancel()
		// Another flight may have stored it between our miss and now.
		if v, ok, err := c.getUsable(lctx, key, valid, false); err == nil && ok {
			return v, nil
		}
		c.st.loads.Add(1)
		v, err := load(lctx)
		if err == nil && valid != nil {
			if verr := valid(v); verr != nil {
				err = fmt.Errorf("loaded value refused: %w", verr)
			}
		}
		if err != nil {
			c.st.loadErrors.Add(1)
			return nil, fmt.Errorf("cache: load %s: %w", key, err)
		}
		if err := c.Set(lctx, key, v); err != nil {
			c.st.loadErrors.Add(1)
			return nil, err
		}
		return v, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("cache: load %s: %w", key, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	}
}

// GetValid reads key as GetOrLoadValid does, for a caller that loads on a
// miss but must not store what it loads (another process keeps the key):
// what the key holds but cannot be used — over its MaxValue (never
// fetched), without TTL, of another Redis type, refused by valid (nil
// accepts all) — is a miss, (nil, false, nil), reported (ReportBad) and
// left as it is.
func (c *Cache) GetValid(ctx context.Context, key keyspace.Key, valid func([]byte) error) ([]byte, bool, error) {
	if err := key.Valid(); err != nil {
		return nil, false, fmt.Errorf("cache: get: %w", err)
	}
	return c.getUsable(ctx, key, valid, true)
}

var (
	errMiss   = errors.New("miss")
	errOutage = errors.New("outage")
)

// classify turns a Redis result error into nil, errMiss, errOutage (served
// by memory, counted toward the switch) or an error to return.
func (c *Cache) classify(ctx context.Context, err error) error {
	if err == nil || valkey.IsValkeyNil(err) {
		if c.failures.Load() != 0 {
			c.failures.Store(0)
		}
		if err != nil {
			return errMiss
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // the caller gave up; not Redis's fault
	}
	if ve, ok := valkey.IsValkeyErr(err); ok && !ve.IsLoading() && !ve.IsClusterDown() && !ve.IsTryAgain() && !transientReply(ve.Error()) {
		c.st.replyErrs.Add(1)
		if refusal(ve.Error()) {
			c.noteFailure(err)
		}
		return err
	}
	c.st.connErrors.Add(1)
	if c.failures.Add(1) >= int64(c.cfg.FailureThreshold) {
		if c.setTier(TierRedis, TierMemory, "redis unreachable: "+err.Error()) {
			c.noteFailure(err)
		}
	}
	return errOutage
}

// refusal reports replies that refuse this client whatever the command's
// arguments: a session that lost its authentication (a password changed
// while connections were re-established) or a user without the permission.
func refusal(msg string) bool {
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// noteFailure records err as the last Redis failure and logs it if its
// cause differs from the one last logged: at WARN unless it is a plain
// connection failure.
func (c *Cache) noteFailure(err error) {
	cause := err.Error()
	for _, p := range []string{"cache: connect: ", "ping: "} {
		cause = strings.TrimPrefix(cause, p)
	}
	c.lastErr.Store(&cause)
	c.causeMu.Lock()
	changed := cause != c.logged
	c.logged = cause
	c.causeMu.Unlock()
	switch {
	case !changed:
	case connectionFailure(err):
		c.cfg.Logger.Debug("cache: redis unreachable", "err", cause)
	case errors.Is(err, errClusterRefused):
		c.cfg.Logger.Warn("cache: redis not used", "err", cause)
	default:
		c.cfg.Logger.Warn("cache: redis refused this client: check the Redis URL's user, password, database and TLS", "err", cause)
	}
}

// connectionFailure reports whether err is a plain failure to reach Redis
// (refused, reset, closed, timed out), which heals when Redis is back, as
// opposed to Redis answering no (a reply error: authentication,
// permissions, a wrong database), a failed TLS handshake or a name that
// does not resolve.
func connectionFailure(err error) bool {
	if _, ok := valkey.IsValkeyErr(err); ok {
		return false
	}
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		return !de.IsNotFound
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT, io.EOF, io.ErrUnexpectedEOF,
		context.DeadlineExceeded, os.ErrDeadlineExceeded, net.ErrClosed, valkey.ErrClosing} {
		if errors.Is(err, e) {
			return true
		}
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// LastError returns the cause of the last Redis failure — why the cache is
// on its memory tier, or a permission error met on the Redis tier — in
// Redis's or the network's words; "" if none since Redis last answered a
// connection, and always with no Redis configured. Safe for concurrent use.
func (c *Cache) LastError() string {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Redis returns the cache's Redis client while the cache is on the Redis
// tier, nil otherwise. Parts that need Redis itself (leader election, fenced
// Lua writes) share the cache's connections and its view of Redis health.
func (c *Cache) Redis() valkey.Client { return c.redis() }

// transientReply reports replies of a Redis that cannot serve now but will:
// a demoted master during a Sentinel failover (READONLY), a replica that
// lost its master (MASTERDOWN), a busy script (BUSY). They count as an
// outage, served by memory and written back later.
func transientReply(msg string) bool {
	for _, p := range []string{"READONLY", "MASTERDOWN", "BUSY"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// redis returns the client when the cache is on the Redis tier.
func (c *Cache) redis() valkey.Client {
	if Tier(c.tier.Load()) != TierRedis {
		return nil
	}
	if p := c.client.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *Cache) setTier(from, to Tier, reason string) bool {
	if !c.tier.CompareAndSwap(int32(from), int32(to)) {
		return false
	}
	if to == TierMemory {
		c.st.toMemory.Add(1)
		c.cfg.Logger.Warn("cache tier changed", "from", from.String(), "to", to.String(), "reason", reason)
	} else {
		c.failures.Store(0)
		c.lastErr.Store(nil)
		c.causeMu.Lock()
		c.logged = ""
		c.causeMu.Unlock()
		c.st.toRedis.Add(1)
		c.cfg.Logger.Info("cache tier changed", "from", from.String(), "to", to.String(), "reason", reason)
	}
	if c.cfg.OnTierChange != nil {
		c.cfg.OnTierChange(from, to, reason)
	}
	c.wake()
	return true
}

func (c *Cache) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Connect dials Redis once and, if it answers, switches to the Redis tier.
// Run calls it in its loop; a command-line tool may call it instead of Run.
func (c *Cache) Connect(ctx context.Context) error {
	if c.cfg.Redis == nil {
		return errors.New("cache: connect: no Redis configured (embedded memory tier)")
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	p := c.client.Load()
	if p == nil {
		opt := *c.cfg.Redis
		// Connecting happens inside a caller's Do after an outage: bound it
		// by the call deadline too, and notice a hung connection soon.
		if opt.Dialer.Timeout == 0 {
			opt.Dialer.Timeout = c.cfg.CallTimeout
		}
		if opt.ConnWriteTimeout == 0 {
			opt.ConnWriteTimeout = max(4*c.cfg.CallTimeout, time.Second)
		}
		cl, err := valkey.NewClient(opt)
		if err != nil {
			return c.connectFailed(ctx, fmt.Errorf("cache: connect: %w", err))
		}
		if cl.Mode() == valkey.ClientModeCluster && c.cfg.RefuseCluster != "" {
			cl.Close()
			return c.connectFailed(ctx, fmt.Errorf("cache: connect: %w: %s", errClusterRefused, c.cfg.RefuseCluster))
		}
		p = &cl
		c.client.Store(p)
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	if err := probe(cctx, *p); err != nil {
		return c.connectFailed(ctx, fmt.Errorf("cache: connect: ping: %w", err))
	}
	c.setTier(TierMemory, TierRedis, "redis answered")
	return nil
}

// errClusterRefused is a Redis Cluster refused by Config.RefuseCluster.
var errClusterRefused = errors.New("this Redis is a cluster")

// connectFailed notes err unless the caller gave up, and returns it.
func (c *Cache) connectFailed(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		c.noteFailure(err)
	}
	return err
}

// Close closes the Redis client. Run calls it when it returns.
func (c *Cache) Close() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.tier.Store(int32(TierMemory))
	if p := c.client.Swap(nil); p != nil {
		(*p).Close()
	}
}

// Run connects to Redis, probes it while the cache is on the memory tier,
// and writes back what the memory tier holds once Redis answers. It returns
// when ctx ends, after closing the Redis client. With no Redis configured it
// only waits for ctx.
func (c *Cache) Run(ctx context.Context) error {
	defer c.Close()
	if c.cfg.Redis == nil {
		<-ctx.Done()
		return nil
	}
	backoff := time.Duration(0)
	health := time.NewTicker(c.cfg.HealthInterval)
	defer health.Stop()
	for {
		if c.Tier() == TierMemory {
			if backoff > 0 {
				if !sleep(ctx, jitter(backoff)) {
					return nil
				}
			}
			if err := c.Connect(ctx); err != nil { // logged by Connect, once per cause
				if ctx.Err() != nil {
					return nil
				}
				backoff = min(max(2*backoff, c.cfg.ProbeMin), c.cfg.ProbeMax)
				continue
			}
			backoff = 0
		}
		c.writeBack(ctx)
		if c.Tier() == TierRedis && c.mem.len() == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-c.kick:
			case <-health.C:
				c.ping(ctx)
			}
		} else if c.Tier() == TierRedis {
			// Entries left after a partial write-back: retry after a pause.
			if !sleep(ctx, c.cfg.ProbeMin) {
				return nil
			}
		}
	}
}

// ping checks Redis on behalf of an idle node; a failure counts like a
// caller's.
func (c *Cache) ping(ctx context.Context) {
	cl := c.redis()
	if cl == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	t0 := time.Now()
	err := probe(cctx, cl)
	if err == nil {
		c.pingRTT.Store(int64(time.Since(t0)))
	}
	if err != nil && ctx.Err() == nil {
		c.classify(ctx, err)
	}
}

// probe checks that Redis serves: a PING; on a cluster, every node says
// the cluster is ok, so a cluster coming back node by node is not taken
// for up while part of its slots still fail (CLUSTERDOWN).
func probe(ctx context.Context, cl valkey.Client) error {
	if cl.Mode() != valkey.ClientModeCluster {
		return cl.Do(ctx, cl.B().Ping().Build()).Error()
	}
	for addr, n := range cl.Nodes() {
		info, err := n.Do(ctx, n.B().ClusterInfo().Build()).ToString()
		if err != nil {
			return fmt.Errorf("cluster node %s: %w", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("cluster node %s: cluster state is not ok", addr)
		}
	}
	return nil
}

// RedisLatency is the round trip of the last health PING (every
// HealthInterval while on the Redis tier); 0 before the first.
func (c *Cache) RedisLatency() time.Duration { return time.Duration(c.pingRTT.Load()) }

// writeBackScript writes ARGV[1] (or deletes, ARGV[3]=="1") with TTL ARGV[2]
// ms unless Redis holds a copy with at least as much time left, which was
// written later, and which is not one of this node's own writes of unknown
// outcome (SHA-1s in ARGV[4:]) landed late. Returns 1 when it wrote, 0 when
// Redis's copy was newer.
var writeBackScript = valkey.NewLuaScript(`
local p = redis.call('PTTL', KEYS[1])
local ttl = tonumber(ARGV[2])
local write = p == -2 or p == -1 or p < ttl
if not write and #ARGV > 3 and redis.call('TYPE', KEYS[1]).ok == 'string' then
  local h = redis.sha1hex(redis.call('GET', KEYS[1]))
  for i = 4, #ARGV do
    if ARGV[i] == h then
      write = true
      break
    end
  end
end
if write then
  if ARGV[3] == '1' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  end
  return 1
end
return 0
`)

// writeBack drains the memory tier into Redis, in batches, while the cache
// is on the Redis tier. It stops at the first connection failure.
func (c *Cache) writeBack(ctx context.Context) {
	for c.Tier() == TierRedis && ctx.Err() == nil {
		cl := c.redis()
		if cl == nil {
			return
		}
		keys, ents := c.mem.snapshot(time.Now())
		if len(keys) == 0 {
			return
		}
		for start := 0; start < len(keys); start += c.cfg.WriteBackBatch {
			end := min(start+c.cfg.WriteBackBatch, len(keys))
			now := time.Now()
			execs := make([]valkey.LuaExec, 0, end-start)
			idx := make([]int, 0, end-start)
			for i := start; i < end; i++ {
				left := ents[i].redisExpire.Sub(now).Milliseconds()
				if left <= 0 || !now.Before(ents[i].memExpire) {
					c.mem.removeIf(keys[i], ents[i], "")
					continue
				}
				tomb := "0"
				if ents[i].tomb {
					tomb = "1"
				}
				args := append([]string{string(ents[i].val), strconv.FormatInt(left, 10), tomb}, ents[i].sent...)
				execs = append(execs, valkey.LuaExec{Keys: []string{keys[i]}, Args: args})
				idx = append(idx, i)
			}
			if len(execs) == 0 {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
			res := writeBackScript.ExecMulti(cctx, cl, execs...)
			cancel()
			for j, r := range res {
				i := idx[j]
				n, err := r.AsInt64()
				if ctx.Err() != nil {
					return // shutting down: the entries stay for the next run's memory, not an error
				}
				if err := c.classify(ctx, err); err != nil {
					if err != errOutage {
						c.cfg.Logger.Error("cache write-back failed", "key", keys[i], "err", err)
						c.mem.removeIf(keys[i], ents[i], "") // a reply error will not heal by retrying
						continue
					}
					// These scripts may still run when Redis answers again.
					for _, i := range idx[j:] {
						if !ents[i].tomb {
							c.mem.noteSent(keys[i], sha1hex(ents[i].val))
						}
					}
					return
				}
				sent := ""
				if n == 1 {
					c.st.written.Add(1)
					if !ents[i].tomb {
						sent = sha1hex(ents[i].val)
					}
				} else {
					c.st.skipped.Add(1)
				}
				c.mem.removeIf(keys[i], ents[i], sent)
			}
		}
	}
}

func sha1hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by ±20 % so many nodes do not probe in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
