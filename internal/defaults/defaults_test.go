package defaults

import (
	"testing"
	"time"
)

type opts struct {
	N       int
	D       time.Duration
	F       float64
	Off     int64 `default:"keep-negative"`
	S       string
	Now     func() time.Time
	Inner   inner
	private int
}

type inner struct{ A, B int }

func TestFill(t *testing.T) {
	def := opts{N: 5, D: time.Second, F: 0.5, Off: 16, S: "x", Now: time.Now, Inner: inner{1, 2}, private: 9}
	tests := []struct {
		name string
		in   opts
		want func(opts) bool
	}{
		{"zero takes every default", opts{}, func(o opts) bool {
			return o.N == 5 && o.D == time.Second && o.F == 0.5 && o.Off == 16 && o.S == "x" && o.Now != nil && o.Inner == inner{1, 2}
		}},
		{"set values are kept", opts{N: 7, D: time.Minute, F: 2, Off: 3, S: "y", Inner: inner{A: 4}}, func(o opts) bool {
			return o.N == 7 && o.D == time.Minute && o.F == 2 && o.Off == 3 && o.S == "y" && o.Inner == inner{A: 4}
		}},
		{"negative takes the default", opts{N: -1, D: -time.Second, F: -0.5}, func(o opts) bool {
			return o.N == 5 && o.D == time.Second && o.F == 0.5
		}},
		{"keep-negative keeps it", opts{Off: -1}, func(o opts) bool { return o.Off == -1 }},
		{"unexported fields are left alone", opts{}, func(o opts) bool { return o.private == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fill(tt.in, def); !tt.want(got) {
				t.Errorf("Fill(%+v) = %+v", tt.in, got)
			}
		})
	}
}
