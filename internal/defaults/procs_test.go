package defaults

import (
	"runtime"
	"testing"
)

func TestProcs(t *testing.T) {
	if got := Procs(2); got != 2*ProcsPerCPU {
		t.Errorf("Procs(2) = %d, want %d", got, 2*ProcsPerCPU)
	}
	if got := Procs(0); got != ProcsPerCPU {
		t.Errorf("Procs(0) = %d, want %d (at least one CPU)", got, ProcsPerCPU)
	}
	cpus := CPUs()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cpus + 3))
	if CPUs() != cpus {
		t.Errorf("CPUs() = %d after GOMAXPROCS changed, want %d as at start", CPUs(), cpus)
	}
}
