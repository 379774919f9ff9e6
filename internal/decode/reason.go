package decode

// Reason is why an event was rejected. The values are stable: they are metric
// labels, keys of sketchd.Counters.Invalid and the reason header of a dead
// letter.
type Reason string

// The rejection reasons.
const (
	ReasonBadJSON          Reason = "bad_json"          // not valid JSON, or data after the value
	ReasonNotObject        Reason = "not_object"        // valid JSON, but not an object
	ReasonMissingTime      Reason = "missing_time"      // time field missing or null
	ReasonBadTime          Reason = "bad_time"          // time of the wrong type, unparsable or out of int64 ns range
	ReasonMissingDimension Reason = "missing_dimension" // group-by field missing or null
	ReasonBadDimension     Reason = "bad_dimension"     // group-by field is an object or array, or a string that is not UTF-8
	ReasonWrongType        Reason = "wrong_type"        // aggregate field or weight of the wrong JSON type or sign
	ReasonNonFinite        Reason = "non_finite"        // number overflows float64 (e.g. 1e400)
	ReasonOutOfRange       Reason = "out_of_range"      // number beyond ±sketch.MaxInput (about 4.49e307) for a numeric aggregate
	ReasonOversize         Reason = "oversize"          // message or event larger than its limit, or a group-by key over sketchd.MaxKeyLen
	ReasonTooManyEvents    Reason = "too_many_events"   // beyond sketchd.MaxEventsPerMessage in one message
)

// Reasons lists every Reason, for pre-registering metric label values.
var Reasons = []Reason{
	ReasonBadJSON, ReasonNotObject, ReasonMissingTime, ReasonBadTime,
	ReasonMissingDimension, ReasonBadDimension, ReasonWrongType,
	ReasonNonFinite, ReasonOutOfRange, ReasonOversize, ReasonTooManyEvents,
}
