// Package node assembles a tradecache node from one typed Config: the
// tiered cache, leader election, the REST weight budget shared with the
// other nodes, market data (elected or standalone), the account's user
// data stream, the event bus with logs published as events,
// notifications, the /ws gateway and the HTTP API. New checks and builds;
// Run runs it all until its context ends and shuts down in order.
//
// A node is safe to expose: one whose HTTP.Listen host is not loopback
// refuses to start without HTTP.APITokens unless HTTP.TrustNetwork says
// that every host that can reach it may use it (it then logs one WARN
// line). The API token guards the account routes and the keys audit (every
// route but /healthz, / and /ws with APIAuthAll); without a token they are
// open on loopback only. Host headers other than IP addresses, localhost,
// the Listen host and HTTP.AllowedHosts are refused (DNS rebinding);
// HTTP.TLSCert and HTTP.TLSKey serve HTTPS (TLS 1.2 or newer); HTTP.Limits
// bound every request and connection (package internal/httpapi says how).
package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/account"
	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/eventlog"
	"github.com/tradecache/tradecache/internal/bearer"
	"github.com/tradecache/tradecache/internal/gateway"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
	"github.com/tradecache/tradecache/notify"
	"github.com/tradecache/tradecache/streamgroups"
)

// eventBus is what serve needs of a bus: publish (sync and without
// blocking), subscribe, run, metrics.
type eventBus interface {
	bus.Publisher
	bus.ReadySubscriber // the gateway subscribes only while a client listens
	PublishAsync(name string, data any) error
	Run(ctx context.Context) error
	Collector() prometheus.Collector
}

// localBus adapts bus.Local (which never blocks) to eventBus.
type localBus struct{ *bus.Local }

func (l localBus) PublishAsync(name string, data any) error {
	return l.Publish(context.Background(), name, data)
}
func (localBus) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Node is one tradecache node, built by New and run by Run.
type Node struct {
	cfg      Config
	log      *slog.Logger // the base logger (not published as events)
	reg      *keyspace.Registry
	channel  string
	tokens   []string // /ws tokens, generated for a demo
	tc       *cache.Cache
	events   eventBus
	logs     *eventlog.Handler
	ex       *exchangeSide
	md       *marketdata.Node
	groups   *streamgroups.Coordinator // nil: one stream group (or no Redis)
	acct     *account.Node             // nil without API keys
	notifier *notify.Notifier
	gw       *gateway.Gateway // nil when /ws is off
	api      *httpapi.Server
	tls      *tls.Config // nil: plain HTTP
	metrics  *prometheus.Registry
}

