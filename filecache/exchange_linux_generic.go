//go:build linux && (arm64 || riscv64 || loong64)

package filecache

const sysRenameat2 = 276
