package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A registry create is the publish kv.Create makes (the value on the
// key's subject, expecting the key's last sequence to be 0, or a delete
// marker's), with one thing more: a Nats-Msg-Id picked once per create
// and sent with every attempt. A resend of an attempt that landed unseen
// (its answer lost while the bucket's leader changed) then knows the
// entry is its own, whatever the value, and any other creator's entry
// is not (nats-server v2.15.2; TestKeyCreateResend and
// TestRegistryCreateAnswersLost take both paths):
//   - a replicated bucket (R3) checks the id before the expected
//     sequence (checkMsgHeadersPreClusteredProposal): the resend is
//     answered as a duplicate, with the original's sequence, or, while
//     the original is proposed but not stored, "duplicate message id is
//     in process" (10158), which is asked again;
//   - a single server checks the expected sequence first
//     (processJetStreamMsg), so the resend fails "wrong last sequence";
//     the key's last message then carries our id.
//
// The duplicate window is the bucket stream's (nats.go sets 2 minutes);
// past it the id in the stored message still decides. The value is the
// spec's JSON as before (no creator field in it: sketchd.Stream's decoder
// refuses unknown fields), and readers ignore the header.
const (
	// hdrKVOperation marks a KV delete or purge (nats.go's kvop; its
	// values kvdel and kvpurge).
	hdrKVOperation = "KV-Operation"
	kvOpDelete     = "DEL"
	kvOpPurge      = "PURGE"
	// errCodeDuplicateInProcess is nats-server's
	// JSStreamDuplicateMessageConflict: a message with this id is being
	// stored (proposed, not yet applied).
	errCodeDuplicateInProcess jetstream.ErrorCode = 10158
)

// keyCreate is one Create of a registry key: every attempt publishes the
// same value with the same id.
type keyCreate struct {
	js      jetstream.JetStream
	bucket  jetstream.Stream // the bucket's stream: the key's last message, headers included
	subject string
	value   []byte
	id      string
	last    uint64 // the key's last sequence the write expects: 0, or a delete marker's
}

// newKeyCreate prepares the create of key with value in the bucket whose
// key subjects start with prefix ("$KV.<bucket>.").
func newKeyCreate(js jetstream.JetStream, bucket jetstream.Stream, prefix, key string, value []byte) (*keyCreate, error) {
	if !keyValid(key) {
		return nil, fmt.Errorf("%w: %q", jetstream.ErrInvalidKey, key)
	}
	return &keyCreate{js: js, bucket: bucket, subject: prefix + key, value: value, id: rand.Text()}, nil
}

// keyValid: key is one subject token of a KV key (nats.go's keyValid
// allows dots; a stream name has none).
func keyValid(key string) bool {
	return key != "" && !strings.ContainsAny(key, ".*> \t\r\n")
}

// attempt writes the key once and returns the entry's revision. When the
// bucket refuses the write for the key's last sequence, the key's last
// message decides: our own write (our id: an earlier attempt landed), a
// delete marker (the name was deleted: write again expecting it), or
// another creator's entry (the wrong-last-sequence error: the name
// exists). A write of another creator in flight on the key (10164) is
// the same. Unanswered attempts are the caller's to resend (retryAdmin).
func (c *keyCreate) attempt(ctx context.Context) (uint64, error) {
	for {
		seq, err := c.publish(ctx)
		switch {
		case isDuplicateInProcess(err):
			if !sleepCtx(ctx, 20*time.Millisecond) {
				return 0, ctx.Err()
			}
		case isWrongLastSequence(err) && !wrongLastSequenceBusy(err):
			m, gerr := leaderLast(ctx, c.js, c.bucket.CachedInfo().Config.Name, c.subject)
			switch {
			case gerr != nil && !errors.Is(gerr, jetstream.ErrMsgNotFound):
				return 0, gerr
			case gerr != nil:
				return 0, err
			case m.Header.Get(jetstream.MsgIDHeader) == c.id:
				return m.Sequence, nil
			case deleteMarker(m) && m.Sequence > c.last:
				c.last = m.Sequence
			default:
				return 0, err
			}
		default:
			return seq, err
		}
	}
}

// publish sends the write with the create's id and expectation; a
// duplicate's ack carries the original's sequence.
func (c *keyCreate) publish(ctx context.Context) (uint64, error) {
	m := nats.NewMsg(c.subject)
	m.Data = c.value
	ack, err := c.js.PublishMsg(ctx, m, jetstream.WithMsgID(c.id), jetstream.WithExpectLastSequencePerSubject(c.last))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

func deleteMarker(m *jetstream.RawStreamMsg) bool {
	op := m.Header.Get(hdrKVOperation)
	return op == kvOpDelete || op == kvOpPurge
}

func isDuplicateInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess
}
