package query

import "github.com/sketchd/sketchd"

// TargetOf is what a query of st reads, as of the stream's last commit:
// results are cached until the next commit changes the store.
func TargetOf(st *sketchd.StreamStatus) Target {
	t := Target{ID: st.ID, Spec: st.Spec, Watermark: st.CommittedWatermark, Partitions: st.Partitions, Uncovered: st.Uncovered()}
	if !st.LastCommit.IsZero() {
		t.LastCommit = st.LastCommit.UnixNano()
	}
	return t
}