// New checks cfg and builds a node. It starts no goroutine and dials
// nothing; the in-process simulated exchange's listener is the one socket
// it opens (Run serves it).
func New(cfg Config) (_ *Node, retErr error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c := cfg.withDefaults()
	n := &Node{cfg: c, log: c.Logger}
	var err error
	if n.reg, err = c.Keys.Registry(); err != nil {
		return nil, fmt.Errorf("node: keys: %w", err)
	}
	if n.channel, err = n.reg.Channel(c.Events.AppPort); err != nil {
		return nil, fmt.Errorf("node: event channel: %w", err)
	}
	n.tokens = c.HTTP.WSTokens
	if len(n.tokens) == 0 && c.Demo {
		t, err := gateway.GenerateToken()
		if err != nil {
			return nil, err
		}
		n.tokens = []string{t}
	}

	cc, err := c.Redis.CacheConfig()
	if err != nil {
		return nil, fmt.Errorf("node: redis: %w", err)
	}
	// The cache's tier changes become events once the bus exists; the hook
	// is set before the cache runs and reads the bus through a field
	// assigned before Run starts.
	cc.OnTierChange = func(from, to cache.Tier, reason string) {
		if n.events != nil {
			n.events.PublishAsync("cache_tier", map[string]string{"node_id": c.NodeID, "from": from.String(), "to": to.String(), "reason": reason})
		}
	}
	cc.Logger = n.log
	if !n.reg.HashTags() {
		// A script over keys of several slots is refused by valkey-go (a
		// panic) or by the cluster (CROSSSLOT): refuse clearly instead.
		cc.RefuseCluster = "keys named for a single Redis put a leader's lease and data in different slots; name them for a cluster (--key-naming cluster, every process sharing the Redis alike)"
	}
	if n.tc, err = cache.New(cc); err != nil {
		return nil, fmt.Errorf("node: cache: %w", err)
	}
	if c.Redis.URL != "" {
		rb, err := bus.NewRedis(n.tc, bus.RedisConfig{Channel: n.channel, Mode: c.Events.Prefix, Publisher: c.NodeID, Logger: n.log})
		if err != nil {
			return nil, fmt.Errorf("node: bus: %w", err)
		}
		n.events = rb
	} else {
		n.events = localBus{bus.NewLocal(bus.LocalConfig{Mode: c.Events.Prefix, Publisher: c.NodeID})}
	}
	if c.Events.SessionID == "" {
		if c.Events.SessionID, err = newUUID(); err != nil {
			return nil, fmt.Errorf("node: session id: %w", err)
		}
		n.cfg.Events.SessionID = c.Events.SessionID
	}
	n.logs = eventlog.New(n.log.Handler(), n.events, eventlog.Config{NodeID: c.NodeID, SessionID: c.Events.SessionID})
	log := slog.New(n.logs)
	n.tc.SetLogger(log)

	if n.ex, err = newExchange(c, log, n.reg, n.tc.Redis); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	// A later failure must not leave the simulator's listener open.
	defer func() {
		if n.ex.close != nil && retErr != nil {
			n.ex.close()
		}
	}()
	elector, err := n.elector(n.reg.MarketWSLeader(), nil, log)
	if err != nil {
		return nil, err
	}
	mcfg := marketdata.Config{Symbols: c.Market.Symbols, Intervals: c.Market.Intervals, Window: c.Market.Window, Logger: log, Events: n.events,
		GroupSize: c.Market.GroupSize}
	if n.groups, err = n.streamGroups(log); err != nil {
		return nil, err
	}
	if n.groups != nil {
		mcfg.Groups, elector = n.groups, nil
	}
	n.md, err = marketdata.New(mcfg, n.reg, n.tc, n.ex.rest, n.ex.streams, elector)
	if err != nil {
		return nil, fmt.Errorf("node: market data: %w", err)
	}
	if n.ex.user != nil {
		lease, err := n.reg.AccountLeader(c.Account.Name)
		if err != nil {
			return nil, fmt.Errorf("node: account: %w", err)
		}
		el, err := n.elector(lease, err, log)
		if err != nil {
			return nil, err
		}
		if n.acct, err = account.New(account.Config{Account: c.Account.Name, Events: n.events, Logger: log}, n.reg, n.tc, n.ex.rest, n.ex.user, el); err != nil {
			return nil, fmt.Errorf("node: account: %w", err)
		}
	}
	if n.notifier, err = notify.New(c.Notify, notify.WithLogger(log)); err != nil {
		return nil, fmt.Errorf("node: notifications: %w", err)
	}
	if len(n.tokens) > 0 {
		if n.gw, err = gateway.New(n.events, gateway.Config{Tokens: n.tokens, Origins: c.HTTP.WSOrigins, Logger: log}); err != nil {
			return nil, fmt.Errorf("node: /ws: %w", err)
		}
	}

	n.metrics = prometheus.NewRegistry()
	n.metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		n.tc.Collector(), n.md.Collector(), n.ex.metrics, n.ex.budget.Collector(), n.events.Collector(), n.logs.Collector(), n.notifier.Collector(),
	)
	n.api = &httpapi.Server{NodeID: c.NodeID, Cache: n.tc, Gatherer: n.metrics, Started: time.Now(), Version: c.Version,
		Market: n.md.Reader(), Leader: n.md.Streaming, Mode: func() string { return n.md.Mode().String() },
		Exchange: n.md, StaleAfter: c.HTTP.StaleAfter, Groups: n.groupsHealth}
	if n.gw != nil {
		n.metrics.MustRegister(n.gw.Collector())
		n.api.WS = n.gw
	}
	if n.acct != nil {
		n.api.Account = n.acct
	}
	if c.Redis.URL != "" {
		n.api.Audit = newAuditor(n.tc, n.reg)
	}
	if err := n.protect(); err != nil {
		return nil, err
	}
	return n, nil
}

