package filecache

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkMemoryFloor is the least a hit at n entries can cost whatever
// the layout: copy and checksum an entry-sized record (a 256-byte value's
// entry) from a random one of n records packed 512 bytes apart in memory,
// mapped in 4 KiB or in 2 MiB pages. Beside BenchmarkGetHit at the same
// sizes it tells how much of a hit's slowdown at more entries is the
// processor's caches and TLB, which no file layout removes.
func BenchmarkMemoryFloor(b *testing.B) {
	const record, stride, hugeSize = 320, 512, 2 << 20
	for _, n := range benchSizes {
		for _, huge := range []bool{false, true} {
			name := sizeName(n) + "/pages=4k"
			if huge {
				name = sizeName(n) + "/pages=2M"
			}
			b.Run(name, func(b *testing.B) {
				size := (n*stride + hugeSize - 1) &^ (hugeSize - 1)
				mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Munmap(mem)
				advice := unix.MADV_NOHUGEPAGE
				if huge {
					advice = unix.MADV_HUGEPAGE
				}
				if err := unix.Madvise(mem, advice); err != nil {
					b.Fatal(err)
				}
				for i := range mem {
					mem[i] = byte(i)
				}
				var buf [record]byte
				tab := crc32.MakeTable(crc32.Castagnoli)
				rng := rand.New(rand.NewPCG(5, uint64(n)))
				var sum uint32
				for b.Loop() {
					off := rng.IntN(n) * stride
					copy(buf[:], mem[off:off+record])
					sum += crc32.Checksum(buf[:], tab)
				}
				if sum == 1 { // keeps the loop's work
					b.Log(sum)
				}
				reportOps(b)
			})
		}
	}
}
