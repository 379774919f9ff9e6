package query_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
	"github.com/sketchd/sketchd/internal/store"
	"github.com/sketchd/sketchd/sketch"
)

// kindsStreamSeed seeds the events of kindsStore: fixed, so that every run
// of a benchmark reads the same panes.
const kindsStreamSeed = 14

// kindsStore is a store holding the load runner's stream (loadtest/cmd/bench,
// streamYAML): group_by country and device, the aggregates users (hll of
// user_id), urls (cms of url), latency (tdigest of latency_ms) and sample
// (reservoir of the event), every parameter at its default, a pane a minute
// for every key over the given hours, and the hourly rollup tier. Each pane
// holds the four sketches of a minute of internal/gen's events at the live
// stream's density: 100 to 400 events per key and pane (more for the first
// countries, as gen's Zipf-skewed countries give), users and urls
// Zipf-skewed over 100,000 and 5,000, latency lognormal (mu 4, sigma 0.8).
// The panes of one hour of a key are generated once and stored again for
// every hour (the bytes a query reads and decodes per pane are what they
// would be; generating every pane took most of a minute). start is the
// first pane, on the hour.
func kindsStore(tb testing.TB, countries, devices, hours int) (*store.DB, query.Target, int64) {
	tb.Helper()
	ctx := context.Background()
	db := openBadger(tb)
	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "pv", "events.pv"
	spec.GroupBy = []string{"country", "device"}
	spec.Aggregates = map[string]sketchd.Aggregate{
		"users":   {Sketch: sketchd.KindHLL, Field: "user_id"},
		"urls":    {Sketch: sketchd.KindCMS, Field: "url"},
		"latency": {Sketch: sketchd.KindTDigest, Field: "latency_ms"},
		"sample":  {Sketch: sketchd.KindReservoir},
	}
	spec.Retention = sketchd.Duration(90 * 24 * time.Hour)
	spec.Rollups = []sketchd.Rollup{{Granularity: sketchd.Duration(time.Hour)}}
	spec.Normalize()
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		tb.Fatal(err)
	}
	g := newKindsGen(tb, &spec)
	hour, minute := int64(time.Hour), int64(time.Minute)
	start := time.Now().Truncate(time.Hour).Add(-time.Duration(hours+3) * time.Hour).UnixNano()
	type keyHour struct {
		key    string
		panes  []sketchd.PaneRecord // Start relative to the hour
		merged sketchd.PaneRecord
	}
	var hourOf []keyHour
	countryNames := []string{"US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "ES", "IT"}
	for c := range countries {
		for d := range devices {
			country, device := countryNames[c%len(countryNames)], fmt.Sprintf("d%d", d)
			kh := keyHour{key: sketchd.EncodeKey(country, device)}
			merged := g.newPane()
			for m := range 60 {
				pane := g.newPane()
				n := 100 + 300/(1+c)
				for range n {
					g.event(country, device, pane, merged)
				}
				kh.panes = append(kh.panes, g.record(pane, kh.key, int64(m)*minute, uint64(n)))
			}
			kh.merged = g.record(merged, kh.key, 0, uint64(0))
			for _, p := range kh.panes {
				kh.merged.Events += p.Events
			}
			hourOf = append(hourOf, kh)
		}
	}
	pos := uint64(0)
	for h := range hours {
		var base, tier []sketchd.PaneRecord
		at := start + int64(h)*hour
		for _, kh := range hourOf {
			for _, p := range kh.panes {
				pos++
				p.Start += at
				p.Applied = pos
				base = append(base, p)
			}
			t := kh.merged
			t.Start, t.Applied = at, pos
			tier = append(tier, t)
		}
		commitPanes(tb, db, info.ID, pos, base)
		if err := db.WriteTier(ctx, info.ID, time.Hour, tier, at+hour); err != nil {
			tb.Fatal(err)
		}
	}
	settleCompactions(tb)
	end := start + int64(hours)*hour
	return db, query.Target{ID: info.ID, Spec: spec, Watermark: end + 2*hour, LastCommit: 1}, start
}

