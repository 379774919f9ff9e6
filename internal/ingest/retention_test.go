package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRetentionRefused: a bound JetStream stream with interest or
// work-queue retention is refused at create (400 naming the retention),
// and a stored spec whose bound stream was re-created with such a
// retention fails at startup with the reason in its status, while the
// other streams run.
func TestRetentionRefused(t *testing.T) {
	ctx := context.Background()
	f := newPartFixture(t, runNATS(t).ClientURL())
	for _, tc := range []struct {
		name, subject string
		ret           jetstream.RetentionPolicy
		word          string
	}{
		{"INTEREST", "ev.ri.*", jetstream.InterestPolicy, "interest"},
		{"WORKQ", "ev.rw.*", jetstream.WorkQueuePolicy, "workqueue"},
	} {
		if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: tc.name, Subjects: []string{tc.subject}, Retention: tc.ret}); err != nil {
			t.Fatal(err)
		}
		a := f.do(t, http.MethodPost, "/v1/streams", partSpec("r"+tc.word, tc.subject[3:5], `,"jetstream_stream":"`+tc.name+`"`))
		_, errs := a.problem(t)
		if a.status != http.StatusBadRequest || len(errs) != 1 || !strings.HasPrefix(errs[0], "jetstream_stream:") || !strings.Contains(errs[0], tc.word+" retention") {
			t.Errorf("%s: %d %s, want 400 on jetstream_stream naming %s retention", tc.name, a.status, a.body, tc.word)
		}
		if a := f.do(t, http.MethodGet, "/v1/streams/r"+tc.word, ""); a.status != http.StatusNotFound {
			t.Errorf("%s: the refused stream was stored: %d %s", tc.name, a.status, a.body)
		}
	}

	// A stream bound to a limits stream starts; at the next start its
	// JetStream stream has interest retention.
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "LATER", Subjects: []string{"ev.rl.*"}}); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{partSpec("rlater", "rl", `,"jetstream_stream":"LATER"`), partSpec("rok", "ro", "")} {
		if a := f.do(t, http.MethodPost, "/v1/streams", spec); a.status != http.StatusCreated {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
	}
	f.stop(t, true)
	if err := f.js.DeleteStream(ctx, "LATER"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "LATER", Subjects: []string{"ev.rl.*"}, Retention: jetstream.InterestPolicy}); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	var st struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	a := f.do(t, http.MethodGet, "/v1/streams/rlater", "")
	if err := json.Unmarshal(a.body, &st); err != nil {
		t.Fatalf("%d %s: %v", a.status, a.body, err)
	}
	if st.State != "failed" || !strings.Contains(st.Error, "interest retention") {
		t.Errorf("stream bound to an interest stream after a restart: state %q, error %q; want failed naming the retention", st.State, st.Error)
	}
	a = f.do(t, http.MethodGet, "/v1/streams/rok", "")
	if !bytes.Contains(a.body, []byte(`"state":"running"`)) {
		t.Errorf("the other stream does not run: %d %s", a.status, a.body)
	}
}
