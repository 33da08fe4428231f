// Package marketdata moves the exchange's market data into Redis and reads
// it back: one elected node streams, every node reads.
//
// One elected node (the leader, see package leader) holds the exchange's
// market streams and writes, every FlushEvery:
//
//	market:kline:{SYMBOL}:{interval}  sorted set, score = open time, member = JSON kline
//	                                  (Binance's single-letter fields), the last Window klines,
//	                                  the open kline upserted in place; TTL per interval
//	ticker_24h:{SYMBOL}               string, JSON 24hr ticker (REST field names), 30 s
//	market:ticker_24h                 hash, symbol → JSON 24hr ticker, 120 s
//	market:book_ticker                hash, symbol → JSON book ticker, 30 s
//
// Each write is a Lua script that first checks the leader's fence (the
// lease still holds the leader's token) and refreshes each key's TTL in the
// same step, so a deposed leader writes nothing and no key outlives its
// TTL. A flush writes the series (and tickers) sharing a slot — all of
// them on one Redis — with one script per batch, pipelined: at Binance's
// cadence a flush holds an update of most series, and a script per key
// cost the leader more than everything else it does. Updates are buffered between flushes and dropped from the buffer once
// written: only unflushed klines stay in process memory.
//
// The stream owns the open kline; closed klines are kept equal to REST's
// (see Kline integrity): after any gap — the start of a term, a reconnect,
// a failover to a new leader — the missing ones are written from REST. A
// series' stream klines are held back until its term's first
// reconciliation has written the window (or failed), so no reader finds a
// series holding only the newest klines; one holding none is answered
// from REST.
//
// Every node reads through a Reader: klines, book tickers and the
// whole-market tickers from Redis; ticker_24h:{SYMBOL} and
// symbol_info:{SYMBOL} read-through (a miss is loaded from REST once,
// however many callers wait, and written with its TTL), and klines of a
// series nobody streams straight from REST.
//
// No REST call is made for a symbol the exchange does not list. Symbols
// are checked against exchange_info (hash: symbol → exchangeInfo entry,
// 1 h), filled by one exchangeInfo request shared by every node and
// reloaded when a symbol is missing from a snapshot older than
// Config.SymbolRefresh (a new listing). A symbol still missing is
// ErrUnknownSymbol, remembered in unknown_symbol:{SYMBOL} (60 s), so junk
// symbols cost Redis reads, not REST weight. The node's own REST calls
// (backfill, the exchangeInfo load) run at System priority in the REST
// weight budget (package ratelimit), readers' at the context's (User by
// default).
//
// # Bounded reads and bad content
//
// Redis holds whatever anyone wrote there, so nothing read from it is
// trusted to be small or well formed. Every read is bounded by the key's
// size limit (keyspace.Key.MaxValue: 4 KiB per kline member or hash field
// by default) in Redis itself, before anything is sent: a script measures
// each member with string.len (each hash field with HSTRLEN) and returns
// only those within the limit, so an oversized value never crosses the
// wire into a node (valkey-go buffers whole replies). A read passes over
// at most 16 oversized members; the scores where it found them are
// remembered for a minute (or until they hold fewer members) and passed
// around by score afterwards, because measuring a member means copying it
// inside Redis first. Concurrent identical kline reads share one read.
//
// Readers skip what they cannot use and answer without it: a member that
// is oversized, not JSON, or not a kline whose open time is its score; a
// book ticker or market ticker field that is oversized or not the ticker
// of its symbol (BookTicker says it holds none). A key of another Redis
// type reads as empty (a series nobody writes then comes from REST).
// Read-through keys (ticker_24h, symbol_info) heal through the cache:
// anything unusable there is a miss, loaded again and overwritten with
// its TTL. Each case is counted by kind and reason and logged at most once
// a minute per key (cache.ReportBad).
//
// The leader removes such content, inside its fenced scripts, so a
// deposed leader removes nothing: each write replaces a key of another
// type (deleted and rewritten; a series replaced so is filled again from
// REST), and removes from the series every bad member at or above the
// klines it writes — a garbage member above the open kline, which the
// trim never reaches, is gone at the next flush. Every CheckEvery (one
// minute) a write checks the whole series, or every field of a hash, and
// removes the rest.
//
// # Stream groups
//
// With Config.Groups the streams are cut into groups (StreamGroups: each
// symbol's klines, ticker and book ticker whole, the whole-market tickers
// in g0, at most Config.GroupSize streams a group) that the nodes share
// (package streamgroups). Each group held is a term of its own: the
// group's streams on their own connections, its writes fenced by the
// group's lease, its integrity state, health and refills its own; the
// term starts, like every term, by reconciling the group's whole window
// with REST, so a group that moved has no gap. The node leads (Mode) while
// it holds one group or more; StreamStatus is the worst of theirs;
// HeldGroups says which. Without Config.Groups one term holds every
// stream, elected by the elector New was given.
//
// With Redis down there is nothing to elect on: each node streams for itself
// into a bounded in-memory sink with the same TTLs, serves its readers from
// it, and rejoins the election when Redis is back.
//
// StreamStatus tells whether the exchange is really there: on the node
// that streams, whether its streams have connected since it started
// streaming and how old the newest event from them is (Binance pushes the
// whole market's tickers every second, so silence means a dead stream,
// however the connection looks), and whether backfills from REST keep
// failing. A node that cannot reach the exchange still leads, or streams
// standalone, and serves what it holds; its status says it is down.
//
// # Kline integrity
//
// The streaming node keeps every closed kline equal to the exchange's REST
// history, whatever its streams do (drop, stall, flood, repeat, replay,
// send garbage):
//
//   - The first valid final (x:true) of an open time is kept. A later final
//     that disagrees is a conflict: not written, counted, logged once per
//     series and term (then hourly, with the count), and settled by REST,
//     which wins: at once if REST already decided that bar, else by a
//     reconciliation. (Valid: its open time starts a bar of the series, not
//     after the exchange clock's next one, its close time ends it, it was
//     sent after its close, and low ≤ open, close ≤ high.)
//   - An in-progress update (x:false) is dropped once its bar has a final or
//     a later bar has begun; a bar whose final never came is written from
//     REST, so no in-progress version is ever left standing for a closed bar.
//   - After each disturbance the affected series are reconciled: compared
//     with REST from the first bar not known good (known good: compared with
//     REST, or a final kept in order after such a bar) to now, and REST's
//     closed klines written where the store lacks them, holds them in
//     progress or holds other values; REST's are then the finals kept. The
//     disturbances: the start of a term (the whole window is compared), a
//     (re)connection, an open-time gap (an event for a bar while an earlier
//     one never had its final), a conflict with a final the stream delivered
//     first, silence (the exchange's clock — the newest event time of any
//     stream — passed a whole bar beyond the first bar without its final),
//     and a failed reconciliation (retried after 1, 2, 4… up to 30 s). The
//     disturbances of a series within Integrity.ReconcileDelay (250 ms), and
//     while its reconciliation runs, are coalesced into one; a reconnection
//     after which no bar has closed costs nothing. What a reconciliation
//     writes, except a term's first backfill, is also published as kline
//     events (the newest 100), so readers that follow events see the
//     repaired finals.
//   - A background verification compares each series' newest
//     Integrity.VerifyDepth (99) closed klines with REST every
//     Integrity.VerifyEvery (5 min), the series spread evenly over the
//     period: it catches what no event revealed (a wrong final that came
//     first and alone).
//
// The guarantee: every closed kline of the stored window that closed at
// least N = 2 intervals before the exchange's clock equals REST's (the same
// decimal values, compared as strings without trailing zeros, and
// x:true), with no gap and no duplicate open time — as long as the node
// receives some stream event at least once per interval (a silent
// connection is reset after the client's StaleAfter, 30 s, so this holds
// for every interval of Binance at real speed), REST answers, and the
// weight budget allows. A wrong final no event disputes is right again
// within VerifyEvery (for the newest VerifyDepth klines).
//
// Its cost in REST weight (GET /fapi/v1/klines: limit ≤ 100 → 1, ≤ 500 → 2,
// ≤ 1000 → 5, above → 10): one request per affected series per
// disturbance, of limit = the closed bars to compare plus one (the open bar,
// which shows the others closed), at most the window: weight 1 for a
// reconnection, gap, conflict or silence of up to 99 bars; at a term's
// start, limit = Window: 5 with the default 1000 (2 for a window of 101 to
// 500, 10 above 1000); and 1 per series per VerifyEvery.
// Reconciliations spend at most Integrity.WeightPerMinute (600, a quarter of
// Binance's 2400 per IP) together; beyond it they wait, and coalesce.
// IntegrityStats and the Collector's metrics count conflicts, reconciliations
// by reason, klines compared and repaired, and the weight spent.
package marketdata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valkey-io/valkey-go"
	"golang.org/x/sync/singleflight"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/lifecycle"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/streamgroups"
)

