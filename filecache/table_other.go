//go:build !linux

package filecache

// Without Linux's memory-mapped files and open-file-description locks
// there is no slot table: every entry is a file of its own. A table made
// on Linux in a shared directory is not read here.

type table struct {
	path string
}

type slotInfo struct {
	n      int
	hdr    header
	access int64
	err    error
}

type slotRead struct {
	b, cb   uint32
	way     int
	access  int64
	flags   uint32
	corrupt int
}

type putResult struct {
	oldLen                          int
	grew, sameKey, expired, evicted bool
}

const (
	tableName    = "slots"
	bucketSize   = 4096
	maxSlotEntry = 0
	flagFiles    = 1
)

func openTable(string, int64, bool) (*table, error) { return nil, nil }

func (*table) close()       {}
func (*table) bytes() int64 { return 0 }
func (*table) used() int64  { return 0 }

type pair struct{ b1, b2, tag uint32 }

func (pair) list() []uint32 { return nil }

func (*table) locate(*[32]byte) pair { return pair{} }
func (*table) find(pair, string) (slotRead, entry, error) {
	return slotRead{way: -1, corrupt: -1}, entry{}, nil
}
func (*table) dropCorrupt(uint32, int, uint32) (error, error) { return nil, nil }
func (*table) remove(pair, string, func(header, int64) bool) (int, error) {
	return 0, nil
}
func (*table) touch(uint32, int, int64) error { return nil }
func (*table) put(pair, string, []byte, int64, func(uint32) error) (putResult, error) {
	return putResult{}, nil
}
func (*table) sync(uint32) error { return nil }
func (*table) readOnly() bool    { return false }
func (*table) placeFile(_ pair, _ string, place func() error) (int, bool, error) {
	return 0, false, place()
}
func (*table) markFiles(uint32) error                                              { return nil }
func (*table) hasFiles(uint32) (bool, error)                                       { return false, nil }
func (*table) each(func(slotInfo) bool) error                                      { return nil }
func (*table) dropIf(slotInfo, func(header, int, int64, error) bool) (bool, error) { return false, nil }
