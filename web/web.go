// Package web carries the built dashboard of a tradecache node, so that a
// binary made with go build or go install serves it with no other file.
//
// The sources are in src/; npm run build (esbuild, build.mjs) writes the
// bundle to dist/, which is committed: scripts/check-web.sh fails when a
// fresh npm ci && npm run build differs from it.
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Dist returns the built dashboard: index.html, app.js and app.css at its
// root.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("web: " + err.Error()) // "dist" is a valid path: never happens
	}
	return sub
}
