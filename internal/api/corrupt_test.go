package api

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/syncbuf"
)

// paneBadgerKey builds a pane's Badger key as docs/format.md lays it out:
// 'P' | sid u32 | part fi64 | klen u16 | key | start fi64, with
// part = floor(start / 24h): the partition width of a stream created with
// the default PartitionSpan (a day) whose panes divide a day. The panes
// are in the panes family, the store's directory itself.
func paneBadgerKey(sid uint32, key string, start int64) []byte {
	const day = int64(24 * time.Hour)
	part := start / day
	if start%day != 0 && start < 0 {
		part--
	}
	b := []byte{'P'}
	b = binary.BigEndian.AppendUint32(b, sid)
	b = binary.BigEndian.AppendUint64(b, uint64(part)^(1<<63))
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	return binary.BigEndian.AppendUint64(b, uint64(start)^(1<<63))
}

// rewriteValue opens the closed store's directory with Badger directly and
// replaces the value under key by edit(value). It fails the test if the key
// is not there: then the layout in docs/format.md and the store disagree.
func rewriteValue(tb testing.TB, dir string, key []byte, edit func([]byte) []byte) {
	tb.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		tb.Fatalf("badger.Open: %v", err)
	}
	defer func() {
		if err := bdb.Close(); err != nil {
			tb.Fatal(err)
		}
	}()
	err = bdb.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		return txn.Set(key, edit(v))
	})
	if err != nil {
		tb.Fatalf("rewrite %x: %v", key, err)
	}
}

// flipInBlob flips one byte in the middle of sketch blob i of a pane value
// (version | flags | events | applied | n | (len | blob)* | crc). With
// fixCRC, the value's CRC-32C is recomputed, so the store accepts the value
// and the sketch's own checksum has to catch it.
func flipInBlob(tb testing.TB, v []byte, i int, fixCRC bool) []byte {
	tb.Helper()
	off := 22
	for j := 0; ; j++ {
		if off+4 > len(v)-4 {
			tb.Fatalf("pane value has no blob %d", i)
		}
		n := int(binary.BigEndian.Uint32(v[off:]))
		if j == i {
			if n == 0 {
				tb.Fatalf("blob %d is empty", i)
			}
			v[off+4+n/2] ^= 0x5a
			break
		}
		off += 4 + n
	}
	if fixCRC {
		body := len(v) - 4
		binary.BigEndian.PutUint32(v[body:], crc32.Checksum(v[:body], crc32.MakeTable(crc32.Castagnoli)))
	}
	return v
}

// TestCorruptPane corrupts one stored pane value of one key in the real
// Badger store and checks that exactly the requests reading it fail, with
// 500 corrupt_data (logged with the request id and the value's key), while
// every other key and time range answers as before, byte for byte.
func TestCorruptPane(t *testing.T) {
	badStart := t0.Add(30 * time.Minute) // a pane of (de, mobile)
	whole := rangeQuery(fullFrom, fullTo)
	type req struct {
		name, target string
		touches      bool // reads the corrupt value
	}
	// AggregateNames order: latency, sample, urls, users.
	const usersBlob = 3
	tests := []struct {
		name string
		edit func(tb testing.TB, v []byte) []byte
		reqs []req
	}{
		{
			name: "store checksum",
			edit: func(tb testing.TB, v []byte) []byte { return flipInBlob(tb, v, usersBlob, false) },
			reqs: []req{
				{"the key over the whole range", aggPath + "users?" + join(whole, "where=country=de", "where=device=mobile"), true},
				{"every key over a sub-range holding it", aggPath + "urls?" + rangeQuery(subFrom, subTo), true},
				{"grouped step series", aggPath + "latency?" + join(whole, "step=10m", "group_by=country"), true},
				{"sketch endpoint", aggPath + "sample/sketch?" + join(whole, "where=country=de"), true},
				{"another key", aggPath + "users?" + join(whole, "where=country=fr"), false},
				{"another device", aggPath + "urls?" + join(whole, "where=device=desktop", "top=3"), false},
				{"the key before the bad pane", aggPath + "users?" + join(rangeQuery(fullFrom, badStart), "where=country=de", "where=device=mobile"), false},
				{"the key after the bad pane", aggPath + "latency?" + join(rangeQuery(badStart.Add(time.Minute), fullTo), "where=country=de", "where=device=mobile"), false},
				{"keys listing (index only)", "/v1/streams/pageviews/keys?" + whole, false},
			},
		},
		{
			name: "sketch checksum under a valid store checksum",
			edit: func(tb testing.TB, v []byte) []byte { return flipInBlob(tb, v, usersBlob, true) },
			reqs: []req{
				{"the bad aggregate", aggPath + "users?" + join(whole, "where=country=de"), true},
				{"the bad aggregate's sketch", aggPath + "users/sketch?" + whole, true},
				{"another aggregate of the same pane", aggPath + "latency?" + join(whole, "where=country=de"), false},
				{"another key", aggPath + "users?" + join(whole, "where=country=us"), false},
			},
		},
	}
	logs := &syncbuf.Buffer{}
	f := newStoreFixture(t, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	// Each answer compared is the first of a fresh querier (f.serve): the
	// querier's pane cache must not make two answers differ here.
	fresh := func(target string) response {
		t.Helper()
		f.serve(t, f.fixture)
		return f.get(t, target)
	}
	before := map[string][]byte{}
	for _, tt := range tests {
		for _, r := range tt.reqs {
			resp := fresh(r.target)
			if resp.status != 200 {
				t.Fatalf("%s before corruption: %d %s", r.name, resp.status, resp.body)
			}
			before[r.target] = resp.body
		}
	}
	key := paneBadgerKey(f.info.ID, sketchd.EncodeKey("de", "mobile"), badStart.UnixNano())
	var original []byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case corrupts the original value in its own way.
			f.reopen(t, func(dir string) {
				rewriteValue(t, dir, key, func(v []byte) []byte {
					if original == nil {
						original = bytes.Clone(v)
					}
					return tt.edit(t, bytes.Clone(original))
				})
			})
			for _, r := range tt.reqs {
				resp := fresh(r.target)
				if !r.touches {
					if resp.status != 200 || !bytes.Equal(resp.body, before[r.target]) {
						t.Errorf("%s: %d, answer changed by corruption it does not read:\n%s\nwant\n%s", r.name, resp.status, resp.body, before[r.target])
					}
					continue
				}
				if resp.status != 500 {
					t.Errorf("%s: status %d, want 500: %s", r.name, resp.status, resp.body)
					continue
				}
				p := resp.problem(t)
				if p.Code != "corrupt_data" || p.Type != problemTypeBase+"corrupt_data" || p.Title == "" {
					t.Errorf("%s: problem %+v, want code corrupt_data", r.name, p)
				}
				if strings.Contains(string(resp.body), hex.EncodeToString(key[:8])) || strings.Contains(string(resp.body), "computed") {
					t.Errorf("%s: storage details in the answer: %s", r.name, resp.body)
				}
				if !strings.Contains(logs.String(), p.RequestID) {
					t.Errorf("%s: request id %s not logged", r.name, p.RequestID)
				}
			}
			if tt.name == "store checksum" && !strings.Contains(logs.String(), "corrupt value at key "+hex.EncodeToString(key[:32])) {
				t.Errorf("the log does not name the corrupt value's key %x:\n%s", key, logs.String())
			}
		})
	}
}