// protect sets the HTTP API's token, Host allow-list, limits and TLS.
func (n *Node) protect() error {
	h := n.cfg.HTTP
	toks, err := bearer.New(h.APITokens)
	if err != nil {
		return fmt.Errorf("node: API token: %w", err)
	}
	n.api.Auth = httpapi.Auth{Tokens: toks, Scope: httpapi.Scope(h.APIAuth), OpenWithoutToken: IsLoopback(h.Listen)}
	n.api.AllowedHosts = h.AllowedHosts
	// The listen host, when a name, is how clients address the node. An
	// address (and localhost) is always allowed; 0.0.0.0, :: and "" bind
	// every interface and name none.
	if host, _, err := net.SplitHostPort(h.Listen); err == nil && host != "" && net.ParseIP(host) == nil {
		n.api.AllowedHosts = append(n.api.AllowedHosts, host)
	}
	n.api.Limits = h.Limits
	if h.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey)
		if err != nil {
			return fmt.Errorf("node: TLS certificate %s and key %s: %w", h.TLSCert, h.TLSKey, err)
		}
		n.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	return nil
}

// elector is the election of one lease, or nil on the embedded memory tier
// (nothing to elect on: the node serves itself).
func (n *Node) elector(lease keyspace.Key, leaseErr error, log *slog.Logger) (*leader.Elector, error) {
	if leaseErr != nil {
		return nil, leaseErr
	}
	if n.cfg.Redis.URL == "" {
		return nil, nil
	}
	epoch, err := n.reg.LeaderEpoch(lease)
	if err != nil {
		return nil, fmt.Errorf("node: election: %w", err)
	}
	el, err := leader.New(n.tc, leader.Config{Lease: lease, Epoch: epoch, NodeID: n.cfg.NodeID, Logger: log, Keys: n.reg})
	if err != nil {
		return nil, fmt.Errorf("node: election: %w", err)
	}
	return el, nil
}

// streamGroups is the sharing of the stream groups between the nodes when
// the streams are cut into more than one; nil with one (led through
// market_ws_leader, as a single group always was) or without Redis.
func (n *Node) streamGroups(log *slog.Logger) (*streamgroups.Coordinator, error) {
	c := n.cfg
	if c.Redis.URL == "" {
		return nil, nil
	}
	gs, err := marketdata.StreamGroups(c.Market.Symbols, c.Market.Intervals, cmp.Or(c.Market.GroupSize, streamgroups.DefaultSize))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if len(gs) < 2 {
		return nil, nil
	}
	cfg := streamgroups.Config{Members: n.reg.MarketNodes(), NodeID: c.NodeID, Leases: map[string]streamgroups.Lease{}, Logger: log, Keys: n.reg}
	for _, g := range gs {
		lease, err := n.reg.MarketWSGroup(g.Name)
		if err != nil {
			return nil, fmt.Errorf("node: stream groups: %w", err)
		}
		epoch, err := n.reg.LeaderEpoch(lease)
		if err != nil {
			return nil, fmt.Errorf("node: stream groups: %w", err)
		}
		cfg.Groups = append(cfg.Groups, g.Name)
		cfg.Leases[g.Name] = streamgroups.Lease{Lease: lease, Epoch: epoch}
	}
	co, err := streamgroups.New(n.tc, cfg)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return co, nil
}

// groupsHealth is the stream groups section of /healthz: the groups this
// node holds and, with several groups, the holders it last saw.
func (n *Node) groupsHealth() *httpapi.GroupsHealth {
	h := &httpapi.GroupsHealth{Total: 1, Held: n.md.HeldGroups()}
	if n.groups == nil {
		return h
	}
	v := n.groups.View()
	h.Total, h.Live, h.Holders = len(n.groups.Groups()), v.Live, v.Holders
	return h
}

// Health is the node's /healthz answer now.
func (n *Node) Health() httpapi.Health { return n.api.Health() }

