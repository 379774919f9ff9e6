// Package gen generates realistic synthetic events for sketchd: Zipf-skewed
// keys and items, lognormal latencies, bounded disorder, and a chosen share
// of late and invalid events. It is deterministic for a seed, and it can
// keep the exact truth of what it generated for accuracy checks.
package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/sketchd/sketchd/internal/defaults"
)

// Options shape the events. Zero (or negative, except LatencyMu) values
// take the defaults of Defaults; a Skew of at most 1 takes it too.
type Options struct {
	Seed         uint64
	Countries    int     // distinct values of the "country" dimension; default 20
	Devices      int     // distinct "device" values; default 3
	Users        int     // distinct user ids; default 100,000
	URLs         int     // distinct urls; default 5,000
	Skew         float64 // Zipf exponent s > 1 for countries, urls and users; default 1.1
	LatencyMu    float64 `default:"keep-negative"` // lognormal latency_ms: exp(mu + sigma·N(0,1)); default 4 (≈55 ms median)
	LatencySigma float64 // default 0.8
	// LatencyDist is the latency distribution: "lognormal" (default, as
	// above), "exponential" (mean exp(LatencyMu)) or "uniform" (on
	// [0, 2·exp(LatencyMu)]).
	LatencyDist string
	// Jitter is the maximum disorder: event times are drawn up to Jitter
	// before the generation time. Default 2s.
	Jitter time.Duration
	// LateFraction of events are dated LateBy in the past. Default 0.
	// Choose LateBy above the stream's max_out_of_orderness +
	// allowed_lateness + granularity, so that they are too late for sketchd:
	// the truth leaves them out (see Truth.Late).
	LateFraction float64
	LateBy       time.Duration // default 10m
	// InvalidFraction of events are malformed in one of several ways.
	InvalidFraction float64
}

// Defaults returns the default options.
func Defaults() Options {
	return Options{Countries: 20, Devices: 3, Users: 100_000, URLs: 5_000, Skew: 1.1,
		LatencyMu: 4, LatencySigma: 0.8, LatencyDist: "lognormal", Jitter: 2 * time.Second, LateBy: 10 * time.Minute}
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	o                     Options
	rng                   *rand.Rand
	country, url, user    *rand.Zipf
	devices               []string
	buf                   []byte
	Truth                 *Truth // nil unless Track was called
	granularity           int64
	invalidN, lateN, allN uint64
}

// New returns a generator.
func New(o Options) *Generator {
	d := Defaults()
	o = defaults.Fill(o, d)
	if o.Skew <= 1 { // rand.NewZipf needs s > 1
		o.Skew = d.Skew
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	g := &Generator{
		o:       o,
		rng:     rng,
		country: rand.NewZipf(rng, o.Skew, 1, uint64(o.Countries-1)),
		url:     rand.NewZipf(rng, o.Skew, 1, uint64(o.URLs-1)),
		user:    rand.NewZipf(rng, o.Skew, 1, uint64(o.Users-1)),
	}
	for _, d := range []string{"mobile", "desktop", "tablet", "tv", "watch"} {
		if len(g.devices) < o.Devices {
			g.devices = append(g.devices, d)
		}
	}
	for i := len(g.devices); i < o.Devices; i++ {
		g.devices = append(g.devices, "device-"+strconv.Itoa(i))
	}
	return g
}

// Event is one generated event, decoded (Valid events only).
type Event struct {
	TS        time.Time
	Country   string
	Device    string
	User      string
	URL       string
	LatencyMS float64
	Late      bool // dated LateBy in the past
}

// Next generates one event at generation time now and returns its JSON. The
// slice is reused by the next call. valid is false for an invalid event.
func (g *Generator) Next(now time.Time) (b []byte, valid bool) {
	g.allN++
	if g.o.InvalidFraction > 0 && g.rng.Float64() < g.o.InvalidFraction {
		g.invalidN++
		return g.invalid(now), false
	}
	ts := now.Add(-time.Duration(g.rng.Int64N(int64(g.o.Jitter) + 1)))
	late := false
	if g.o.LateFraction > 0 && g.rng.Float64() < g.o.LateFraction {
		g.lateN++
		ts = ts.Add(-g.o.LateBy)
		late = true
	}
	e := Event{
		TS:        ts,
		Country:   countryName(int(g.country.Uint64())),
		Device:    g.devices[g.rng.IntN(len(g.devices))],
		User:      "u" + strconv.FormatUint(g.user.Uint64(), 10),
		URL:       "/p/" + strconv.FormatUint(g.url.Uint64(), 10),
		LatencyMS: math.Round(g.latency()*100) / 100,
		Late:      late,
	}
	if g.Truth != nil {
		g.Truth.add(e)
	}
	return g.encode(e), true
}

// latency draws a latency_ms from the configured distribution.
func (g *Generator) latency() float64 {
	switch g.o.LatencyDist {
	case "exponential":
		return g.rng.ExpFloat64() * math.Exp(g.o.LatencyMu)
	case "uniform":
		return g.rng.Float64() * 2 * math.Exp(g.o.LatencyMu)
	default:
		return math.Exp(g.o.LatencyMu + g.o.LatencySigma*g.rng.NormFloat64())
	}
}

func (g *Generator) encode(e Event) []byte {
	b := g.buf[:0]
	b = append(b, `{"ts":"`...)
	b = e.TS.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","country":"`...)
	b = append(b, e.Country...)
	b = append(b, `","device":"`...)
	b = append(b, e.Device...)
	b = append(b, `","user_id":"`...)
	b = append(b, e.User...)
	b = append(b, `","url":"`...)
	b = append(b, e.URL...)
	b = append(b, `","latency_ms":`...)
	b = strconv.AppendFloat(b, e.LatencyMS, 'f', -1, 64)
	b = append(b, '}')
	g.buf = b
	return b
}

// invalid returns one of several kinds of bad event.
func (g *Generator) invalid(now time.Time) []byte {
	ts := now.UTC().Format(time.RFC3339Nano)
	switch g.rng.IntN(5) {
	case 0:
		return []byte(`{"ts":"` + ts + `","country":"DE","device":"mobile"`) // truncated JSON
	case 1:
		return []byte(`{"country":"DE","device":"mobile","user_id":"u1","latency_ms":3}`) // no time
	case 2:
		return []byte(`{"ts":"` + ts + `","device":"mobile","user_id":"u1"}`) // no country
	case 3:
		return []byte(`{"ts":"` + ts + `","country":"DE","device":"mobile","latency_ms":"fast"}`) // wrong type
	default:
		return []byte(`{"ts":"not a time","country":"DE","device":"mobile"}`)
	}
}

// Counts returns how many events were generated, and of those how many
// were invalid and how many were dated late.
func (g *Generator) Counts() (all, invalid, late uint64) { return g.allN, g.invalidN, g.lateN }

func countryName(i int) string {
	names := []string{"US", "DE", "IN", "BR", "GB", "FR", "JP", "CA", "ES", "IT", "MX", "NL", "AU", "KR", "SE", "PL", "TR", "AR", "ZA", "NG"}
	if i < len(names) {
		return names[i]
	}
	return "C" + strconv.Itoa(i)
}
