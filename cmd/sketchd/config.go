package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/internal/api"
	"github.com/sketchd/sketchd/internal/cluster"
	"github.com/sketchd/sketchd/internal/defaults"
	"github.com/sketchd/sketchd/internal/ingest"
	"github.com/sketchd/sketchd/internal/memlimit"
	"github.com/sketchd/sketchd/internal/query"
	"go.yaml.in/yaml/v3"
)

// config is every setting of the binary. Precedence: flag > environment
// (SKETCHD_*) > config file > default.
type config struct {
	ConfigFile string `yaml:"-"`
	DataDir    string `yaml:"data_dir"`
	HTTPAddr   string `yaml:"http_addr"`
	LogLevel   string `yaml:"log_level"`
	LogFormat  string `yaml:"log_format"`
	Demo       bool   `yaml:"demo"`
	DemoRate   int    `yaml:"demo_rate"`
	Pprof      bool   `yaml:"pprof"`

	AdminToken string `yaml:"admin_token"`
	ReadToken  string `yaml:"read_token"`

	NATSURL          string           `yaml:"nats_url"`
	NATSListen       string           `yaml:"nats_listen"`
	NATSSyncInterval sketchd.Duration `yaml:"nats_sync_interval"`
	NATSSyncAlways   bool             `yaml:"nats_sync_always"`
	NATSCreds        string           `yaml:"nats_creds"`
	NATSNKey         string           `yaml:"nats_nkey"`
	NATSUser         string           `yaml:"nats_user"`
	NATSPassword     string           `yaml:"nats_password"`
	NATSToken        string           `yaml:"nats_token"`
	NATSTLSCA        string           `yaml:"nats_tls_ca"`
	NATSTLSCert      string           `yaml:"nats_tls_cert"`
	NATSTLSKey       string           `yaml:"nats_tls_key"`

	FlushInterval  sketchd.Duration `yaml:"flush_interval"`
	AckWait        sketchd.Duration `yaml:"ack_wait"`
	MaxAckPending  int              `yaml:"max_ack_pending"`
	MaxOpenPanes   int              `yaml:"max_open_panes"`
	MemoryLimit    string           `yaml:"memory_limit"`
	QueryCacheMB   int              `yaml:"query_cache_mb"`
	StoreCacheMB   int              `yaml:"store_block_cache_mb"`
	Procs          int              `yaml:"procs"`
	ShutdownWait   sketchd.Duration `yaml:"shutdown_timeout"`
	QueryTimeout   sketchd.Duration `yaml:"query_timeout"`
	MaxQueryWindow int              `yaml:"max_query_windows"`
	MaxStreams     int              `yaml:"max_streams"`
	MaxAggregates  int              `yaml:"max_aggregates"`
	MaxConns       int              `yaml:"max_connections"`

	// Cluster mode (docs/scale-out.md): empty ClusterName is a single node.
	ClusterName       string           `yaml:"cluster_name"`
	ClusterReplicas   int              `yaml:"cluster_replicas"`
	FailoverTimeout   sketchd.Duration `yaml:"failover_timeout"`
	DiscoveryInterval sketchd.Duration `yaml:"discovery_interval"`
	InstanceID        string           `yaml:"instance_id"`

	Streams []sketchd.Stream `yaml:"streams"`
}

// defaultConfig returns the defaults of every setting. Those that tune a
// package come from its Default…() value, so the binary cannot drift from
// the library it configures.
func defaultConfig() config {
	in := ingest.DefaultOptions()
	q := query.DefaultOptions()
	cl := cluster.DefaultOptions()
	return config{
		HTTPAddr:         "127.0.0.1:8080",
		LogLevel:         "info",
		LogFormat:        "json",
		DemoRate:         2000,
		NATSListen:       "127.0.0.1:4222",
		FlushInterval:    sketchd.Duration(in.FlushInterval),
		AckWait:          sketchd.Duration(in.AckWait),
		MaxAckPending:    in.MaxAckPending,
		MaxOpenPanes:     in.Window.MaxOpenPanes,
		ShutdownWait:     sketchd.Duration(30 * time.Second),
		QueryTimeout:     sketchd.Duration(api.DefaultLimits().Timeout),
		MaxQueryWindow:   q.MaxWindows,
		NATSSyncInterval: 0,
		MaxStreams:       in.MaxStreams,
		MaxAggregates:    in.MaxAggregates,
		MaxConns:         api.DefaultMaxConns,

		ClusterReplicas:   cl.Replicas,
		FailoverTimeout:   sketchd.Duration(cl.FailoverTimeout),
		DiscoveryInterval: sketchd.Duration(cl.DiscoveryInterval),
	}
}

