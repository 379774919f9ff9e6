package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestPartitionWidthStored: a new stream's base partitions are
// PartitionSpan wide in whole panes, and each stream keeps its width
// across reopens with another span; a stream without a stored width
// (created before widths were stored, when every stream had a day's) is
// read with a day's and finds every pane it wrote.
func TestPartitionWidthStored(t *testing.T) {
	dir := t.TempDir()
	reopen := func(span time.Duration) *DB {
		o := quietOptions()
		o.PartitionSpan = span
		db, err := Open(dir, testLogger(t), nil, o)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	// Two days of one key's panes, every 10 minutes.
	var want []string
	write := func(db *DB, sid uint32) {
		for m := int64(0); m < 48*60; m += 10 {
			commit(t, db, sid, uint64(m+1), pane("k", m*minute, uint64(m+1)))
		}
	}
	for m := int64(0); m < 48*60; m += 10 {
		want = append(want, fmt.Sprintf("k@%d", m*minute))
	}

	// A store before stored widths: a day, and no 'W' key.
	db := reopen(24 * time.Hour)
	legacy := createTest(t, db, "legacy", time.Minute)
	write(db, legacy.ID)
	if err := db.meta.Update(func(txn *badger.Txn) error { return txn.Delete(partWidthKey(legacy.ID)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopen(time.Hour)
	hourly := createTest(t, db, "hourly", time.Minute)
	odd := createTest(t, db, "odd", 7*time.Minute)
	for _, c := range []struct {
		info StreamInfo
		want time.Duration
	}{{hourly, time.Hour}, {odd, 63 * time.Minute}} {
		if c.info.PartitionWidth != int64(c.want) {
			t.Errorf("%s: partition width %v, want %v", c.info.Spec.Name, time.Duration(c.info.PartitionWidth), c.want)
		}
	}
	write(db, hourly.ID)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopen(6 * time.Hour)
	for name, w := range map[string]time.Duration{"hourly": time.Hour, "odd": 63 * time.Minute, "legacy": 24 * time.Hour} {
		info, err := db.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if info.PartitionWidth != int64(w) {
			t.Errorf("%s after reopen: partition width %v, want %v", name, time.Duration(info.PartitionWidth), w)
		}
	}
	for _, c := range []struct {
		info  StreamInfo
		parts int
	}{{hourly, 48}, {legacy, 2}} {
		if got := db.countPrefix(prefixIndex, c.info.ID); got != c.parts {
			t.Errorf("%s: %d key-index entries, want %d (one per partition)", c.info.Spec.Name, got, c.parts)
		}
		if got := scanAll(t, db, c.info.ID, []string{"k"}, 0, 2*day); !slices.Equal(got, want) {
			t.Errorf("%s: read back %d panes, want %d", c.info.Spec.Name, len(got), len(want))
		}
		if got := keysAll(t, db, c.info.ID, 25*hour, 26*hour); !slices.Equal(got, []string{"k"}) {
			t.Errorf("%s: keys of hour 25: %q", c.info.Spec.Name, got)
		}
	}
	if six := createTest(t, db, "six", time.Minute); six.PartitionWidth != int64(6*time.Hour) {
		t.Errorf("a stream created with a 6h span: width %v", time.Duration(six.PartitionWidth))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopen(0) // the default span, a day
	defer db.Close()
	if d := createTest(t, db, "default", 7*time.Minute); d.PartitionWidth != partitionWidth(7*time.Minute) {
		t.Errorf("a stream created with the default span: width %v, want a day's %v", time.Duration(d.PartitionWidth), time.Duration(partitionWidth(7*time.Minute)))
	}
}
