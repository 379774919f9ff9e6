package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs owns every child process the runner starts. Each runs in its own
// process group, so that stopping it stops whatever it started too; KillAll
// (deferred by main, and run on a signal) leaves nothing behind.
type procs struct {
	mu   sync.Mutex
	cmds map[*exec.Cmd]bool
	log  io.Writer
}

func newProcs(log io.Writer) *procs { return &procs{cmds: map[*exec.Cmd]bool{}, log: log} }

// command returns a command in its own process group that is killed (the
// whole group) when ctx is done or after timeout, whichever comes first.
func (p *procs) command(ctx context.Context, timeout time.Duration, name string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd, cancel
}

func (p *procs) track(cmd *exec.Cmd)   { p.mu.Lock(); p.cmds[cmd] = true; p.mu.Unlock() }
func (p *procs) untrack(cmd *exec.Cmd) { p.mu.Lock(); delete(p.cmds, cmd); p.mu.Unlock() }

// run runs a command to completion (bounded by timeout) and returns its
// stdout; stderr goes to the log. The command line is echoed to the log.
func (p *procs) run(ctx context.Context, timeout time.Duration, name string, args ...string) ([]byte, error) {
	out, _, err := p.runCPU(ctx, timeout, name, args...)
	return out, err
}

// runCPU is run that also returns the CPU time (user + system) the
// command used, from its rusage when it exited (0 if it did not start),
// and the runner's and the machine's CPU counters around it.
func (p *procs) runCPU(ctx context.Context, timeout time.Duration, name string, args ...string) ([]byte, toolRun, error) {
	var tr toolRun
	cmd, cancel := p.command(ctx, timeout, name, args...)
	defer cancel()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = p.log
	fmt.Fprintf(p.log, "+ %s\n", shellLine(name, args))
	tr.before = markCPU()
	if err := cmd.Start(); err != nil {
		return nil, tr, err
	}
	p.track(cmd)
	err := cmd.Wait()
	p.untrack(cmd)
	tr.after = markCPU()
	if ps := cmd.ProcessState; ps != nil {
		tr.cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		return out.Bytes(), tr, fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	return out.Bytes(), tr, nil
}

// KillAll kills the process group of every command still running.
func (p *procs) KillAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for cmd := range p.cmds {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

func shellLine(name string, args []string) string {
	parts := []string{filepath.Base(name)}
	for _, a := range args {
		if strings.ContainsAny(a, " '\"&?*{}$;|<>") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tool is an external command the runner needs, and how to install it.
type tool struct {
	name, pkg string
	path      string // resolved
	version   string
	installed time.Duration // how long go install took (0: already there)
}

// ensureTools finds each tool on PATH or in $(go env GOPATH)/bin and go
// installs the missing ones (unless install is false).
func ensureTools(ctx context.Context, p *procs, tools []*tool, install bool) error {
	gopath, err := p.run(ctx, time.Minute, "go", "env", "GOPATH")
	if err != nil {
		return err
	}
	bin := filepath.Join(strings.TrimSpace(strings.Split(string(gopath), string(os.PathListSeparator))[0]), "bin")
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		bin = gobin
	}
	for _, t := range tools {
		if path, err := exec.LookPath(t.name); err == nil {
			t.path = path
			continue
		}
		if path := filepath.Join(bin, t.name); isExecutable(path) {
			t.path = path
			continue
		}
		if !install {
			return fmt.Errorf("%s not found on PATH or in %s (install: go install %s)", t.name, bin, t.pkg)
		}
		start := time.Now()
		if _, err := p.run(ctx, 20*time.Minute, "go", "install", t.pkg); err != nil {
			return fmt.Errorf("install %s: %w", t.name, err)
		}
		t.installed = time.Since(start)
		t.path = filepath.Join(bin, t.name)
		if !isExecutable(t.path) {
			return fmt.Errorf("go install %s did not produce %s", t.pkg, t.path)
		}
	}
	return nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// client talks to sketchd's HTTP API.
type client struct {
	base  string
	token string // admin Bearer token, sent with every request
	http  *http.Client
}

// newClient returns a client of base; its timeout leaves room for a 30 s
// CPU profile.
func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 60 * time.Second}}
}

// randomToken returns a fresh admin token for one run.
func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *client) do(ctx context.Context, method, path string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return b, resp.StatusCode, err
}

func (c *client) getJSON(ctx context.Context, path string, into any) error {
	b, code, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d: %.300s", path, code, b)
	}
	return json.Unmarshal(b, into)
}

func (c *client) metrics(ctx context.Context) (Metrics, error) {
	b, code, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", code)
	}
	return ParseMetrics(bytes.NewReader(b))
}

// waitReady polls /readyz until 200, at most for timeout.
func (c *client) waitReady(ctx context.Context, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, code, err := c.do(ctx, http.MethodGet, "/readyz", nil); err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("sketchd exited before it was ready (see its log)")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("sketchd not ready after %s", timeout)
}

// procStatus reads VmRSS and VmHWM (bytes) of a process.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStatus(string(b))
}

// parseProcStatus returns VmRSS and VmHWM of a /proc/<pid>/status text, in
// bytes.
func parseProcStatus(s string) (rss, hwm int64, err error) {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "kB" {
			continue
		}
		v, perr := strconv.ParseInt(f[1], 10, 64)
		if perr != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return rss, hwm, errors.New("VmRSS or VmHWM missing from /proc status")
	}
	return rss, hwm, nil
}

// diskUsage returns the bytes allocated on disk (st_blocks·512, as du) and
// the apparent size of the files under dir.
func diskUsage(dir string) (used, apparent int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			used += st.Blocks * 512
		}
		if !d.IsDir() {
			apparent += info.Size()
		}
		return nil
	})
	return used, apparent, err
}
