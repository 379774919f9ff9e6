package window

import (
	"testing"
	"unsafe"

	"github.com/sketchd/sketchd"
)

// TestBatchRetainRaw checks what a batch copies: value bytes inside the
// event's Raw are kept only with RetainRaw; bytes elsewhere (a decoder's
// unescaping scratch) are always copied, so reusing that scratch for the
// next event cannot change a batched one.
func TestBatchRetainRaw(t *testing.T) {
	raw := []byte(`{"u":"alice","s":"b\u00e9"}`)
	for _, retain := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy", true: "retain"}[retain], func(t *testing.T) {
			scratch := []byte("bé")
			ev := sketchd.Event{Key: sketchd.EncodeKey("DE"), Raw: raw, Values: []sketchd.Value{
				{Present: true, Bytes: raw[6:11]}, // alice, inside Raw
				{Present: true, Bytes: scratch},   // unescaped, outside Raw
			}}
			var b Batch
			b.RetainRaw = retain
			b.Add(&ev)
			copy(scratch, "XXX")
			got := b.items[0].values
			if string(got[0].Bytes) != "alice" || string(got[1].Bytes) != "bé" {
				t.Fatalf("got %q %q, want alice bé", got[0].Bytes, got[1].Bytes)
			}
			if aliased := unsafe.SliceData(got[0].Bytes) == &raw[6]; aliased != retain {
				t.Errorf("value inside Raw aliased = %v, want %v", aliased, retain)
			}
			b.Reset()
			if b.RetainRaw != retain || b.hint != 1 {
				t.Errorf("after Reset: RetainRaw %v hint %d, want %v 1", b.RetainRaw, b.hint, retain)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	buf := []byte("0123456789")
	tests := []struct {
		name  string
		s     []byte
		outer []byte
		want  bool
	}{
		{"inside", buf[2:5], buf, true},
		{"whole", buf, buf, true},
		{"past the end", buf[5:10], buf[:8], false},
		{"before", buf[0:2], buf[2:], false},
		{"elsewhere", []byte("23"), buf, false},
		{"empty outer", buf[0:1], nil, false},
	}
	for _, tt := range tests {
		if got := within(tt.s, tt.outer); got != tt.want {
			t.Errorf("%s: within = %v, want %v", tt.name, got, tt.want)
		}
	}
}
