package sketchd

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestRollupsSpec(t *testing.T) {
	src := specYAML + "rollups: [{granularity: 1h, retention: 90d}, {granularity: 1d}]\n"
	var s Stream
	if err := yaml.Unmarshal([]byte(src), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Rollup{{Duration(time.Hour), Duration(90 * 24 * time.Hour)}, {Duration(24 * time.Hour), Duration(90 * 24 * time.Hour)}}
	if !slices.Equal(s.Rollups, want) {
		t.Fatalf("rollups %+v, want %+v (the retention defaults to the tier below's)", s.Rollups, want)
	}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Stream
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Rollups, want) {
		t.Fatalf("JSON round trip %+v, want %+v", back.Rollups, want)
	}
	if got, want := s.RollupSource(1), int64(time.Hour); got != want {
		t.Errorf("source of tier 1 %d, want %d", got, want)
	}
	var unknown Stream
	if err := yaml.Unmarshal([]byte(specYAML+"rollups: [{granularity: 1h, every: 2}]\n"), &unknown); err == nil {
		t.Error("an unknown rollup field was accepted")
	}
}

func TestRollupsValidate(t *testing.T) {
	d := func(s string) Duration {
		v, err := ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		rollups []Rollup
		fields  []string
	}{
		{"hour then day", []Rollup{{d("1h"), d("90d")}, {d("1d"), d("1095d")}}, nil},
		{"week of days", []Rollup{{d("1d"), d("30d")}, {d("7d"), d("365d")}}, nil},
		{"not a multiple of the panes", []Rollup{{d("90s"), d("7d")}}, []string{"rollups[0].granularity"}},
		{"equal to the panes", []Rollup{{d("1m"), d("7d")}}, []string{"rollups[0].granularity"}},
		{"not a multiple of the tier below", []Rollup{{d("1h"), d("7d")}, {d("90m"), d("7d")}}, []string{"rollups[1].granularity"}},
		{"coarsest first", []Rollup{{d("1d"), d("30d")}, {d("1h"), d("30d")}}, []string{"rollups[1].granularity"}},
		{"not dividing a day", []Rollup{{d("7h"), d("30d")}}, []string{"rollups[0].granularity"}},
		{"fraction of a second", []Rollup{{Duration(1500 * time.Millisecond), d("7d")}}, []string{"rollups[0].granularity"}},
		{"missing granularity", []Rollup{{0, d("7d")}}, []string{"rollups[0].granularity"}},
		{"retention shorter than a pane", []Rollup{{d("1d"), d("1h")}}, []string{"rollups[0].retention"}},
		{"retention shorter than the stream's", []Rollup{{d("1h"), d("2d")}}, []string{"rollups[0].retention"}},
		{"retention shorter than the tier below", []Rollup{{d("1h"), d("90d")}, {d("1d"), d("30d")}}, []string{"rollups[1].retention"}},
		{"too many", slices.Repeat([]Rollup{{d("1h"), d("1d")}}, MaxRollups+1), []string{"rollups"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Stream
			if err := yaml.Unmarshal([]byte(specYAML), &s); err != nil {
				t.Fatal(err)
			}
			s.Rollups = tt.rollups
			err := s.Validate()
			var got []string
			for _, e := range flattenErrs(err) {
				var fe *FieldError
				if errors.As(e, &fe) {
					got = append(got, fe.Field)
				}
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields at fault %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

// flattenErrs unwraps an errors.Join.
func flattenErrs(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
