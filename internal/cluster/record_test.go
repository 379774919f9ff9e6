package cluster

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sketchd/sketchd"
)

func TestPaneRecordRoundTrip(t *testing.T) {
	for _, p := range []sketchd.PaneRecord{
		{Key: sketchd.EncodeKey("de", "mobile"), Start: -60e9, Final: true, Events: 3, Applied: 7 << 20, Sketches: [][]byte{{1}, {}, {2, 3}}},
		{Key: "", Start: 0},
	} {
		b := encodePane(&p)
		got, err := decodePane(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Sketches) == 0 {
			p.Sketches = nil
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip %+v, want %+v", got, p)
		}
		for i := range b { // every flipped byte is caught by the checksum
			bad := append([]byte(nil), b...)
			bad[i] ^= 0x40
			if _, err := decodePane(bad); !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
	}
	r := Record{Checkpoint: sketchd.Checkpoint{Position: 9, Counters: sketchd.Counters{Invalid: map[string]uint64{"json": 2}}}, Owner: "a", Epoch: 2, Gen: 5, Last: true}
	b, err := encodeRecord(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord(b)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("record round trip %+v, %v", got, err)
	}
	if _, err := decodePane(b); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("a record read as a pane: %v", err) // same version byte, but the body is JSON
	}
}

func TestChangelogSubjects(t *testing.T) {
	cl := Changelog{Cluster: "prod", Stream: "pageviews", Rev: 12}
	if got := cl.Name(); got != "SKETCHD_CL_prod_pageviews_12" {
		t.Fatalf("name %q", got)
	}
	for _, tc := range []struct {
		subject string
		p       int
		rec     bool
		ok      bool
	}{
		{cl.CheckpointSubject(3), 3, true, true},
		{cl.PaneSubject(5, sketchd.EncodeKey("de"), -60e9), 5, false, true},
		{"sketchd.cl.prod.pageviews.11.3.c", 0, false, false},
		{"sketchd.cl.prod.pageviews.12.x.c", 0, false, false},
		{"sketchd.cl.prod.pageviews.12.3.z", 0, false, false},
	} {
		p, rec, err := cl.parseSubject(tc.subject)
		if (err == nil) != tc.ok || (tc.ok && (p != tc.p || rec != tc.rec)) {
			t.Errorf("%s: %d %v %v", tc.subject, p, rec, err)
		}
	}
}

// FuzzDecodePane: no input panics; what decodes re-encodes to itself.
func FuzzDecodePane(f *testing.F) {
	f.Add(encodePane(&sketchd.PaneRecord{Key: "k", Start: 1, Sketches: [][]byte{{1, 2}}}))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePane(b)
		if err != nil {
			return
		}
		if got := encodePane(&p); string(got) != string(b) {
			// Varints have one canonical form only when minimal; a
			// non-minimal one may decode. Decoding again must agree.
			q, err := decodePane(got)
			if err != nil || !reflect.DeepEqual(p, q) {
				t.Fatalf("re-encoding differs: %+v vs %+v (%v)", p, q, err)
			}
		}
	})
}
