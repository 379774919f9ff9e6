package panetest

import (
	"testing"
	"time"

	"github.com/sketchd/sketchd"
)

// Spec returns a valid stream for tests: one-minute panes, 10 s of
// out-of-orderness, a minute of allowed lateness, a 30 s idle timeout, the
// dimensions country and device, and one aggregate of each kind: users
// (hll of user), urls (cms of url, top 5), latency (tdigest of lat) and
// sample (reservoir of 8 events).
func Spec(tb testing.TB) sketchd.Stream {
	tb.Helper()
	s := sketchd.DefaultStream()
	s.Name = "t"
	s.Subject = "ev.t"
	s.GroupBy = []string{"country", "device"}
	s.Granularity = sketchd.Duration(time.Minute)
	s.MaxOutOfOrderness = sketchd.Duration(10 * time.Second)
	s.AllowedLateness = sketchd.Duration(time.Minute)
	s.IdleTimeout = sketchd.Duration(30 * time.Second)
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url", TopK: 5},
		"latency": {Sketch: sketchd.KindTDigest, Field: "lat"},
		"sample":  {Sketch: sketchd.KindReservoir, Size: 8},
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Event builds an event of key for Spec at time at and source position
// pos, its values in AggregateNames order (latency, sample, urls, users),
// all derived from user.
func Event(key string, at time.Time, pos uint64, user string) sketchd.Event {
	return sketchd.Event{
		Key:  key,
		Time: at.UnixNano(),
		Pos:  pos,
		Values: []sketchd.Value{
			{Present: true, Num: float64(len(user))},
			{Present: true, Bytes: []byte(`{"u":"` + user + `"}`)},
			{Present: true, Bytes: []byte("/" + user)},
			{Present: true, Bytes: []byte(user)},
		},
	}
}

// LoadShape returns the stream of the load runner's ingest phases
// (loadtest/cmd/bench's streamYAML): page views with an RFC 3339 time,
// keyed by country and device, the four aggregates users (hll), urls
// (cms), latency (tdigest) and sample (reservoir) at their defaults, on
// subject bench.<name>.
func LoadShape(name string, jetStream bool) sketchd.Stream {
	s := sketchd.DefaultStream()
	s.Name = name
	s.Subject = "bench." + name
	s.JetStream = jetStream
	s.Time = sketchd.TimeSpec{Field: "ts", Format: sketchd.TimeRFC3339}
	s.GroupBy = []string{"country", "device"}
	s.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user_id"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "latency_ms"},
		"sample":  {Sketch: sketchd.KindReservoir},
	}
	s.Normalize()
	return s
}
