package api

import (
	"slices"
	"testing"

	"github.com/sketchd/sketchd"

	"github.com/sketchd/sketchd/sketch"
)

// TestKindAPIsCoverRegistry: the API serves every kind of the sketch
// registry, renders each one's empty sketch, and no query parameter
// is routed to a kind that does not list it.
func TestKindAPIsCoverRegistry(t *testing.T) {
	for _, k := range sketch.Kinds() {
		e, ok := kindAPIs[k.Kind]
		if !ok {
			t.Errorf("kind %s has no entry in kindAPIs", k.Name)
			continue
		}
		for _, name := range e.params {
			if got := paramKinds(name); !slices.Contains(got, sketchd.AggregateKind(k.Name)) {
				t.Errorf("paramKinds(%q) = %q, want it to hold %q", name, got, k.Name)
			}
		}
		sk, err := sketch.New(sketch.Params{Kind: k.Kind})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := renderAs(sk, queryParams{n: -1}); !ok {
			t.Errorf("%s: an empty sketch does not render", k.Name)
		}
		for other, o := range kindAPIs {
			if _, ok := o.render(sk, queryParams{n: -1}); other != k.Kind && ok {
				t.Errorf("the %s renderer accepts a %s", other, k.Name)
			}
		}
	}
	if len(kindAPIs) != len(sketch.Kinds()) {
		t.Errorf("kindAPIs has %d entries, the registry %d kinds", len(kindAPIs), len(sketch.Kinds()))
	}
}
