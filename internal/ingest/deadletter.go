package ingest

// Dead letters are bounded twice, so that one message or one stream cannot
// flood NATS (or the JetStream stream capturing the dead-letter subject):
//
//   - per message: a message with several invalid lines (a batch of
//     newline-delimited events) gives one dead letter that holds its
//     invalid lines, one per line, and lists them in headers
//     (Sketchd-Invalid-Lines, the count; Sketchd-Lines, "index:reason"
//     pairs, at most maxListedLines);
//   - per stream: a token bucket (Options.DeadLetterRate per second,
//     burst DeadLetterBurst) shared by dead and late letters. What it
//     holds back is counted in sketchd_dead_letters_suppressed_total (the
//     events are still counted as invalid or too late).

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// maxListedLines bounds the Sketchd-Lines header of one dead letter.
const maxListedLines = 100

// badLines collects the invalid lines of one message.
type badLines struct {
	n     int
	first struct {
		line           int
		reason, detail string
	}
	body    bytes.Buffer
	listing []string
}

func (b *badLines) add(raw []byte, line int, reason, detail string) {
	if b.n == 0 {
		b.first.line, b.first.reason, b.first.detail = line, reason, detail
	} else {
		b.body.WriteByte('\n')
	}
	b.n++
	b.body.Write(raw)
	if len(b.listing) < maxListedLines {
		b.listing = append(b.listing, strconv.Itoa(line)+":"+reason)
	}
}

// deadLetter publishes the invalid lines of m as one dead letter, when
// the stream's bucket allows.
func (r *runner) deadLetter(m *inMsg, bad *badLines) {
	in := &r.intake
	if !in.letters.Allow() {
		in.deadSuppressed.Add(1)
		return
	}
	var hdr nats.Header
	if bad.n > 1 {
		hdr = nats.Header{}
		hdr.Set("Sketchd-Invalid-Lines", strconv.Itoa(bad.n))
		hdr.Set("Sketchd-Lines", strings.Join(bad.listing, ","))
	}
	r.publish(r.spec.DeadLetterSubject, bad.body.Bytes(), m, bad.first.line, bad.first.reason, bad.first.detail, hdr)
	in.deadLettered.Add(1)
}
