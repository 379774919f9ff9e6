package api

import (
	"strings"
	"testing"
)

// TestCreateEmitRefused: an emit target's kind parameters are checked by
// the query parser, and its subject by the self-feeding rules, at create.
func TestCreateEmitRefused(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ name, emit, field, msg string }{
		{"bad q", `{"subject":"out.e","params":{"q":"0.5,2"}}`, "emit[0].params.q", "quantiles must be in [0, 1]"},
		{"param of no kind", `{"subject":"out.e","params":{"top":"3"}}`, "emit[0].params.top", "does not apply"},
		{"not a kind param", `{"subject":"out.e","params":{"step":"1m"}}`, "emit[0].params.step", "not a kind parameter"},
		{"own subject", `{"subject":"a.out"}`, "emit[0].subject", "overlaps the stream's subject"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"name":"e","subject":"a.>","aggregates":{"l":{"sketch":"tdigest","field":"x"}},"emit":[` + tt.emit + `]}`
			r := f.do(t, "POST", "/v1/streams", strings.NewReader(body), "Content-Type", "application/json")
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			p := r.problem(t)
			found := false
			for _, e := range p.Errors {
				found = found || (e.Field == tt.field && strings.Contains(e.Message, tt.msg))
			}
			if p.Code != "invalid_stream_spec" || !found {
				t.Errorf("problem %s %+v, want %s: ...%s...", p.Code, p.Errors, tt.field, tt.msg)
			}
		})
	}
}
