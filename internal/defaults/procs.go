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

// Procs returns the GOMAXPROCS for cpus CPUs: ProcsPerCPU per CPU.
func Procs(cpus int) int { return max(1, cpus) * ProcsPerCPU }