// setting is one configurable value: a flag, an environment variable and a
// config-file key.
type setting struct {
	name   string // flag name; the env var is SKETCHD_ + upper(name with - as _)
	usage  string
	secret bool
	isBool bool
	set    func(string) error
	get    func() string
}

func (s setting) env() string {
	return "SKETCHD_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func strSetting(name, usage string, p *string) setting {
	return setting{name: name, usage: usage, set: func(v string) error { *p = v; return nil }, get: func() string { return *p }}
}

func secretSetting(name, usage string, p *string) setting {
	s := strSetting(name, usage, p)
	s.secret = true
	return s
}

func boolSetting(name, usage string, p *bool) setting {
	return setting{name: name, usage: usage, isBool: true, set: func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p = b
		return nil
	}, get: func() string { return strconv.FormatBool(*p) }}
}

func intSetting(name, usage string, p *int) setting {
	return setting{name: name, usage: usage, set: func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", v)
		}
		*p = n
		return nil
	}, get: func() string { return strconv.Itoa(*p) }}
}

func durSetting(name, usage string, p *sketchd.Duration) setting {
	return setting{name: name, usage: usage, set: func(v string) error {
		d, err := sketchd.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
		return nil
	}, get: func() string { return p.String() }}
}

func (c *config) settings() []setting {
	return []setting{
		strSetting("data-dir", "directory for the Badger store and the embedded NATS's JetStream files (empty: $XDG_STATE_HOME/sketchd, else ~/.local/state/sketchd)", &c.DataDir),
		strSetting("http-addr", "HTTP listen address of the API", &c.HTTPAddr),
		strSetting("log-level", "debug, info, warn or error", &c.LogLevel),
		strSetting("log-format", "json or text", &c.LogFormat),
		boolSetting("demo", "define a demo stream and publish synthetic events to it", &c.Demo),
		intSetting("demo-rate", "events per second the demo publishes", &c.DemoRate),
		boolSetting("pprof", "serve /debug/pprof on the HTTP listener", &c.Pprof),
		secretSetting("admin-token", "bearer token required to create and delete streams (empty: none)", &c.AdminToken),
		secretSetting("read-token", "bearer token required for every /v1 request (empty: none)", &c.ReadToken),
		strSetting("nats-url", "external NATS to connect to; empty runs an embedded nats-server", &c.NATSURL),
		strSetting("nats-listen", "listen address of the embedded nats-server", &c.NATSListen),
		durSetting("nats-sync-interval", "embedded JetStream fsync interval (0: the server's default, 2m)", &c.NATSSyncInterval),
		boolSetting("nats-sync-always", "embedded JetStream fsyncs every message before acking the publish (power-loss safe, slow)", &c.NATSSyncAlways),
		strSetting("nats-creds", "NATS credentials file (external NATS)", &c.NATSCreds),
		strSetting("nats-nkey", "NATS NKey seed file (external NATS)", &c.NATSNKey),
		strSetting("nats-user", "NATS user (external NATS)", &c.NATSUser),
		secretSetting("nats-password", "NATS password (external NATS)", &c.NATSPassword),
		secretSetting("nats-token", "NATS token (external NATS)", &c.NATSToken),
		strSetting("nats-tls-ca", "CA bundle to verify the NATS server", &c.NATSTLSCA),
		strSetting("nats-tls-cert", "client certificate for NATS TLS", &c.NATSTLSCert),
		strSetting("nats-tls-key", "client key for NATS TLS", &c.NATSTLSKey),
		durSetting("flush-interval", "how often panes are committed and JetStream acked", &c.FlushInterval),
		durSetting("ack-wait", "JetStream AckWait; at least 5 × flush-interval", &c.AckWait),
		intSetting("max-ack-pending", "JetStream MaxAckPending per stream; above the messages of one flush interval", &c.MaxAckPending),
		intSetting("max-open-panes", "panes held in memory per stream before the oldest are evicted early", &c.MaxOpenPanes),
		strSetting("memory-limit", fmt.Sprintf("memory limit (512MiB, 1GiB) of the process: %s is the Go runtime's soft limit (less while mapped files take more than the other %s, and the query caches give way when the live heap passes %s of it); divided between the query caches and budget, Badger's caches and JetStream's memory store (docs/operations.md); empty: GOMEMLIMIT if set, else %s of the cgroup's limit, at most %dMiB", defaults.RuntimeShare, defaults.FilesShare, memlimit.LiveShare, defaults.CgroupShare, defaults.MemoryLimit>>20), &c.MemoryLimit),
		intSetting("query-cache-mb", "memory for decoded final panes and rollup blocks (query cache); 0: "+defaults.QueryCacheShare.String()+" of memory-limit", &c.QueryCacheMB),
		intSetting("procs", fmt.Sprintf("Go scheduler threads (GOMAXPROCS); 0: $GOMAXPROCS when set, else %d per CPU, or the CPU quota when the cgroup sets one (docs/operations.md, Scheduler threads)", defaults.ProcsPerCPU), &c.Procs),
		intSetting("store-block-cache-mb", "Badger block cache, with compressed tables; 0: none, tables uncompressed", &c.StoreCacheMB),
		durSetting("shutdown-timeout", "how long a graceful stop may take", &c.ShutdownWait),
		durSetting("query-timeout", "per-request timeout of the API", &c.QueryTimeout),
		intSetting("max-query-windows", "windows per group a query may return", &c.MaxQueryWindow),
		intSetting("max-streams", "streams this instance may hold; a create past it is refused (422 limit_reached)", &c.MaxStreams),
		intSetting("max-aggregates", "aggregates one stream may hold (422 limit_reached)", &c.MaxAggregates),
		intSetting("max-connections", "open HTTP connections the listener accepts at once; at the cap a new one takes the slot of the longest idle keep-alive connection, and waits in the kernel's backlog only when none is idle", &c.MaxConns),
		strSetting("cluster-name", "join the sketchd cluster of this name on the NATS cluster of nats-url (docs/scale-out.md); empty: a single node", &c.ClusterName),
		intSetting("cluster-replicas", "JetStream replicas of the cluster's registry, changelogs and the JetStream streams it creates", &c.ClusterReplicas),
		durSetting("failover-timeout", "how long an instance that stopped answering keeps its partitions (cluster mode; at least 1s)", &c.FailoverTimeout),
		durSetting("discovery-interval", "how often an instance looks for the cluster's other instances (cluster mode)", &c.DiscoveryInterval),
		strSetting("instance-id", "this instance's id in the cluster and in its durable consumers' names; empty: the id the store generated", &c.InstanceID),
	}
}

