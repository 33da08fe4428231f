package streamgroups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
)

// MaxNodes bounds the live nodes a heartbeat reads back.
const MaxNodes = 256

// Lease is one group's lease and epoch keys.
type Lease struct {
	Lease, Epoch keyspace.Key
}

// Config configures a Coordinator.
type Config struct {
	// Groups are the group names, in order; Leases their keys.
	Groups []string
	Leases map[string]Lease
	// Members is the membership sorted set (keyspace's MarketNodes); its
	// TTL is how long a node stays live after its last heartbeat. It
	// should not exceed the lease TTL.
	Members keyspace.Key
	NodeID  string
	// Poll is the period of the heartbeat and of the look at the leases
	// (default 500 ms, at most a sixth of the membership TTL).
	Poll time.Duration
	// RetryEvery is how often a campaign tries to acquire (default 500 ms).
	RetryEvery time.Duration
	// FreeGrace is how long a group's lease may stay free before any node
	// campaigns for it, whoever ranks first (default: the membership TTL,
	// at least 4 Polls). A dead node's groups need no grace: it drops out
	// of the ranking. The grace covers a preferred node that is live but
	// does not take its group; it is long so that a slow hand-over is not
	// taken for that (the node that takes it hands it over again).
	FreeGrace time.Duration
	// CallTimeout bounds each look (the heartbeat, and the leases read in
	// one round trip) and the removal of the heartbeat on leaving
	// (default 1 s). A slow look delays the next; it decides nothing.
	CallTimeout time.Duration
	Logger      *slog.Logger
	// Keys, when its keys are named for a cluster, fences each group's
	// writes per slot (leader.Config.Keys).
	Keys *keyspace.Registry
}

// Coordinator campaigns for this node's share of the groups.
type Coordinator struct {
	cfg      Config
	redis    leader.RedisSource
	electors map[string]*leader.Elector

	mu      sync.Mutex // guards live, holders
	live    []string
	holders map[string]string // group → node holding its lease now, as last read
}

// New returns a Coordinator; it does no I/O.
func New(redis leader.RedisSource, cfg Config) (*Coordinator, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("streamgroups: empty NodeID")
	}
	if len(cfg.Groups) == 0 {
		return nil, errors.New("streamgroups: no group")
	}
	if err := cfg.Members.Valid(); err != nil {
		return nil, fmt.Errorf("streamgroups: members key: %w", err)
	}
	ttl := cfg.Members.TTL()
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	cfg.Poll = min(cfg.Poll, ttl/6)
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 500 * time.Millisecond
	}
	if cfg.FreeGrace <= 0 {
		cfg.FreeGrace = max(4*cfg.Poll, ttl)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Coordinator{cfg: cfg, redis: redis, electors: map[string]*leader.Elector{}, holders: map[string]string{}}
	for _, g := range cfg.Groups {
		l, ok := cfg.Leases[g]
		if !ok {
			return nil, fmt.Errorf("streamgroups: no lease for group %s", g)
		}
		if _, dup := c.electors[g]; dup {
			return nil, fmt.Errorf("streamgroups: group %s listed twice", g)
		}
		if l.Lease.TTL() < ttl {
			return nil, fmt.Errorf("streamgroups: lease TTL %v is shorter than the membership TTL %v", l.Lease.TTL(), ttl)
		}
		el, err := leader.New(redis, leader.Config{Lease: l.Lease, Epoch: l.Epoch, NodeID: cfg.NodeID, RetryEvery: cfg.RetryEvery,
			Logger: cfg.Logger.With("group", g), Keys: cfg.Keys})
		if err != nil {
			return nil, fmt.Errorf("streamgroups: group %s: %w", g, err)
		}
		c.electors[g] = el
	}
	return c, nil
}

// Groups returns the group names, in order.
func (c *Coordinator) Groups() []string { return slices.Clone(c.cfg.Groups) }

