package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// A stream's life: register it, commit a flush, read its panes and keys back.
func Example() {
	ctx := context.Background()
	opts := store.DefaultOptions()
	opts.InMemory = true // tests only; services pass a directory
	db, err := store.Open("", nil, nil, opts)
	if err != nil {
		panic(err)
	}
	defer func() { _ = db.Close() }()

	spec := sketchd.DefaultStream()
	spec.Name, spec.Subject = "pageviews", "events.pageviews"
	spec.Aggregates = map[string]sketchd.Aggregate{"users": {Sketch: sketchd.KindHLL, Field: "user"}}
	spec.Retention = 0 // keep every pane (this example's are in 1970)
	spec.Normalize()
	info, err := db.CreateStream(ctx, spec)
	if err != nil {
		panic(err)
	}

	minute := int64(time.Minute)
	key := sketchd.EncodeKey("fr")
	err = db.Commit(ctx, info.ID, sketchd.Flush{
		Panes: []sketchd.PaneRecord{
			{Key: key, Start: 0, Events: 3, Applied: 7, Sketches: [][]byte{[]byte("opaque")}},
			{Key: key, Start: minute, Events: 1, Applied: 9, Sketches: [][]byte{[]byte("blob")}},
		},
		Checkpoint: sketchd.Checkpoint{Position: 9},
	})
	if err != nil {
		panic(err)
	}

	_ = db.ScanPanes(ctx, info.ID, []string{key}, 0, 2*minute, func(p sketchd.PaneRecord) error {
		fmt.Printf("pane %d: %d events, applied %d, %q\n", p.Start/minute, p.Events, p.Applied, p.Sketches[0])
		return nil
	})
	_ = db.Keys(ctx, info.ID, 0, 2*minute, func(k string) error {
		vals, _ := sketchd.DecodeKey(k)
		fmt.Println("key", vals)
		return nil
	})
	cp, _, _ := db.Checkpoint(ctx, info.ID)
	fmt.Println("checkpoint", cp.Position)
	// Output:
	// pane 0: 3 events, applied 7, "opaque"
	// pane 1: 1 events, applied 9, "blob"
	// key [fr]
	// checkpoint 9
}