// Run runs the node until ctx ends: it listens, prints the start banner,
// and runs every part. Shutdown is graceful: HTTP gets 10 s, the leaders
// release their leases, and the cache closes last.
func (n *Node) Run(ctx context.Context) error {
	c := n.cfg
	ln, err := net.Listen("tcp", c.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("node: listen on %s: %w", c.HTTP.Listen, err)
	}
	srv := n.api.HTTPServer()
	// net/http's own complaints (TLS handshakes of scanners, bad requests)
	// are not the operator's news.
	srv.ErrorLog = slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)
	srv.TLSConfig = n.tls
	n.banner(ln.Addr().String())
	if !IsLoopback(c.HTTP.Listen) && len(c.HTTP.APITokens) == 0 {
		n.log.Warn("HTTP API open to the network without an API token (--trust-network): whoever reaches " + ln.Addr().String() +
			" reads market data, /metrics and /healthz; the account routes and the keys audit answer 401 until --api-token is set")
	}

	// The cache outlives everything that uses it: on shutdown the leader
	// releases its lease through the cache's client, so the cache's Run is
	// stopped only after the rest has returned.
	cctx, stopCache := context.WithCancel(context.WithoutCancel(ctx))
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- n.tc.Run(cctx) }()
	defer func() { stopCache(); <-cacheDone }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.events.Run(gctx) })
	g.Go(func() error { return n.logs.Run(gctx) })
	g.Go(func() error { return n.md.Run(gctx) })
	if n.acct != nil {
		g.Go(func() error { return n.acct.Run(gctx) })
	}
	if n.ex.run != nil {
		g.Go(func() error { return n.ex.run(gctx) })
	}
	if c.Notify.Enabled() {
		g.Go(func() error { return n.notifier.Run(gctx) })
		g.Go(func() error { return n.notifier.Forward(gctx, n.events, nil) })
	}
	if n.gw != nil {
		g.Go(func() error { return n.gw.Run(gctx) })
	}
	g.Go(func() error {
		// A heartbeat lets every node (and the dashboard) see the others.
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			n.events.PublishAsync("heartbeat", n.api.Health())
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	g.Go(func() error {
		var err error
		if n.tls != nil {
			err = srv.ServeTLS(ln, "", "") // the certificate is in srv.TLSConfig
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("node: http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("node: shutdown: %w", err)
		}
		return nil
	})
	err = g.Wait()
	n.log.Info("node stopped", "node_id", c.NodeID)
	return err
}

// banner tells the operator what runs where: the address (with the /ws
// token in the dashboard's address when the token was generated), the
// tier, the exchange and the channel.
func (n *Node) banner(addr string) {
	c, w := n.cfg, n.cfg.Stdout
	redisDesc := "embedded memory tier (no Redis)"
	if c.Redis.URL != "" {
		redisDesc = "Redis " + cache.Redact(c.Redis.URL)
	}
	scheme := "http"
	if n.tls != nil {
		scheme = "https"
	}
	fmt.Fprintf(w, "tradecache %s: node %s on %s://%s (health /healthz, metrics /metrics), %s, %s; streaming %v × %v; events on %s\n",
		c.Version, c.NodeID, scheme, addr, redisDesc, n.ex.desc, c.Market.Symbols, c.Market.Intervals, n.channel)
	if n.groups != nil {
		fmt.Fprintf(w, "streams cut into %d stream groups of at most %d (--stream-group-size), shared with the other nodes\n",
			len(n.groups.Groups()), cmp.Or(c.Market.GroupSize, streamgroups.DefaultSize))
	}
	switch {
	case n.gw == nil:
		fmt.Fprintln(w, "/ws is off: set --ws-token (TRADECACHE_WS_TOKEN) to relay events")
	case len(c.HTTP.WSTokens) == 0:
		fmt.Fprintf(w, "/ws token (generated for this run): %s\n", n.tokens[0])
		fmt.Fprintf(w, "dashboard: %s://%s/#token=%s\n", scheme, addr, n.tokens[0])
	default:
		fmt.Fprintf(w, "dashboard: %s://%s/ (enter a /ws token for live events)\n", scheme, addr)
	}
	if len(c.HTTP.APITokens) > 0 {
		guarded := "/api/v1/positions, /api/v1/balance and /api/v1/keys/audit"
		if c.HTTP.APIAuth == APIAuthAll {
			guarded = "every route but /healthz, / and /ws"
		}
		fmt.Fprintf(w, "API token (--api-token) required on %s: Authorization: Bearer <token>\n", guarded)
	}
	if c.Demo {
		if c.Redis.URL == "" {
			fmt.Fprintln(w, "demo mode: simulated exchange and account, embedded memory tier: no Redis, no internet and no API keys needed")
		} else {
			fmt.Fprintln(w, "demo mode: simulated exchange and account on Redis: no internet and no API keys needed")
		}
	}
}

// newUUID is a random (version 4) UUID, the form of Jesse's session ids.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
