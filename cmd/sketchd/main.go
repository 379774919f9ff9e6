// Command sketchd runs the sketchd service. Until the ingest, store and api
// packages are wired here it only reports what is missing.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sketchd: the service is not wired yet: cmd/sketchd needs ingest/, store/ and api/ (see the open issues)")
	os.Exit(1)
}
