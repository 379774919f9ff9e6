package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/prometheus/client_golang/prometheus"
)

// DB is the sketchd store: stream specs, panes, key index and checkpoints
// in three Badger databases (families.go). It is safe for concurrent use.
// Commits of one stream are expected from one goroutine at a time (the
// stream's flusher); commits of different streams may run concurrently.
//
// Goroutines: Open starts one background goroutine (retention and
// value-log GC), owned by the DB and stopped by Close. Badger's own
// goroutines stop in Badger's Close.
//
// Locks, in acquisition order: adminMu (CreateStream, DeleteStream) ->
// dropMu (Commit: read; DropPrefix: write) -> stripes[sid%n] (one stream's
// key-index read-modify-write, and every write of its panes to open or
// move out of it: commit, settle, UpdatePane, BackfillPanes) -> regMu,
// stateMu, healthMu, opens.mu, paneMemo.mu (short, leaf).
type DB struct {
	panes *badger.DB // final base panes and what is written with them (families.go)
	open  *badger.DB // base panes ingestion still rewrites (openfam.go)
	meta  *badger.DB // everything else
	dir   string
	log   *slog.Logger
	opts  Options
	met   *metrics

	// stateMu guards closing; inflight counts operations in progress, which
	// Close waits for before closing Badger (Badger iterators panic on a
	// closed DB).
	stateMu  sync.Mutex
	closing  bool
	inflight sync.WaitGroup
	closeOne sync.Once
	closeErr error

	// dropMu keeps DropPrefix (which blocks Badger writes and makes them
	// fail) away from commits.
	dropMu  sync.RWMutex
	stripes [16]sync.Mutex

	adminMu sync.Mutex
	regMu   sync.RWMutex
	byID    map[uint32]StreamInfo
	byName  map[string]uint32

	healthMu sync.Mutex
	writeErr error

	tierRewound  tierMarks     // tier_rewind.go
	tierVersions tierVersions  // tier_version.go
	backfills    backfillMemo  // backfill.go
	restoring    restoringMemo // restoring.go
	paneMemo     paneMemo      // panememo.go: panes key listings saw
	pages        *pageReleaser // pagerelease.go: when table pages are released
	opens        openMarks     // openfam.go: which starts open may hold

	stopLoop context.CancelFunc
	loopDone chan struct{}
}

// Open opens (creating if needed) the store in dir and starts its
// background loop. logger nil discards logs; reg nil registers no metrics.
// The caller must Close the DB.
func Open(dir string, logger *slog.Logger, reg prometheus.Registerer, opts Options) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	if dir == "" && !opts.InMemory {
		return nil, fmt.Errorf("%w: empty directory", ErrInvalid)
	}
	popts, oopts, mopts := opts, opts, opts
	// The caches are the store's: shared 5:1:2 by panes, open and meta.
	if c := opts.IndexCacheSize; c > 0 {
		popts.IndexCacheSize, oopts.IndexCacheSize, mopts.IndexCacheSize = shareCache(c)
	}
	if c := opts.BlockCacheSize; c > 0 {
		popts.BlockCacheSize, oopts.BlockCacheSize, mopts.BlockCacheSize = shareCache(c)
	}
	panes, err := openFamily(dir, popts, logger)
	if err != nil {
		return nil, err
	}
	open, err := openFamily(openDir(dir), oopts, logger)
	if err != nil {
		_ = panes.Close()
		return nil, err
	}
	meta, err := openFamily(metaDir(dir), mopts, logger)
	if err != nil {
		_ = open.Close()
		_ = panes.Close()
		return nil, err
	}
	closeAll := func() { _ = meta.Close(); _ = open.Close(); _ = panes.Close() }
	db := &DB{
		panes:    panes,
		open:     open,
		meta:     meta,
		dir:      dir,
		log:      logger,
		opts:     opts,
		byID:     map[uint32]StreamInfo{},
		byName:   map[string]uint32{},
		loopDone: make(chan struct{}),
	}
	if err := db.init(); err != nil {
		closeAll()
		return nil, err
	}
	m, err := newMetrics(reg, db.size)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("store: register metrics: %w", err)
	}
	db.met = m
	db.pages = newPageReleaser(db)
	ctx, cancel := context.WithCancel(context.Background())
	db.stopLoop = cancel
	go db.loop(ctx)
	return db, nil
}

// shareCache splits a cache of c bytes 5:1:2 between the panes, open and
// meta families, each at least a byte.
func shareCache(c int64) (panes, open, meta int64) {
	return c - c/4 - c/8, max(c/8, 1), max(c/4, 1)
}

// openFamily opens one of the store's Badger databases in dir.
func openFamily(dir string, opts Options, logger *slog.Logger) (*badger.DB, error) {
	if !opts.InMemory {
		if _, err := removeEmptyLogs(dir, logger); err != nil {
			return nil, fmt.Errorf("store: open badger at %q: %w", dir, err)
		}
	}
	bdb, err := badger.Open(opts.badgerOptions(dir, badgerLogger{log: logger}))
	if err != nil {
		return nil, fmt.Errorf("store: open badger at %q: %w", dir, err)
	}
	return bdb, nil
}

