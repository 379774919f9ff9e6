package decode

// Comparison benchmarks of the event decoder. Run with:
//
//	go test ./internal/decode -run '^$' -bench 'Decode' -benchmem -count 5 -cpu 1
//
// Results and the decision are in docs/decoding.md.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/gen"
	"github.com/sketchd/sketchd/sketch"
	"github.com/valyala/fastjson"
)

// The alternatives below reuse the Decoder's compiled plan (paths, kinds) and
// its time parser and key encoding, so that only the JSON layer differs.
// They implement the same semantics on the benchmark event, not every edge
// case (encoding/json, for one, loses number literals).

type altPlan struct {
	d        *Decoder
	timePath []string
	dims     [][]string
	aggs     [][]string // nil for the whole event
	key      []byte
	ev       sketchd.Event
}

func newAltPlan(b *testing.B, s sketchd.Stream) *altPlan {
	d := mustDecoder(b, s, Options{})
	p := &altPlan{d: d, timePath: strings.Split(d.timePath, ".")}
	for _, dp := range d.dimPaths {
		p.dims = append(p.dims, strings.Split(dp, "."))
	}
	for _, a := range d.aggs {
		var path []string
		if a.path != "" {
			path = strings.Split(a.path, ".")
		}
		p.aggs = append(p.aggs, path)
	}
	p.ev.Values = make([]sketchd.Value, len(d.aggs))
	return p
}

// fastjsonDecoder decodes with a reused fastjson.Parser.
type fastjsonDecoder struct {
	*altPlan
	p   fastjson.Parser
	num []byte
}

func (f *fastjsonDecoder) decode(line []byte, ok func(*sketchd.Event)) Reason {
	v, err := f.p.ParseBytes(line)
	if err != nil {
		return ReasonBadJSON
	}
	if v.Type() != fastjson.TypeObject {
		return ReasonNotObject
	}
	tv := v.Get(f.timePath...)
	if tv == nil || tv.Type() == fastjson.TypeNull {
		return ReasonMissingTime
	}
	ts, err := tv.StringBytes()
	if err != nil {
		return ReasonBadTime
	}
	t, bad := parseRFC3339(ts)
	if bad != "" {
		return ReasonBadTime
	}
	f.ev.Time = t
	f.key = f.key[:0]
	f.num = f.num[:0]
	for _, p := range f.dims {
		dv := v.Get(p...)
		if dv == nil {
			return ReasonMissingDimension
		}
		switch dv.Type() {
		case fastjson.TypeString:
			f.key = sketchd.AppendKeyValue(f.key, dv.GetStringBytes())
		case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
			n := len(f.num)
			f.num = dv.MarshalTo(f.num)
			f.key = sketchd.AppendKeyValue(f.key, f.num[n:])
		case fastjson.TypeNull:
			return ReasonMissingDimension
		default:
			return ReasonBadDimension
		}
	}
	for i, a := range f.d.aggs {
		val := &f.ev.Values[i]
		*val = sketchd.Value{}
		if f.aggs[i] == nil {
			*val = sketchd.Value{Present: true, Bytes: line}
			continue
		}
		av := v.Get(f.aggs[i]...)
		if av == nil || av.Type() == fastjson.TypeNull {
			continue
		}
		switch a.input {
		case sketch.InputItem:
			switch av.Type() {
			case fastjson.TypeString:
				val.Bytes = av.GetStringBytes()
			case fastjson.TypeObject, fastjson.TypeArray:
				return ReasonWrongType
			default:
				n := len(f.num)
				f.num = av.MarshalTo(f.num)
				val.Bytes = f.num[n:]
			}
		case sketch.InputNumber:
			x, err := av.Float64()
			if err != nil {
				return ReasonWrongType
			}
			val.Num = x
		}
		val.Present = true
	}
	f.ev.Key = f.d.intern(f.key)
	ok(&f.ev)
	return ""
}

// stdDecoder decodes with encoding/json into map[string]any, the generic
// way to read fields chosen at run time.
type stdDecoder struct {
	*altPlan
}

func get(m map[string]any, path []string) (any, bool) {
	var v any = m
	for _, k := range path {
		o, isObj := v.(map[string]any)
		if !isObj {
			return nil, false
		}
		if v, isObj = o[k]; !isObj {
			return nil, false
		}
	}
	return v, true
}

func strBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (s *stdDecoder) decode(line []byte, ok func(*sketchd.Event)) Reason {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return ReasonBadJSON
	}
	tv, _ := get(m, s.timePath)
	ts, isStr := tv.(string)
	if !isStr {
		return ReasonBadTime
	}
	t, bad := parseRFC3339(strBytes(ts))
	if bad != "" {
		return ReasonBadTime
	}
	s.ev.Time = t
	s.key = s.key[:0]
	for _, p := range s.dims {
		dv, found := get(m, p)
		if !found || dv == nil {
			return ReasonMissingDimension
		}
		switch dv := dv.(type) {
		case string:
			s.key = sketchd.AppendKeyValue(s.key, strBytes(dv))
		case float64:
			s.key = sketchd.AppendKeyValue(s.key, strconv.AppendFloat(nil, dv, 'g', -1, 64))
		case bool:
			s.key = sketchd.AppendKeyValue(s.key, strconv.AppendBool(nil, dv))
		default:
			return ReasonBadDimension
		}
	}
	for i, a := range s.d.aggs {
		val := &s.ev.Values[i]
		*val = sketchd.Value{}
		if s.aggs[i] == nil {
			*val = sketchd.Value{Present: true, Bytes: line}
			continue
		}
		av, found := get(m, s.aggs[i])
		if !found || av == nil {
			continue
		}
		switch a.input {
		case sketch.InputItem:
			switch av := av.(type) {
			case string:
				val.Bytes = strBytes(av)
			case float64:
				val.Bytes = strconv.AppendFloat(nil, av, 'g', -1, 64)
			case bool:
				val.Bytes = strconv.AppendBool(nil, av)
			default:
				return ReasonWrongType
			}
		case sketch.InputNumber:
			x, isNum := av.(float64)
			if !isNum {
				return ReasonWrongType
			}
			val.Num = x
		}
		val.Present = true
	}
	s.ev.Key = s.d.intern(s.key)
	ok(&s.ev)
	return ""
}

