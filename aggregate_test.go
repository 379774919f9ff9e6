package sketchd

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sketchd/sketchd/sketch"
)

// TestAggregateFollowsRegistry: every parameter of the sketch registry is
// a field of Aggregate under its own name (the spec key), and the defaults
// an Aggregate takes are the sketch's.
func TestAggregateFollowsRegistry(t *testing.T) {
	tags := map[string]bool{}
	for f := range reflect.TypeFor[Aggregate]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if y, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); y != name {
			t.Errorf("field %s: json %q, yaml %q", f.Name, name, y)
		}
		tags[name] = true
	}
	var a Aggregate
	fields := map[string]bool{}
	for _, f := range a.paramFields() {
		if !tags[f.name] {
			t.Errorf("parameter %q is not a spec key of Aggregate", f.name)
		}
		fields[f.name] = true
	}
	for _, k := range sketch.Kinds() {
		for _, q := range k.Params() {
			if !fields[q.Name] {
				t.Errorf("%s parameter %q has no Aggregate field (add it to paramFields)", k.Name, q.Name)
			}
		}
		a := Aggregate{Sketch: AggregateKind(k.Name), Field: "f"}
		a.Normalize()
		got, err := a.SketchParams()
		if err != nil {
			t.Fatal(err)
		}
		if want := (sketch.Params{Kind: k.Kind}).Normalize(); got != want {
			t.Errorf("%s: spec defaults give %+v, the sketch's are %+v", k.Name, got, want)
		}
		if errs := a.validate(); len(errs) != 0 {
			t.Errorf("%s with defaults: %v", k.Name, errs)
		}
	}
	if _, err := (Aggregate{Sketch: "bloom"}).SketchParams(); err == nil {
		t.Error("SketchParams of an unknown kind")
	}
}
