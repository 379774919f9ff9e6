package sketchd

import (
	"reflect"
	"testing"
)

func TestFlushAbsorb(t *testing.T) {
	rec := func(key string, start int64, events uint64) PaneRecord {
		return PaneRecord{Key: key, Start: start, Events: events}
	}
	f := &Flush{
		Panes:      []PaneRecord{rec("a", 0, 1), rec("b", 0, 1)},
		Checkpoint: Checkpoint{Position: 10},
		Token:      "t1",
		Gen:        1,
	}
	f.Absorb(&Flush{
		Panes:      []PaneRecord{rec("b", 0, 2), rec("a", 60, 1)},
		Checkpoint: Checkpoint{Position: 20},
		Gen:        2,
	})
	want := &Flush{
		Panes:      []PaneRecord{rec("a", 0, 1), rec("b", 0, 2), rec("a", 60, 1)},
		Checkpoint: Checkpoint{Position: 20},
		Token:      "t1", // the newer flush carried none
		Gen:        2,
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}