// Streamer runs the exchange's market streams until its context ends.
type Streamer interface {
	Run(ctx context.Context) error
}

// StreamFactory builds a Streamer for the named streams. onEvent receives
// every decoded event; onConnect is called after each (re)connection, once
// the streams are subscribed: a gap may lie behind it.
type StreamFactory func(streams []string, onEvent func(exchange.Event), onConnect func(path string)) (Streamer, error)

// Config configures a Node.
type Config struct {
	Symbols    []string      // upper-case symbols ("BTCUSDT")
	Intervals  []string      // kline intervals ("1m", "5m")
	Window     int           // klines kept per series (default 1000)
	FlushEvery time.Duration // buffer → Redis period (default 100 ms)
	// CallTimeout bounds each Redis write (default 2 s) and REST call (10 s).
	CallTimeout time.Duration
	// MaxMarketSymbols bounds the whole-market hashes in memory, and the
	// fields a read of one from Redis returns (4096).
	MaxMarketSymbols int
	// SymbolRefresh: a symbol missing from an exchange_info snapshot older
	// than this reloads exchangeInfo, so a new listing is found (default
	// 1 min); one missing from a younger snapshot is unknown at once.
	SymbolRefresh time.Duration
	// CheckEvery is how often the leader checks every member of each
	// series and every field of the hashes it writes, removing what no
	// reader can use (default 1 min). Each write checks what it wrote and
	// what lies above it at once.
	CheckEvery time.Duration
	Logger     *slog.Logger
	// Integrity configures the reconciliation of klines with REST.
	Integrity Integrity
	// Groups, when set, shares the streams with the other nodes in groups
	// of at most GroupSize streams (StreamGroups), each group with its own
	// lease; the elector passed to New is then not used. Nil: one group,
	// every stream, elected by that elector.
	Groups    GroupCampaigner
	GroupSize int // default streamgroups.DefaultSize
	// Events, when set, receives what this node writes, as events:
	// "kline" (every kline written, on update and on close), "ticker"
	// (per configured symbol) and "book_ticker". Only the node that
	// streams (leader or standalone) publishes.
	Events EventPublisher
}

