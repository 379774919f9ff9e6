package query

import "time"

// ProcessCPU is processCPU for the benchmarks of package query_test.
func ProcessCPU() time.Duration { return processCPU() }
