package sketchd

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxPartitions bounds Stream.Partitions.
const MaxPartitions = 256

// Partitioned reports whether the stream is split into partitions: the
// JetStream stream tags each message with its partition (a subject
// transform), and each partition is consumed, checkpointed and stored on
// its own (docs/scale-out.md §2.1).
func (s *Stream) Partitioned() bool { return s.Partitions > 0 }

// PartitionTransform is the subject transform the JetStream stream of a
// partitioned stream applies: the subject, its `*` tokens kept, behind the
// partition number, {{partition(N,i…)}}.<subject>. The partition hashes the
// wildcard tokens listed in PartitionBy, or the whole subject when none is.
func (s *Stream) PartitionTransform() string {
	var p strings.Builder
	p.WriteString("{{partition(")
	p.WriteString(strconv.Itoa(s.Partitions))
	for _, i := range s.PartitionBy {
		p.WriteString(",")
		p.WriteString(strconv.Itoa(i))
	}
	p.WriteString(")}}")
	w := 0
	for _, tok := range strings.Split(s.Subject, ".") {
		p.WriteString(".")
		if tok == "*" {
			w++
			fmt.Fprintf(&p, "{{wildcard(%d)}}", w)
			continue
		}
		p.WriteString(tok)
	}
	return p.String()
}

// PartitionFilter is the subject of partition p's messages in the
// JetStream stream: the subject behind the partition number.
func (s *Stream) PartitionFilter(p int) string { return strconv.Itoa(p) + "." + s.Subject }

// UntransformedSubject returns the subject a message was published to: a
// partitioned stream's stored subject without its partition token.
func (s *Stream) UntransformedSubject(stored string) string {
	if !s.Partitioned() {
		return stored
	}
	if _, rest, ok := strings.Cut(stored, "."); ok {
		return rest
	}
	return stored
}

// validatePartitions checks partitions and partition_by.
func (s *Stream) validatePartitions(bad func(field, format string, args ...any)) {
	if s.Partitions == 0 {
		if len(s.PartitionBy) > 0 {
			bad("partition_by", "set without partitions")
		}
		return
	}
	if s.Partitions < 0 || s.Partitions > MaxPartitions {
		bad("partitions", "must be 0 (unpartitioned) or 1-%d, got %d", MaxPartitions, s.Partitions)
		return
	}
	if !s.JetStream {
		bad("partitions", "need jetstream: true (the JetStream stream assigns the partitions)")
	}
	if len(s.Rollups) > 0 {
		bad("partitions", "rollup tiers are not supported on partitioned streams yet")
	}
	wild := 0
	for _, tok := range strings.Split(s.Subject, ".") {
		switch tok {
		case "*":
			wild++
		case ">":
			bad("subject", "a partitioned stream's subject cannot end in >: name each token with *")
		}
	}
	if s.Partitions > 1 && wild == 0 {
		bad("partitions", "more than one partition needs a * wildcard in the subject (say, a user or shard token): a fixed subject hashes to one partition")
	}
	seen := map[int]bool{}
	for i, w := range s.PartitionBy {
		if w < 1 || w > wild {
			bad(fmt.Sprintf("partition_by[%d]", i), "must be the position (1-%d) of a * in the subject, got %d", wild, w)
		}
		if seen[w] {
			bad(fmt.Sprintf("partition_by[%d]", i), "position %d listed twice", w)
		}
		seen[w] = true
	}
}
