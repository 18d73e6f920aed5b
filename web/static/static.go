// Package static holds the web apps' stylesheet, images and small scripts
// (served under the portal's script-src 'self'), embedded in the binary: no
// CDN, nothing fetched from elsewhere.
package static

import (
	"embed"
	"net/http"
)

//go:embed *.css *.svg *.js
var files embed.FS

// Handler serves the embedded files; mount it under a prefix with
// http.StripPrefix. Files are cacheable for a day.
func Handler() http.Handler {
	fs := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fs.ServeHTTP(w, r)
	})
}