// Held returns the groups this node holds now, in order.
func (c *Coordinator) Held() []string {
	var out []string
	for _, g := range c.cfg.Groups {
		if ok, _ := c.electors[g].Leading(); ok {
			out = append(out, g)
		}
	}
	return out
}

// View is what a node knows of the sharing, as of its last look.
type View struct {
	Live    []string          // live nodes, sorted
	Holders map[string]string // group → node holding its lease ("" or absent: free)
	Held    []string          // the groups this node holds now
}

// View returns the node's view of the sharing.
func (c *Coordinator) View() View {
	c.mu.Lock()
	v := View{Live: slices.Clone(c.live), Holders: make(map[string]string, len(c.holders))}
	for g, n := range c.holders {
		v.Holders[g] = n
	}
	c.mu.Unlock()
	v.Held = c.Held()
	return v
}

// heartbeatScript adds the node with Redis's clock, drops members older
// than the TTL, refreshes the key's TTL and returns the live members.
var heartbeatScript = valkey.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - ttl, '+inf', 'LIMIT', 0, tonumber(ARGV[3]))
`)

// campaign is one group's running election.
type campaign struct {
	cancel   context.CancelFunc
	done     chan struct{}
	stopping bool // cancelled; done is closed once its term has ended and the lease is released
}

// Run heartbeats and campaigns until ctx ends, calling work for each term
// of a group this node holds, with a context cancelled when the term ends
// (lease lost, handed over, or ctx ended). It campaigns from its second
// look on, so nodes started together see each other before any takes
// every group. On return every term has ended, the leases are released
// and the node's heartbeat removed.
func (c *Coordinator) Run(ctx context.Context, work func(ctx context.Context, group string, t leader.Term) error) error {
	camps := map[string]*campaign{}
	defer func() {
		for _, cp := range camps {
			cp.cancel()
		}
		for _, cp := range camps {
			<-cp.done
		}
		c.leave(ctx)
	}()
	// stop cancels g's campaign without waiting: the poll goes on (and
	// heartbeats) while the term ends; the next campaign for g starts
	// once it has.
	stop := func(g string) {
		if cp := camps[g]; cp != nil && !cp.stopping {
			cp.cancel()
			cp.stopping = true
		}
	}
	freeSince := map[string]time.Time{}
	// Hand-backs that did not take: a group a node held though another
	// ranked first, then left free, counted alike by every node from the
	// leases (reset once its first-ranked node holds it). Each one doubles
	// how long the next such holder keeps it, so a preferred node that
	// never takes its group costs a few moves, not one every grace.
	lastHolder := map[string]string{}
	handBacks := map[string]int{}
	heldSince := map[string]time.Time{} // groups held here though another ranks first: since when
	looks := 0
	var prev []string // the live nodes of the last look
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		for g, cp := range camps {
			select {
			case <-cp.done:
				delete(camps, g)
			default:
			}
		}
		live, holders, err := c.look(ctx)
		if err == nil {
			looks++
		}
		// steady are the live nodes seen in this look and the last: a
		// group is handed over only to one of them, not to a node that
		// heartbeated once and may be gone.
		var steady []string
		for _, n := range live {
			if n == c.cfg.NodeID || slices.Contains(prev, n) {
				steady = append(steady, n)
			}
		}
		if err == nil {
			prev = live
		}
		if err == nil && looks >= 2 {
			now := time.Now()
			for _, g := range c.cfg.Groups {
				h := holders[g]
				if h == "" {
					if _, ok := freeSince[g]; !ok {
						freeSince[g] = now
					}
				} else {
					delete(freeSince, g)
				}
				owner := Owner(g, live)
				first := owner == c.cfg.NodeID
				free := h == "" && now.Sub(freeSince[g]) >= c.cfg.FreeGrace
				switch was := lastHolder[g]; {
				case h != "" && h == Owner(g, steady):
					delete(handBacks, g)
				case h == "" && was != "" && was != Owner(g, steady):
					handBacks[g] = min(handBacks[g]+1, 6)
				}
				lastHolder[g] = h
				if h != c.cfg.NodeID || first {
					delete(heldSince, g)
				}
				switch {
				case first || free:
					if camps[g] == nil {
						camps[g] = c.start(ctx, g, work)
					}
				case h == c.cfg.NodeID:
					// Another node ranks first; hand the group over once
					// it has been seen live twice in a row.
					if Owner(g, steady) == c.cfg.NodeID {
						break
					}
					since, ok := heldSince[g]
					if !ok {
						since, heldSince[g] = now, now
					}
					if n := handBacks[g]; n > 0 && now.Sub(since) < c.cfg.FreeGrace<<n {
						break // the last hand-back did not take: keep it longer
					}
					if cp := camps[g]; cp != nil && !cp.stopping {
						c.cfg.Logger.Info("streamgroups: handing over", "group", g, "to", owner)
					}
					stop(g)
				case h != "":
					stop(g) // another node holds it: nothing to campaign for
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// start campaigns for group g until its context is cancelled.
func (c *Coordinator) start(ctx context.Context, g string, work func(context.Context, string, leader.Term) error) *campaign {
	cctx, cancel := context.WithCancel(ctx)
	cp := &campaign{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(cp.done)
		c.electors[g].Run(cctx, func(lctx context.Context, t leader.Term) error { return work(lctx, g, t) })
	}()
	return cp
}

// look heartbeats and reads the live nodes and the leases' holders. It
// always counts this node live once its heartbeat has been written.
func (c *Coordinator) look(ctx context.Context) ([]string, map[string]string, error) {
	cl := c.redis.Redis()
	if cl == nil {
		return nil, nil, errors.New("streamgroups: redis unreachable")
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	live, err := heartbeatScript.Exec(cctx, cl, []string{c.cfg.Members.Name()},
		[]string{c.cfg.NodeID, strconv.FormatInt(c.cfg.Members.TTL().Milliseconds(), 10), strconv.Itoa(MaxNodes)}).AsStrSlice()
	if err != nil {
		return nil, nil, fmt.Errorf("streamgroups: heartbeat: %w", err)
	}
	if !slices.Contains(live, c.cfg.NodeID) {
		live = append(live, c.cfg.NodeID)
	}
	slices.Sort(live)
	cmds := make(valkey.Commands, 0, len(c.cfg.Groups))
	for _, g := range c.cfg.Groups {
		cmds = append(cmds, cl.B().Get().Key(c.cfg.Leases[g].Lease.Name()).Build())
	}
	holders := make(map[string]string, len(c.cfg.Groups))
	for i, r := range cl.DoMulti(cctx, cmds...) {
		v, err := r.ToString()
		if valkey.IsValkeyNil(err) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("streamgroups: read lease: %w", err)
		}
		holders[c.cfg.Groups[i]] = leaseNode(v)
	}
	c.mu.Lock()
	c.live, c.holders = live, holders
	c.mu.Unlock()
	return live, holders, nil
}

// leaseNode is the node id in a lease's value ("?" when unreadable: held,
// by someone).
func leaseNode(v string) string {
	var l struct {
		Node string `json:"node"`
	}
	if json.Unmarshal([]byte(v), &l) != nil || l.Node == "" {
		return "?"
	}
	return l.Node
}

// leave removes this node's heartbeat, with its own short deadline: it
// runs while the node shuts down.
func (c *Coordinator) leave(ctx context.Context) {
	cl := c.redis.Redis()
	if cl == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.CallTimeout)
	defer cancel()
	if err := cl.Do(cctx, cl.B().Zrem().Key(c.cfg.Members.Name()).Member(c.cfg.NodeID).Build()).Error(); err != nil {
		c.cfg.Logger.Warn("streamgroups: leaving failed; the heartbeat ages out", "err", err)
	}
	c.mu.Lock()
	c.live, c.holders = nil, map[string]string{}
	c.mu.Unlock()
}
