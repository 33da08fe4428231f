package filecache

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The helper process: the test binary re-executed with FILECACHE_HELPER
// set runs one of these roles instead of the tests.
const helperEnv = "FILECACHE_HELPER"

func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("only run as a helper process")
	}
	dir := os.Getenv("FILECACHE_DIR")
	c, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch role {
	case "writer":
		// Set FILECACHE_N distinct keys named FILECACHE_PREFIX-i.
		n, _ := strconv.Atoi(os.Getenv("FILECACHE_N"))
		prefix := os.Getenv("FILECACHE_PREFIX")
		for i := range n {
			k := fmt.Sprintf("%s-%d", prefix, i)
			if err := c.Set(k, []byte(k), Never); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	case "bigwriter":
		// Rewrite a large value (and a few small ones) until killed.
		for i := 0; ; i++ {
			if err := c.Set("big", bigValue(i), Never); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := c.Set(fmt.Sprintf("small-%d", i%10), bigValue(i)[:100], Never); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	case "churn":
		// Rewrite FILECACHE_N keys in turn, FILECACHE_ROUNDS times: every
		// value names its key, this process and the round; every fifth is
		// too large for the table, so keys move between it and files.
		n, _ := strconv.Atoi(os.Getenv("FILECACHE_N"))
		rounds, _ := strconv.Atoi(os.Getenv("FILECACHE_ROUNDS"))
		for r := range rounds {
			for i := range n {
				v := fmt.Sprintf("churn-%d/%d/%d", i, os.Getpid(), r)
				if (i+r)%5 == 0 {
					v += "/" + strings.Repeat("x", 600)
				}
				if err := c.Set(fmt.Sprint("churn-", i), []byte(v), Never); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
			}
		}
	case "holdtemp":
		// Start a write and hang in the middle of it.
		f, name, err := createTemp(c.shardDir(0x3c))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f.Write([]byte("half an entry"))
		fmt.Println(name)
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

// bigValue is 4 MiB whose every 8 bytes hold i: a torn value shows.
func bigValue(i int) []byte {
	b := make([]byte, 4<<20)
	for off := 0; off < len(b); off += 8 {
		binary.LittleEndian.PutUint64(b[off:], uint64(i))
	}
	return b
}

func helper(t *testing.T, role, dir string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "FILECACHE_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var temps []string
	for _, f := range cacheFiles(t, dir) {
		if classify(filepath.Base(f)) == kindTemp {
			temps = append(temps, f)
		}
	}
	return temps
}

// Jesse lost 151 to 500 of these 1,000 keys (two processes rewriting one
// index). One file per entry loses none.
func TestTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for p := range 2 {
		cmd := helper(t, "writer", dir, "FILECACHE_N=500", fmt.Sprintf("FILECACHE_PREFIX=p%d", p))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[p] = cmd.Wait() })
	}
	wg.Wait()
	for p, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", p, err)
		}
	}
	c := open(t, dir, Options{})
	if st := c.Stats(); st.Entries != 1000 {
		t.Errorf("Open measured %d entries, want 1000", st.Entries)
	}
	missing := 0
	for p := range 2 {
		for i := range 500 {
			k := fmt.Sprintf("p%d-%d", p, i)
			if g := get(t, c, k); !g.OK || string(g.V) != k {
				missing++
			}
		}
	}
	if missing != 0 {
		t.Errorf("%d of 1000 keys lost", missing)
	}
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("temp files left by writers that exited: %v", temps)
	}
}

// A writer killed with SIGKILL in the middle of Sets loses at most the
// entry it was writing; the cache opens and works, and Sweep removes the
// temp file it left.
func TestKilledWriter(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{})
	for i := range 50 {
		mustSet(t, c, fmt.Sprint("keep-", i), []byte(fmt.Sprint(i)), Never)
	}
	c.Close()
	for round := range 3 {
		cmd := helper(t, "bigwriter", dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("helper said %q, %v", line, err)
		}
		time.Sleep(time.Duration(10+round*17) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("helper exit: %v, want killed", err)
		}
		t.Logf("round %d: %d files, temps %v", round, len(cacheFiles(t, dir)), tempFiles(t, dir))
	}
	left := tempFiles(t, dir)
	t.Logf("the killed writers left %d temp files", len(left))

	c = open(t, dir, Options{})
	n, err := c.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != len(left) || c.Stats().TempRemoved != uint64(len(left)) {
		t.Errorf("Sweep removed %d files (%d temps), %d temp files were left", n, c.Stats().TempRemoved, len(left))
	}
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("temp files after Sweep: %v", temps)
	}
	for i := range 50 {
		if g := get(t, c, fmt.Sprint("keep-", i)); string(g.V) != fmt.Sprint(i) {
			t.Errorf("keep-%d = %q", i, g.V)
		}
	}
	if g := get(t, c, "big"); g.OK {
		i := binary.LittleEndian.Uint64(g.V)
		if !bytes.Equal(g.V, bigValue(int(i))) {
			t.Error("big is torn")
		}
	}
	if st := c.Stats(); st.Corrupt != 0 {
		t.Errorf("%d corrupt entries", st.Corrupt)
	}
	mustSet(t, c, "big", []byte("small now"), 0)
	if g := get(t, c, "big"); string(g.V) != "small now" {
		t.Errorf("big after re-Set = %q", g.V)
	}
}

// Sweep and Flush leave a live writer's temp file alone, and remove it as
// soon as the writer dies (its lock dies with it).
func TestTempOfLiveWriter(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{})
	cmd := helper(t, "holdtemp", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	name, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	name = strings.TrimSpace(name)
	if _, err := c.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); err != nil {
		t.Fatalf("a live writer's temp file was removed: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	n, err := c.Sweep(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Sweep after the writer died = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatalf("the dead writer's temp file is still there: %v", err)
	}
}
