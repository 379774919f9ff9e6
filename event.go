package sketchd

// Event is one decoded event, ready for aggregation. Ingest builds it; the
// window assigns it to a pane. Byte slices may alias the message payload and
// must not be retained by the receiver without copying.
type Event struct {
	Key  string // encoded group-by tuple (EncodeKey)
	Time int64  // event time, unix nanoseconds
	// Pos is the source position of the event, strictly increasing in the
	// order events are processed (JetStream: stream sequence and index within
	// the message, see Position). 0 means "no position" (core NATS).
	Pos uint64
	// Values holds one value per aggregate, ordered as Stream.AggregateNames.
	Values []Value
	// Raw is the event's JSON as received (aliases the message), for
	// dead-lettering it when it turns out too late.
	Raw []byte
}

// Value is an event's value for one aggregate.
type Value struct {
	// Present is false when the event does not carry the aggregate's field;
	// the aggregate then skips the event (its count still includes it).
	Present bool
	// Bytes is the item: the canonical text of a scalar (a string's content,
	// a number's or bool's JSON literal) for hll and cms, or raw JSON for a
	// reservoir.
	Bytes []byte
	// Num is the numeric value for tdigest, or the weight for a weighted
	// reservoir.
	Num float64
}

// PositionShift is how many low bits of a source position index the event
// within its message: a message carries at most 1<<PositionShift events.
const PositionShift = 20

// MaxEventsPerMessage bounds the events of one message (see PositionShift).
const MaxEventsPerMessage = 1 << PositionShift

// Position combines a JetStream stream sequence and an event's index within
// its message into one strictly increasing source position.
func Position(seq uint64, index int) uint64 {
	return seq<<PositionShift | uint64(index)
}

// PositionSeq returns the stream sequence of a position.
func PositionSeq(pos uint64) uint64 { return pos >> PositionShift }
