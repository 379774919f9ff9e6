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

// pageOut asks the kernel to reclaim the pages of [start, start+n)
// (MADV_PAGEOUT, Linux 5.4): clean file pages are dropped from the page
// cache, dirty ones and anonymous memory without swap stay, so it never
// loses data, whatever the range is mapped to now. Best effort: an error
// (an older kernel: EINVAL) leaves the pages to the kernel's own reclaim.
func pageOut(start, n uintptr) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, start, n, unix.MADV_PAGEOUT)
}
