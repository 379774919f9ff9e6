package cluster

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// BenchmarkRestore measures a cold restore: a fresh Badger store filled by
// the mirror from a changelog of 100,000 panes (two partitions of 50,000,
// written by an owner in flushes of 10,000) on a 3-node R3 cluster in this
// process. It reports s/100k-panes and panes/s; the changelog is written
// once per sub-benchmark, outside the timer.
//
//	go test ./internal/cluster -run '^$' -bench Restore -benchtime 2x
func BenchmarkRestore(b *testing.B) {
	for _, size := range []int{2 << 10} {
		b.Run(fmt.Sprintf("panes=100k/bytes=%d", size), func(b *testing.B) {
			benchRestore(b, 100_000, size)
		})
	}
}

func benchRestore(b *testing.B, panes, size int) {
	const partitions, perFlush = 2, 10_000
	f := newFixture(b, clustertest.Options{})
	ctx := testContext(b, 30*time.Minute)
	for p := range partitions {
		w := f.writer(b, p, p, "owner")
		claim(b, w)
		g := &flushGen{rng: rand.New(rand.NewPCG(uint64(p), 1))}
		var m model
		for n := 0; n < panes/partitions; n += perFlush {
			fl := g.next(&m, perFlush, size)
			if _, err := w.Commit(ctx, fl); err != nil {
				b.Fatal(err)
			}
			m.apply(fl)
		}
	}
	b.ResetTimer()
	var applied uint64
	for range b.N {
		b.StopTimer()
		db, sids := openStore(b, partitions)
		m, err := NewMirror(ctx, jetStream(b, f.c.Connect(b, 1)), f.cl, sids, db, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := m.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		applied = m.Stats().Panes
	}
	b.StopTimer()
	if applied < uint64(panes)*9/10 {
		b.Fatalf("restored %d panes, wrote %d", applied, panes)
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perOp*100_000/float64(applied), "s/100k-panes")
	b.ReportMetric(float64(applied)/perOp, "panes/s")
}
