package cluster

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A registry bucket allows direct gets (nats.go's KV default), which any
// replica answers, a follower possibly behind the leader: a Create just
// after another instance's Delete read the deleted spec from one and was
// refused with ErrStreamExists (TestRegistry, in CI on 2026-12-07; the
// "spurious 409s" of earlier notes). The registry's reads that decide a
// create go to the stream's leader instead ($JS.API.STREAM.MSG.GET),
// which has applied every write it acknowledged. So do the changelog
// writer's reads of its partition's last checkpoint record (Writer.
// lastRecord): a claim fences on it, a commit refused by its fence
// decides from it whether it was fenced out (a record a replica had not
// applied yet would read as another owner's), and a claim waits for the
// local mirror to apply it. nats.go's jetstream
// package gets directly whenever the stream allows it; its older
// JetStreamContext.GetLastMsg asks the leader unless told otherwise.

// leaderLast returns the last message on subject in stream, as its leader
// has it; jetstream.ErrMsgNotFound when there is none. No responders is
// retried as for lastForSubject (getRetried).
func leaderLast(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	legacy, err := js.Conn().JetStream()
	if err != nil {
		return nil, err
	}
	return getRetried(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		m, err := legacy.GetLastMsg(stream, subject, nats.Context(ctx))
		switch {
		case errors.Is(err, nats.ErrMsgNotFound):
			return nil, jetstream.ErrMsgNotFound
		case err != nil:
			return nil, err
		}
		return &jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Sequence, Header: m.Header, Data: m.Data, Time: m.Time}, nil
	})
}
