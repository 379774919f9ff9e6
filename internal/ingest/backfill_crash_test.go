package ingest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/store"
)

// bfCrashStore SIGKILLs the process at its Nth backfill step: before the
// step's transaction ("before") or once it is durable ("after").
type bfCrashStore struct {
	*store.DB
	point string
	at    int64
	n     atomic.Int64
}

func (c *bfCrashStore) BackfillPanes(ctx context.Context, id uint32, panes []store.PaneAt, edit func(p *sketchd.PaneRecord) error, st sketchd.BackfillStatus) error {
	if st.State != "running" || c.n.Add(1) != c.at {
		return c.DB.BackfillPanes(ctx, id, panes, edit, st)
	}
	if c.point == "after" {
		_ = c.DB.BackfillPanes(ctx, id, panes, edit, st)
	}
	killSelf()
	return nil
}

// TestBackfillCrashChild is the child of TestBackfillCrash: it starts the
// manager on the parent's store and NATS (resuming a stored backfill),
// PATCHes a backfill when SKETCHD_BF_ALTER is set, and is SIGKILLed at the
// backfill step SKETCHD_BF_KILL says.
func TestBackfillCrashChild(t *testing.T) {
	url, dir := os.Getenv("SKETCHD_BF_NATS"), os.Getenv("SKETCHD_BF_DIR")
	if url == "" {
		t.Skip("child process of TestBackfillCrash")
	}
	point, n, _ := strings.Cut(os.Getenv("SKETCHD_BF_KILL"), ":")
	at, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(dir, testLogger(t), nil, store.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, connect(t, url), &bfCrashStore{DB: db, point: point, at: at}, Options{})
	if err := m.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SKETCHD_BF_ALTER") != "" {
		a, err := sketchd.ParseAlterJSON([]byte(`{"backfill":true,"aggregates":{` + strings.Join([]string{aggC, aggN, aggR}, ",") + `}}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Alter(context.Background(), "aa", a); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(60 * time.Second)
	t.Fatal("not killed")
}

// A backfill SIGKILLed before one step's transaction and, resumed by the
// next process, after another's is durable, completes at the third start
// with every event applied once: the sketches equal those of an instance
// that had the aggregates from the start.
func TestBackfillCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ns := runNATS(t)
	nc := connect(t, ns.ClientURL())
	dir := t.TempDir()
	ctx := context.Background()
	spec, err := sketchd.ParseStreamJSON([]byte(aggSpec(aggU)))
	if err != nil {
		t.Fatal(err)
	}
	db := openStore(t, dir)
	m := newManager(t, nc, db, Options{})
	if err := m.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	f := &lifeFixture{ns: ns, nc: nc, m: m, db: db}
	f.js, _ = jetstream.New(nc)
	publishEvents(t, f.js, "ev.aa", timedEvents(61, 1500, base))
	waitFor(t, 15*time.Second, "1500 applied", func() (bool, string) {
		n := appliedOf(t, m, "aa")
		return n == 1500, fmt.Sprint(n)
	})
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, run := range [][]string{
		{"SKETCHD_BF_ALTER=1", "SKETCHD_BF_KILL=before:2"},
		{"SKETCHD_BF_KILL=after:1"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBackfillCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "SKETCHD_BF_NATS="+ns.ClientURL(), "SKETCHD_BF_DIR="+dir)
		cmd.Env = append(cmd.Env, run...)
		out, err := cmd.CombinedOutput()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child %q: %v, want SIGKILL; output:\n%s", run, err, tail(string(out), 60))
		}
	}
	db = openStore(t, dir)
	if bf, ok, err := db.Backfill(ctx, 1); err != nil || !ok || bf.State != "running" || bf.Done == 0 || bf.Done >= 1500 {
		t.Fatalf("after two kills: backfill %+v %v %v, want one in progress", bf, ok, err)
	} else {
		t.Logf("after two kills: done to sequence %d of %d, %d events", bf.Done, bf.To, bf.Events)
	}
	m = newManager(t, nc, db, Options{})
	if err := m.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	srv := httptest.NewServer(newTestAPI(t, m, db, 10*time.Second))
	t.Cleanup(srv.Close)
	f.m, f.db, f.url, f.http = m, db, srv.URL, srv.Client()
	waitFor(t, 30*time.Second, "backfill done", func() (bool, string) {
		st := f.spec(t)
		return st.Backfill != nil && st.Backfill.State == "done" && st.State == "running", fmt.Sprintf("%s %+v", st.State, st.Backfill)
	})
	if bf := f.spec(t).Backfill; bf.Done != 1500 || bf.Events != 1500 {
		t.Errorf("backfill %+v: want each of the 1500 events once", bf)
	}
	ref := newLifeFixtureOn(t, ns, Options{})
	if a := ref.do(t, "POST", "/v1/streams", aggSpec(strings.Join([]string{aggU, aggC, aggN, aggR}, ","))); a.status != 201 {
		t.Fatalf("create ref: %d %s", a.status, a.body)
	}
	from, end := base, base.Add(40*time.Minute)
	ref.waitEvents(t, "u", from, end, 1500)
	for _, agg := range []string{"u", "c", "n", "r"} {
		_, got, gn := f.exportSketch(t, agg, from, end)
		_, want, wn := ref.exportSketch(t, agg, from, end)
		if !sameSketch(t, got, want) || gn != wn {
			t.Errorf("%s: %d bytes (%d events), reference %d bytes (%d events)", agg, len(got), gn, len(want), wn)
		}
	}
}
