package emit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/query"
)

// outMsg is one message to publish.
type outMsg struct {
	id     string
	body   []byte
	events uint64
	seen   *seenKey // recorded in target.seen once confirmed (close and late passes)
}

// msgID is a message's Nats-Msg-Id: the same for the same stream (name
// and id), target subject, aggregate, group, window start and revision,
// so that a message published again after a crash is dropped by the
// target stream's duplicate window. The revision of a final message is
// "final"; that of a message published before (at close, or for late
// events) is the window's exact event count, which every late event
// applied to it raises.
func msgID(tgt query.Target, subject, agg, group string, start int64, w *query.Window, p pass) string {
	rev := "final"
	if p != passFinal {
		rev = "e" + strconv.FormatUint(w.Events, 10)
	}
	h := sha256.Sum256([]byte(subject + "\x00" + group))
	return fmt.Sprintf("%s.%d/%s/%d/%s/%s", tgt.Spec.Name, tgt.ID, agg, start, hex.EncodeToString(h[:8]), rev)
}

// groupKey is a group's values in the order of dims, encoded as a key.
func groupKey(dims []string, key map[string]string) string {
	vals := make([]string, len(dims))
	for i, d := range dims {
		vals[i] = key[d]
	}
	return sketchd.EncodeKey(vals...)
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }

// prepare parses the target's parameters and, for a JetStream target,
// makes sure a JetStream stream captures its subject (creating
// "SKETCHD_EMIT_" + the subject, with Options.DuplicateWindow, when none
// does). Done once per emitter; an error is retried next time.
func (t *target) prepare(ctx context.Context) error {
	nc := t.e.s.conn()
	if t.ready && (t.js == nil || t.nc == nc) {
		return nil
	}
	plan, err := t.e.s.renderer.Plan(&t.e.spec, &t.spec, t.field)
	if err != nil {
		return err
	}
	t.plan = plan
	if t.spec.UsesJetStream() {
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(t.e.s.opts.MaxPending))
		if err != nil {
			return err
		}
		if err := t.ensureStream(ctx, js); err != nil {
			return err
		}
		t.js, t.nc = js, nc
	}
	t.ready = true
	return nil
}

// ensureStream creates a JetStream stream for the target's subject when
// none captures it.
func (t *target) ensureStream(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, t.e.s.opts.PublishTimeout)
	defer cancel()
	_, err := js.StreamNameBySubject(ctx, t.spec.Subject)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		if err != nil {
			return fmt.Errorf("find the JetStream stream of %q: %w", t.spec.Subject, err)
		}
		return nil
	}
	name := "SKETCHD_EMIT_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(t.spec.Subject))
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{t.spec.Subject}, Storage: jetstream.FileStorage,
		Duplicates: t.e.s.opts.DuplicateWindow, MaxAge: 7 * 24 * time.Hour,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create JetStream stream %s for %q: %w", name, t.spec.Subject, err)
	}
	t.e.log.Info("emit: created a JetStream stream for the target", "jetstream_stream", name, "subject", t.spec.Subject)
	return nil
}

// publish publishes msgs in order and waits until NATS confirms them: the
// JetStream acks (MaxPending at a time), or a core flush.
func (t *target) publish(ctx context.Context, msgs []outMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.e.s.opts.PublishTimeout)
	defer cancel()
	if t.js == nil {
		nc := t.e.s.conn()
		for _, m := range msgs {
			if err := nc.PublishMsg(t.natsMsg(m)); err != nil {
				return fmt.Errorf("publish to %q: %w", t.spec.Subject, err)
			}
		}
		if err := nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("publish to %q: not confirmed: %w", t.spec.Subject, err)
		}
		t.messages.Add(uint64(len(msgs)))
		return nil
	}
	for lo := 0; lo < len(msgs); lo += t.e.s.opts.MaxPending {
		chunk := msgs[lo:min(lo+t.e.s.opts.MaxPending, len(msgs))]
		futs := make([]jetstream.PubAckFuture, 0, len(chunk))
		for _, m := range chunk {
			f, err := t.js.PublishMsgAsync(t.natsMsg(m))
			if err != nil {
				return fmt.Errorf("publish to %q: %w", t.spec.Subject, err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case ack := <-f.Ok():
				t.messages.Add(1)
				if ack.Duplicate {
					t.dups.Add(1)
				}
			case err := <-f.Err():
				return fmt.Errorf("publish to %q: %w", t.spec.Subject, err)
			case <-ctx.Done():
				return fmt.Errorf("publish to %q: no JetStream ack: %w", t.spec.Subject, ctx.Err())
			}
		}
	}
	return nil
}

func (t *target) natsMsg(m outMsg) *nats.Msg {
	msg := nats.NewMsg(t.spec.Subject)
	msg.Data = m.body
	msg.Header.Set(jetstream.MsgIDHeader, m.id)
	msg.Header.Set("Content-Type", "application/json")
	return msg
}
