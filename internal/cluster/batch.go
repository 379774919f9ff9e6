package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The atomic batch publish protocol (ADR-50, nats-server 2.12+): every
// message carries the batch id and its 1-based sequence, the last one
// also the commit header; the server stores all or none of them and
// answers the commit with one publish ack. orbit.go's jetstreamext
// (publishbatch.go) is the reference; these few lines avoid a dependency.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// batchAck is the server's answer to a batch commit.
type batchAck struct {
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"`
	Batch  string              `json:"batch"`
	Count  uint64              `json:"count"`
	Error  *jetstream.APIError `json:"error,omitempty"`
}

// publishAtomic publishes msgs (headers set by the caller, each non-nil)
// as one atomic batch and returns the stream sequence of the last one. The
// first message is a request too, so a stream that refuses batches fails
// fast; the rest are plain publishes on the same connection, in order.
// Server errors come back as *jetstream.APIError. A timeout leaves the
// outcome unknown: the batch may have been stored.
func publishAtomic(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg, timeout time.Duration) (uint64, error) {
	if len(msgs) == 0 {
		return 0, errors.New("cluster: empty batch")
	}
	id := rand.Text() // 26 characters; the server allows 64
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		switch {
		case i == len(msgs)-1:
			m.Header.Set(hdrBatchCommit, "1")
			return commitBatch(ctx, nc, m, id, len(msgs), timeout)
		case i == 0:
			resp, err := nc.RequestMsg(m, timeout)
			if err != nil {
				return 0, fmt.Errorf("cluster: batch start: %w", err)
			}
			if err := apiError(resp.Data); err != nil {
				return 0, err
			}
		default:
			if err := nc.PublishMsg(m); err != nil {
				return 0, fmt.Errorf("cluster: batch message %d: %w", i+1, err)
			}
		}
	}
	panic("unreachable")
}

func commitBatch(ctx context.Context, nc *nats.Conn, m *nats.Msg, id string, n int, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("cluster: batch commit: %w", err)
	}
	var ack batchAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("cluster: batch commit: %w", jetstream.ErrInvalidJSAck)
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.Batch != id || ack.Count != uint64(n) || ack.Seq == 0 {
		return 0, fmt.Errorf("cluster: batch commit: ack for batch %q of %d, sent %q of %d", ack.Batch, ack.Count, id, n)
	}
	return ack.Seq, nil
}

// apiError returns the API error of a flow-control reply (empty when the
// message was accepted into the batch).
func apiError(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	var r struct {
		Error *jetstream.APIError `json:"error,omitempty"`
	}
	if json.Unmarshal(data, &r) == nil && r.Error != nil {
		return r.Error
	}
	return nil
}

// errCodeWrongLastSequenceBusy is nats-server's "wrong last sequence"
// without a sequence (JSStreamWrongLastSequenceConstantErr): a batch's
// fence could not be checked because a message of the same subject was
// still being stored (a resent batch whose first copy is still in
// process, or the previous commit's record not yet applied), or because
// the batch itself wrote the subject before. The fence did not pass;
// a moment later the subject's last sequence says why.
const errCodeWrongLastSequenceBusy jetstream.ErrorCode = 10164

// isWrongLastSequence: the fence (expected last subject sequence) failed,
// or could not be checked yet (wrongLastSequenceBusy).
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == errCodeWrongLastSequenceBusy)
}

// wrongLastSequenceBusy: the fence could not be checked because its
// subject was busy (errCodeWrongLastSequenceBusy).
func wrongLastSequenceBusy(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSequenceBusy
}
