package cluster

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Assign maps each of a stream's partitions to the instance that should
// own it, by balanced rendezvous hashing over the view `instances` (the
// ready instance ids; order and duplicates do not matter): every
// (partition, instance) pair gets a score, and the pairs are taken from the
// highest score down, a pair winning when its partition is still free and
// its instance holds fewer than ⌈P/M⌉ partitions.
//
// The result, indexed by partition, depends only on the stream name, the
// partition count and the set of ids, so every instance with the same view
// computes the same owners. No instance gets more than ⌈P/M⌉. When an
// instance joins or leaves, a partition moves only when its owner changed
// rank for it or a capacity change pushed it off (TestAssignMoves bounds
// the moves). With no instances every owner is "".
func Assign(stream string, partitions int, instances []string) []string {
	owners := make([]string, max(partitions, 0))
	ids := slices.Clone(instances)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 || partitions <= 0 {
		return owners
	}
	capacity := (partitions + len(ids) - 1) / len(ids)

	type pair struct {
		score uint64
		part  int
		inst  int
	}
	pairs := make([]pair, 0, partitions*len(ids))
	for p := range partitions {
		for i, id := range ids {
			pairs = append(pairs, pair{score(stream, p, id), p, i})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.part, b.part); c != 0 {
			return c
		}
		return cmp.Compare(a.inst, b.inst)
	})
	held := make([]int, len(ids))
	left := partitions
	for _, pr := range pairs {
		if owners[pr.part] != "" || held[pr.inst] >= capacity {
			continue
		}
		owners[pr.part] = ids[pr.inst]
		held[pr.inst]++
		if left--; left == 0 {
			break
		}
	}
	return owners
}

// score is the rendezvous weight of (stream, partition) for instance id.
func score(stream string, partition int, id string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(stream)
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], uint64(partition))
	d.Write(b[:])
	d.WriteString(id)
	return d.Sum64()
}
