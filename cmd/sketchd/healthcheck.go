package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheckTimeout bounds the whole check (connect, request, answer).
const healthcheckTimeout = 5 * time.Second

// healthcheck is `sketchd healthcheck [flags]`: it GETs /livez of the
// instance that the same settings (flags, environment, config file)
// describe, and fails unless the answer is 200. It lets a container image
// without a shell or curl (FROM scratch) declare a HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil {
		return cfg.redactError(err)
	}
	u, err := livezURL(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: status %d", u, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok", u)
	return nil
}

// livezURL is the /livez URL of an API listening on addr: an unspecified
// host (0.0.0.0, ::, empty) is reached on loopback.
func livezURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("setting http-addr %q: %w", addr, err)
	}
	if port == "0" {
		return "", fmt.Errorf("setting http-addr %q: port 0 (any free port) cannot be checked; give the port", addr)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/livez", nil
}
