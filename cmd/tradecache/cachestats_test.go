package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/filecache"
)

func TestCacheStats(t *testing.T) {
	noEnv := map[string]string{"TRADECACHE_ENV_FILE": "/dev/null"}
	dir := t.TempDir()
	fc, err := filecache.Open(dir, filecache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []struct {
		k   string
		exp time.Duration
	}{{"a", time.Hour}, {"b", filecache.Never}, {"c", time.Nanosecond}} {
		if err := fc.Set(kv.k, []byte("value"), kv.exp); err != nil {
			t.Fatal(err)
		}
	}
	fc.Close()
	time.Sleep(time.Millisecond) // c expires

	code, out, errOut := runCmd(t, noEnv, "cache", "stats", "--dir", dir)
	if code != 0 {
		t.Fatalf("cache stats: exit %d: %s", code, errOut)
	}
	// Lines are "<figure> <value> <unit>"; the entries' size depends on
	// the format, the age on the clock, the table's size and disk use on
	// the platform.
	varies := map[string]bool{"bytes": true, "expired_bytes": true, "oldest_access_age": true, "table_bytes": true, "table_used_bytes": true}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("line %q is not <figure> <value> <unit>", l)
		}
		if !varies[f[0]] {
			got[f[0]] = f[1] + " " + f[2]
		}
	}
	want := map[string]string{
		"entries":        "2 entries",
		"never_expiring": "1 entries",
		"expired":        "1 entries",
		"corrupt":        "0 entries",
		"temp_files":     "0 files",
		"other_files":    "0 files",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cache stats (-want +got):\n%s", diff)
	}
	if runtime.GOOS == "linux" { // a slot table: its written pages hold disk
		var size, used int64
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == "table_bytes" {
				size, _ = strconv.ParseInt(f[1], 10, 64)
			}
			if len(f) == 3 && f[0] == "table_used_bytes" {
				used, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
		if used <= 0 || used > size {
			t.Errorf("table_used_bytes %d, table_bytes %d: want 0 < used ≤ size", used, size)
		}
	}

	code, out, errOut = runCmd(t, noEnv, "cache", "stats", "--json", "--dir", dir)
	var js map[string]struct {
		Value float64 `json:"value"`
		Unit  string  `json:"unit"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("cache stats --json: exit %d %q %s", code, out, errOut)
	}
	if e := js["entries"]; e.Value != 2 || e.Unit != "entries" || js["bytes"].Value <= 0 {
		t.Errorf("cache stats --json: %s", out)
	}

	// A mistyped directory is refused (exit 2) and not created; so is a
	// missing --dir.
	typo := filepath.Join(dir, "typo")
	if code, _, errOut := runCmd(t, noEnv, "cache", "stats", "--dir", typo); code != 2 || !strings.Contains(errOut, "not a file cache") {
		t.Errorf("cache stats --dir typo: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache stats created %s: %v", typo, err)
	}
	if code, _, _ := runCmd(t, noEnv, "cache", "stats"); code != 2 {
		t.Errorf("cache stats without --dir: exit %d, want 2", code)
	}
	if code, out, _ := runCmd(t, noEnv, "cache", "-h"); code != 0 || !strings.Contains(out, "cache stats") {
		t.Errorf("cache -h does not list cache stats:\n%s", out)
	}
}
