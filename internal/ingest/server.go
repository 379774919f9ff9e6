package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure the embedded nats-server.
type ServerOptions struct {
	// Host and Port to listen on. Defaults 127.0.0.1 and 4222; Port -1
	// picks a free port (tests).
	Host string
	Port int
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// SyncInterval is how often JetStream fsyncs; 0 keeps the server's
	// default (2 min). SyncAlways fsyncs every message before acknowledging
	// the publish: power-loss safe and much slower (see docs/operations.md).
	SyncInterval time.Duration
	SyncAlways   bool
	// MaxPayload caps one message (0 = the server default, 1 MiB).
	MaxPayload int32
	// MaxMemory caps JetStream's memory storage (0 = the server's default,
	// 3/4 of the machine's memory). sketchd's streams use file storage;
	// this bounds memory-backed streams others create on the embedded
	// server.
	MaxMemory int64
}

// StartServer starts an embedded nats-server with JetStream and waits until
// it accepts connections. Shut it down with Shutdown and WaitForShutdown.
func StartServer(opts ServerOptions, logger *slog.Logger) (*server.Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("ingest: embedded NATS needs a store dir")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = 4222
	}
	so := &server.Options{
		ServerName:   "sketchd-embedded",
		Host:         opts.Host,
		Port:         opts.Port,
		JetStream:    true,
		StoreDir:     opts.StoreDir,
		SyncInterval: opts.SyncInterval,
		SyncAlways:   opts.SyncAlways,
		MaxPayload:   opts.MaxPayload,
		NoSigs:       true,

		JetStreamMaxMemory: opts.MaxMemory,
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("ingest: embedded nats-server: %w", err)
	}
	if logger != nil {
		ns.SetLoggerV2(natsLogger{logger.With("component", "nats-server")}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("ingest: embedded nats-server on %s:%d not ready after 15s", opts.Host, opts.Port)
	}
	return ns, nil
}

// natsLogger adapts nats-server's logger to slog.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  {}
