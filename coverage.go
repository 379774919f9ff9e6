package sketchd

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PartitionsUnavailableError refuses a query of a stream some of whose
// partitions this instance does not cover: an answer without them would
// look complete and not be (docs/scale-out.md §2.5: refused, never
// partial). It matches ErrUnavailable: retry later, or ask another
// instance.
type PartitionsUnavailableError struct {
	Stream string
	// Missing are the partitions not covered, ascending.
	Missing []int
	// Count is the stream's number of partitions.
	Count int
}

func (e *PartitionsUnavailableError) Error() string {
	ps := make([]string, len(e.Missing))
	for i, p := range e.Missing {
		ps[i] = strconv.Itoa(p)
	}
	return fmt.Sprintf("stream %q: partitions %s of %d are not covered by this instance yet (their state is still being restored from the changelog); an answer without them would be incomplete",
		e.Stream, strings.Join(ps, ", "), e.Count)
}

func (e *PartitionsUnavailableError) Unwrap() error { return ErrUnavailable }

// Uncovered returns the partitions of st that this instance does not
// cover (PartitionState.Uncovered), ascending; nil when it covers all.
func (st *StreamStatus) Uncovered() []int {
	var out []int
	for _, p := range st.Coverage {
		if p.Uncovered {
			out = append(out, p.Partition)
		}
	}
	slices.Sort(out)
	return out
}
