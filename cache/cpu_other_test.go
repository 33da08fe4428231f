//go:build !unix

package cache_test

import "time"

// processCPU is unknown here: the cpu-ns/op figure reads 0.
func processCPU() time.Duration { return 0 }