// EventPublisher publishes without blocking (bus.Redis.PublishAsync).
type EventPublisher interface {
	PublishAsync(name string, data any) error
}

// Mode is what a node is doing with the streams.
type Mode int32

const (
	ModeIdle       Mode = iota // not started
	ModeFollower               // Redis up, another node leads
	ModeLeader                 // elected: streams → Redis
	ModeStandalone             // Redis down: streams → this node's memory
)

func (m Mode) String() string {
	return [...]string{"idle", "follower", "leader", "standalone"}[m]
}

// Node is one process's market-data role.
type Node struct {
	cfg     Config
	keys    *keyspace.Registry
	cache   *cache.Cache
	rest    exchange.MarketREST
	streams StreamFactory
	elector *leader.Elector
	mem     *memSink

	series   map[seriesID]keyspace.Key // configured kline series
	seriesOf map[string]seriesID       // by key name
	names    []string                  // stream names

	// all is every stream: the standalone stream's, and the leader's
	// with a single group.
	all *streamGroup
	// groups, with several groups (Config.Groups), by name, and their
	// order; holding counts this node's terms of them.
	groups     map[string]*streamGroup
	groupOrder []string
	holding    atomic.Int32

	writeLog *logThrottle // write failures, per key

	skips   *skipMemo          // oversized kline members reads pass around
	flights singleflight.Group // kline reads in flight

	mode      atomic.Int32
	st        Stats
	sh        streamHealth
	lat       latency
	symbolsSF singleflight.Group // collapses exchangeInfo loads
	ist       integrityStats
	// rbudget bounds the REST weight of reconciliations.
	rbudget weightBudget
}

