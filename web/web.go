// Package web is Conflux's admin dashboard: one HTML page, one script and
// one stylesheet, embedded into the binary and served at "/" and "/ui/".
//
// The page holds no data and needs no authentication to load. It asks for
// the admin token (or takes it from the URL fragment, "#token=…", which
// never reaches the server), keeps it in the tab's sessionStorage, and
// reads everything it shows from the JSON APIs with "Authorization:
// Bearer": the Config API (destinations, sources), the delivery-metrics
// API, the queue status, dead letters and replays. There is no build step:
// the files under static/ are what the browser gets.
//
// The package does not render data on the server, proxy the APIs, or
// check the token itself.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// securityHeaders are sent with every file: the page loads only its own
// script and stylesheet, talks only to its own origin, and cannot be
// framed.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"X-Frame-Options":        "DENY",
}

// contentTypes are the types of the embedded files, fixed here rather
// than read from the machine's mime.types.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// asset is one embedded file, with the ETag of its content.
type asset struct {
	name, contentType, etag string
	body                    []byte
}

// Register mounts the dashboard on mux:
//
//	GET /{$}       the page (index.html)
//	GET /ui/{file} its script and stylesheet
//
// Other paths under /ui/ are 404. HEAD works as GET; a request with the
// file's ETag in If-None-Match gets 304.
func Register(mux *http.ServeMux) {
	assets := loadAssets()
	mux.Handle("GET /{$}", assets["index.html"])
	mux.HandleFunc("GET /ui/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("file")]
		if !ok || a.name == "index.html" {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		a.ServeHTTP(w, r)
	})
}

// loadAssets reads the embedded files once; a missing or unreadable file
// is a build mistake, so it panics.
func loadAssets() map[string]*asset {
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic("web: reading embedded files: " + err.Error())
	}
	assets := make(map[string]*asset, len(entries))
	for _, e := range entries {
		b, err := static.ReadFile(path.Join("static", e.Name()))
		if err != nil {
			panic("web: reading embedded file: " + err.Error())
		}
		sum := sha256.Sum256(b)
		ct, ok := contentTypes[path.Ext(e.Name())]
		if !ok {
			panic("web: no content type for embedded file " + e.Name())
		}
		assets[e.Name()] = &asset{name: e.Name(), contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: b}
	}
	return assets
}

func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range securityHeaders {
		h.Set(k, v)
	}
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	// Revalidate every time: the ETag makes that a 304 until the binary
	// changes, so an upgrade is never hidden behind a stale cache.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
