package sketch_test

import (
	"fmt"

	"github.com/sketchd/sketchd/sketch"
)

// A pane keeps one sketch per aggregate; a query decodes the stored blobs
// and merges them.
func Example() {
	users, _ := sketch.New(sketch.Params{Kind: sketch.KindHLL})
	for _, u := range []string{"ann", "bob", "ann", "cy"} {
		users.(*sketch.HLL).InsertHash(sketch.HashString(u))
	}
	blob, _ := users.AppendBinary(nil) // stored per (key, pane)

	other, _ := sketch.NewHLL(14)
	other.Insert([]byte("dee"))

	merged, err := sketch.Decode(blob)
	if err != nil {
		panic(err)
	}
	if err := sketch.MergeAll(merged, other); err != nil {
		panic(err)
	}
	e := merged.(*sketch.HLL).Estimate()
	fmt.Println(e.Estimate, e.Lower, e.Upper, e.Exact, merged.Count())
	// Output: 4 3 5 true 5
}

func ExampleCountMin_TopK() {
	c, _ := sketch.NewCountMin(0.01, 0.01, 2)
	for _, url := range []string{"/a", "/b", "/a", "/c", "/a", "/b"} {
		c.Add(sketch.HashString(url), []byte(url), 1)
	}
	for _, f := range c.TopK(2) {
		fmt.Printf("%s %d [%d, %d]\n", f.Item, f.Estimate, f.Lower, f.Upper)
	}
	// Output:
	// /a 3 [3, 3]
	// /b 2 [2, 2]
}

func ExampleTDigest_Quantile() {
	t, _ := sketch.NewTDigest(100)
	for i := 1; i <= 100; i++ {
		_ = t.Add(float64(i))
	}
	e := t.Quantile(0.99)
	fmt.Println(e.Value, t.Min(), t.Max())
	// Output: 100 1 100
}

func ExampleReservoir() {
	r, _ := sketch.NewReservoir(2, false)
	for i, ev := range []string{"e0", "e1", "e2", "e3"} {
		// Tags come from the event position, so replays pick the same sample.
		r.Add(sketch.Hash([]byte{byte(i)}), []byte(ev), 0)
	}
	fmt.Println(len(r.Sample()), r.Population())
	// Output: 2 4
}
