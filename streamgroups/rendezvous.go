package streamgroups

import (
	"hash/fnv"
	"slices"
)

// weight is node's random weight for group: the same on every node.
func weight(group, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(group))
	h.Write([]byte{0})
	h.Write([]byte(node))
	// FNV's low bits mix poorly for short inputs: finish with splitmix64.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Owner returns the node ranked first for group among nodes ("" for none):
// the highest weight, ties broken by the smaller id.
func Owner(group string, nodes []string) string {
	best, bw := "", uint64(0)
	for _, n := range nodes {
		w := weight(group, n)
		if best == "" || w > bw || w == bw && n < best {
			best, bw = n, w
		}
	}
	return best
}

// Assign returns the owner of each group among nodes.
func Assign(groups, nodes []string) map[string]string {
	out := make(map[string]string, len(groups))
	for _, g := range groups {
		out[g] = Owner(g, nodes)
	}
	return out
}

// Rank returns nodes ordered for group, the owner first.
func Rank(group string, nodes []string) []string {
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b string) int {
		wa, wb := weight(group, a), weight(group, b)
		switch {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
	return out
}
