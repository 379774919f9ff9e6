package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sketchd/sketchd/internal/syncbuf"
)

// The secrets of the security tests: distinctive, so a leak cannot hide.
const (
	secAdminToken   = "adm1n-T0KEN-zq8x"
	secReadToken    = "r3ad-T0KEN-wv5k"
	secNATSPassword = "nats-PA55W0RD-jj3m"
	secNATSToken    = "nats-T0KEN-hh7p"
	secEnvAdmin     = "env-adm1n-T0KEN-qq2r"
)

var allSecrets = []string{secAdminToken, secReadToken, secNATSPassword, secNATSToken, secEnvAdmin}

// assertNoSecret fails if any secret (or its URL-escaped form) is in out.
func assertNoSecret(tb testing.TB, what, out string) {
	tb.Helper()
	for _, s := range allSecrets {
		if strings.Contains(out, s) {
			tb.Errorf("%s shows the secret %q:\n%s", what, s, out)
		}
	}
}

func TestDefaultListenersAreLoopback(t *testing.T) {
	cfg, err := loadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ setting, addr string }{
		{"http-addr", cfg.HTTPAddr},
		{"nats-listen", cfg.NATSListen},
		{"http-addr (defaultConfig)", defaultConfig().HTTPAddr},
		{"nats-listen (defaultConfig)", defaultConfig().NATSListen},
	} {
		host, _, err := net.SplitHostPort(tt.addr)
		if err != nil {
			t.Errorf("%s %q: %v", tt.setting, tt.addr, err)
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("%s defaults to %q: want a loopback address (127.0.0.1), not every interface", tt.setting, tt.addr)
		}
	}
	// The help shows them.
	var help bytes.Buffer
	if _, err := loadConfig([]string{"--help"}, env(nil), &help); !errors.Is(err, errHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{`$SKETCHD_HTTP_ADDR, default "127.0.0.1:8080"`, `$SKETCHD_NATS_LISTEN, default "127.0.0.1:4222"`} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
}

// secretArgs sets every secret: the tokens and NATS password as flags, the
// NATS token and an admin token through the environment (the flag wins).
func secretArgs(dir string, extra ...string) ([]string, func(string) string) {
	args := []string{
		"--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--log-level", "debug", "--log-format", "text",
		"--admin-token", secAdminToken, "--read-token", secReadToken,
		"--nats-user", "sketchd", "--nats-password", secNATSPassword,
	}
	e := env(map[string]string{
		"SKETCHD_NATS_TOKEN":  secNATSToken,
		"SKETCHD_ADMIN_TOKEN": secEnvAdmin,
	})
	return append(args, extra...), e
}

// TestSecretsNotShownOnBadConfig runs run() with every secret set and a
// configuration that fails (or asks for help) and checks stdout, stderr and
// the error.
func TestSecretsNotShownOnBadConfig(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.yaml")
	yaml := "admin_token: " + secAdminToken + "\nnats_password: [" + secNATSPassword + "]\nread_tokn: " + secReadToken + "\n"
	if err := os.WriteFile(badFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		extra []string
	}{
		{"help", []string{"--help"}},
		{"version", []string{"--version"}},
		{"bad log level", []string{"--log-level", "loud"}},
		{"bad duration", []string{"--flush-interval", "200000d"}},
		{"unknown flag", []string{"--admin-tokn", secAdminToken}},
		{"stray argument", []string{"--admin-token"}},
		{"bad config file", []string{"--config", badFile}},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.yaml")}},
		{"bad NATS URL", []string{"--nats-url", "nats://sketchd:" + secNATSPassword + "@127.0.0.1:1"}},
		{"unparsable NATS URL", []string{"--nats-url", "nats://sketchd:" + secNATSPassword + "%zz@127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, getenv := secretArgs(t.TempDir(), tt.extra...)
			var stdout, stderr syncbuf.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			err := run(ctx, args, getenv, &stdout, &stderr)
			if err == nil {
				t.Fatal("run succeeded; want a failure")
			}
			out := stdout.String() + stderr.String() + "\nerror: " + err.Error()
			if tt.name == "help" && !strings.Contains(out, "--admin-token") {
				t.Fatalf("no usage printed: %s", out)
			}
			assertNoSecret(t, tt.name, out)
		})
	}
}

