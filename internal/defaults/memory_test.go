package defaults

import "testing"

func TestMemoryLimitFor(t *testing.T) {
	for _, c := range []struct{ cgroup, want int64 }{
		{0, MemoryLimit},
		{-1, MemoryLimit},
		{256 << 20, 192 << 20},
		{8 << 30, MemoryLimit},
	} {
		if got := MemoryLimitFor(c.cgroup); got != c.want {
			t.Errorf("MemoryLimitFor(%d) = %d, want %d", c.cgroup, got, c.want)
		}
	}
}

// TestSplitMemory: the parts kept on purpose take at most 60% of the
// limit, leaving the rest to what grows with ingestion.
func TestSplitMemory(t *testing.T) {
	const limit = 512 << 20
	s := SplitMemory(limit)
	// QueryMax is a part of QueriesTotal, not in addition to it.
	sum := s.QueryCache + s.WindowCache + s.ResultCache + s.AnswerCache + s.QueriesTotal + s.StoreBlockCache + s.StoreIndexCache + s.JetStreamMemory
	if s.Budget != limit || s.Limit != limit/8*7 || sum > limit*6/10 || s.QueryMax > s.QueriesTotal {
		t.Errorf("SplitMemory(%d) = %+v: parts sum to %d", limit, s, sum)
	}
	if s.QueryCache != 56<<20 || s.WindowCache != 32<<20 || s.StoreBlockCache != 0 {
		t.Errorf("SplitMemory(512 MiB): query cache %d, window cache %d, block cache %d; docs/operations.md says 56, 32 and none", s.QueryCache, s.WindowCache, s.StoreBlockCache)
	}
}

// TestShares: the fractions the help texts print are the split's.
func TestShares(t *testing.T) {
	const limit = 512 << 20
	s := SplitMemory(limit)
	for _, c := range []struct {
		name  string
		share Share
		text  string
		part  int64
	}{
		{"runtime", RuntimeShare, "7/8", s.Limit},
		{"files", FilesShare, "1/8", s.Budget - s.Limit},
		{"query cache", QueryCacheShare, "7/64", s.QueryCache},
		{"cgroup", CgroupShare, "3/4", MemoryLimitFor(limit)},
	} {
		if c.share.String() != c.text || c.share.Of(limit) != c.part {
			t.Errorf("%s share %s of %d = %d, the split's %d (want %s)", c.name, c.share, limit, c.share.Of(limit), c.part, c.text)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"512MiB": 512 << 20, "1GiB": 1 << 30, "800MB": 800e6, "1073741824": 1 << 30, " 64 KiB ": 64 << 10, "10B": 10,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "1.5GiB", "lots", "9999999999GiB", "MiB"} {
		if n, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, n)
		}
	}
}
