package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/internal/keyaudit"
	"github.com/tradecache/tradecache/keyspace"
)

// Topologies the tests run against; TopologyEnv chooses (single by
// default). The same tests run on both: `TRADECACHE_TEST_TOPOLOGY=cluster
// go test ./...` runs the suite on three-master clusters.
const (
	TopologySingle  = "single"
	TopologyCluster = "cluster"
	TopologyEnv     = "TRADECACHE_TEST_TOPOLOGY"
)

// ClusterMasters is the number of masters StartCluster starts.
const ClusterMasters = 3

// Topology is the topology the tests of this process run against.
func Topology() string {
	if os.Getenv(TopologyEnv) == TopologyCluster {
		return TopologyCluster
	}
	return TopologySingle
}

// Keys is cfg as the topology needs it: keys named for a cluster (hash
// tags) on a cluster, as every process sharing one must name them.
func Keys(cfg keyspace.Config) keyspace.Config {
	cfg.HashTags = Topology() == TopologyCluster
	return cfg
}

// KeyNaming is the node's key naming setting for the topology ("standard" or
// "cluster").
func KeyNaming() string {
	if Topology() == TopologyCluster {
		return "cluster"
	}
	return "standard"
}

// ClusterReplicas gives each master of a cluster a replica, so a master
// that dies fails over (after the 2 s node timeout) and Failover works.
func ClusterReplicas() Option { return func(r *Redis) { r.withRepl = true } }

func isReplica(opts []Option) bool {
	var r Redis
	for _, o := range opts {
		o(&r)
	}
	return r.ReplicaOf != ""
}

// StartCluster starts a Redis Cluster of ClusterMasters masters on
// loopback for tb, whatever the topology, with every slot assigned and the
// cluster state ok; stopped and audited (every master) when tb ends. Each
// node's cluster bus listens on a port of its own (cluster-port), so any
// free port serves.
func StartCluster(tb testing.TB, opts ...Option) *Redis {
	tb.Helper()
	return private(tb, startCluster, opts)
}

