package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/sketchd/sketchd"
)

// Sentinel errors. ErrNotFound, ErrExists, ErrUnavailable and ErrCorrupt
// wrap the root package's sentinels of the same names, so callers outside
// the store (the API) can test errors.Is(err, sketchd.ErrNotFound) without
// importing the store (and Badger). Every error the store
// returns either is one of these or wraps one (use errors.Is), except ctx
// errors and callback errors, which are returned as they are.
var (
	// ErrNotFound reports a stream (by name or ID) that does not exist.
	ErrNotFound = fmt.Errorf("store: %w", sketchd.ErrNotFound)
	// ErrExists reports a stream name that is already taken.
	ErrExists = fmt.Errorf("store: %w", sketchd.ErrExists)
	// ErrClosed reports an operation on a closed DB. Writes on a closed DB
	// return an error that matches both ErrClosed and ErrUnavailable.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable reports a write that failed (Badger error, disk full,
	// closed DB): nothing may be acknowledged on its strength. The cause is
	// wrapped too. Healthy reports it until a later write succeeds.
	ErrUnavailable = fmt.Errorf("store: %w", sketchd.ErrUnavailable)
	// ErrCorrupt reports a stored value whose checksum or format is wrong.
	// The error is a *CorruptError that says where.
	ErrCorrupt = fmt.Errorf("store: %w", sketchd.ErrCorrupt)
	// ErrInvalid reports a bad argument: an empty stream name, a key longer
	// than sketchd.MaxKeyLen, a pane too large for one Badger transaction.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrExpired reports an update of a pane that reads would never return:
	// before the stream's retained range. The error is an *ExpiredError
	// that says from when panes are kept.
	ErrExpired = errors.New("store: pane before the retained range")
	// ErrImportConflict reports an import id used before for another
	// import: into another pane, or of the same aggregate with other
	// bytes. The error is an *ImportConflictError.
	ErrImportConflict = errors.New("store: import id used for another import")
)

// ImportConflictError is an UpdatePane under an id that imported
// something else: Aggregate with other bytes into the same pane when
// Aggregate is set, else into the pane (Key, Start). Nothing was written.
// It matches ErrImportConflict.
type ImportConflictError struct {
	ID        string
	Aggregate string // set: the id imported this aggregate into this pane, from other bytes
	Key       string // the pane the id imported into: its key (encoded)
	Start     int64  // and start, unix ns
}

func (e *ImportConflictError) Error() string {
	if e.Aggregate != "" {
		return fmt.Sprintf("store: import id %q imported aggregate %q into this pane from other bytes", e.ID, e.Aggregate)
	}
	return fmt.Sprintf("store: import id %q imported into another pane (key %q, start %s)",
		e.ID, e.Key, time.Unix(0, e.Start).UTC().Format(time.RFC3339Nano))
}

// Unwrap makes errors.Is(err, ErrImportConflict) true.
func (e *ImportConflictError) Unwrap() error { return ErrImportConflict }

// ExpiredError is an UpdatePane of a pane that starts before From, the
// first pane start reads return (the retention horizon). It matches
// ErrExpired.
type ExpiredError struct {
	Start int64 // the pane's start, unix ns
	From  int64 // the first pane start kept, unix ns
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("store: the pane starting %s is before the retained range, which starts at %s",
		time.Unix(0, e.Start).UTC().Format(time.RFC3339Nano), time.Unix(0, e.From).UTC().Format(time.RFC3339Nano))
}

// Unwrap makes errors.Is(err, ErrExpired) true.
func (e *ExpiredError) Unwrap() error { return ErrExpired }

// CorruptError is a stored value that fails its checksum or does not parse.
// Only reads that touch it fail; it matches ErrCorrupt.
type CorruptError struct {
	Key    []byte // the Badger key of the bad value
	Reason string // what is wrong with it
}

func (e *CorruptError) Error() string {
	k := e.Key
	suffix := ""
	if len(k) > 64 {
		k, suffix = k[:64], "..."
	}
	return fmt.Sprintf("store: corrupt value at key %x%s: %s", k, suffix, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) and errors.Is(err,
// sketchd.ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// StepTooLargeError is a backfill step (BackfillPanes) whose panes and
// progress do not fit one Badger transaction: nothing of it is written.
// The first Fit of its Panes panes did fit (without the progress record,
// which comes last); the caller makes the step smaller. It matches
// ErrInvalid.
type StepTooLargeError struct {
	Panes int // the step's panes
	Fit   int // how many of the first ones fit
}

func (e *StepTooLargeError) Error() string {
	return fmt.Sprintf("%v: backfill step of %d panes too large for one transaction (the first %d fit)", ErrInvalid, e.Panes, e.Fit)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *StepTooLargeError) Unwrap() error { return ErrInvalid }

func corrupt(key []byte, reason string) *CorruptError {
	return &CorruptError{Key: append([]byte(nil), key...), Reason: reason}
}
