package cluster

// Who owns each partition, as the changelog says (docs/scale-out.md §2.2):
// the owner of a partition's last checkpoint record. The mirror reads
// every record of the changelog, those of the partitions it holds too, so
// it follows every claim as it is appended; before its first pass it
// reads each partition's last record directly (with
// max_msgs_per_subject 1 a fresh pass would only see the last record, and
// a pass that resumes may not see it at all). A claim is the record that
// raises the epoch; an owner change is a claim whose owner differs from
// the record before it (a partition's first claim included). Claims
// compacted away before the mirror read them are not seen.

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// partOwner is one partition's last checkpoint record as the mirror knows
// it.
type partOwner struct {
	known bool   // read (or found absent) at least once
	seq   uint64 // the record's changelog sequence; 0: no record yet
	owner string
	epoch uint64
}

// Owner returns the instance named by partition p's last checkpoint
// record as this mirror has read it, and its claim epoch; "" and 0 when
// the partition has no record yet or the mirror has not read it yet.
// Safe from any goroutine.
func (m *Mirror) Owner(p int) (owner string, epoch uint64) {
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	if p < 0 || p >= len(m.owners) {
		return "", 0
	}
	return m.owners[p].owner, m.owners[p].epoch
}

// OwnerChanges counts the claims the mirror has seen that changed a
// partition's owner (a first claim included), since it was made.
func (m *Mirror) OwnerChanges() uint64 { return m.ownerChanges.Load() }

// loadOwners reads the last record of every partition whose owner is not
// known yet; best effort (a failure leaves it unknown, tried again at the
// next pass).
func (m *Mirror) loadOwners(ctx context.Context, s jetstream.Stream) {
	for p := range m.sids {
		m.ownMu.Lock()
		known := m.owners[p].known
		m.ownMu.Unlock()
		if known {
			continue
		}
		msg, err := lastForSubject(ctx, s, m.cl.CheckpointSubject(p))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			m.noteRecord(p, 0, nil)
		case err != nil:
			continue
		default:
			if rec, err := decodeRecord(msg.Data); err == nil {
				m.noteRecord(p, msg.Sequence, &rec)
			}
		}
	}
}

// noteRecord takes partition p's checkpoint record rec at sequence seq
// (nil: p has none) into the owners, counting an owner change. Records at
// or before the last one known are ignored (a rewind reads them again).
func (m *Mirror) noteRecord(p int, seq uint64, rec *Record) {
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	o := &m.owners[p]
	if o.known && seq <= o.seq {
		return
	}
	wasKnown := o.known
	o.known, o.seq = true, seq
	if rec == nil {
		return
	}
	if wasKnown && rec.Epoch > o.epoch && rec.Owner != o.owner {
		m.ownerChanges.Add(1)
	}
	o.owner, o.epoch = rec.Owner, rec.Epoch
}