type seriesID struct{ symbol, interval string }

// Stats are cumulative counters.
type Stats struct {
	Events        atomic.Uint64 // stream events received
	Ignored       atomic.Uint64 // events for symbols or series not configured
	KlinesWritten atomic.Uint64 // kline upserts written (after coalescing)
	Flushes       atomic.Uint64
	Backfills     atomic.Uint64 // series backfilled from REST
	BackfillKline atomic.Uint64 // klines written by backfill
	WriteErrors   atomic.Uint64
	Fenced        atomic.Uint64 // writes refused because the lease was lost
	Terms         atomic.Uint64 // leadership terms started here
	SymbolLoads   atomic.Uint64 // exchangeInfo loads into exchange_info
	// What the leader's writes removed because no reader could use it.
	MembersRemoved atomic.Uint64 // kline members (oversized, undecodable, at the wrong score)
	FieldsRemoved  atomic.Uint64 // hash fields (oversized, undecodable, of another symbol)
	KeysReplaced   atomic.Uint64 // keys of another Redis type, deleted and rewritten
}

// New returns a Node; it does no I/O. elector may be nil when there is no
// Redis at all (embedded mode): the node then always streams standalone.
func New(cfg Config, keys *keyspace.Registry, c *cache.Cache, rest exchange.MarketREST, streams StreamFactory, elector *leader.Elector) (*Node, error) {
	if cfg.Window <= 0 {
		cfg.Window = 1000
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 100 * time.Millisecond
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	if cfg.MaxMarketSymbols <= 0 {
		cfg.MaxMarketSymbols = 4096
	}
	if cfg.SymbolRefresh <= 0 {
		cfg.SymbolRefresh = time.Minute
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, keys: keys, cache: c, rest: rest, streams: streams, elector: elector,
		mem: newMemSink(cfg.Window, cfg.MaxMarketSymbols, c), series: map[seriesID]keyspace.Key{}, seriesOf: map[string]seriesID{},
		writeLog: newLogThrottle(time.Minute), skips: newSkipMemo(time.Minute),
		sh: streamHealth{base: time.Now()}}
	if len(cfg.Symbols) == 0 || len(cfg.Intervals) == 0 {
		return nil, errors.New("marketdata: no symbols or intervals configured")
	}
	for _, s := range cfg.Symbols {
		for _, iv := range cfg.Intervals {
			k, err := keys.Kline(s, iv)
			if err != nil {
				return nil, fmt.Errorf("marketdata: %w", err)
			}
			n.series[seriesID{strings.ToUpper(s), iv}] = k
			n.seriesOf[k.Name()] = seriesID{strings.ToUpper(s), iv}
			n.names = append(n.names, strings.ToLower(s)+"@kline_"+iv)
		}
		if _, err := keys.Ticker24h(s); err != nil {
			return nil, fmt.Errorf("marketdata: %w", err)
		}
		n.names = append(n.names, strings.ToLower(s)+"@ticker", strings.ToLower(s)+"@bookTicker")
	}
	n.names = append(n.names, MarketStream)
	n.all = newStreamGroup("g0", n.names, &n.sh)
	n.all.series = n.series
	for _, s := range cfg.Symbols {
		n.all.symbols[upper(s)] = true
	}
	if cfg.GroupSize <= 0 {
		cfg.GroupSize = streamgroups.DefaultSize
	}
	if err := n.setupGroups(cfg.GroupSize); err != nil {
		return nil, err
	}
	return n, nil
}

// latency records how long kline updates wait between their receipt from
// the stream and the end of the write that put them in Redis: the oldest
// update of each written series, so a quantile is a bound for all.
type latency struct {
	mu sync.Mutex // guards h
	h  benchfmt.Hist
}

func (l *latency) record(d time.Duration) {
	l.mu.Lock()
	l.h.Record(d)
	l.mu.Unlock()
}

// WriteLatency returns the p50 and p99 of stream-to-Redis latency so far
// and the number of samples.
func (n *Node) WriteLatency() (p50, p99 time.Duration, count uint64) {
	n.lat.mu.Lock()
	defer n.lat.mu.Unlock()
	return n.lat.h.Quantile(0.5), n.lat.h.Quantile(0.99), n.lat.h.Count()
}

// Mode reports what the node is doing now.
func (n *Node) Mode() Mode { return Mode(n.mode.Load()) }

// Streaming reports whether this node holds the exchange streams (elected,
// or standalone with Redis down).
func (n *Node) Streaming() bool { m := n.Mode(); return m == ModeLeader || m == ModeStandalone }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.st }

