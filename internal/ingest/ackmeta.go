package ingest

// The sequences of a delivered JetStream message. deliver needs four
// numbers of its metadata; jetstream.Msg.Metadata parses all of it into a
// new struct (eleven substrings, a timestamp, an allocation of 112 bytes):
// 258 ns a message in BenchmarkAckSeqs, three quarters of deliver's CPU in
// a profile of BenchmarkIngestJetStreamLoadShape. ackSeqsOf reads the
// numbers off the reply subject in place: 42 ns, no allocation. With the
// pending count (the rollup builder's backlog test, tierbuilder.go) it is
// 60 ns against Metadata's 202 (42 without it, same run; 2026-12-08, a
// 2-core Intel Xeon: go test ./internal/ingest -run '^$' -bench AckSeqs),
// about 0.1% of the ~17 µs of CPU an event costs in
// BenchmarkIngestTiers.

import (
	"errors"
	"strings"
)

// ackSeqs is the part of a message's JetStream metadata deliver reads.
type ackSeqs struct {
	stream    uint64 // stream sequence
	consumer  uint64 // consumer (delivery) sequence
	delivered uint64 // times delivered, this one included
	pending   uint64 // messages of the consumer's filter after this one, not yet delivered
}

// errAckSubject is a reply subject that is not a JetStream ack subject.
var errAckSubject = errors.New("not a JetStream ack subject")

// ackSeqsOf parses the ack (reply) subject of a JetStream message, either
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<more>]
//
// (9 tokens, or at least 11). It accepts the subjects nats.go's Metadata
// accepts and reads the same numbers: a token that is not all digits reads
// as 0, as there.
func ackSeqsOf(reply string) (ackSeqs, error) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return ackSeqs{}, errAckSubject
	}
	skip := 4 // domain, account hash, stream, consumer
	switch n := strings.Count(reply, ".") + 1; {
	case n == 9:
		skip = 2 // stream, consumer
	case n < 11:
		return ackSeqs{}, errAckSubject
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	var s ackSeqs
	s.delivered, rest = ackNum(rest)
	s.stream, rest = ackNum(rest)
	s.consumer, rest = ackNum(rest)
	_, rest, _ = strings.Cut(rest, ".") // the timestamp
	s.pending, _ = ackNum(rest)
	return s, nil
}

// ackNum parses the decimal token at the start of s and returns the rest
// after its dot. Like nats.go's parser, it reads a token with anything but
// ASCII digits as 0 and does not check for overflow.
func ackNum(s string) (uint64, string) {
	tok, rest, _ := strings.Cut(s, ".")
	var n uint64
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < '0' || c > '9' {
			return 0, rest
		}
		n = n*10 + uint64(c-'0')
	}
	return n, rest
}
