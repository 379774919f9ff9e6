package defaults

import "runtime"

// ProcsPerCPU is how many Go scheduler threads (GOMAXPROCS) sketchd runs
// per CPU by default (--procs 0). More threads than CPUs hands the fairness
// between a query's goroutine and Badger's compaction goroutines to the
// kernel's scheduler: with one P per CPU, a compaction's sub-compactions
// and table builders hold every P for their 10 ms time slices, and a
// request woken by the network poller waits in the runtime's global run
// queue behind them (the query p99 of the load runner's seconds with a
// compaction running, 127 ms against 16 ms in the others). See
// docs/operations.md ("Scheduler threads").
const ProcsPerCPU = 4

// startProcs is GOMAXPROCS as the process started: the CPUs the runtime
// found (the cgroup's CPU quota honoured), or $GOMAXPROCS.
var startProcs = runtime.GOMAXPROCS(0)

// CPUs returns the CPUs sketchd sizes its parallel work by (window shards,
// query admission): GOMAXPROCS as the process started, before --procs
// changed it.
func CPUs() int { return startProcs }

// Procs returns the GOMAXPROCS for cpus, the CPUs the runtime found on a
// machine of machine CPUs: ProcsPerCPU per CPU, unless the runtime found
// fewer than the machine has, which a CPU quota (cgroup cpu.max) does:
// then cpus. Under a quota, more threads than it let a burst spend the
// period's quota early, and the kernel then stops every thread until the
// next period (CFS throttling), the stall the runtime's own quota-aware
// default avoids.
func Procs(cpus, machine int) int {
	cpus = max(1, cpus)
	if cpus < machine {
		return cpus
	}
	return cpus * ProcsPerCPU
}

// DefaultProcs is Procs for this process: CPUs on runtime.NumCPU.
func DefaultProcs() int { return Procs(CPUs(), runtime.NumCPU()) }
