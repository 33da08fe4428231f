package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/tradecache/tradecache/web"
)

// dashboard serves the dashboard's files (Server.Web, or the build embedded
// in the binary when nil) at GET /. While the files lack an index.html, /
// answers 200 with a page saying how to build it, and the API routes work
// as ever. Files are looked up on every request, so with a directory
// (os.DirFS) a build made after the node started is served at once.
func (s *Server) dashboard() http.Handler {
	files := s.Web
	var tags map[string]string
	if files == nil {
		files = web.Dist()
		tags = etags(files)
	}
	server := http.FileServer(noListing{http.FS(files)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fi, err := fs.Stat(files, "index.html"); err != nil || fi.IsDir() {
			if r.URL.Path == "/" || r.URL.Path == "/index.html" {
				s.notBuilt(w, r)
				return
			}
			invalidPath(w, r)
			return
		}
		if !servable(files, r.URL.Path) {
			invalidPath(w, r)
			return
		}
		// The bundle's names carry no hash: have browsers revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		if tag, ok := tags[r.URL.Path]; ok {
			w.Header().Set("ETag", tag) // the file server answers If-None-Match with 304
		}
		server.ServeHTTP(w, r)
	})
}

// servable reports whether the file server has something at urlPath: a
// file, or a directory with an index.html.
func servable(files fs.FS, urlPath string) bool {
	name := strings.TrimPrefix(path.Clean("/"+urlPath), "/")
	if name == "" {
		name = "."
	}
	fi, err := fs.Stat(files, name)
	if err != nil {
		return false
	}
	if fi.IsDir() {
		fi, err = fs.Stat(files, path.Join(name, "index.html"))
		return err == nil && !fi.IsDir()
	}
	return true
}

// etags gives every file of files an ETag (a hash of its content), by the
// path it is requested at: "/app.js", and "/" for "index.html". Files
// embedded in the binary have no modification time, so the file server sends
// no Last-Modified; without a validator, no-cache would fetch the whole
// bundle again on every visit.
func etags(files fs.FS) map[string]string {
	tags := make(map[string]string)
	fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file that cannot be read goes without an ETag
		}
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(b)
		tag := `"` + hex.EncodeToString(sum[:16]) + `"`
		switch dir := path.Dir(name); {
		case path.Base(name) != "index.html":
			tags["/"+name] = tag
		case dir == ".": // served at its directory; /index.html redirects there
			tags["/"] = tag
		default:
			tags["/"+dir+"/"] = tag
		}
		return nil
	})
	return tags
}

// notBuilt is the node's plain index page with a note on building the
// dashboard.
func (s *Server) notBuilt(w http.ResponseWriter, r *http.Request) {
	var b bufferWriter
	b.header = w.Header()
	s.index(&b, r)
	const note = `<p><b>The dashboard is not built</b> (its files have no index.html). Build it from the repository root with:</p>
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
