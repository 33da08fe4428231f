package store

// bounded is a fixed-capacity ring of T: when full, a push overwrites the
// oldest element. Storage grows by append up to the capacity and is then
// reused, so a series that never fills never allocates its whole capacity.
//
// Logical index 0 is the oldest element, len()-1 the newest. While the ring
// is not full, start is 0 and logical and physical indexes coincide.
//
// bounded is not safe for concurrent use; its owner's mutex guards it.
type bounded[T any] struct {
	buf      []T
	start    int // physical index of the oldest element once full
	capacity int
	dropped  uint64 // elements evicted since creation
}

func newBounded[T any](capacity int) bounded[T] {
	if capacity < 1 {
		capacity = 1
	}
	return bounded[T]{capacity: capacity}
}

func (b *bounded[T]) len() int   { return len(b.buf) }
func (b *bounded[T]) full() bool { return len(b.buf) == b.capacity }

// phys maps a logical index to a physical one.
func (b *bounded[T]) phys(i int) int {
	p := b.start + i
	if p >= len(b.buf) {
		p -= len(b.buf)
	}
	return p
}

func (b *bounded[T]) at(i int) T     { return b.buf[b.phys(i)] }
func (b *bounded[T]) set(i int, v T) { b.buf[b.phys(i)] = v }

// last returns the newest element.
func (b *bounded[T]) last() (T, bool) {
	if len(b.buf) == 0 {
		var zero T
		return zero, false
	}
	return b.at(len(b.buf) - 1), true
}

// push appends v as the newest element, evicting the oldest when full.
func (b *bounded[T]) push(v T) {
	if len(b.buf) < b.capacity {
		b.buf = append(b.buf, v)
		return
	}
	b.buf[b.start] = v
	b.start++
	if b.start == b.capacity {
		b.start = 0
	}
	b.dropped++
}

// insertAt inserts v at logical index i (0 ≤ i ≤ len), shifting the newer
// elements up; O(len-i) when not full. When full the oldest element is
// evicted instead, shifting the older elements down: O(i). It reports false,
// changing nothing, when the ring is full and i is 0: v would be the oldest
// element and evicted at once.
func (b *bounded[T]) insertAt(i int, v T) bool {
	n := len(b.buf)
	if i == n {
		b.push(v)
		return true
	}
	if n == b.capacity {
		if i == 0 {
			return false
		}
		for j := 0; j < i-1; j++ {
			b.set(j, b.at(j+1))
		}
		b.set(i-1, v)
		b.dropped++
		return true
	}
	// Not full: start is 0, so logical indexes are physical ones.
	var zero T
	b.buf = append(b.buf, zero)
	copy(b.buf[i+1:], b.buf[i:n])
	b.buf[i] = v
	return true
}

// appendLast appends copies of the newest n elements (all of them when n
// is not positive or exceeds the length), oldest first, to dst.
func (b *bounded[T]) appendLast(dst []T, n int) []T {
	size := len(b.buf)
	if n <= 0 || n > size {
		n = size
	}
	from := b.phys(size - n)
	if from+n <= size {
		return append(dst, b.buf[from:from+n]...)
	}
	dst = append(dst, b.buf[from:]...)
	return append(dst, b.buf[:from+n-size]...)
}

// lastN returns a new slice holding copies of the newest n elements; nil
// when the ring is empty.
func (b *bounded[T]) lastN(n int) []T {
	if len(b.buf) == 0 {
		return nil
	}
	size := len(b.buf)
	if n <= 0 || n > size {
		n = size
	}
	return b.appendLast(make([]T, 0, n), n)
}
