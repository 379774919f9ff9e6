// Package testbin builds a Go command once per test binary, for tests that
// run it as a child process (sketchd's end-to-end tests, clustertest's
// nats-server nodes): every test of the binary runs the same build, and
// linking it again per test costs CI seconds for nothing.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary is one command, built on first use into its own temp dir.
type Binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// Path builds pkg (a `go build` package argument, resolved in the test's
// directory) as name on the first call and returns the executable's path;
// a failed build fails tb with go build's output.
func (b *Binary) Path(tb testing.TB, name, pkg string) string {
	tb.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", name+"-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, name)
		b.out, b.err = exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput()
	})
	if b.err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, b.err, b.out)
	}
	return b.path
}

// Remove deletes the build; call it from TestMain after m.Run.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
