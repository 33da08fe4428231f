//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filecache

import (
	"io/fs"
	"os"
	"time"
)

// Without flock, a temp file is taken for abandoned after tempMaxAge.
const tempMaxAge = time.Hour

func lockFile(*os.File) bool { return true }

func abandonedTemp(_ string, fi fs.FileInfo, now time.Time) (bool, func()) {
	return fi != nil && now.Sub(fi.ModTime()) > tempMaxAge, func() {}
}

// nlink is unknown here: 0 keeps adopt from recycling.
func nlink(fs.FileInfo) uint64 { return 0 }
