//go:build !linux

package clustertest

import (
	"os"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the process (SIGKILL where there are signals).
func killGroup(p *os.Process) {
	_ = p.Kill()
}
