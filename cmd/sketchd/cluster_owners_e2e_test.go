package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// ownedRE matches one sketchd_partition_owned series of stream pv in the
// Prometheus text format.
var ownedRE = regexp.MustCompile(`(?m)^sketchd_partition_owned\{partition="(\d+)",stream="pv"\} (\d+)$`)

// checkClusterOwners: once the cluster has settled, exactly one instance
// reports sketchd_partition_owned 1 for each partition in /metrics, and
// every instance's stream status names the same owner for each partition,
// the owning instance's own id (what it names for its partitions), with
// mirror_pending 0. Waits up to 30 s for ownership to settle.
func checkClusterOwners(t *testing.T, procs []*sketchdProc, partitions int) {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = clusterOwnersDisagree(t, procs, partitions)
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("partition owners: %s", last)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clusterOwnersDisagree returns what is not settled yet; "" when all is.
func clusterOwnersDisagree(t *testing.T, procs []*sketchdProc, partitions int) string {
	t.Helper()
	ownerProc := make([]int, partitions) // which instance owns p, by its metrics
	for p := range ownerProc {
		ownerProc[p] = -1
	}
	for i, pr := range procs {
		resp, err := http.Get(pr.httpURL + "/metrics")
		if err != nil {
			return err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range ownedRE.FindAllStringSubmatch(string(b), -1) {
			p, _ := strconv.Atoi(m[1])
			if m[2] != "1" || p >= partitions {
				continue
			}
			if ownerProc[p] >= 0 {
				return fmt.Sprintf("partition %d owned by instances %d and %d", p, ownerProc[p], i)
			}
			ownerProc[p] = i
		}
	}
	names := make([][]string, len(procs))
	for i, pr := range procs {
		var st struct {
			Partitions *struct {
				Detail []struct {
					Partition     int     `json:"partition"`
					Owner         *string `json:"owner"`
					MirrorPending *uint64 `json:"mirror_pending"`
				} `json:"detail"`
			} `json:"partitions"`
		}
		if code := fetchJSON(t, pr.httpURL+"/v1/streams/pv", &st); code != http.StatusOK || st.Partitions == nil || len(st.Partitions.Detail) != partitions {
			return fmt.Sprintf("instance %d status: %d, partitions block %v", i, code, st.Partitions != nil)
		}
		for _, d := range st.Partitions.Detail {
			if d.Owner == nil || d.MirrorPending == nil || *d.MirrorPending != 0 {
				return fmt.Sprintf("instance %d partition %d: owner %v mirror_pending %v", i, d.Partition, d.Owner, d.MirrorPending)
			}
			names[i] = append(names[i], *d.Owner)
		}
	}
	for p := range partitions {
		if ownerProc[p] < 0 {
			return fmt.Sprintf("partition %d owned by no instance (metrics)", p)
		}
		self := names[ownerProc[p]][p]
		for i := range procs {
			if names[i][p] != self || self == "" {
				return fmt.Sprintf("partition %d: instance %d names %q, its owner (instance %d) names %q", p, i, names[i][p], ownerProc[p], self)
			}
		}
	}
	return ""
}
