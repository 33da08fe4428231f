//go:build !(linux && (amd64 || arm64 || riscv64 || loong64))

package filecache

import "errors"

var errNoExchange = errors.New("filecache: no RENAME_EXCHANGE")

// exchange is unavailable here: Set falls back to rename, without
// recycling the replaced inode.
func exchange(_, _ string) error { return errNoExchange }
