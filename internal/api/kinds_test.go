package api

import (
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestKindAPIsCoverRegistry: the API serves every kind of the sketch
// registry, renders each one's empty sketch, and no query parameter
// belongs to two kinds.
func TestKindAPIsCoverRegistry(t *testing.T) {
	owner := map[string]sketch.Kind{}
	for _, k := range sketch.Kinds() {
		e, ok := kindAPIs[k.Kind]
		if !ok {
			t.Errorf("kind %s has no entry in kindAPIs", k.Name)
			continue
		}
		for _, name := range e.params {
			if o, dup := owner[name]; dup {
				t.Errorf("parameter %q belongs to %s and %s", name, o, k.Kind)
			}
			owner[name] = k.Kind
			if got := paramKind(name); string(got) != k.Name {
				t.Errorf("paramKind(%q) = %q, want %q", name, got, k.Name)
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
