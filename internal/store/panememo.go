package store

import "sync"

// paneMemo remembers, per (pane space, partition, key), the newest pane
// start a key listing (TierKeys) found where the asked range cut the key's
// span in that partition, so that later listings need not look into the
// panes again. Looking costs a Badger seek, and a seek copies the whole
// value of each item it lands on (Iterator.fill, even with PrefetchValues
// off); values are inline whole panes, tens of KB. Under a dashboard's
// load that copying was 16% of the bytes the process allocated (a
// listing of the last hour per commit); BenchmarkKeysBigPanes measures it.
//
// Why an entry proves that a reader sees the pane:
//   - Panes are never deleted one by one: only DropPrefix deletes them
//     (retention, DeleteStream, ResetTiers, AlterStream's removed tiers),
//     always through dropPrefixes, which clears the memo and moves its
//     epoch before it drops and moves it again after. (A move from the
//     open family deletes open's copy after it wrote the panes' one: a
//     reader whose open snapshot saw the pane finds it in one of the two,
//     openfam.go.) A listing reads the
//     epoch when it starts and uses or adds entries only while the epoch
//     is still that one and even (no drop began since the listing did, and
//     none was running then). Stream IDs are not reused.
//   - An entry holds the Badger version at which the pane was read (its
//     family's commit timestamp); a reader whose pane snapshot has a read
//     timestamp at least that version sees the pane, as its own seek
//     would. A reader with an older snapshot seeks.
//
// The newest start is kept because it stays inside a range that slides
// forward (the last hour) the longest.
//
// Bound: an entry costs its key (the pane key's head: 15 bytes and the
// stream's key) + memoEntryOverhead bytes, at most maxMemoBytes in all
// (4 MiB: some 35,000 keys of 40 bytes, every key of a dashboard's
// streams for one or two partitions each); an entry that would pass it
// clears the memo first (it starts over, for every stream: a listing then
// seeks as it would without the memo).
type paneMemo struct {
	mu    sync.Mutex
	epoch uint64 // odd while a drop runs
	m     map[string]paneSeen
	bytes int
}

// paneSeen is a pane a listing saw: its start and Badger version, of the
// open family's if open (openfam.go), else of its space's family.
type paneSeen struct {
	start   int64
	version uint64
	open    bool
}

const (
	maxMemoBytes      = 4 << 20
	memoEntryOverhead = 64 // map slot, string header and the key's allocation rounding
)

// current returns the epoch a listing starts in.
func (m *paneMemo) current() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.epoch
}

// dropping clears the memo before a DropPrefix; dropped ends the drop.
// Both run under dropMu.
func (m *paneMemo) dropping() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
	clear(m.m)
	m.bytes = 0
}

func (m *paneMemo) dropped() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch++
}

// lookup returns the entry of key (a pane key without its start) for a
// listing that started in epoch.
func (m *paneMemo) lookup(key []byte, epoch uint64) (paneSeen, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch != m.epoch || epoch%2 != 0 {
		return paneSeen{}, false
	}
	s, ok := m.m[string(key)]
	return s, ok
}

// add records that a listing that started in epoch saw the pane s of key,
// unless the entry has a newer pane already (or the same one at an older
// version of the same family, valid for more readers; of the two
// families', the panes', which a move does not delete).
func (m *paneMemo) add(key []byte, epoch uint64, s paneSeen) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch != m.epoch || epoch%2 != 0 {
		return
	}
	if old, ok := m.m[string(key)]; ok {
		keep := old.open == s.open && old.version <= s.version || !old.open && s.open
		if old.start > s.start || old.start == s.start && keep {
			return
		}
		m.m[string(key)] = s
		return
	}
	size := len(key) + memoEntryOverhead
	if m.m == nil || m.bytes+size > maxMemoBytes {
		m.m = map[string]paneSeen{}
		m.bytes = 0
	}
	m.m[string(key)] = s
	m.bytes += size
}
