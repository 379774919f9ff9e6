package procmem

import (
	"testing"
)

func TestParseStatm(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024 300 100 12 0 200 0\n", 100 * 4096, true},
		{"1024 300 0 12 0 200 0", 0, true},
		{"1024 300", 0, false},
		{"", 0, false},
		{"1024 300 x 12", 0, false},
		{"1024 300 -5 12", 0, false},
	} {
		got, ok := parseStatm([]byte(c.in), 4096)
		if got != c.want || ok != c.ok {
			t.Errorf("parseStatm(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
