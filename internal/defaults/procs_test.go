package defaults

import (
	"runtime"
	"testing"
)

func TestProcs(t *testing.T) {
	for _, c := range []struct{ cpus, machine, want int }{
		{2, 2, 2 * ProcsPerCPU},
		{8, 8, 8 * ProcsPerCPU},
		{0, 1, ProcsPerCPU}, // at least one CPU
		{2, 16, 2},          // a CPU quota of 2 on 16 CPUs: no more threads than it
		{1, 2, 1},
	} {
		if got := Procs(c.cpus, c.machine); got != c.want {
			t.Errorf("Procs(%d, %d) = %d, want %d", c.cpus, c.machine, got, c.want)
		}
	}
	cpus := CPUs()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cpus + 3))
	if CPUs() != cpus {
		t.Errorf("CPUs() = %d after GOMAXPROCS changed, want %d as at start", CPUs(), cpus)
	}
}
