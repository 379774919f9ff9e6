// Package console serves sketchd's web console: one static page, its
// JavaScript modules and stylesheet, and the vendored uPlot charting
// library, embedded in the binary (go:embed) so the console works offline.
//
// The page reads the /v1 API from the browser, as any client would: the
// handler here serves files only, never data, and needs no token (the API
// behind it keeps its own; see docs/console.md). The vendored library, its
// version, license and checksums are recorded in VENDOR.md, which a test
// keeps true.
package console