// Run plays the node's role until ctx ends: with Redis, campaign and lead
// when elected; without, stream standalone into memory. It switches as
// Redis comes and goes.
func (n *Node) Run(ctx context.Context) error {
	defer n.mode.Store(int32(ModeIdle))
	var campaign func(context.Context)
	if n.groups != nil {
		campaign = n.campaign
	}
	lifecycle.Role{
		Redis:    n.cache.Redis,
		Elector:  n.elector,
		Campaign: campaign,
		Standalone: func(ctx context.Context) error {
			n.startStreaming(ModeStandalone)
			return n.ingest(ctx, n.mem, n.all)
		},
		Follow: func() { n.mode.Store(int32(ModeFollower)) },
		Lead: func(ctx context.Context, cl valkey.Client, t leader.Term) error {
			n.st.Terms.Add(1)
			n.startStreaming(ModeLeader)
			defer n.mode.Store(int32(ModeFollower))
			s := n.redisSink(cl)
			s.fence, s.checks = t.Fence, newCheckTimes(n.cfg.CheckEvery)
			return n.ingest(ctx, s, n.all)
		},
		Logger: n.cfg.Logger,
		Name:   "marketdata",
	}.Run(ctx)
	return nil
}

// startStreaming switches to a streaming mode. Coming from a mode that
// does not stream, it starts the clock StreamStatus measures connecting
// from; a standalone stream retried after a failure keeps it, so a stream
// that never comes up is reported down.
func (n *Node) startStreaming(m Mode) {
	if !n.Streaming() {
		n.sh.begin()
	}
	n.mode.Store(int32(m))
}

// readSink is where readers look now: Redis when reachable, else memory.
func (n *Node) readSink() sink {
	if cl := n.cache.Redis(); cl != nil {
		return n.redisSink(cl)
	}
	return n.mem
}

// redisSink is an unfenced sink on cl that reports what it skips.
func (n *Node) redisSink(cl valkey.Client) *redisSink {
	return &redisSink{cl: cl, window: n.cfg.Window, timeout: n.cfg.CallTimeout, maxFields: n.cfg.MaxMarketSymbols,
		report: n.cache.ReportBad, skips: n.skips, flights: &n.flights}
}
