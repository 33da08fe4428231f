//go:build !unix

package gateway

import "net"

// waitReadable returns at once: the reader then waits inside coder's Read.
func waitReadable(net.Conn) {}
