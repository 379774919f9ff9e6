package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A registry bucket allows direct gets (nats.go's KV default), which any
// replica answers, a follower possibly behind the leader: a Create just
// after another instance's Delete read the deleted spec from one and was
// refused with ErrStreamExists (TestRegistry, in CI on 2026-12-07; the
// "spurious 409s" of earlier notes). The registry's reads that decide a
// create go to the stream's leader instead ($JS.API.STREAM.MSG.GET),
// which has applied every write it acknowledged.

// errCodeNoMessage is nats-server's JSNoMessageFoundErr.
const errCodeNoMessage jetstream.ErrorCode = 10037

// leaderLast returns the last message on subject in stream, as its leader
// has it; jetstream.ErrMsgNotFound when there is none. No responders is
// retried as for lastForSubject (getRetried).
func leaderLast(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return nil, err
	}
	return getRetried(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return leaderGet(ctx, js.Conn(), "$JS.API.STREAM.MSG.GET."+stream, req)
	})
}

// leaderGet sends one message-get request and decodes its answer.
func leaderGet(ctx context.Context, nc *nats.Conn, subject string, req []byte) (*jetstream.RawStreamMsg, error) {
	reply, err := nc.RequestWithContext(ctx, subject, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs,omitempty"`
			Data     []byte    `json:"data,omitempty"`
			Time     time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("cluster: message get answer: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == errCodeNoMessage:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	m := &jetstream.RawStreamMsg{Subject: resp.Message.Subject, Sequence: resp.Message.Sequence, Data: resp.Message.Data, Time: resp.Message.Time}
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("cluster: message get answer's headers: %w", err)
		}
	}
	return m, nil
}
