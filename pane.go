package sketchd

// PaneStart returns the start (unix nanoseconds) of the epoch-aligned pane of
// width g nanoseconds that contains t. It floors, so times before 1970 land
// in the pane that contains them too.
func PaneStart(t, g int64) int64 {
	s := t - t%g
	if t%g < 0 {
		s -= g
	}
	return s
}

// PaneRecord is one (key, pane) as the window hands it to the store and the
// store gives it back. The sketch blobs are opaque here: sketch/ encodes them
// (one per slot of Stream.SlotNames) and window/ and
// query/ decode them (DecodeSketch).
type PaneRecord struct {
	Key   string // encoded group-by tuple (EncodeKey)
	Start int64  // pane start, unix nanoseconds
	// Final is set once the watermark has passed Start+granularity+allowed
	// lateness: the pane can no longer change.
	Final bool
	// Events is the exact number of events applied to the pane.
	Events uint64
	// Applied is the highest source position applied to the pane (0 when the
	// source has no positions, as with core NATS). Replays skip positions at
	// or below it.
	Applied uint64
	// Sketches holds one encoded sketch per slot of Stream.SlotNames (the
	// aggregate names, sorted, for a stream never altered). A zero-length
	// blob (a removed aggregate's slot) or a missing trailing one (an
	// aggregate added after the pane was written) is an empty sketch; read
	// them with SlotBlob.
	Sketches [][]byte
}

// Checkpoint is the state of a stream's aggregation as of one source
// position: every effect of the input at or below Position is durable in the
// store when the checkpoint is. It is written with the dirty panes of each
// flush.
type Checkpoint struct {
	// Position is the source position up to which all input is applied.
	Position uint64 `json:"position"`
	// MaxEventTime is the highest event time seen (unix ns); the watermark is
	// derived from it.
	MaxEventTime int64 `json:"max_event_time"`
	// Watermark is the stream watermark (unix ns) at Position.
	Watermark int64 `json:"watermark"`
	// Counters are the stream's event counters at Position.
	Counters Counters `json:"counters"`
}

// Counters are a stream's exact event accounting. Every event that reaches
// the stream is counted exactly once in OnTime, Late, TooLate, Future,
// Skipped or one of the Invalid reasons.
type Counters struct {
	OnTime  uint64 `json:"on_time"`  // applied; its pane was still ahead of the watermark
	Late    uint64 `json:"late"`     // applied; the watermark had passed its pane's end, within allowed lateness
	TooLate uint64 `json:"too_late"` // not applied: its pane was final
	Future  uint64 `json:"future"`   // not applied: event time too far ahead of processing time
	// Skipped counts replayed events already contained in the stored state.
	Skipped uint64 `json:"skipped"`
	// Invalid counts rejected input by reason (see the ingest package).
	Invalid map[string]uint64 `json:"invalid,omitempty"`
}

// Clone returns a deep copy of c.
func (c Counters) Clone() Counters {
	out := c
	if c.Invalid != nil {
		out.Invalid = make(map[string]uint64, len(c.Invalid))
		for k, v := range c.Invalid {
			out.Invalid[k] = v
		}
	}
	return out
}
