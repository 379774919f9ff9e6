package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// tablePagesSupported: Linux has /proc/self/maps and MADV_DONTNEED.
const tablePagesSupported = true

// readMaps returns /proc/self/maps.
func readMaps() ([]byte, error) { return os.ReadFile("/proc/self/maps") }

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
