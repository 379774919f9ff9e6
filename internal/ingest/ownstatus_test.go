package ingest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// ownedDetail is one partition's detail in an answer or a status, with the
// cluster-only members as pointers: nil when absent.
type ownedDetail struct {
	Partition     int     `json:"partition"`
	Owner         *string `json:"owner"`
	MirrorPending *uint64 `json:"mirror_pending"`
}

// partitionDetails reads the partitions block of a JSON body (an answer or
// a stream's status); ok is false when it has none.
func partitionDetails(t *testing.T, body []byte) (details []ownedDetail, ok bool) {
	t.Helper()
	var v struct {
		Partitions *struct {
			Detail []ownedDetail `json:"detail"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if v.Partitions == nil {
		return nil, false
	}
	return v.Partitions.Detail, true
}

// ownersOf formats the owner and mirror_pending of each detail ("-" for a
// missing member) for comparisons and messages.
func ownersOf(ds []ownedDetail) string {
	s := ""
	for _, d := range ds {
		o, p := "-", "-"
		if d.Owner != nil {
			o = *d.Owner
		}
		if d.MirrorPending != nil {
			p = fmt.Sprint(*d.MirrorPending)
		}
		s += fmt.Sprintf("[%d %s %s]", d.Partition, o, p)
	}
	return s
}

// TestClusterOwnerInAnswers: two cluster Managers (A, B) on a 3-node NATS
// cluster share a 2-partition stream; through each one's real router,
// every answer's partition detail and the stream's status name the owner
// of each partition (the instance whose controller owns it) with
// mirror_pending 0 once all is applied, on both instances alike. B
// crashes: A's status first stops naming B (it left A's member view) and
// then names A for both. A single-node Manager reading the same JetStream
// stream answers without owner, mirror_pending or a status partitions
// block.
func TestClusterOwnerInAnswers(t *testing.T) {
	const seed, n = 11, 800
	t.Logf("seed %d, %d events", seed, n)
	c := clustertest.Start(t, 3, clustertest.Options{})
	a, b := newClusterNode(t, c, 0), newClusterNode(t, c, 1)
	spec := partSpec("pv", "ow", `,"jetstream_stream":"PV_OW","partitions":2,"partition_by":[1]`)
	if r := a.fixture().do(t, http.MethodPost, "/v1/streams", spec); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	ref := newPartFixture(t, c.Servers[2].ClientURL())
	if r := ref.do(t, http.MethodPost, "/v1/streams", spec); r.status != http.StatusCreated {
		t.Fatalf("reference create: %d %s", r.status, r.body)
	}
	owner := map[int]string{}
	waitFor(t, 60*time.Second, "each instance owning one partition", func() (bool, string) {
		csa, csb := a.m.clusterStreamOf("pv"), b.m.clusterStreamOf("pv")
		if csa == nil || csb == nil {
			return false, "stream not on both"
		}
		for p := range 2 {
			switch {
			case csa.owns(p) && !csb.owns(p):
				owner[p] = a.m.instance
			case csb.owns(p) && !csa.owns(p):
				owner[p] = b.m.instance
			default:
				return false, fmt.Sprintf("partition %d: A %v B %v", p, csa.owns(p), csb.owns(p))
			}
		}
		return owner[0] != owner[1], fmt.Sprint(owner)
	})
	want := fmt.Sprintf("[0 %s 0][1 %s 0]", owner[0], owner[1])
	t.Logf("A is %s, B is %s; owners %v", a.m.instance, b.m.instance, owner)

	pub := c.Connect(t, 1)
	js, _ := jetstream.New(pub)
	for _, ev := range genEvents(seed, n) {
		if _, err := js.PublishAsync("ev.ow."+ev.User, ev.json()); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	rng := fmt.Sprintf("from=%d&to=%d", base.Add(-time.Hour).Unix(), base.Add(time.Hour).Unix())
	for i, nd := range []*clusterNode{a, b} {
		f := nd.fixture()
		waitFor(t, 60*time.Second, fmt.Sprintf("instance %d storing every event", i), func() (bool, string) {
			got, s := storedEvents(t, f.m, f.db, "pv")
			return got == n, s
		})
		q := 0
		waitFor(t, 30*time.Second, fmt.Sprintf("instance %d's answer and status naming the owners", i), func() (bool, string) {
			q++ // a new range each time: no cached answer
			ans := f.do(t, http.MethodGet, fmt.Sprintf("/v1/streams/pv/aggregates/users?%s&step=%dm", rng, q), "")
			st := f.do(t, http.MethodGet, "/v1/streams/pv", "")
			if ans.status != http.StatusOK || st.status != http.StatusOK {
				return false, fmt.Sprintf("answer %d %s, status %d %s", ans.status, ans.body, st.status, st.body)
			}
			da, _ := partitionDetails(t, ans.body)
			ds, ok := partitionDetails(t, st.body)
			return ok && ownersOf(da) == want && ownersOf(ds) == want, fmt.Sprintf("answer %s, status %s (partitions block %v)", ownersOf(da), ownersOf(ds), ok)
		})
	}

	waitFor(t, 60*time.Second, "the reference storing every event", func() (bool, string) {
		got, s := storedEvents(t, ref.m, ref.db, "pv")
		return got == n, s
	})
	ans := ref.do(t, http.MethodGet, "/v1/streams/pv/aggregates/users?"+rng, "")
	if ds, _ := partitionDetails(t, ans.body); len(ds) != 2 || ownersOf(ds) != "[0 - -][1 - -]" {
		t.Errorf("single node answer: partitions %s (%d), want no owner or mirror_pending: %s", ownersOf(ds), len(ds), ans.body)
	}
	if st := ref.do(t, http.MethodGet, "/v1/streams/pv", ""); st.status != http.StatusOK {
		t.Errorf("single node status: %d %s", st.status, st.body)
	} else if _, ok := partitionDetails(t, st.body); ok {
		t.Errorf("single node status has a partitions block: %s", st.body)
	}

	lost := 0
	if owner[1] == b.m.instance {
		lost = 1
	}
	aID, bID := a.m.instance, b.m.instance
	b.crash(t)
	f := a.fixture()
	// The lost partition's owner reads B (still a member for
	// failover_timeout), then "" once B left A's view if A has not claimed
	// it yet, then A; the other one A throughout. (mirror_pending may
	// move meanwhile: only the owners are compared.)
	allowed := map[[2]string]bool{}
	for _, o := range []string{bID, "", aID} {
		d := [2]string{aID, aID}
		d[lost] = o
		allowed[d] = true
	}
	var seen [][2]string
	waitFor(t, 60*time.Second, "A named as the owner of both", func() (bool, string) {
		st := f.do(t, http.MethodGet, "/v1/streams/pv", "")
		ds, _ := partitionDetails(t, st.body)
		var got [2]string
		for i := range ds {
			if i < 2 && ds[i].Owner != nil {
				got[i] = *ds[i].Owner
			}
		}
		if len(ds) != 2 || !allowed[got] {
			t.Fatalf("A's status during the failover: %s", ownersOf(ds))
		}
		if len(seen) == 0 || seen[len(seen)-1] != got {
			seen = append(seen, got)
		}
		return got == [2]string{aID, aID}, ownersOf(ds)
	})
	t.Logf("owners in A's status during the failover: %q", seen)
	if len(seen) < 2 || seen[0][lost] != bID {
		t.Errorf("owners in A's status during the failover %q: want B first, then A", seen)
	}
}
