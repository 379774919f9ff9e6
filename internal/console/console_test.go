package console

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func newHandler(t *testing.T) http.Handler {
	t.Helper()
	h, err := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Not-Found", "1")
		w.WriteHeader(http.StatusNotFound)
	}))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(t.Context(), method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServes(t *testing.T) {
	h := newHandler(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/console/app.js">`},
		{"/console/index.html", "text/html; charset=utf-8", "<title>sketchd console</title>"},
		{"/console/app.js", "text/javascript; charset=utf-8", "import"},
		{"/console/console.css", "text/css; charset=utf-8", "body"},
		{"/console/uPlot.iife.min.js", "text/javascript; charset=utf-8", "var uPlot="},
		{"/console/uPlot.min.css", "text/css; charset=utf-8", ".uplot"},
		{"/console/uPlot.LICENSE.txt", "text/plain; charset=utf-8", "MIT"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := serve(t, h, http.MethodGet, tc.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			for k, want := range map[string]string{
				"Cache-Control":           "no-cache",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Content-Security-Policy": securityPolicy,
			} {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			etag := rec.Header().Get("ETag")
			if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
				t.Fatalf("ETag %q", etag)
			}
			// A revalidation with the ETag is 304, without the body.
			again := serve(t, h, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag})
			if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
				t.Errorf("If-None-Match: %d with %d bytes, want 304 and none", again.Code, again.Body.Len())
			}
		})
	}
}

func TestHandlerNotFound(t *testing.T) {
	h := newHandler(t)
	for _, p := range []string{"/index.html", "/console/", "/console", "/console/nope.js",
		"/console/../console/app.js", "/console/static/app.js", "/console/x/app.js", "/ui", "/v1/streams"} {
		rec := serve(t, h, http.MethodGet, p, nil)
		if rec.Code != http.StatusNotFound || rec.Header().Get("X-Not-Found") != "1" {
			t.Errorf("GET %s: %d, want the notFound handler's 404", p, rec.Code)
		}
	}
}

func TestHandlerNeedsNotFound(t *testing.T) {
	if _, err := Handler(nil); err == nil {
		t.Error("Handler(nil) succeeded")
	}
}

// TestETagFollowsContent: files that differ have different ETags (they
// are made from the content).
func TestETagFollowsContent(t *testing.T) {
	h := newHandler(t).(*handler)
	seen := map[string]string{}
	for name, a := range h.assets {
		if other, ok := seen[a.etag]; ok {
			t.Errorf("%s and %s share the ETag %s", name, other, a.etag)
		}
		seen[a.etag] = name
	}
}

// TestOffline: no file of the console loads anything from another origin:
// no URL in them but the few that are names, not fetches.
func TestOffline(t *testing.T) {
	allowed := map[string]bool{
		"https://github.com/leeoniya/uPlot": true, // uPlot's banner comment
		"http://www.w3.org/2000/svg":        true, // the SVG namespace
	}
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'` + "`" + `)]*`)
	files, _ := fs.Sub(static, "static")
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".txt") {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if !allowed[m] {
				t.Errorf("%s refers to %s: the console must load nothing from elsewhere", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVendoredFiles: the vendored files are the ones VENDOR.md records.
func TestVendoredFiles(t *testing.T) {
	doc, err := os.ReadFile("VENDOR.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `(static/[^`]+)` \\| `[^`]+` \\| `([0-9a-f]{64})` \\|$").FindAllStringSubmatch(string(doc), -1)
	if len(rows) != 3 {
		t.Fatalf("VENDOR.md lists %d files with sums, want 3", len(rows))
	}
	for _, r := range rows {
		b, err := static.ReadFile(r[1])
		if err != nil {
			t.Errorf("%s: %v", r[1], err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != r[2] {
			t.Errorf("%s: sha256 %s, VENDOR.md says %s", r[1], got, r[2])
		}
	}
}
