package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// tiersConfig: a JetStream stream of 1s panes with rollup tiers of 5s and
// 30s, final as soon as the watermark passes.
const tiersConfig = `
log_level: info
flush_interval: 100ms
ack_wait: 5s
streams:
  - name: tiered
    subject: tiers.e2e
    time: {field: ts, format: unix_ms}
    group_by: [country]
    granularity: 1s
    max_out_of_orderness: 1s
    allowed_lateness: 0s
    idle_timeout: 0s
    max_future: 876000h
    rollups: [{granularity: 5s, retention: 90d}, {granularity: 30s}]
    aggregates:
      users: {sketch: hll, field: user}
`

// TestTiersEndToEnd runs the binary with a stream with rollup tiers from
// its config file, publishes two minutes of events and one that makes them
// final, and reads through HTTP: the stream's status shows the tiers built,
// and a query with 30s steps is served by the 30s tier with every event.
func TestTiersEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startWithConfig(t, t.TempDir(), tiersConfig)
	defer p.stop(t)
	_, js := p.connect(t)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	const n = 1200 // 100 ms apart: two minutes
	ctx := context.Background()
	publish := func(ts time.Time, i int) {
		b, _ := json.Marshal(e2eEvent{TS: ts.UnixMilli(), Country: []string{"DE", "FR"}[i%2], User: fmt.Sprint("u", i%300)})
		if _, err := js.Publish(ctx, "tiers.e2e", b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		publish(base.Add(time.Duration(i)*100*time.Millisecond), i)
	}
	publish(base.Add(10*time.Minute), 0) // everything before is final

	end := base.Add(2 * time.Minute)
	var st struct {
		Rollups []struct {
			Granularity string  `json:"granularity"`
			BuiltTo     *string `json:"built_to"`
		} `json:"rollups"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if getJSON(t, p.httpURL+"/v1/streams/tiered", &st) == http.StatusOK && len(st.Rollups) == 2 && st.Rollups[1].BuiltTo != nil {
			if bt, err := time.Parse(time.RFC3339Nano, *st.Rollups[1].BuiltTo); err == nil && !bt.Before(end) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tiers not built up to %s in 30s: %+v", end, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Rollups[0].Granularity != "5s" || st.Rollups[1].Granularity != "30s" {
		t.Errorf("status rollups %+v", st.Rollups)
	}

	var res struct {
		Resolution []struct {
			From, To, Granularity, Source string
		} `json:"resolution"`
		Groups []struct {
			Windows []struct {
				Events uint64 `json:"events"`
			} `json:"windows"`
		} `json:"groups"`
	}
	url := fmt.Sprintf("%s/v1/streams/tiered/aggregates/users?from=%s&to=%s&step=30s", p.httpURL, base.Format(time.RFC3339), end.Format(time.RFC3339))
	if code := getJSON(t, url, &res); code != http.StatusOK {
		t.Fatalf("%s: %d", url, code)
	}
	if len(res.Resolution) != 1 || res.Resolution[0].Source != "rollup" || res.Resolution[0].Granularity != "30s" {
		t.Errorf("resolution %+v, want the 30s rollup over the whole range", res.Resolution)
	}
	var events uint64
	for _, w := range res.Groups[0].Windows {
		events += w.Events
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Windows) != 4 || events != n {
		t.Errorf("%d events in %d windows, want %d in 4", events, len(res.Groups[0].Windows), n)
	}
}