// procs returns the Go scheduler threads sketchd runs with: --procs; else
// $GOMAXPROCS when set (the runtime applied it at start); else
// defaults.DefaultProcs (4 per CPU, or the CPU quota).
func (c *config) procs(getenv func(string) string) int {
	switch {
	case c.Procs > 0:
		return c.Procs
	case getenv("GOMAXPROCS") != "":
		return defaults.CPUs()
	}
	return defaults.DefaultProcs()
}

// memory returns the memory limit and its split, with the explicit cache
// sizes in place of their shares. The limit is --memory-limit; else the Go
// runtime's (GOMEMLIMIT) when one is set (runtimeLimit below
// math.MaxInt64); else the default for the cgroup's limit.
func (c *config) memory(runtimeLimit int64) defaults.MemorySplit {
	limit := defaults.MemoryLimitFor(defaults.CgroupMemoryLimit())
	switch {
	case c.MemoryLimit != "":
		limit, _ = defaults.ParseBytes(c.MemoryLimit) // validated
	case runtimeLimit > 0 && runtimeLimit < math.MaxInt64:
		limit = runtimeLimit
	}
	m := defaults.SplitMemory(limit)
	if c.QueryCacheMB > 0 {
		m.QueryCache = int64(c.QueryCacheMB) << 20
	}
	if c.StoreCacheMB > 0 {
		m.StoreBlockCache = int64(c.StoreCacheMB) << 20
	}
	return m
}

