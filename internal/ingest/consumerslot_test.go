package ingest

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
)

// liveHeap is the heap's live bytes after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestDeleteFreesTheDurableInNATS deletes, through the router, a stream
// reading a JetStream stream sketchd did not create (so it stays) while
// its durable holds n delivered, unacked events, and checks that the live
// heap comes back to what it was before the stream was created: nats-server
// 2.15.2 keeps a consumer deleted last in a stale slot of its stream's
// consumer lists, pending maps and all, until another consumer is created
// on that stream (consumerslot.go). Without fillConsumerSlots the heap
// stays 7.9-8.0 MB (79 bytes per event) above it; with it, 0.0-0.13 MB.
//
// The heap is waited for: in some runs the deleted durable stays reachable
// for a few seconds more through its stopped pending-check timer
// (time.AfterFunc(AckWait, o.checkPending), a heap dump showed), which the
// Go runtime drops from its timer heap lazily, at the latest when it would
// have fired; the stale slot holds it for good. The JetStream stream uses
// memory storage: a file store's block cache comes and goes with reads and
// a 10-second expiry, a memory store's messages stay put.
func TestDeleteFreesTheDurableInNATS(t *testing.T) {
	const n = 100_000
	// Nothing is committed, so nothing acked: every delivered event stays
	// in the durable's pending maps until the DELETE.
	f := newLifeFixture(t, Options{FlushInterval: time.Hour, AckWait: 5 * time.Hour})
	ctx := context.Background()
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EXT", Subjects: []string{"ext.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := f.js.PublishAsync("ext.pv", fmt.Appendf(nil, `{"user":"u%d"}`, i%1000)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acknowledged")
	}
	before := liveHeap()

	if a := f.do(t, http.MethodPost, "/v1/streams", specJSON("ext", "ext.pv", true, `,"jetstream_stream":"EXT"`)); a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	spec := sketchd.Stream{Name: "ext", JetStreamStream: "EXT"}
	waitFor(t, 60*time.Second, "every event delivered", func() (bool, string) {
		ci := consumerInfo(t, f.js, spec)
		return ci.NumAckPending == n, fmt.Sprintf("%d delivered, unacked", ci.NumAckPending)
	})
	if a := f.do(t, http.MethodDelete, "/v1/streams/ext", ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}

	// Measured: 79 bytes per event held without the fill; a quarter of
	// that is well above what else the stream's life leaves (up to 0.13 MB).
	limit := int64(n) * 79 / 4
	waitFor(t, 30*time.Second, "the deleted durable's memory freed", func() (bool, string) {
		grown := int64(liveHeap()) - int64(before)
		return grown <= limit, fmt.Sprintf("the heap is %d bytes above what it was before the stream (at most %d wanted)", grown, limit)
	})
	t.Logf("the heap is %.2f MB above what it was before the stream", float64(int64(liveHeap())-int64(before))/1e6)
}
