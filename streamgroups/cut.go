// Package streamgroups shares the market streams between nodes: it cuts
// the configured streams into groups that respect the exchange's limits per
// connection, ranks the live nodes for each group by rendezvous hashing,
// and campaigns for the groups this node should hold, each with its own
// lease and epoch (package leader).
//
// # Groups
//
// Cut puts each unit (one symbol's streams: its klines, ticker and book
// ticker) whole into a group, the units in name order, a group holding at
// most Size streams (at most 1024, Binance's limit per connection; the
// shared streams, such as the whole-market tickers, go first into g0). The
// cut depends only on the configuration, so every node with the same
// symbols, intervals and size computes the same groups, named g0, g1, … .
// Nodes do not compare their cuts: nodes configured differently share
// group names that hold different streams.
//
// # Assignment
//
// Nodes announce themselves in one sorted set (keyspace's market_nodes):
// member = node id, score = Redis's clock at the node's last heartbeat.
// Every Poll each node adds itself, drops members older than the set's TTL
// (the lease TTL by default) and reads the live ones, in one script. For
// each group every node computes the same ranking of the live nodes
// (highest random weight: a hash of group and node), so a node leaving
// moves only its own groups and a node joining takes about 1/n of them.
//
// A node campaigns for the groups it ranks first for among the live nodes:
// a node that died drops out of the ranking, and the next one campaigns.
// Any node also campaigns for a group whose lease has been free for
// FreeGrace (the membership TTL by default), whoever ranks first: the
// preferred node is live but does not take it. The node that takes it so
// offers it back (releases it) at its next look; when the preferred node
// lets it go free again, the next node to take it keeps it twice as long
// before offering it back (2, 4, … up to 64 graces): a preferred node
// that never takes its groups costs a few moves, each a new term with its
// backfill, and a grace without a holder before each. A node holding a group for
// which another live node now ranks first, seen live in two looks in a
// row, hands it over: it stops the group's work and releases the lease,
// and the newcomer, campaigning every RetryEvery from its own second look,
// acquires it. Two nodes never hold one lease at once, and the
// writes of a group are fenced by its lease (see package leader), so no two
// nodes write one group. The new holder's work starts a new term: package
// marketdata backfills and reconciles the group's series from REST.
//
// # Timing
//
// A node that dies (no release) is absent once its last heartbeat is older
// than the membership TTL, and its leases expire at most a lease TTL after
// its last renewal; the next node ranked acquires within one Poll or
// RetryEvery after that, so a dead node's groups are taken within the lease
// TTL plus about a second by default. A node that stops cleanly removes its
// heartbeat and releases its leases: its groups move within a Poll.
package streamgroups

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// MaxSize is the largest group: Binance's limit of streams per connection.
const MaxSize = 1024

// DefaultSize is the default group size: well within the connection's
// limit, and small enough that a node's share moves in pieces.
const DefaultSize = 200

// Unit is streams that stay together in one group (one symbol's).
type Unit struct {
	Name    string
	Streams []string
}

// Group is one cut of the streams, with its own lease.
type Group struct {
	Name    string   // g0, g1, …
	Units   []string // the units' names, in order
	Streams []string // the shared streams (g0 only), then each unit's
}

// Cut cuts shared and units into groups of at most size streams: the
// shared streams first in g0, then the units whole, in name order. The
// result depends only on its arguments' contents, not on their order.
func Cut(shared []string, units []Unit, size int) ([]Group, error) {
	if size <= 0 || size > MaxSize {
		return nil, fmt.Errorf("streamgroups: group size %d: want 1 to %d", size, MaxSize)
	}
	if len(shared) > size {
		return nil, fmt.Errorf("streamgroups: %d shared streams exceed the group size %d", len(shared), size)
	}
	us := slices.Clone(units)
	slices.SortFunc(us, func(a, b Unit) int { return cmp.Compare(a.Name, b.Name) })
	for i, u := range us {
		if len(u.Streams) > size {
			return nil, fmt.Errorf("streamgroups: %s has %d streams, more than the group size %d", u.Name, len(u.Streams), size)
		}
		if len(u.Streams) == 0 {
			return nil, fmt.Errorf("streamgroups: %s has no stream", u.Name)
		}
		if i > 0 && us[i-1].Name == u.Name {
			return nil, fmt.Errorf("streamgroups: %s listed twice", u.Name)
		}
	}
	cur := Group{Name: "g0", Streams: slices.Clone(shared)}
	var out []Group
	for _, u := range us {
		if len(cur.Streams)+len(u.Streams) > size {
			out = append(out, cur)
			cur = Group{Name: "g" + strconv.Itoa(len(out))}
		}
		cur.Units = append(cur.Units, u.Name)
		cur.Streams = append(cur.Streams, u.Streams...)
	}
	if len(cur.Streams) > 0 {
		out = append(out, cur)
	}
	if len(out) == 0 {
		return nil, errors.New("streamgroups: no stream to cut")
	}
	return out, nil
}