// errHelp is returned after --help printed the usage.
var errHelp = errors.New("help requested")

// errVersion is returned after --version printed the version.
var errVersion = errors.New("version requested")

// loadConfig applies defaults, the config file, the environment and the
// flags, in that order, and validates the result.
func loadConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	cfg := defaultConfig()
	settings := cfg.settings()
	fs := flag.NewFlagSet("sketchd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.ConfigFile, "config", getenv("SKETCHD_CONFIG"), "YAML config file (server settings and streams)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	given := map[string]*string{}
	for _, s := range settings {
		v := new(string)
		given[s.name] = v
		if s.isBool {
			fs.BoolFunc(s.name, s.usage, func(x string) error { *v = x; return nil })
		} else {
			fs.Func(s.name, s.usage, func(x string) error { *v = x; return nil })
		}
	}
	fs.Usage = func() { usage(stdout, fs, settings) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs, settings)
			return cfg, errHelp
		}
		return cfg, err
	}
	if *showVersion {
		return cfg, errVersion
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q (settings are flags: see --help)", fs.Args())
	}
	if cfg.ConfigFile != "" {
		b, err := os.ReadFile(cfg.ConfigFile)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		file := cfg
		if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config file %s: %w", cfg.ConfigFile, err)
		}
		file.ConfigFile = cfg.ConfigFile
		cfg = file
		settings = cfg.settings()
	}
	for _, s := range settings {
		if v := getenv(s.env()); v != "" {
			if err := s.set(v); err != nil {
				return cfg, fmt.Errorf("setting %s (from $%s): %w", s.name, s.env(), err)
			}
		}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		for _, s := range settings {
			if s.name == f.Name && err == nil {
				if e := s.set(*given[s.name]); e != nil {
					err = fmt.Errorf("setting %s (from --%s): %w", s.name, s.name, e)
				}
			}
		}
	})
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(setting, format string, a ...any) {
		errs = append(errs, fmt.Errorf("setting %s: %s", setting, fmt.Sprintf(format, a...)))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("log-format", "want json or text, got %q", c.LogFormat)
	}
	if c.FlushInterval <= 0 {
		bad("flush-interval", "must be positive")
	}
	if c.AckWait < 5*c.FlushInterval {
		bad("ack-wait", "must be at least 5 × flush-interval (%s), got %s", 5*c.FlushInterval, c.AckWait)
	}
	if c.MaxAckPending < 1000 {
		bad("max-ack-pending", "must be at least 1000, got %d", c.MaxAckPending)
	}
	if c.MemoryLimit != "" {
		if _, err := defaults.ParseBytes(c.MemoryLimit); err != nil {
			bad("memory-limit", "%v", err)
		}
	}
	if c.Procs < 0 {
		bad("procs", "must not be negative (0: the default)")
	}
	if c.QueryCacheMB < 0 || c.StoreCacheMB < 0 {
		bad("query-cache-mb and store-block-cache-mb", "must not be negative (0: the default)")
	}
	if c.Demo && c.DemoRate <= 0 {
		bad("demo-rate", "must be positive")
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		if _, err := url.Parse(strings.TrimSpace(u)); err != nil {
			// Not shown: a NATS URL may hold a password.
			bad("nats-url", "not a valid URL (not shown here: it may hold a password)")
			break
		}
	}
	if c.ClusterName != "" {
		if _, err := c.clusterOptions().Normalize(); err != nil {
			bad("cluster-name", "%v", err)
		}
		if c.NATSURL == "" {
			bad("cluster-name", "cluster mode needs the NATS cluster's URLs in nats-url (the embedded nats-server is one node)")
		}
	}
	if c.InstanceID != "" && !instanceIDRe.MatchString(c.InstanceID) {
		bad("instance-id", "want 1-32 of [A-Za-z0-9_-] (it is part of consumer names), got %q", c.InstanceID)
	}
	seen := map[string]bool{}
	for i, s := range c.Streams {
		if err := s.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("streams[%d] (%s): %w", i, s.Name, err))
		} else if err := api.CheckEmit(&s); err != nil {
			errs = append(errs, fmt.Errorf("streams[%d] (%s): %w", i, s.Name, err))
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("streams[%d]: stream %q defined twice", i, s.Name))
		}
		seen[s.Name] = true
	}
	return errors.Join(errs...)
}