func startCluster(dir string, opts ...Option) (*Redis, error) {
	bin, err := redisServer()
	if err != nil {
		return nil, err
	}
	c := &Redis{dir: dir}
	for _, o := range opts {
		o(c)
	}
	launch := func() (*Redis, error) {
		var lastErr error
		for attempt := 0; attempt < 5; attempt++ {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			bus, err := freePort()
			if err != nil {
				return nil, err
			}
			n := &Redis{Port: port, busPort: bus, dir: dir, Password: c.Password}
			if lastErr = n.launch(bin); lastErr == nil {
				return n, nil
			}
		}
		return nil, lastErr
	}
	for i := 0; i < ClusterMasters; i++ {
		n, err := launch()
		if err != nil {
			c.kill()
			return nil, fmt.Errorf("cluster node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, n)
		if c.withRepl {
			if n, err = launch(); err != nil {
				c.kill()
				return nil, fmt.Errorf("cluster replica %d: %w", i, err)
			}
			c.replicas = append(c.replicas, n)
		}
	}
	c.Port = c.nodes[0].Port
	if err := c.form(); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

// all is every node of a cluster, masters and replicas.
func (r *Redis) all() []*Redis { return append(slices.Clone(r.nodes), r.replicas...) }

// clusterArgs are a cluster node's settings: its own nodes.conf and bus
// port, and a short node timeout so a dead master is noticed in tests.
func clusterArgs(r *Redis) []string {
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(r.dir, fmt.Sprintf("nodes-%d.conf", r.Port)),
		"--cluster-port", strconv.Itoa(r.busPort),
		"--cluster-node-timeout", "2000",
	}
	if r.Password != "" {
		args = append(args, "--masterauth", r.Password)
	}
	return args
}

// form assigns the slots in equal ranges, introduces the nodes to each
// other (CLUSTER MEET with their bus ports) and waits until every node
// reports the cluster ok.
func (r *Redis) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const slots = 16384
	per := slots / len(r.nodes)
	for i, n := range r.nodes {
		cl, err := n.single()
		if err != nil {
			return err
		}
		lo, hi := i*per, (i+1)*per-1
		if i == len(r.nodes)-1 {
			hi = slots - 1
		}
		err = cl.Do(ctx, cl.B().ClusterAddslotsrange().StartSlotEndSlot().StartSlotEndSlot(int64(lo), int64(hi)).Build()).Error()
		if err == nil && i > 0 {
			first := r.nodes[0]
			err = cl.Do(ctx, cl.B().Arbitrary("CLUSTER", "MEET").Args("127.0.0.1", strconv.Itoa(first.Port), strconv.Itoa(first.busPort)).Build()).Error()
		}
		cl.Close()
		if err != nil {
			return fmt.Errorf("cluster: form on %s: %w", n.Addr(), err)
		}
	}
	if err := waitOK(ctx, r.nodes); err != nil || r.replicas == nil {
		return err
	}
	// Each replica meets the cluster, then replicates its master.
	for i, rep := range r.replicas {
		m, err := r.nodes[i].single()
		if err != nil {
			return err
		}
		id, err := m.Do(ctx, m.B().ClusterMyid().Build()).ToString()
		m.Close()
		if err != nil {
			return fmt.Errorf("cluster: id of %s: %w", r.nodes[i].Addr(), err)
		}
		cl, err := rep.single()
		if err != nil {
			return err
		}
		first := r.nodes[0]
		err = cl.Do(ctx, cl.B().Arbitrary("CLUSTER", "MEET").Args("127.0.0.1", strconv.Itoa(first.Port), strconv.Itoa(first.busPort)).Build()).Error()
		for err == nil {
			// REPLICATE needs the master known to the replica first.
			if err = cl.Do(ctx, cl.B().ClusterReplicate().NodeId(id).Build()).Error(); err == nil || ctx.Err() != nil {
				break
			}
			err = nil
			time.Sleep(20 * time.Millisecond)
		}
		cl.Close()
		if err != nil {
			return fmt.Errorf("cluster: replica %s of %s: %w", rep.Addr(), r.nodes[i].Addr(), err)
		}
	}
	if err := r.waitOK(ctx); err != nil {
		return err
	}
	for _, rep := range r.replicas {
		if err := rep.waitSynced(ctx); err != nil {
			return err
		}
	}
	return nil
}

// waitSynced waits until a replica's link to its master is up.
func (r *Redis) waitSynced(ctx context.Context) error {
	cl, err := r.single()
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		info, err := cl.Do(ctx, cl.B().Info().Section("replication").Build()).ToString()
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: replica %s never synced: %v", r.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Failover makes the replica of shard i its master with CLUSTER FAILOVER
// (a coordinated failover: the master stops taking writes, the replica
// catches up, then takes over), whichever of the two is master now, and
// waits until the cluster is ok. It needs ClusterReplicas.
func (r *Redis) Failover(tb testing.TB, i int) {
	tb.Helper()
	if r.replicas == nil {
		tb.Fatal("testenv: Failover needs a cluster with ClusterReplicas")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range []*Redis{r.nodes[i], r.replicas[i]} {
		cl, err := n.single()
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		role, err := cl.Do(ctx, cl.B().Role().Build()).ToArray()
		if err == nil && len(role) > 0 {
			if s, _ := role[0].ToString(); s == "slave" {
				// A manual failover needs the replica in sync; one that
				// times out (5 s in Redis) is asked again.
				err = n.waitSynced(ctx)
				asked := time.Time{}
				for err == nil {
					if time.Since(asked) > 3*time.Second {
						if err = cl.Do(ctx, cl.B().ClusterFailover().Build()).Error(); err != nil {
							break
						}
						asked = time.Now()
					}
					if role, rerr := cl.Do(ctx, cl.B().Role().Build()).ToArray(); rerr == nil && len(role) > 0 {
						if s, _ := role[0].ToString(); s == "master" {
							break
						}
					}
					err = ctx.Err()
					time.Sleep(20 * time.Millisecond)
				}
				cl.Close()
				if err != nil {
					tb.Fatalf("testenv: failover to %s: %v", n.Addr(), err)
				}
				if err := r.waitOK(ctx); err != nil {
					tb.Fatalf("testenv: %v", err)
				}
				return
			}
		}
		cl.Close()
	}
	tb.Fatalf("testenv: shard %d has no live replica to fail over to", i)
}

// waitOK waits until every node says cluster_state:ok and knows every
// other node.
func (r *Redis) waitOK(ctx context.Context) error { return waitOK(ctx, r.all()) }

// waitOK waits until each of nodes says cluster_state:ok and knows them
// all.
func waitOK(ctx context.Context, nodes []*Redis) error {
	for _, n := range nodes {
		cl, err := n.single()
		if err != nil {
			return err
		}
		var info, last string
		for {
			info, err = cl.Do(ctx, cl.B().ClusterInfo().Build()).ToString()
			if err == nil {
				last = info
			}
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(nodes))) {
				break
			}
			if ctx.Err() != nil {
				cl.Close()
				return fmt.Errorf("cluster: %s never became ok: %v %s", n.Addr(), err, strings.Join(strings.Fields(last), " "))
			}
			time.Sleep(20 * time.Millisecond)
		}
		cl.Close()
	}
	return nil
}

// single is a client of one node alone, not following the cluster.
func (r *Redis) single() (valkey.Client, error) {
	cl, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{r.Addr()}, Password: r.Password, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", r.Addr(), err)
	}
	return cl, nil
}

