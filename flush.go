package sketchd

// Flush is one flush of a stream's aggregation: the panes changed since the
// previous flush, and the checkpoint they are consistent with. The window's
// aggregator takes it, the store commits it whole, and only then does ingest
// ack its Token.
type Flush struct {
	Panes      []PaneRecord
	Checkpoint Checkpoint
	// Token is the source's token for the last input the flush covers
	// (ingest's: the JetStream message to ack); nil when there is none. The
	// store ignores it.
	Token any
	// Gen numbers the aggregator's flushes; the aggregator reads it when
	// told the flush is committed. The store ignores it.
	Gen uint64
}

// Absorb folds a newer flush into f, for a caller whose commit of f failed
// and who flushed again: the newer record of a pane wins, and f takes the
// newer checkpoint, generation and token.
func (f *Flush) Absorb(newer *Flush) {
	type paneID struct {
		key   string
		start int64
	}
	idx := make(map[paneID]int, len(f.Panes))
	for i, r := range f.Panes {
		idx[paneID{r.Key, r.Start}] = i
	}
	for _, r := range newer.Panes {
		if i, ok := idx[paneID{r.Key, r.Start}]; ok {
			f.Panes[i] = r
		} else {
			f.Panes = append(f.Panes, r)
		}
	}
	f.Checkpoint, f.Gen = newer.Checkpoint, newer.Gen
	if newer.Token != nil {
		f.Token = newer.Token
	}
}
