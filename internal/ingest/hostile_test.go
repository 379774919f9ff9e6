package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
)

// hostileMaxPayload is the server's max payload in TestHostileLive: room
// for a 10 MB message.
const hostileMaxPayload = 10<<20 + 64<<10

// hostileCase is one hostile message: what the decoder must make of it.
type hostileCase struct {
	name  string
	msg   []byte
	valid int             // events that must be accepted
	bad   []decode.Reason // rejections, in order
}

// A valid event for the pageviews spec, and helpers to build hostile ones.
func okEvent(country string) string {
	return fmt.Sprintf(`{"ts":%d,"country":%q,"user":"u1","url":"/a","ms":12.5}`, base.UnixMilli(), country)
}

func withField(field, raw string) string {
	return fmt.Sprintf(`{"ts":%d,"country":"DE","user":"u1","url":"/a","ms":1,%q:%s}`, base.UnixMilli(), field, raw)
}

func hostileCases(maxPayload int) []hostileCase {
	ok := okEvent("DE")
	lines := func(ls ...string) []byte { return []byte(strings.Join(ls, "\n")) }
	nested := func(open, close string, n int) string {
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
		if garbage[i] == '\n' || garbage[i] == '{' {
			garbage[i] = 0xfe // one line, not an object
		}
	}
	bigString := func(n int) string { return strings.Repeat("x", n) }
	ts := base.UnixMilli()
	return []hostileCase{
		{"truncated", lines(`{"ts":1764064800000,"country":"DE","user":"u`, ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"truncated mid-escape", lines(`{"ts":1,"country":"D\u00`, ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"unterminated array", lines(`[`, ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"nested arrays 10k deep", lines(withField("x", nested("[", "]", 10_000)), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"nested objects 10k deep", lines(withField("x", nested(`{"a":`, "}", 10_000)), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"nested 100k deep (over the event limit)", lines(withField("x", nested("[", "]", 100_000)), ok), 1, []decode.Reason{decode.ReasonOversize}},
		{"nested 511 deep (within the limit)", lines(withField("x", nested("[", "]", 500)), ok), 2, nil},
		{"NaN literal", lines(withField("ms", "NaN"), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"Infinity literal", lines(withField("ms", "Infinity"), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"-Infinity literal", lines(withField("ms", "-Infinity"), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"1e999", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","ms":1e999}`, ts), ok), 1, []decode.Reason{decode.ReasonNonFinite}},
		// Finite but past what the numeric sketches take: refused here,
		// never accepted and then lost when applied.
		{"1.7e308", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","ms":1.7e308}`, ts), ok), 1, []decode.Reason{decode.ReasonOutOfRange}},
		{"-4.5e307", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","ms":-4.5e307}`, ts), ok), 1, []decode.Reason{decode.ReasonOutOfRange}},
		{"4.49e307 (within MaxInput)", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","ms":4.49e307}`, ts), ok), 2, nil},
		{"NaN as a string", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","ms":"NaN"}`, ts), ok), 1, []decode.Reason{decode.ReasonWrongType}},
		{"time is a string", lines(`{"ts":"yesterday","country":"DE"}`, ok), 1, []decode.Reason{decode.ReasonBadTime}},
		{"time is a bool", lines(`{"ts":true,"country":"DE"}`, ok), 1, []decode.Reason{decode.ReasonBadTime}},
		{"time 1e400", lines(`{"ts":1e400,"country":"DE"}`, ok), 1, []decode.Reason{decode.ReasonBadTime}},
		{"time missing", lines(`{"country":"DE"}`, ok), 1, []decode.Reason{decode.ReasonMissingTime}},
		{"dimension is an object", lines(fmt.Sprintf(`{"ts":%d,"country":{"a":1}}`, ts), ok), 1, []decode.Reason{decode.ReasonBadDimension}},
		{"dimension is an array", lines(fmt.Sprintf(`{"ts":%d,"country":[1]}`, ts), ok), 1, []decode.Reason{decode.ReasonBadDimension}},
		{"dimension null", lines(fmt.Sprintf(`{"ts":%d,"country":null}`, ts), ok), 1, []decode.Reason{decode.ReasonMissingDimension}},
		{"aggregate field is an object", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","user":{"id":1}}`, ts), ok), 1, []decode.Reason{decode.ReasonWrongType}},
		{"top-level array", lines(`[1,2,3]`, ok), 1, []decode.Reason{decode.ReasonNotObject}},
		{"top-level string, number, null", lines(`"x"`, `42`, `null`, ok), 1, []decode.Reason{decode.ReasonNotObject, decode.ReasonNotObject, decode.ReasonNotObject}},
		{"binary garbage", append(append([]byte{}, garbage...), "\n"+ok...), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"NUL bytes", lines("\x00\x00\x00\x00", ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"UTF-8 BOM", lines("\xef\xbb\xbf"+ok, ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"invalid UTF-8 outside strings", lines(fmt.Sprintf(`{"ts":%d,"country":"DE"`+"\xff}", ts), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		// Inside strings invalid UTF-8 is kept byte for byte (documented),
		// except in a group-by value: a key that is not UTF-8 could be
		// stored but never asked for (issue 15).
		{"invalid UTF-8 in a group-by value", lines(fmt.Sprintf("{\"ts\":%d,\"country\":\"\xff\xfe\xc0\xaf\",\"user\":\"u\"}", ts), ok), 1, []decode.Reason{decode.ReasonBadDimension}},
		{"invalid UTF-8 in an aggregate value", lines(fmt.Sprintf("{\"ts\":%d,\"country\":\"DE\",\"user\":\"\xed\xa0\x80\"}", ts), ok), 2, nil},
		{"lone surrogate escape", lines(fmt.Sprintf(`{"ts":%d,"country":"\ud800","user":"\udfff"}`, ts), ok), 2, nil},
		{"raw control character in a string", lines(fmt.Sprintf(`{"ts":%d,"country":"a`+"\x01"+`b"}`, ts), ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"duplicate fields (last wins)", lines(fmt.Sprintf(`{"ts":1,"ts":%d,"country":"XX","country":"DE","ms":"x","ms":3}`, ts), ok), 2, nil},
		{"empty message", []byte{}, 0, nil},
		{"blank lines only", []byte("\n \r\n\t\n"), 0, nil},
		{"data after the value", lines(ok+` {"extra":1}`, ok), 1, []decode.Reason{decode.ReasonBadJSON}},
		{"event over the event limit", lines(withField("pad", `"`+bigString(decode.DefaultMaxEventBytes)+`"`), ok), 1, []decode.Reason{decode.ReasonOversize}},
		{"huge value within the event limit", lines(fmt.Sprintf(`{"ts":%d,"country":"DE","user":"%s"}`, ts, bigString(60_000)), ok), 2, nil},
		// A group-by value longer than the store's key limit: the event
		// must be rejected here, or the commit that holds its pane fails
		// forever and the stream stops.
		{"group-by key over the store's limit", lines(fmt.Sprintf(`{"ts":%d,"country":"%s"}`, ts, bigString(40_000)), ok), 1, []decode.Reason{decode.ReasonOversize}},
		// 10 MB, just under the server's max payload: too large for the
		// decoder, and too large to dead-letter whole with headers.
		{"10 MB message", []byte(withField("pad", `"`+bigString(maxPayload-200)+`"`)), 0, []decode.Reason{decode.ReasonOversize}},
	}
}

// TestHostileDecode runs the corpus through the decoder alone: no panic,
// each rejection under its reason, the valid events of the same message
// accepted.
//
//	go test ./internal/ingest -run TestHostileDecode -v
func TestHostileDecode(t *testing.T) {
	spec := pageviews("hostile", true)
	for _, c := range hostileCases(hostileMaxPayload) {
		t.Run(c.name, func(t *testing.T) {
			d, err := decode.New(spec, decode.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []decode.Reason
			valid := 0
			d.Decode(c.msg, 7, base.UnixNano(), func(ev *sketchd.Event) {
				valid++
				if len(ev.Key) > sketchd.MaxKeyLen {
					t.Errorf("accepted a key of %d bytes", len(ev.Key))
				}
			}, func(raw []byte, r decode.Reason, detail string) {
				got = append(got, r)
				if detail == "" && r != decode.ReasonTooManyEvents {
					t.Errorf("reason %s without detail", r)
				}
			})
			if valid != c.valid || fmt.Sprint(got) != fmt.Sprint(c.bad) {
				t.Errorf("valid %d, rejected %v; want valid %d, rejected %v", valid, got, c.valid, c.bad)
			}
		})
	}
}

// TestHostileLive publishes the corpus through a real JetStream (max
// payload 10 MiB + 64 KiB) to a running stream: nothing panics, every rejection is
// counted under its reason and dead-lettered with its reason header (a
// message too large to dead-letter whole is truncated and says so), the
// valid events of the same messages are stored, and the stream keeps
// committing and acking.
//
//	go test -race ./internal/ingest -run TestHostileLive -v
func TestHostileLive(t *testing.T) {
	const maxPayload = hostileMaxPayload
	ns, err := StartServer(ServerOptions{Port: -1, StoreDir: t.TempDir(), MaxPayload: maxPayload}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc := connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	db := openStore(t, t.TempDir())
	spec := pageviews("hostile", true)
	ctx := context.Background()
	dl := make(chan *nats.Msg, 1000)
	sub, err := nc.ChanSubscribe(spec.DeadLetterSubject, dl)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, []sketchd.Stream{spec}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(ctx) }()

	cases := hostileCases(maxPayload)
	wantReasons := map[string]uint64{}
	var wantValid, wantBad int
	for _, c := range cases {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := js.Publish(pctx, spec.Subject, c.msg)
		cancel()
		if err != nil {
			t.Fatalf("%s: publish %d bytes: %v", c.name, len(c.msg), err)
		}
		wantValid += c.valid
		wantBad += len(c.bad)
		for _, r := range c.bad {
			wantReasons[string(r)]++
		}
	}
	waitConsumed(t, js, spec, len(cases))
	st := mustStatus(t, m, spec.Name)
	if got := applied(st); got != uint64(wantValid) {
		t.Errorf("%d events applied, want %d", got, wantValid)
	}
	for r, n := range wantReasons {
		if st.Counters.Invalid[r] != n {
			t.Errorf("invalid[%s] = %d, want %d", r, st.Counters.Invalid[r], n)
		}
		if v, _ := metricValue(t, m, "sketchd_invalid_events_total", spec.Name, r); uint64(v) != n {
			t.Errorf("sketchd_invalid_events_total{reason=%q} = %v, want %d", r, v, n)
		}
	}
	if len(st.Counters.Invalid) != len(wantReasons) {
		t.Errorf("invalid counters %v, want %v", st.Counters.Invalid, wantReasons)
	}
	_, total := paneTotals(t, db, st.ID)
	if total != uint64(wantValid) {
		t.Errorf("%d events in panes, want %d", total, wantValid)
	}
	gotDL := map[string]uint64{}
	truncated := 0
	deadline := time.After(20 * time.Second)
	// One dead letter per message: its lines are listed in Sketchd-Lines
	// when it has more than one.
	for got := 0; got < wantBad; {
		select {
		case msg := <-dl:
			if lines := msg.Header.Get("Sketchd-Lines"); lines != "" {
				for _, l := range strings.Split(lines, ",") {
					_, reason, _ := strings.Cut(l, ":")
					gotDL[reason]++
					got++
				}
			} else {
				gotDL[msg.Header.Get("Sketchd-Reason")]++
				got++
			}
			if msg.Header.Get("Sketchd-Truncated") != "" {
				truncated++
				if len(msg.Data) >= maxPayload-1024 {
					t.Errorf("truncated dead letter of %d bytes", len(msg.Data))
				}
			}
		case <-deadline:
			t.Fatalf("dead letters: %v, want %v", gotDL, wantReasons)
		}
	}
	if fmt.Sprint(gotDL) != fmt.Sprint(wantReasons) {
		t.Errorf("dead letters by reason %v, want %v", gotDL, wantReasons)
	}
	if truncated != 1 {
		t.Errorf("%d truncated dead letters, want 1 (the max-payload message)", truncated)
	}
	if v := mustMetric(t, m, "sketchd_dead_letter_publish_errors_total", spec.Name); v != 0 {
		t.Errorf("%v dead-letter publishes failed", v)
	}
	if err := m.Ready(ctx); err != nil {
		t.Errorf("not ready after the corpus: %v", err)
	}
	t.Logf("messages=%d valid events=%d (stored %d) rejected=%d by reason %v; dead letters %v (%d truncated)",
		len(cases), wantValid, total, wantBad, st.Counters.Invalid, gotDL, truncated)
}