// restartCluster starts every node again on its ports with its nodes.conf:
// the same cluster, every slot where it was, no keys.
func (r *Redis) restartCluster(bin string) error {
	for _, n := range r.all() {
		var lastErr error
		for attempt := 0; attempt < 50; attempt++ { // the port may linger briefly
			if lastErr = n.launch(bin); lastErr == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if lastErr != nil {
			return fmt.Errorf("node on %d: %w", n.Port, lastErr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return r.waitOK(ctx)
}

// Node is the i-th master of a cluster at start, to kill or pause one
// shard alone; Replica the one replicating it at start (ClusterReplicas).
// After a failover their roles may have swapped.
func (r *Redis) Node(i int) *Redis { return r.nodes[i] }

// Replica is the i-th replica of a cluster at start.
func (r *Redis) Replica(i int) *Redis { return r.replicas[i] }

// Master is whichever of shard i's two nodes (ClusterReplicas) is its
// master now, or Node(i) without replicas.
func (r *Redis) Master(tb testing.TB, i int) *Redis {
	tb.Helper()
	if r.replicas == nil {
		return r.nodes[i]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		for _, n := range []*Redis{r.nodes[i], r.replicas[i]} {
			if !n.running() {
				continue
			}
			cl, err := n.single()
			if err != nil {
				continue
			}
			role, err := cl.Do(ctx, cl.B().Role().Build()).ToArray()
			cl.Close()
			if err == nil && len(role) > 0 {
				if s, _ := role[0].ToString(); s == "master" {
					return n
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("testenv: shard %d has no master", i)
	return nil
}

// KeysMatching returns the keys matching pattern (KEYS) on every master:
// on a cluster a KEYS sent through the client reaches one node only.
func (r *Redis) KeysMatching(tb testing.TB, pattern string) []string {
	tb.Helper()
	c := r.Client(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	masters, err := keyaudit.Masters(ctx, c, 5*time.Second)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	var out []string
	for addr, n := range masters {
		ks, err := n.Do(ctx, n.B().Keys().Pattern(pattern).Build()).AsStrSlice()
		if err != nil {
			tb.Fatalf("testenv: KEYS on %s: %v", addr, err)
		}
		out = append(out, ks...)
	}
	slices.Sort(out)
	return out
}