var sink int64

// cpuNanos returns the CPU time (user+system) this process has used. The
// benchmark machine is shared, so besides wall-clock ns/op the benchmarks
// report cpu-ns/op, which time slices lost to other processes do not inflate.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// loop runs f under b.Loop and reports cpu-ns/op.
func loop(b *testing.B, f func()) {
	b.ReportAllocs()
	start := cpuNanos()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	b.ReportMetric(float64(cpuNanos()-start)/float64(n), "cpu-ns/op")
}

func benchOK(ev *sketchd.Event) {
	sink += ev.Time + int64(len(ev.Key)) + int64(len(ev.Values[3].Bytes))
}
func benchBad(raw []byte, r Reason, detail string) {
	panic(fmt.Sprintf("bad %s: %s", r, detail))
}

func BenchmarkDecode(b *testing.B) {
	msg := []byte(benchEvent)
	b.Run("impl=scanner", func(b *testing.B) {
		d := mustDecoder(b, testSpec(), Options{})
		b.SetBytes(int64(len(msg)))
		loop(b, func() { d.Decode(msg, 1, 0, benchOK, benchBad) })
	})
	b.Run("impl=fastjson", func(b *testing.B) {
		f := &fastjsonDecoder{altPlan: newAltPlan(b, testSpec())}
		b.SetBytes(int64(len(msg)))
		loop(b, func() {
			if r := f.decode(msg, benchOK); r != "" {
				b.Fatal(r)
			}
		})
	})
	b.Run("impl=encoding_json", func(b *testing.B) {
		s := &stdDecoder{altPlan: newAltPlan(b, testSpec())}
		b.SetBytes(int64(len(msg)))
		loop(b, func() {
			if r := s.decode(msg, benchOK); r != "" {
				b.Fatal(r)
			}
		})
	})
}

// BenchmarkDecodeVariants measures the chosen decoder on other shapes: an
// NDJSON message of 100 events (reported per event), keys that miss the
// intern cache, and escaped strings.
func BenchmarkDecodeVariants(b *testing.B) {
	var lines []string
	for i := range 100 {
		lines = append(lines, strings.Replace(benchEvent, `"u-123456"`, fmt.Sprintf(`"u-%d"`, i), 1))
	}
	b.Run("ndjson100", func(b *testing.B) {
		msg := []byte(strings.Join(lines, "\n") + "\n")
		d := mustDecoder(b, testSpec(), Options{})
		b.SetBytes(int64(len(msg)))
		loop(b, func() { d.Decode(msg, 1, 0, benchOK, benchBad) })
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
	})
	b.Run("unique_keys", func(b *testing.B) {
		const n = 2 * maxInterned
		msgs := make([][]byte, n)
		for i := range msgs {
			msgs[i] = []byte(strings.Replace(benchEvent, `"DE"`, fmt.Sprintf(`"C%d"`, i), 1))
		}
		d := mustDecoder(b, testSpec(), Options{})
		i := 0
		loop(b, func() {
			d.Decode(msgs[i%n], 1, 0, benchOK, benchBad)
			i++
		})
	})
	b.Run("escaped", func(b *testing.B) {
		msg := []byte(strings.NewReplacer(`"DE"`, `"D\u00c9"`, `"u-123456"`, `"u-\u00e9\ud83d\ude00"`).Replace(benchEvent))
		d := mustDecoder(b, testSpec(), Options{})
		loop(b, func() { d.Decode(msg, 1, 0, benchOK, benchBad) })
	})
	b.Run("new_decoder", func(b *testing.B) {
		s := testSpec()
		s.Normalize()
		loop(b, func() {
			if _, err := New(s, Options{}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkParseFloat parses the latencies of the load runner's page views
// (internal/gen: strconv's shortest form, mostly 16-17 digits) with
// parseFloat's fast path and with strconv alone:
//
//	nice -n 19 go test ./internal/decode -run '^$' -bench ParseFloat -count 6
func BenchmarkParseFloat(b *testing.B) {
	g := gen.New(gen.Options{Seed: 1})
	var nums [][]byte
	for range 1024 {
		ev, _ := g.Next(time.Unix(1_800_000_000, 0))
		_, num, _ := bytes.Cut(ev, []byte(`"latency_ms":`))
		nums = append(nums, bytes.Clone(bytes.TrimSuffix(num, []byte("}"))))
	}
	for _, impl := range []struct {
		name  string
		parse func([]byte) (float64, bool)
	}{
		{"parseFloat", parseFloat},
		{"strconv", func(b []byte) (float64, bool) {
			f, err := strconv.ParseFloat(string(b), 64)
			return f, err == nil
		}},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			var s float64
			i := 0
			for b.Loop() {
				f, ok := impl.parse(nums[i&1023])
				if !ok {
					b.Fatal(string(nums[i&1023]))
				}
				s += f
				i++
			}
			sinkF = s
		})
	}
}

var sinkF float64
