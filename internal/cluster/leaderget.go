package cluster

import (
	"context"
	"errors"
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
// which has applied every write it acknowledged. So do the changelog
// writer's reads of its partition's last checkpoint record (Writer.
// lastRecord): a claim fences on it, a commit refused by its fence
// decides from it whether it was fenced out (a record a replica had not
// applied yet would read as another owner's), and a claim waits for the
// local mirror to apply it. nats.go's jetstream
// package gets directly whenever the stream allows it; its older
// JetStreamContext.GetLastMsg asks the leader unless told otherwise.

// leaderAttempt bounds one get from the leader. While the stream elects
// a leader (a node lost) its replicas ignore the request, which is not
// "no responders" but no answer: an attempt then waits out its bound. A
// short one, sent again (retryAttempts) for up to leaderWait, returns soon
// after the new leader is there, where a direct get from any replica did
// not wait at all and one attempt of adminAttempt could wait 10 s past it
// (TestLeaderReadResent).
const leaderAttempt = 2 * time.Second

// leaderWait bounds all attempts of one leaderLast.
const leaderWait = adminAttempt

// leaderLast returns the last message on subject in stream, as its leader
// has it; jetstream.ErrMsgNotFound when there is none. An unanswered get
// (no responders, a timed-out attempt) is sent again for up to leaderWait
// or until ctx is done.
func leaderLast(ctx context.Context, js jetstream.JetStream, stream, subject string) (*jetstream.RawStreamMsg, error) {
	legacy, err := js.Conn().JetStream()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	var last *jetstream.RawStreamMsg
	err = retryAttempts(wctx, leaderAttempt, func(actx context.Context) error {
		m, err := legacy.GetLastMsg(stream, subject, nats.Context(actx))
		switch {
		case errors.Is(err, nats.ErrMsgNotFound):
			return jetstream.ErrMsgNotFound
		case err != nil:
			return err
		}
		last = &jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Sequence, Header: m.Header, Data: m.Data, Time: m.Time}
		return nil
	})
	return last, err
}
