package main

import "time"

// Results is everything a run measured; the report renders it.
type Results struct {
	Config  Config        `json:"config"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed"`
	Machine Machine       `json:"machine"`
	Tools   []ToolInfo    `json:"tools"`

	MsgSize     int     `json:"msg_size"`
	CeilingCore Ceiling `json:"ceiling_core"`
	CeilingJS   Ceiling `json:"ceiling_js"`
	IngestCore  Ingest  `json:"ingest_core"`
	IngestJS    Ingest  `json:"ingest_js"`
	Backfill    Ingest  `json:"backfill"`
	// TierCost is the ingest rate with and without two rollup tiers (nil
	// in older results).
	TierCost *TierCost `json:"tier_cost,omitempty"`
	// LongBackfill is the sparse history of pv before the accuracy
	// backfill (LongSpan of event time), which the rollup tiers serve.
	LongBackfill Ingest `json:"long_backfill"`
	// Tiers is pv's rollup status (GET /v1/streams/pv) when the query
	// load started.
	Tiers []TierStatus `json:"tiers"`

	Accounting    Accounting `json:"accounting"`
	Accuracy      Accuracy   `json:"accuracy"`
	AccuracyFrom  time.Time  `json:"accuracy_from"`
	AccuracyTo    time.Time  `json:"accuracy_to"`
	AccuracyPaths []string   `json:"accuracy_paths"`
	PaneKeys      int        `json:"pane_keys"` // (pane, key) pairs of the backfill

	Live    Ingest        `json:"live"` // ingest during the query load
	Service []ServiceTime `json:"service"`
	LowRate *QueryLoad    `json:"low_rate"` // vegeta at half the estimated capacity
	Vegeta  *QueryLoad    `json:"vegeta"`
	K6      *QueryLoad    `json:"k6"`
	// Floor is each tool at the query rate on GET /healthz (floor.go),
	// absent in results of runners before it.
	Floor []*QueryLoad `json:"floor,omitempty"`
	// Dashboard is the dashboard scenario (k6, DashboardVUs users
	// refreshing querymix.DashboardOf every 5 s).
	Dashboard *QueryLoad `json:"dashboard"`
	// Profiles are sketchd's pprof profiles of the query load.
	Profiles []Profile `json:"profiles"`
	// Phases is sketchd's peak RSS per phase of the run.
	Phases []PhaseMemory `json:"phases"`
	// Heavy is the heavy-query phase: a query over 300k keys that must be
	// refused, alone and eight at once.
	Heavy *HeavyQuery `json:"heavy"`

	// Drain is how long sketchd kept answering /v1 requests after the
	// load tools had exited (requests their clients had given up on), and
	// DrainRequests how many it answered meanwhile.
	Drain         time.Duration `json:"drain"`
	DrainRequests int           `json:"drain_requests"`
	// SlowErrors are the error responses of sketchd's log (query timeout
	// 10s, the default).
	SlowErrors SlowErrors `json:"slow_errors"`

	Memory []MemSample `json:"memory"`
	// Box is sketchd's memory cgroup (--memory-box); nil without.
	Box *MemoryBox `json:"box,omitempty"`

	SketchdArgs []string      `json:"sketchd_args"`
	ConfigYAML  string        `json:"config_yaml"`
	Shutdown    time.Duration `json:"shutdown"`
	Notes       []string      `json:"notes"`
}

// Machine describes where the run ran.
type Machine struct {
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirty"`
	CPU       string `json:"cpu"`
	NProc     int    `json:"nproc"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// ToolInfo is a tool used, its version and how long installing it took.
type ToolInfo struct {
	Name, Version string
	Install       time.Duration
}

// Ingest is one ingest measurement.
type Ingest struct {
	Stream    string        `json:"stream"`
	Events    int           `json:"events"`  // published
	Applied   int           `json:"applied"` // applied to sketches
	Processed int           `json:"processed"`
	Dropped   int           `json:"dropped"` // core slow-consumer drops
	Elapsed   time.Duration `json:"elapsed"` // first publish (or stream creation) to the last event processed
	Rate      float64       `json:"rate"`    // processed per second
	PubRate   float64       `json:"pub_rate"`
	Commands  []string      `json:"commands"`
}

// Accounting compares the generator's counts with sketchd's counters for
// the backfill.
type Accounting struct {
	Published, Invalid, Late, Valid     uint64
	SkInvalid, SkTooLate, SkApplied     uint64
	SkLateApplied, SkFuture, TruthEvent uint64
}

// MemSample is the memory and disk of sketchd at one moment.
type MemSample struct {
	Phase     string `json:"phase"`
	RSS       int64  `json:"rss"`
	HWM       int64  `json:"hwm"`
	OpenPanes int    `json:"open_panes"`
	Events    int    `json:"events"` // processed by sketchd so far, every stream
	// ActiveKeys are the (stream, key) pairs with a pane in the last 26h.
	ActiveKeys int   `json:"active_keys"`
	Badger     int64 `json:"badger"` // bytes on disk
	NATS       int64 `json:"nats"`   // embedded JetStream files on disk
}
