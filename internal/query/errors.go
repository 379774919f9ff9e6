package query

import (
	"errors"
	"fmt"
)

// Query errors.
var (
	// ErrUnknownAggregate: the stream has no aggregate of that name.
	ErrUnknownAggregate = errors.New("unknown aggregate")
	// ErrTooLarge: the query exceeds a limit (see *LimitError).
	ErrTooLarge = errors.New("query too large")
	// ErrAmbiguousFilter: a where value looks like a list or an operator
	// but was taken literally, and no key of the range has it (see
	// ParseWhere). Its *ParamError wraps it.
	ErrAmbiguousFilter = errors.New("filter matches nothing as written")
	// ErrBeforeSince: the query reads panes from before its aggregate
	// existed (see *SinceError).
	ErrBeforeSince = errors.New("range starts before the aggregate existed")
)

// ParamError is a query parameter that does not parse or does not fit.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return "parameter " + e.Param + ": " + e.Msg }

// ambiguousFilter is a *ParamError that is also ErrAmbiguousFilter.
type ambiguousFilter struct{ pe *ParamError }

func (e *ambiguousFilter) Error() string   { return e.pe.Error() }
func (e *ambiguousFilter) Unwrap() []error { return []error{e.pe, ErrAmbiguousFilter} }

// LimitError says which limit a query exceeded. It wraps ErrTooLarge.
type LimitError struct {
	Limit string // "max_windows", "max_keys" or "max_panes"
	Max   int64
	Got   int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("query too large: %s is %d, this query needs %d", e.Limit, e.Max, e.Got)
}

func (e *LimitError) Unwrap() error { return ErrTooLarge }
