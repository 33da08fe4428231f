//go:build linux && (amd64 || arm64 || riscv64 || loong64)

package filecache

import (
	"syscall"
	"unsafe"
)

const (
	renameExchange = 1 << 1 // RENAME_EXCHANGE
	atFDCWD        = -100   // AT_FDCWD
)

// exchange atomically swaps the files at a and b (renameat2 with
// RENAME_EXCHANGE). It fails with ENOENT when either is missing, and with
// EINVAL or ENOSYS where the file system or kernel lacks it.
func exchange(a, b string) error {
	pa, err := syscall.BytePtrFromString(a)
	if err != nil {
		return err
	}
	pb, err := syscall.BytePtrFromString(b)
	if err != nil {
		return err
	}
	cwd := atFDCWD
	_, _, e := syscall.Syscall6(sysRenameat2, uintptr(cwd), uintptr(unsafe.Pointer(pa)), uintptr(cwd), uintptr(unsafe.Pointer(pb)), renameExchange, 0)
	if e != 0 {
		return e
	}
	return nil
}
