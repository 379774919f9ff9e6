package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// static holds the console's files: a flat directory, no subdirectories.
//
//go:embed static
var static embed.FS

// AssetPrefix is the path under which the console's files are served; the
// page itself is served at "/".
const AssetPrefix = "/console/"

// contentTypes are the types of the console's files by extension, fixed
// here rather than read from the system's MIME tables, which differ
// between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
}

// securityPolicy keeps the page to its own origin: scripts, styles and API
// calls from sketchd only (no CDN, no inline script), and no framing.
const securityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// asset is one served file.
type asset struct {
	name        string
	data        []byte
	contentType string
	etag        string
}

// handler serves the page and its assets.
type handler struct {
	assets   map[string]*asset // by file name
	notFound http.Handler
}

// Handler returns the console's handler: the page (index.html) at "/" and
// the files under AssetPrefix. Any other path, and any file that does not
// exist, goes to notFound. Files are revalidated on every load
// (Cache-Control: no-cache) against an ETag made from their content, so a
// new binary's console is never mixed with an old one's cached files.
func Handler(notFound http.Handler) (http.Handler, error) {
	if notFound == nil {
		return nil, fmt.Errorf("console: notFound handler is required")
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	h := &handler{assets: map[string]*asset{}, notFound: notFound}
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("console: static/%s: subdirectories are not served", e.Name())
		}
		ct, ok := contentTypes[path.Ext(e.Name())]
		if !ok {
			return nil, fmt.Errorf("console: static/%s: no content type for its extension", e.Name())
		}
		b, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		sum := sha256.Sum256(b)
		h.assets[e.Name()] = &asset{name: e.Name(), data: b, contentType: ct,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	if h.assets["index.html"] == nil {
		return nil, fmt.Errorf("console: static/index.html is missing")
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := h.lookup(r.URL.Path)
	if a == nil {
		h.notFound.ServeHTTP(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", securityPolicy)
	// ServeContent answers If-None-Match with 304, HEAD and ranges.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}

// lookup maps a request path to its file: "/" is the page, AssetPrefix +
// name a file; nil for anything else.
func (h *handler) lookup(p string) *asset {
	if p == "/" {
		return h.assets["index.html"]
	}
	name, ok := strings.CutPrefix(p, AssetPrefix)
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil
	}
	return h.assets[name]
}
