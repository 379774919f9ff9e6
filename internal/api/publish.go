package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/decode"
)

// Publisher publishes events to NATS for POST
// /v1/streams/{stream}/events. *ingest.Manager implements it.
type Publisher interface {
	// Publish publishes data as one message to subject. jetStream: a
	// JetStream publish that returns once the message is stored, with its
	// stream sequence; otherwise a core publish and flush (sequence 0).
	Publish(ctx context.Context, subject string, jetStream bool, data []byte) (seq uint64, err error)
	// MaxPayload is the largest message NATS accepts.
	MaxPayload() int64
}

// maxReportedEvents bounds the invalid events a 400 names.
const maxReportedEvents = 5

// publishMetrics count what the ingest endpoint did.
type publishMetrics struct {
	events   *prometheus.CounterVec // by stream
	requests *prometheus.CounterVec // by result
}

// Results of an ingest request (the result label).
const (
	pubPublished   = "published"
	pubInvalid     = "invalid"
	pubTooLarge    = "too_large"
	pubUnavailable = "unavailable"
)

func newPublishMetrics(reg prometheus.Registerer) (*publishMetrics, error) {
	m := &publishMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_http_ingest_events_total",
			Help: "Events published to NATS through POST /v1/streams/{stream}/events, by stream.",
		}, []string{"stream"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sketchd_http_ingest_requests_total",
			Help: "Requests to POST /v1/streams/{stream}/events that passed authentication, by result (published, invalid, too_large, unavailable); a body whose declared length is over the /v1 limit is refused before (sketchd_http_requests_total, code 413).",
		}, []string{"result"}),
	}
	for _, r := range []string{pubPublished, pubInvalid, pubTooLarge, pubUnavailable} {
		m.requests.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.events, m.requests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}

// publishJSON is the answer of a publish.
type publishJSON struct {
	Stream    string `json:"stream"`
	Subject   string `json:"subject"`
	Events    int    `json:"events"`
	Bytes     int    `json:"bytes"`
	JetStream bool   `json:"jetstream"`
	// Sequence is the JetStream stream sequence of the message; absent for
	// core NATS.
	Sequence uint64 `json:"sequence,omitempty"`
}

// publish handles POST /v1/streams/{stream}/events: the body, one JSON
// event or several (NDJSON), is checked with the stream's own decoder and
// published as one message to the stream's subject. Nothing is published
// unless every event decodes.
func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	out, err := s.publishEvents(r)
	if err != nil {
		s.countPublish(err)
		s.writeError(w, r, err)
		return
	}
	s.pubm.requests.WithLabelValues(pubPublished).Inc()
	s.pubm.events.WithLabelValues(out.Stream).Add(float64(out.Events))
	s.writeJSON(w, r, http.StatusAccepted, out)
}

// publishEvents runs the steps of a publish: parameters, stream, subject,
// body, the events' check, the publish.
func (s *server) publishEvents(r *http.Request) (publishJSON, error) {
	v, err := s.queryValues(r)
	if err != nil {
		return publishJSON{}, err
	}
	for name := range v {
		if name != "subject" {
			return publishJSON{}, paramError(name, "unknown parameter")
		}
	}
	st, err := s.stream(r)
	if err != nil {
		return publishJSON{}, err
	}
	subject, err := publishSubject(&st.Spec, v["subject"])
	if err != nil {
		return publishJSON{}, err
	}
	body, err := s.readEvents(r)
	if err != nil {
		return publishJSON{}, err
	}
	n, err := checkEvents(st.Spec, body, s.now().UnixNano())
	if err != nil {
		return publishJSON{}, err
	}
	seq, err := s.publisher.Publish(r.Context(), subject, st.Spec.JetStream, body)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return publishJSON{}, err
		}
		return publishJSON{}, &httpError{code: codeUnavailable, detail: "publishing to NATS failed, nothing was stored: " + err.Error()}
	}
	return publishJSON{
		Stream: st.Spec.Name, Subject: subject, Events: n, Bytes: len(body),
		JetStream: st.Spec.JetStream, Sequence: seq,
	}, nil
}

// countPublish counts a failed publish by its result.
func (s *server) countPublish(err error) {
	var mbe *http.MaxBytesError
	switch p, _ := problemFor(err); {
	case errors.As(err, &mbe):
		s.pubm.requests.WithLabelValues(pubTooLarge).Inc()
	case p.Status >= 500:
		s.pubm.requests.WithLabelValues(pubUnavailable).Inc()
	default:
		s.pubm.requests.WithLabelValues(pubInvalid).Inc()
	}
}

// readEvents reads the body, at most the smaller of Limits.MaxBodyBytes
// (limitBody) and NATS's max payload.
func (s *server) readEvents(r *http.Request) ([]byte, error) {
	limit := s.publisher.MaxPayload()
	if limit <= 0 || limit > s.limits.MaxBodyBytes {
		limit = s.limits.MaxBodyBytes
	}
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read body: %w", err)
	case int64(len(body)) > limit:
		return nil, &http.MaxBytesError{Limit: limit}
	case len(strings.TrimSpace(string(body))) == 0:
		return nil, &httpError{code: codeInvalidBody, detail: "no events: send one JSON object, or several, one per line (NDJSON)"}
	}
	return body, nil
}

// checkEvents decodes body as the stream's consumer will and returns the
// number of events; any event that would be rejected (bad JSON, a missing
// time or dimension...) refuses the whole body, naming the first few.
func checkEvents(spec sketchd.Stream, body []byte, now int64) (int, error) {
	dec, err := decode.New(spec, decode.DefaultOptions())
	if err != nil {
		return 0, fmt.Errorf("stream %s: decoder: %w", spec.Name, err)
	}
	n := 0
	var bad []string
	dec.Decode(body, 0, now, func(*sketchd.Event) { n++ }, func(_ []byte, reason decode.Reason, detail string) {
		n++
		if len(bad) < maxReportedEvents {
			bad = append(bad, "event "+strconv.Itoa(n)+": "+string(reason)+": "+detail)
		} else if len(bad) == maxReportedEvents {
			bad = append(bad, "...")
		}
	})
	if len(bad) > 0 {
		return 0, &httpError{code: codeInvalidBody, detail: "nothing was published; invalid events for stream " + spec.Name + ": " + strings.Join(bad, "; ")}
	}
	return n, nil
}

// publishSubject is the subject to publish to: the stream's, or the
// subject= parameter (required when the stream reads a wildcard subject).
func publishSubject(spec *sketchd.Stream, given []string) (string, error) {
	if len(given) > 1 {
		return "", paramError("subject", "given %d times; give it once", len(given))
	}
	var g string
	if len(given) == 1 {
		if g = given[0]; g == "" {
			return "", paramError("subject", "empty")
		}
	}
	subj, err := spec.PublishSubject(g)
	if err != nil {
		return "", paramError("subject", "%s", truncate(err.Error()))
	}
	return subj, nil
}

// publishRoute mounts the ingest endpoint when a Publisher is configured.
func (s *server) publishRoute(r chi.Router) {
	if s.publisher != nil {
		r.With(s.authAdmin).Post("/streams/{stream}/events", s.publish)
	}
}
