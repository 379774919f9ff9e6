//go:build unix

package query

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used:
// what a benchmark's timed part costs when the machine it shares is busy
// and wall time includes waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
