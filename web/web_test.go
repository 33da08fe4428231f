package web_test

import (
	"bytes"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/tradecache/tradecache/web"
)

// The embedded build holds the three files index.html loads, and the two that
// build.mjs copies are those of src/. (scripts/check-web.sh compares the whole
// build, app.js included, with a fresh one.)
func TestDist(t *testing.T) {
	dist := web.Dist()
	var names []string
	err := fs.WalkDir(dist, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); got != "app.css app.js index.html" {
		t.Errorf("Dist() holds %s, want app.css app.js index.html", got)
	}
	for _, name := range []string{"index.html", "app.css"} {
		built, err := fs.ReadFile(dist, name)
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile("src/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, src) {
			t.Errorf("dist/%s differs from src/%s: run cd web && npm ci && npm run build, and commit web/dist", name, name)
		}
	}
	js, err := fs.ReadFile(dist, "app.js")
	if err != nil {
		t.Fatal(err)
	}
	if len(js) < 10_000 || !bytes.Contains(js, []byte("Licensed under Apache License 2.0")) {
		t.Errorf("dist/app.js: %d bytes, want the bundle with lightweight-charts' license comment", len(js))
	}
}
