package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// listenHTTP binds the API's address. It runs before the store opens, so a
// taken port fails in milliseconds, and its error names the address and
// the setting that changes it.
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, portError("HTTP API", addr, "--http-addr", "SKETCHD_HTTP_ADDR", "", err)
	}
	return ln, nil
}

// checkNATSListen fails when the embedded nats-server could not listen on
// addr: the server itself only logs such a failure and is then not ready
// for 15 s. Port 0 (any free port) is always free. Binding and releasing
// leaves a short race with another process, which the server's own error
// then covers.
func checkNATSListen(addr string) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return fmt.Errorf("setting nats-listen: %w", err)
	}
	if port <= 0 {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return portError("embedded NATS", addr, "--nats-listen", "SKETCHD_NATS_LISTEN",
			"; or use the NATS that holds it with --nats-url nats://"+addr, err)
	}
	return ln.Close()
}

// portError says which listener failed on which address, why, and how to
// pick another address.
func portError(what, addr, flag, env, more string, err error) error {
	why := "cannot listen"
	if errors.Is(err, syscall.EADDRINUSE) {
		why = "address already in use (another process listens there)"
	}
	return fmt.Errorf("%s: %s on %s: change it with %s or $%s (for example %s 127.0.0.1:0 for any free port)%s: %w",
		what, why, addr, flag, env, flag, more, err)
}

// defaultDataDir is where data goes when --data-dir is empty: the user's
// state directory ($XDG_STATE_HOME/sketchd, else ~/.local/state/sketchd), so
// that running from a checkout or any other directory writes nothing there.
// Without a home (a bare container) it is ./data; the container image sets
// SKETCHD_DATA_DIR=/data.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "sketchd")
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "sketchd")
	}
	return "data"
}

// resolveDataDir returns the absolute data directory, created if needed.
func resolveDataDir(dir string, getenv func(string) string) (string, error) {
	if dir == "" {
		dir = defaultDataDir(getenv)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return "", fmt.Errorf("data dir: %w (change it with --data-dir or $SKETCHD_DATA_DIR)", err)
	}
	return abs, nil
}
