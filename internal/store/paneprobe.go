package store

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// paneProbe answers, for one TierKeys listing, whether a key has a pane in
// a range of one partition: from the memo (panememo.go) when it holds a
// pane the listing's snapshot sees, else from the panes, whose answer (the
// key's newest pane in the range: it stays in a range that slides forward
// the longest) goes into the memo. Each seek copies about one pane value
// (Badger's Iterator.fill into a fresh item), a reverse seek two: the
// probe seeks forward to the key index's newest start when it is in the
// range (the newest pane there, unless its commit has not written it yet)
// and only else back from the range's end.
type paneProbe struct {
	db    *DB
	sp    space
	epoch uint64 // the memo's, when the listing started

	// The panes' snapshot, opened on the first question: after the key
	// index's (a commit writes the index first), and after the open
	// family's (base panes only: openfam.go), whose openSince is read
	// between the two. The iterators are opened on their first use.
	txn      *badger.Txn
	fwd, rev *badger.Iterator
	seek     []byte
	otxn     *badger.Txn
	orev     *badger.Iterator
	since    int64

	memoHits, seeks int // counted into the metrics at close
}

// newPaneProbe reads the memo's epoch now, before has opens the panes'
// snapshot: an entry is used only if no drop began since the epoch was
// read, so none began after the snapshot either, and the pane it names is
// in the snapshot when the snapshot holds its version.
func newPaneProbe(db *DB, sp space) *paneProbe {
	return &paneProbe{db: db, sp: sp, epoch: db.paneMemo.current()}
}

// has reports whether key has a pane in partition p with lo <= start < to;
// indexHi is the newest start the key index holds for it there.
func (pr *paneProbe) has(p int64, key string, lo, indexHi, to int64) bool {
	if pr.txn == nil {
		pr.since = math.MaxInt64
		if pr.sp.pane[0] == prefixPane {
			pr.otxn = pr.db.open.NewTransaction(false)
			pr.since = pr.db.opens.sinceOf(sidOfHead(pr.sp.pane))
		}
		pr.txn = pr.db.paneFamily(pr.sp).NewTransaction(false)
	}
	last := min(to-1, partitionStart(p+1, pr.sp.width)-1)
	if last < lo {
		return false
	}
	pr.seek = pr.sp.appendPaneKey(pr.seek[:0], p, key, last)
	head := pr.seek[:len(pr.seek)-8] // space part klen key
	if s, ok := pr.db.paneMemo.lookup(head, pr.epoch); ok &&
		lo <= s.start && s.start <= last && s.version <= pr.readTs(s.open) {
		pr.memoHits++
		return true
	}
	pr.seeks++
	// A live key's newest pane is open's: look there first when the key
	// index's newest start may be, then in the panes.
	var s paneSeen
	ok := false
	if last >= pr.since && indexHi >= pr.since {
		s, ok = pr.openNewest(head, max(lo, pr.since), last)
	}
	if !ok {
		s, ok = pr.newest(head, lo, indexHi, last)
	}
	if !ok && last >= pr.since && indexHi < pr.since {
		s, ok = pr.openNewest(head, max(lo, pr.since), last)
	}
	if ok {
		pr.db.paneMemo.add(head, pr.epoch, s)
	}
	return ok
}

// readTs is the read timestamp of the probe's open snapshot (open) or of
// its panes' one.
func (pr *paneProbe) readTs(open bool) uint64 {
	if open {
		if pr.otxn == nil {
			return 0
		}
		return pr.otxn.ReadTs()
	}
	return pr.txn.ReadTs()
}

// openNewest returns the newest pane of head the open family holds with
// lo <= start <= last.
func (pr *paneProbe) openNewest(head []byte, lo, last int64) (paneSeen, bool) {
	if pr.orev == nil {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Reverse = true
		opt.Prefix = pr.sp.pane
		pr.orev = pr.otxn.NewIterator(opt)
	}
	pr.seek = binary.BigEndian.AppendUint64(pr.seek[:len(head)], flip(last))
	pr.orev.Seek(pr.seek)
	if !pr.orev.Valid() || !bytes.HasPrefix(pr.orev.Item().Key(), head) {
		return paneSeen{}, false
	}
	item := pr.orev.Item()
	_, _, start, ok := pr.sp.parsePaneKey(item.Key())
	return paneSeen{start: start, version: item.Version(), open: true}, ok && start >= lo
}

// newest returns the newest pane of head (a pane key without its start)
// with lo <= start <= last; indexHi is the key index's newest start.
func (pr *paneProbe) newest(head []byte, lo, indexHi, last int64) (paneSeen, bool) {
	if lo <= indexHi && indexHi <= last {
		pr.seek = binary.BigEndian.AppendUint64(pr.seek[:len(head)], flip(indexHi))
		if s, ok := pr.seekPane(&pr.fwd, false, head); ok && s.start <= last {
			return s, true // indexHi, or a newer pane the index did not have yet
		}
	}
	pr.seek = binary.BigEndian.AppendUint64(pr.seek[:len(head)], flip(last))
	s, ok := pr.seekPane(&pr.rev, true, head)
	return s, ok && s.start >= lo
}

// seekPane seeks *it (opened on first use, reverse or not) to pr.seek and
// returns the pane of head it lands on.
func (pr *paneProbe) seekPane(it **badger.Iterator, reverse bool, head []byte) (paneSeen, bool) {
	if *it == nil {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Reverse = reverse
		opt.Prefix = pr.sp.pane
		*it = pr.txn.NewIterator(opt)
	}
	(*it).Seek(pr.seek)
	if !(*it).Valid() {
		return paneSeen{}, false
	}
	item := (*it).Item()
	if !bytes.HasPrefix(item.Key(), head) {
		return paneSeen{}, false
	}
	_, _, start, ok := pr.sp.parsePaneKey(item.Key())
	return paneSeen{start: start, version: item.Version()}, ok
}

// close releases the snapshot and counts the probes.
func (pr *paneProbe) close() {
	pr.db.met.probeMemo.Add(float64(pr.memoHits))
	pr.db.met.probeSeek.Add(float64(pr.seeks))
	for _, it := range []*badger.Iterator{pr.fwd, pr.rev, pr.orev} {
		if it != nil {
			it.Close()
		}
	}
	for _, txn := range []*badger.Txn{pr.txn, pr.otxn} {
		if txn != nil {
			txn.Discard()
		}
	}
}
