package httpapi

import (
	"bytes"
	"errors"
	"html"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// DefaultWebDir is where the dashboard is served from when Server.WebDir is
// empty: web/dist (npm run build in web/) relative to the working directory.
const DefaultWebDir = "web/dist"

// dashboard serves the built dashboard (WebDir) at GET /. While the
// directory or its index.html is missing, / answers 200 with a page saying
// how to build it, and the API routes work as ever. Files are looked up on
// every request, so a build made after the node started is served at once.
func (s *Server) dashboard() http.Handler {
	dir := s.WebDir
	if dir == "" {
		dir = DefaultWebDir
	}
	files := http.FileServer(noListing{http.Dir(dir)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fi, err := os.Stat(filepath.Join(dir, "index.html")); err != nil || fi.IsDir() {
			if r.URL.Path == "/" || r.URL.Path == "/index.html" {
				s.notBuilt(w, r, dir)
				return
			}
			http.NotFound(w, r)
			return
		}
		// The bundle's names carry no hash: have browsers revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// notBuilt is the node's plain index page with a note on building the
// dashboard.
func (s *Server) notBuilt(w http.ResponseWriter, r *http.Request, dir string) {
	var b bufferWriter
	b.header = w.Header()
	s.index(&b, r)
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	note := `<p><b>The dashboard is not built</b> (no index.html in <code>` + html.EscapeString(abs) + `</code>). Build it from the repository root with:</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>The HTTP API works meanwhile.</p>`
	page := strings.Replace(b.buf.String(), "</h1>", "</h1>"+note, 1)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(page))
}

// bufferWriter collects a handler's body.
type bufferWriter struct {
	header http.Header
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(int)             {}

// noListing hides directories that have no index.html, so the file server
// never lists a directory.
type noListing struct{ fs http.FileSystem }

func (n noListing) Open(name string) (http.File, error) {
	f, err := n.fs.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		idx, err := n.fs.Open(strings.TrimSuffix(name, "/") + "/index.html")
		if err != nil {
			f.Close()
			return nil, errors.Join(fs.ErrNotExist, err)
		}
		idx.Close()
	}
	return f, nil
}