// secrets returns the secret values that are set: the secret settings
// (tokens, NATS password) and the password (or token) in nats-url's user
// info, found without parsing, so that an unparsable URL is covered too.
func (c *config) secrets() []string {
	var out []string
	for _, s := range c.settings() {
		if v := s.get(); s.secret && v != "" {
			out = append(out, v)
		}
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		_, rest, ok := strings.Cut(u, "://")
		if !ok {
			continue
		}
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			rest = rest[:i]
		}
		i := strings.LastIndex(rest, "@")
		if i < 0 {
			continue
		}
		info := rest[:i]
		if _, pass, ok := strings.Cut(info, ":"); ok {
			info = pass
		}
		if info != "" {
			out = append(out, info)
			if un, err := url.PathUnescape(info); err == nil && un != info {
				out = append(out, un)
			}
		}
	}
	return out
}

// redactError returns err with every secret of c replaced by REDACTED in
// its text (errors.Is and errors.As still see the original). It is the
// safety net for errors from libraries that quote what they were given.
func (c *config) redactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := msg
	for _, s := range c.secrets() {
		red = strings.ReplaceAll(red, s, "REDACTED")
	}
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func usage(w io.Writer, fs *flag.FlagSet, settings []setting) {
	fmt.Fprintf(w, `sketchd ingests events from NATS into per-window, per-key sketches and answers
approximate queries (distinct counts, frequencies and top-k, quantiles,
samples) over a REST API, with an error bound on every answer.

Usage: sketchd [flags]
       sketchd healthcheck [flags]   GET /livez of the instance these settings
                                     describe; exit 0 on 200, else 1

Every setting is a flag, an environment variable and a config-file key;
precedence: flag > environment > config file (--config) > default.

  --config FILE       YAML config file: the settings below (key = flag name
                      with _ for -) and a list of streams ($SKETCHD_CONFIG)
  --version           print the version and exit

`)
	def := defaultConfig()
	defs := map[string]string{}
	for _, s := range def.settings() {
		defs[s.name] = s.get()
	}
	for _, s := range settings {
		d := defs[s.name]
		if s.secret && d != "" {
			d = "(set)"
		}
		fmt.Fprintf(w, "  --%-21s %s\n  %-23s $%s, default %q\n", s.name, s.usage, "", s.env(), d)
	}
	_ = fs
}

var instanceIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// clusterOptions are the cluster settings as internal/cluster takes them.
func (c *config) clusterOptions() cluster.Options {
	o := cluster.DefaultOptions()
	o.Name, o.Replicas = c.ClusterName, c.ClusterReplicas
	o.FailoverTimeout, o.DiscoveryInterval = c.FailoverTimeout.Std(), c.DiscoveryInterval.Std()
	if o.DiscoveryGather >= o.DiscoveryInterval {
		o.DiscoveryGather = o.DiscoveryInterval / 2
	}
	return o
}
