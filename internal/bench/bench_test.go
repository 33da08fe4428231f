package bench

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/testenv"
)

// TestMain runs the package's tests, or, started by a fan-out test as its
// client process (FanoutOptions.ClientCommand), the clients, or by an
// ingest test as its exchange process (IngestOptions.SimCommand), the
// exchange.
func TestMain(m *testing.M) {
	if IsFanoutClients(os.Getenv) {
		os.Exit(FanoutClientsMain(context.Background(), os.Stdin, os.Stdout, os.Getenv))
	}
	if IsIngestSim(os.Getenv) {
		os.Exit(IngestSimMain(context.Background(), os.Stdin, os.Stdout, os.Getenv))
	}
	if IsIngestSub(os.Getenv) {
		os.Exit(IngestSubMain(context.Background(), os.Stdin, os.Stdout, os.Getenv))
	}
	testenv.Main(m)
}

// figures indexes a report by figure name.
func figures(rep benchfmt.Report) map[string]benchfmt.Figure {
	m := map[string]benchfmt.Figure{}
	for _, f := range rep {
		m[f.Name] = f
	}
	return m
}

// requireFigures fails t unless rep has each figure, with a positive value
// when positive is set.
func requireFigures(t *testing.T, rep benchfmt.Report, positive bool, names ...string) {
	t.Helper()
	got := figures(rep)
	for _, n := range names {
		f, ok := got[n]
		switch {
		case !ok:
			t.Errorf("no figure %s in:\n%s", n, show(rep))
		case positive && !(f.Value > 0):
			t.Errorf("%s = %v %s, want > 0", n, f.Value, f.Unit)
		}
	}
}

func show(rep benchfmt.Report) string {
	var b strings.Builder
	_ = rep.Write(&b, false)
	return b.String()
}