// startNATSWithAuth runs an in-process nats-server that requires a user
// and password.
func startNATSWithAuth(tb testing.TB, user, password string) string {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, Username: user, Password: password, NoSigs: true, NoLog: true})
	if err != nil {
		tb.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready")
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// TestSecretsNotLogged runs sketchd (run, in process) against a NATS
// server that needs the password, at log level debug, with every secret
// set; it makes requests with good and bad tokens, creates and deletes a
// stream, stops it, and checks that no secret is in its output. A wrong
// NATS password must fail without showing either password.
func TestSecretsNotLogged(t *testing.T) {
	natsURL := startNATSWithAuth(t, "sketchd", secNATSPassword)
	args, getenv := secretArgs(t.TempDir(), "--nats-url", natsURL, "--pprof")
	getenv2 := func(k string) string {
		if k == "SKETCHD_NATS_TOKEN" {
			return "" // user/password auth; a token as well would be refused
		}
		return getenv(k)
	}
	var stdout, stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv2, &stdout, &stderr) }()
	base := waitHTTPAddr(t, &stderr, done)

	req := func(method, path, token, body string) int {
		t.Helper()
		r, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertNoSecret(t, method+" "+path+" response", string(b))
		return resp.StatusCode
	}
	// This NATS has no JetStream: a JetStream stream would be refused.
	spec := `{"name":"sec","subject":"sec.events","jetstream":false,"aggregates":{"n":{"sketch":"hll","field":"u"}}}`
	steps := []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/v1/streams", "", "", 401},
		{"GET", "/v1/streams", secReadToken + "x", "", 401},
		{"GET", "/v1/streams", secReadToken, "", 200},
		{"GET", "/v1/streams?token=" + secReadToken, secReadToken, "", 400},
		{"POST", "/v1/streams", "", spec, 401},
		{"POST", "/v1/streams", secReadToken, spec, 403},
		{"POST", "/v1/streams", secEnvAdmin, spec, 401}, // the flag beats the environment
		{"POST", "/v1/streams", secAdminToken, spec, 201},
		{"DELETE", "/v1/streams/sec", secReadToken, "", 403},
		{"DELETE", "/v1/streams/sec", secAdminToken, "", 204},
		{"GET", "/debug/pprof/heap", "", "", 401}, // behind the admin token
		{"GET", "/debug/pprof/cmdline", secAdminToken, "", 404},
		{"GET", "/metrics", "", "", 200},
	}
	for _, s := range steps {
		if got := req(s.method, s.path, s.token, s.body); got != s.want {
			t.Errorf("%s %s: %d, want %d", s.method, s.path, got, s.want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return within 60s of cancel")
	}
	out := stdout.String() + stderr.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "http request") {
		t.Fatalf("the log is not what this test expects (debug, request lines):\n%s", out)
	}
	assertNoSecret(t, "sketchd's log", out)

	// A wrong password: the start fails, naming neither password.
	args, _ = secretArgs(t.TempDir(), "--nats-url", natsURL, "--nats-password", secNATSToken)
	stdout, stderr = syncbuf.Buffer{}, syncbuf.Buffer{}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel2()
	err := run(ctx2, args, getenv2, &stdout, &stderr)
	if err == nil {
		t.Fatal("run with a wrong NATS password succeeded")
	}
	assertNoSecret(t, "a failed NATS login", stdout.String()+stderr.String()+"\nerror: "+err.Error())
}

// waitHTTPAddr waits for run's "HTTP API listening" log line (text
// format) and returns the base URL.
func waitHTTPAddr(tb testing.TB, logs *syncbuf.Buffer, done <-chan error) string {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if !strings.Contains(l, `msg="HTTP API listening"`) {
				continue
			}
			for _, f := range strings.Fields(l) {
				if a, ok := strings.CutPrefix(f, "addr="); ok {
					return strings.Trim(a, `"`)
				}
			}
		}
		select {
		case err := <-done:
			tb.Fatalf("run returned during start: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	tb.Fatalf("sketchd did not listen within 60s:\n%s", logs.String())
	return ""
}

// TestRedactError checks the safety net of run's error: every secret
// setting and the user info of nats-url, parsable or not, become REDACTED,
// and the error chain is kept.
func TestRedactError(t *testing.T) {
	cfg := defaultConfig()
	cfg.AdminToken, cfg.ReadToken, cfg.NATSPassword = secAdminToken, secReadToken, secNATSPassword
	cfg.NATSURL = "nats://a:" + secNATSToken + "@h1:4222, nats://" + secEnvAdmin + "%zz@h2:4222"
	base := errors.New("base")
	err := cfg.redactError(fmt.Errorf("connect %s with %s/%s/%s: %w", cfg.NATSURL, secAdminToken, secReadToken, secNATSPassword, base))
	assertNoSecret(t, "redacted error", err.Error())
	if !errors.Is(err, base) || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("redacted error %q lost its chain or its marker", err)
	}
	plain := errors.New("nothing secret")
	if got := cfg.redactError(plain); got != plain {
		t.Errorf("an error without secrets was replaced: %v", got)
	}
	if cfg.redactError(nil) != nil {
		t.Error("nil became an error")
	}
}