// init checks the format markers (writing them into a new store,
// migrating an old one) and loads the stream registry.
func (db *DB) init() error {
	if err := db.initFormat(); err != nil {
		return err
	}
	if err := db.loadOpenMarks(); err != nil {
		return fmt.Errorf("store: open family: %w", err)
	}
	return db.loadStreams()
}

// Close stops the background loop, waits for operations in progress and
// closes Badger. It is idempotent and safe to call concurrently; every call
// returns the first call's result. Operations started after Close return
// ErrClosed.
func (db *DB) Close() error {
	db.closeOne.Do(func() {
		db.stateMu.Lock()
		db.closing = true
		db.stateMu.Unlock()
		db.stopLoop()
		<-db.loopDone
		db.inflight.Wait()
		db.met.unregister()
		// meta last: a pane closed without its checkpoint is replayed
		// over, never the reverse.
		err := db.panes.Close()
		if oerr := db.open.Close(); err == nil {
			err = oerr
		}
		if merr := db.meta.Close(); err == nil {
			err = merr
		}
		if err != nil {
			db.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return db.closeErr
}

// Healthy returns nil while writes work: ErrClosed after Close, and the last
// write error (matching ErrUnavailable) while the most recent write failed.
// Use it for readiness.
func (db *DB) Healthy() error {
	db.stateMu.Lock()
	closing := db.closing
	db.stateMu.Unlock()
	if closing {
		return ErrClosed
	}
	db.healthMu.Lock()
	defer db.healthMu.Unlock()
	return db.writeErr
}

// enter registers an operation in progress, or returns ErrClosed. Every
// successful enter is paired with leave.
func (db *DB) enter() error {
	db.stateMu.Lock()
	defer db.stateMu.Unlock()
	if db.closing {
		return ErrClosed
	}
	db.inflight.Add(1)
	return nil
}

func (db *DB) leave() { db.inflight.Done() }

// enterWrite is enter for writes: a closed DB is also unavailable.
func (db *DB) enterWrite() error {
	if err := db.enter(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// writeFailed records a failed write for Healthy and returns it wrapped in
// ErrUnavailable.
func (db *DB) writeFailed(op string, err error) error {
	err = fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	db.healthMu.Lock()
	db.writeErr = err
	db.healthMu.Unlock()
	return err
}

func (db *DB) writeOK() {
	db.healthMu.Lock()
	db.writeErr = nil
	db.healthMu.Unlock()
}

// readFailed wraps a Badger read error (counted in the metrics).
func (db *DB) readFailed(op string, err error) error {
	if errors.Is(err, badger.ErrDBClosed) {
		err = ErrClosed
	}
	db.met.readError(err)
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func (db *DB) size() (lsm, vlog int64) {
	if db.enter() != nil {
		return 0, 0
	}
	defer db.leave()
	pl, pv := db.panes.Size()
	ol, ov := db.open.Size()
	ml, mv := db.meta.Size()
	return pl + ol + ml, pv + ov + mv
}

// loop is the background goroutine: retention every RetentionInterval
// (and once at start), value-log GC every GCInterval, Badger's
// table-builder pool emptied every BuilderDrainInterval (builders.go),
// tables' pages released every TablePagesInterval while the process's
// file pages are over TablePagesTarget, more often while Badger compacts,
// after a burst or when queries read many tables (pagerelease.go). It
// stops when ctx is cancelled (by Close).
func (db *DB) loop(ctx context.Context) {
	defer close(db.loopDone)
	var retC, gcC <-chan time.Time
	if d := db.opts.RetentionInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		retC = t.C
		db.runRetention(ctx)
	}
	if d := db.opts.GCInterval; d > 0 && !db.opts.InMemory {
		t := time.NewTicker(d)
		defer t.Stop()
		gcC = t.C
	}
	var drainC <-chan time.Time
	pools := []*z.AllocatorPool{builderPool(db.panes), builderPool(db.open), builderPool(db.meta)}
	if d := db.opts.BuilderDrainInterval; d > 0 && !slices.Contains(pools, nil) {
		t := time.NewTicker(d)
		defer t.Stop()
		drainC = t.C
	}
	var pagesC <-chan time.Time
	if db.pages.on {
		t := time.NewTicker(db.opts.TablePagesInterval / ticksPerPass)
		defer t.Stop()
		pagesC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-pagesC:
			// Close stops this loop before it closes Badger.
			db.pages.tick(db)
		case <-db.pages.kick:
			db.pages.quickPass(db)
		case <-retC:
			db.runRetention(ctx)
		case <-gcC:
			db.runGC(ctx)
		case <-drainC:
			// Close stops this loop before it closes Badger (which
			// releases the pool).
			for _, pool := range pools {
				_, bytes := drainBuilders(pool)
				db.met.builderBytes.Add(float64(bytes))
			}
		}
	}
}

// runGC rewrites value-log files until Badger finds nothing worth it.
func (db *DB) runGC(ctx context.Context) {
	if db.enter() != nil {
		return
	}
	defer db.leave()
	for _, bdb := range []*badger.DB{db.panes, db.open, db.meta} {
		for i := 0; i < 16 && ctx.Err() == nil; i++ {
			err := bdb.RunValueLogGC(db.opts.GCDiscardRatio)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					db.log.Warn("value-log GC failed", "err", err)
				}
				break
			}
			db.met.gcRuns.Inc()
		}
	}
}
