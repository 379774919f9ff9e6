package main

import (
	"cmp"
	"slices"
	"time"
)

// GroupLatency is the latency of one group of a phase's requests (a
// dashboard panel, or the answers that were stale), with how many of its
// answers were stale.
type GroupLatency struct {
	Name  string `json:"name"`
	Stale int    `json:"stale"`
	Latency
}

// groupBy summarizes the requests per group (key), highest p99 first
// (then by name).
func groupBy(reqs []request, key func(request) string) []GroupLatency {
	type acc struct {
		ds          []time.Duration
		errs, stale int
	}
	accs := map[string]*acc{}
	for _, r := range reqs {
		k := key(r)
		if accs[k] == nil {
			accs[k] = &acc{}
		}
		a := accs[k]
		a.ds = append(a.ds, r.Latency)
		if r.Bad {
			a.errs++
		}
		if r.Answer == answerStale {
			a.stale++
		}
	}
	out := make([]GroupLatency, 0, len(accs))
	for k, a := range accs {
		out = append(out, GroupLatency{Name: k, Stale: a.stale, Latency: Summarize(a.ds, a.errs)})
	}
	slices.SortFunc(out, func(a, b GroupLatency) int {
		return cmp.Or(cmp.Compare(b.P99, a.P99), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// byPanel and byAnswer are the dashboard's breakdowns: per panel (k6's
// panel tag; "" without one) and per answer (fresh, stale, unknown).
func byPanel(reqs []request) []GroupLatency {
	return groupBy(reqs, func(r request) string { return r.Panel })
}

func byAnswer(reqs []request) []GroupLatency {
	return groupBy(reqs, func(r request) string { return r.Answer })
}

// renderBreakdown writes the dashboard's latency per panel and per answer
// (nothing for results without them: other phases, older runners).
func renderBreakdown(p func(string, ...any), q *QueryLoad) {
	if q.RequestsError != "" {
		p("No per-request breakdown: k6's CSV output could not be read (%s).\n", q.RequestsError)
		return
	}
	if len(q.Panels) == 0 {
		return
	}
	n := 0
	for _, g := range q.Panels {
		n += g.Requests
	}
	p("Per panel and per answer, from k6's per-request output (`--out csv`, system tags status, vu and iter):\n")
	p("%s requests. Percentiles here are by nearest rank, so they can differ a little from k6's interpolated\n", thousands(int64(n)))
	p("ones above. sketchd marks an answer it served from an older commit, while another request computes\n")
	p("the newest, with `Sketchd-Stale: true`; it sets no header that tells an answer-cache hit from a miss,\n")
	p("so there is no split by hit.\n\n")
	p("| panel | requests | errors | stale | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|---|\n")
	for _, g := range q.Panels {
		p("| %s | %s | %d | %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n", orNone(g.Name), thousands(int64(g.Requests)), g.Errors,
			thousands(int64(g.Stale)), g.P50, g.P90, g.P99, g.Max)
	}
	p("\n| answer | requests | errors | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n")
	for _, g := range q.Answers {
		p("| %s | %s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms |\n", orNone(g.Name), thousands(int64(g.Requests)), g.Errors,
			g.P50, g.P90, g.P99, g.Max)
	}
	p("\n(unknown: the request has no `dashboard_stale` sample with the same vu, iter and panel.)\n\n")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
