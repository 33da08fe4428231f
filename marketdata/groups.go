package marketdata

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/streamgroups"
)

// MarketStream is the whole-market tickers' stream, shared by every
// symbol: it goes to the first group.
const MarketStream = "!ticker@arr"

// GroupCampaigner shares the stream groups between nodes and runs this
// node's terms (*streamgroups.Coordinator).
type GroupCampaigner interface {
	// Groups returns the group names, in order.
	Groups() []string
	// Run campaigns until ctx ends, calling work for each term of a group
	// this node holds; it returns once every term has ended.
	Run(ctx context.Context, work func(ctx context.Context, group string, t leader.Term) error) error
}

// StreamGroups cuts the streams of symbols × intervals into groups of at
// most size streams (streamgroups.Cut): each symbol's klines, ticker and
// book ticker stay together, the whole-market tickers go to g0. Every node
// with the same configuration computes the same groups.
func StreamGroups(symbols, intervals []string, size int) ([]streamgroups.Group, error) {
	var units []streamgroups.Unit
	for _, s := range symbols {
		u := streamgroups.Unit{Name: strings.ToUpper(s)}
		for _, iv := range intervals {
			u.Streams = append(u.Streams, strings.ToLower(s)+"@kline_"+iv)
		}
		u.Streams = append(u.Streams, strings.ToLower(s)+"@ticker", strings.ToLower(s)+"@bookTicker")
		units = append(units, u)
	}
	gs, err := streamgroups.Cut([]string{MarketStream}, units, size)
	if err != nil {
		return nil, fmt.Errorf("marketdata: stream groups: %w", err)
	}
	return gs, nil
}

// streamGroup is a set of streams one term holds: every stream (standalone,
// or a single group), or one group of several.
type streamGroup struct {
	name    string
	names   []string                  // stream names
	series  map[seriesID]keyspace.Key // its kline series
	symbols map[string]bool           // its symbols (tickers, book tickers)
	sh      *streamHealth
	held    atomic.Bool // a term of it runs on this node (several groups)

	// refills are series whose key the group's term replaced (it was of
	// another type): its reconciliation fills them again from REST.
	refillMu   sync.Mutex // guards refills
	refills    map[seriesID]bool
	refillWake chan struct{}
}

func newStreamGroup(name string, names []string, sh *streamHealth) *streamGroup {
	return &streamGroup{name: name, names: names, series: map[seriesID]keyspace.Key{}, symbols: map[string]bool{}, sh: sh,
		refills: map[seriesID]bool{}, refillWake: make(chan struct{}, 1)}
}

// setupGroups cuts the streams into the campaigner's groups; with none,
// every term streams them all.
func (n *Node) setupGroups(size int) error {
	if n.cfg.Groups == nil {
		return nil
	}
	gs, err := StreamGroups(n.cfg.Symbols, n.cfg.Intervals, size)
	if err != nil {
		return err
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if want := n.cfg.Groups.Groups(); !slices.Equal(names, want) {
		return fmt.Errorf("marketdata: the streams cut into groups %v, the campaigner shares %v", names, want)
	}
	n.groups = map[string]*streamGroup{}
	for _, g := range gs {
		sg := newStreamGroup(g.Name, g.Streams, &streamHealth{base: n.sh.base})
		for _, sym := range g.Units {
			sg.symbols[sym] = true
			for _, iv := range n.cfg.Intervals {
				id := seriesID{sym, iv}
				sg.series[id] = n.series[id]
			}
		}
		n.groups[g.Name] = sg
		n.groupOrder = append(n.groupOrder, g.Name)
	}
	return nil
}

// campaign shares the groups with the other nodes until ctx ends: each
// term of a group streams that group's streams into Redis, fenced by the
// group's lease, after backfilling and reconciling its series from REST.
func (n *Node) campaign(ctx context.Context) {
	n.mode.Store(int32(ModeFollower))
	n.cfg.Groups.Run(ctx, func(ctx context.Context, group string, t leader.Term) error {
		sg := n.groups[group]
		cl := n.cache.Redis()
		if sg == nil || cl == nil {
			return errors.New("marketdata: redis went away")
		}
		n.st.Terms.Add(1)
		sg.sh.begin()
		sg.held.Store(true)
		if n.holding.Add(1) == 1 {
			n.mode.Store(int32(ModeLeader))
		}
		defer func() {
			sg.held.Store(false)
			if n.holding.Add(-1) == 0 {
				n.mode.CompareAndSwap(int32(ModeLeader), int32(ModeFollower))
			}
		}()
		s := n.redisSink(cl)
		s.fence, s.checks = t.Fence, newCheckTimes(n.cfg.CheckEvery)
		return n.ingest(ctx, s, sg)
	})
}

// HeldGroups returns the stream groups this node streams now, in order:
// with several groups those whose lease it holds; with one, "g0" while it
// leads or streams standalone (then every stream).
func (n *Node) HeldGroups() []string {
	if n.groups == nil {
		if n.Streaming() {
			return []string{"g0"}
		}
		return nil
	}
	if n.Mode() == ModeStandalone {
		return slices.Clone(n.groupOrder)
	}
	var out []string
	for _, g := range n.groupOrder {
		if n.groups[g].held.Load() {
			out = append(out, g)
		}
	}
	return out
}

// groupsStatus combines the stream status of the groups this node holds:
// the worst state, the oldest last event, every reason.
func (n *Node) groupsStatus(staleAfter time.Duration) StreamStatus {
	out := StreamStatus{State: StreamNotStreaming}
	rank := map[string]int{StreamNotStreaming: 0, StreamConnected: 1, StreamConnecting: 2, StreamDown: 3}
	var reasons []string
	first := true
	for _, g := range n.groupOrder {
		sg := n.groups[g]
		if !sg.held.Load() {
			continue
		}
		st := sg.sh.status(staleAfter, true)
		if rank[st.State] > rank[out.State] {
			out.State = st.State
		}
		if first || st.LastEvent.Before(out.LastEvent) {
			out.LastEvent = st.LastEvent
		}
		if first || st.LastConnect.Before(out.LastConnect) {
			out.LastConnect = st.LastConnect
		}
		if first || st.Since.Before(out.Since) {
			out.Since = st.Since
		}
		if st.BackfillError != "" && (out.BackfillError == "" || st.BackfillFailingSince.Before(out.BackfillFailingSince)) {
			out.BackfillError, out.BackfillFailingSince = st.BackfillError, st.BackfillFailingSince
		}
		if st.Reason != "" {
			reasons = append(reasons, g+": "+st.Reason)
		}
		first = false
	}
	out.Connected = out.State == StreamConnected
	out.Reason = strings.Join(reasons, "; ")
	return out
}
