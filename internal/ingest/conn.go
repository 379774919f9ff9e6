package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnOptions configure the NATS client connection.
type ConnOptions struct {
	URL  string // nats://host:port[,more]; required
	Name string // client name shown by the server; default "sketchd"

	CredsFile string // JWT credentials file
	NKeyFile  string // NKey seed file
	User      string
	Password  string
	Token     string

	TLSCA   string // CA bundle to verify the server
	TLSCert string // client certificate (with TLSKey)
	TLSKey  string

	// MaxReconnects: -1 (the default here) retries forever.
	MaxReconnects int
	// ReconnectWait between attempts; default 2s.
	ReconnectWait time.Duration
}

// ConnState is the connection's state for readiness and metrics.
type ConnState struct {
	connected   atomic.Bool
	reconnects  atomic.Uint64
	disconnects atomic.Uint64
	downSince   atomic.Int64 // unix ns of the current disconnection; 0 while connected
	downNanos   atomic.Int64 // total time disconnected, ended disconnections
	// SlowConsumer counts the client's slow-consumer episodes.
	slow atomic.Uint64

	redial redialState // see redial.go
}

// Connected reports whether the connection is up.
func (s *ConnState) Connected() bool { return s.connected.Load() }

// Reconnects counts reconnections since start.
func (s *ConnState) Reconnects() uint64 { return s.reconnects.Load() }

// Disconnects counts lost connections since start.
func (s *ConnState) Disconnects() uint64 { return s.disconnects.Load() }

// Disconnected returns the total time the connection was down since start,
// including the current disconnection, as of now.
func (s *ConnState) Disconnected(now time.Time) time.Duration {
	d := s.downNanos.Load()
	if since := s.downSince.Load(); since != 0 {
		d += max(0, now.UnixNano()-since)
	}
	return time.Duration(d)
}

func (s *ConnState) down(now time.Time) {
	s.connected.Store(false)
	if s.downSince.CompareAndSwap(0, now.UnixNano()) {
		s.disconnects.Add(1)
	}
}

func (s *ConnState) up(now time.Time) {
	s.connected.Store(true)
	if since := s.downSince.Swap(0); since != 0 {
		s.downNanos.Add(max(0, now.UnixNano()-since))
	}
}

// Connect dials NATS with opts and logs connection state changes.
func Connect(opts ConnOptions, logger *slog.Logger) (*nats.Conn, *ConnState, error) {
	if opts.URL == "" {
		return nil, nil, errors.New("ingest: NATS URL required")
	}
	if opts.Name == "" {
		opts.Name = "sketchd"
	}
	if opts.ReconnectWait == 0 {
		opts.ReconnectWait = 2 * time.Second
	}
	if opts.MaxReconnects == 0 {
		opts.MaxReconnects = -1
	}
	st := &ConnState{}
	log := logger.With("component", "nats")
	st.redial.init(opts, log)
	nc, err := dial(opts, st, log)
	if err != nil {
		return nil, nil, err
	}
	st.connected.Store(true)
	st.redial.cur.Store(nc)
	log.Info("NATS connected", "url", nc.ConnectedUrlRedacted())
	return nc, st, nil
}

// dial connects with opts and the handlers that keep st current.
func dial(opts ConnOptions, st *ConnState, log *slog.Logger) (*nats.Conn, error) {
	no := []nats.Option{
		nats.Name(opts.Name),
		nats.MaxReconnects(opts.MaxReconnects),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.RetryOnFailedConnect(false),
		nats.DrainTimeout(30 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			st.down(time.Now())
			log.Warn("NATS disconnected: not ready; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			outage := time.Duration(0)
			if since := st.downSince.Load(); since != 0 {
				outage = time.Since(time.Unix(0, since))
			}
			st.up(time.Now())
			st.reconnects.Add(1)
			log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted(), "outage", outage.Round(time.Millisecond))
		}),
		nats.ClosedHandler(func(c *nats.Conn) {
			st.down(time.Now())
			if err := c.LastError(); err != nil {
				// The server closed it (a protocol error, the reconnect
				// attempts exhausted): dial a new one.
				log.Error("NATS connection closed by an error; dialling a new one", "err", err)
				st.redial.start(st, c)
				return
			}
			log.Info("NATS connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				st.slow.Add(1)
				subj := ""
				if sub != nil {
					subj = sub.Subject
				}
				log.Warn("slow consumer: NATS is dropping messages", "subject", subj)
				return
			}
			log.Error("NATS async error", "err", err)
		}),
	}
	if opts.CredsFile != "" {
		no = append(no, nats.UserCredentials(opts.CredsFile))
	}
	if opts.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("ingest: nkey: %w", err)
		}
		no = append(no, o)
	}
	if opts.User != "" {
		no = append(no, nats.UserInfo(opts.User, opts.Password))
	}
	if opts.Token != "" {
		no = append(no, nats.Token(opts.Token))
	}
	if opts.TLSCA != "" {
		no = append(no, nats.RootCAs(opts.TLSCA))
	}
	if opts.TLSCert != "" || opts.TLSKey != "" {
		no = append(no, nats.ClientCert(opts.TLSCert, opts.TLSKey))
	}
	nc, err := nats.Connect(opts.URL, no...)
	if err != nil {
		return nil, fmt.Errorf("ingest: connect to NATS at %s: %w", redact(opts.URL), err)
	}
	return nc, nil
}

// redact hides credentials embedded in NATS URLs (user:password@ or
// token@).
func redact(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		pu, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err == nil && pu.User != nil:
			pu.User = url.User("REDACTED")
			parts[i] = pu.String()
		default:
			// Unparsable, or parsed without user info (as an opaque URL):
			// cut whatever could be user info (between the scheme and the
			// last '@') rather than show it.
			if at := strings.LastIndexByte(p, '@'); at >= 0 {
				start := 0
				if s := strings.Index(p, "://"); s >= 0 && s < at {
					start = s + 3
				}
				parts[i] = p[:start] + "REDACTED" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
