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

// PartitionOwnership is a partition's owner as a cluster instance knows
// it (docs/scale-out.md §2.5): answers and the stream's status carry it
// per partition in cluster mode only.
type PartitionOwnership struct {
	// Owner is the instance id of the partition's current owner: the one
	// its last checkpoint record in the changelog names (this instance
	// when it owns the partition), "" when the partition has no owner: no
	// record yet, or the named instance is no longer a live member here.
	Owner string
	// MirrorPending is how many changelog sequences this instance may
	// still have to apply for the partition (an upper bound, as of its
	// mirror's last read and lag probe): 0 when its copy is current, and
	// for a partition owned here.
	MirrorPending uint64
}
