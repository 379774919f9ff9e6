// Package procmem reads the process's own memory figures from the kernel
// (/proc/self/statm): the one place that parses them, for the store's page
// releaser and the memory limiter.
package procmem

import (
	"os"
	"strconv"
	"strings"
)

// ResidentFiles returns the process's resident file-backed and shared
// memory in bytes (/proc/self/statm's third field, in pages: the binary's
// mapped code and data, Badger's table pages and memtable logs, JetStream's
// mapped files): a read of a few dozen bytes, cheap enough to call every
// few milliseconds. ok is false where there is no /proc (not Linux).
func ResidentFiles() (bytes int64, ok bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	return parseStatm(b, os.Getpagesize())
}

// parseStatm returns the third field of a statm line times the page size.
func parseStatm(b []byte, pageSize int) (int64, bool) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || pages < 0 {
		return 0, false
	}
	return pages * int64(pageSize), true
}