// settleCompactions waits until Badger has run no compaction for a second
// (store.Compactions, its process-wide counts):
// the hundreds of MB kindsStore writes kept Badger compacting for seconds
// after, and the benchmarks that followed timed its compactions (most of
// their CPU profile) with their queries.
func settleCompactions(tb testing.TB) {
	tb.Helper()
	written := func() int64 {
		n, tables := store.Compactions()
		if tables != 0 {
			return -1 // running
		}
		return n
	}
	last, quiet := written(), 0
	for deadline := time.Now().Add(3 * time.Minute); quiet < 10; {
		if time.Now().After(deadline) {
			tb.Fatal("Badger still compacting after 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
		if n := written(); n >= 0 && n == last {
			quiet++
		} else {
			last, quiet = n, 0
		}
	}
}

// kindsGen makes the events of kindsStore, as internal/gen does.
type kindsGen struct {
	tb     testing.TB
	rng    *rand.Rand
	users  *rand.Zipf
	urls   *rand.Zipf
	slots  []string // aggregate names in slot order
	params []sketch.Params
	buf    []byte
	pos    uint64
}

func newKindsGen(tb testing.TB, spec *sketchd.Stream) *kindsGen {
	rng := rand.New(rand.NewPCG(kindsStreamSeed, 0))
	g := &kindsGen{tb: tb, rng: rng,
		users: rand.NewZipf(rng, 1.1, 1, 100_000-1), urls: rand.NewZipf(rng, 1.1, 1, 5_000-1),
		slots: spec.SlotNames()}
	for _, name := range g.slots {
		p, err := spec.Aggregates[name].SketchParams()
		if err != nil {
			tb.Fatal(err)
		}
		g.params = append(g.params, p)
	}
	return g
}

// newPane returns empty sketches, one per slot.
func (g *kindsGen) newPane() []sketch.Sketch {
	out := make([]sketch.Sketch, len(g.params))
	for i, p := range g.params {
		var err error
		if out[i], err = sketch.New(p); err != nil {
			g.tb.Fatal(err)
		}
	}
	return out
}

// event adds one event of country and device to each of panes.
func (g *kindsGen) event(country, device string, panes ...[]sketch.Sketch) {
	g.pos++
	user := "u" + strconv.FormatUint(g.users.Uint64(), 10)
	url := "/p/" + strconv.FormatUint(g.urls.Uint64(), 10)
	latency := math.Round(math.Exp(4+0.8*g.rng.NormFloat64())*100) / 100
	g.buf = fmt.Appendf(g.buf[:0], `{"ts":"2026-12-06T14:30:%02d.%03dZ","country":%q,"device":%q,"user_id":%q,"url":%q,"latency_ms":%s}`,
		g.pos%60, g.pos%1000, country, device, user, url, strconv.FormatFloat(latency, 'f', -1, 64))
	tag := g.rng.Uint64()
	for _, sks := range panes {
		for i, sk := range sks {
			var err error
			switch g.slots[i] {
			case "users":
				err = sketch.Add(sk, []byte(user), 0, tag)
			case "urls":
				err = sketch.Add(sk, []byte(url), 0, tag)
			case "latency":
				err = sketch.Add(sk, nil, latency, tag)
			default:
				err = sketch.Add(sk, append([]byte(nil), g.buf...), 0, tag)
			}
			if err != nil {
				g.tb.Fatal(err)
			}
		}
	}
}

// record encodes sks as a final pane of key.
func (g *kindsGen) record(sks []sketch.Sketch, key string, start int64, events uint64) sketchd.PaneRecord {
	r := sketchd.PaneRecord{Key: key, Start: start, Final: true, Events: events}
	for _, sk := range sks {
		blob, err := sk.AppendBinary(nil)
		if err != nil {
			g.tb.Fatal(err)
		}
		r.Sketches = append(r.Sketches, blob)
	}
	return r
}
