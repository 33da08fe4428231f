//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// waitReadable parks the calling goroutine in the network poller until
// nc has bytes to read, has failed or has reached its end. It peeks with
// MSG_PEEK, so nothing is consumed, and returns at once for a connection
// that is not a socket.
func waitReadable(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		return err != syscall.EAGAIN
	})
}
