package clustertest

import (
	"os"
	"syscall"
)

// procAttr puts a node in its own process group, and has the kernel kill
// it if the test process dies first (no leaked nats-server).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to the process's group.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
