package main

import (
	"strings"
	"testing"
	"time"
)

const metricsText = `# HELP sketchd_events_total Events by outcome.
# TYPE sketchd_events_total counter
sketchd_events_total{outcome="on_time",stream="pv"} 1000
sketchd_events_total{outcome="late",stream="pv"} 5
sketchd_events_total{outcome="too_late",stream="pv"} 20
sketchd_events_total{outcome="future",stream="pv"} 1
sketchd_events_total{outcome="on_time",stream="core"} 7
sketchd_invalid_events_total{reason="bad_json",stream="pv"} 3
sketchd_invalid_events_total{reason="missing_time",stream="pv"} 2
sketchd_messages_dropped_total{stream="core"} 4
sketchd_nats_connected 1
sketchd_http_request_duration_seconds_bucket{method="GET",route="/v1/streams/{stream}",le="0.0005"} 12
weird_label{path="a\"b,c=d",x="1"} 2.5e+03 1700000000000
sketchd_http_requests_total{code="200",method="GET",route="/v1/streams/{stream}/aggregates/{aggregate}"} 40
sketchd_http_requests_total{code="503",method="GET",route="/v1/streams/{stream}/aggregates/{aggregate}"} 2
sketchd_http_requests_total{code="200",method="GET",route="/metrics"} 1000
`

func TestParseMetrics(t *testing.T) {
	ms, err := ParseMetrics(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 14 {
		t.Fatalf("%d samples, want 14", len(ms))
	}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"processed pv", ms.Processed("pv"), 1000 + 5 + 20 + 1 + 3 + 2},
		{"applied pv", ms.Applied("pv"), 1005},
		{"processed core", ms.Processed("core"), 7},
		{"dropped core", ms.Sum("sketchd_messages_dropped_total", "stream", "core"), 4},
		{"no labels", ms.Sum("sketchd_nats_connected"), 1},
		{"route with braces", ms.Sum("sketchd_http_request_duration_seconds_bucket", "route", "/v1/streams/{stream}"), 12},
		{"escaped label", ms.Sum("weird_label", "path", `a"b,c=d`, "x", "1"), 2500},
		{"no match", ms.Sum("sketchd_events_total", "stream", "nope"), 0},
		{"API requests, not /metrics", ms.APIRequests(), 42},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, in := range []string{"novalue\n", `m{a="1" 3` + "\n", `m{a=1} 3` + "\n", "m abc\n"} {
		if _, err := ParseMetrics(strings.NewReader(in)); err == nil {
			t.Errorf("ParseMetrics(%q): no error", in)
		}
	}
}

func TestParseRequestLog(t *testing.T) {
	log := `{"time":"x","level":"INFO","msg":"starting sketchd"}
{"time":"x","level":"WARN","msg":"http request","component":"api","method":"GET","route":"/v1/streams/{stream}/aggregates/{aggregate}","status":504,"duration":100182860185,"bytes":263}
{"time":"x","level":"WARN","msg":"http request","component":"api","method":"GET","route":"/v1/streams/{stream}/aggregates/{aggregate}","status":504,"duration":10000000000,"bytes":263}
{"time":"x","level":"WARN","msg":"http request","component":"api","method":"GET","route":"/v1/streams/{stream}/aggregates/{aggregate}","status":503,"duration":12000000000,"bytes":247}
{"time":"x","level":"WARN","msg":"http request","component":"api","method":"GET","route":"/v1/streams/{stream}","status":404,"duration":1000,"bytes":247}
{"time":"x","level":"ERROR","msg":"http request","component":"api","method":"GET","route":"/v1/streams","status":500,"duration":2000,"bytes":247}
`
	s, err := ParseRequestLog(strings.NewReader(log), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := SlowErrors{Errors: 4, PastDue: 2, Longest: 100182860185, Timeouts: 2, Canceled: 1}
	if s != want {
		t.Errorf("ParseRequestLog = %+v, want %+v", s, want)
	}
}
