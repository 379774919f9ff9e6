package store

import (
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// tablePagesSupported: Linux has /proc/self/maps and MADV_DONTNEED.
const tablePagesSupported = true

// readMaps returns the process's mapped files, from /proc/self/maps.
func readMaps() ([]mappedFile, error) {
	p, err := procfs.Self()
	if err != nil {
		return nil, err
	}
	maps, err := p.ProcMaps()
	if err != nil {
		return nil, err
	}
	return mappedFiles(maps), nil
}

// mappedFiles keeps the file mappings of maps.
func mappedFiles(maps []*procfs.ProcMap) []mappedFile {
	var out []mappedFile
	for _, m := range maps {
		if m.Pathname != "" {
			out = append(out, mappedFile{start: m.StartAddr, end: m.EndAddr, path: m.Pathname})
		}
	}
	return out
}

// madviseDontNeed drops the process's page-table entries of [start,
// start+n), a mapping of a table's file (tablepages.go says why that is
// safe there).
func madviseDontNeed(start, n uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, n, unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}
