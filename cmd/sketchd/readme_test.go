package main

// The README's commands, run against the real binary. Every command in a
// shell code block of README.md is parsed and either run and checked or the
// test fails, so the README and this file cannot drift apart silently:
//
//   - go run ./cmd/sketchd ARGS: the binary built by buildBinary, started
//     with the same ARGS (plus a temp --data-dir and free ports).
//   - go test -race ./...: the command running this test; checked to be the
//     one CI (.ci/run) and `make test` run.
//   - curl: interpreted in Go with net/http (no curl binary needed); each
//     answer is checked against what the README says it is.
//   - nats pub / nats sub: interpreted with nats.go (no nats CLI needed);
//     their effect is checked through the API.
//
// The commands use the default addresses; readmeRewrite points them at the
// test's server.
//
//	go test ./cmd/sketchd -run Readme -v

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sketchd/sketchd"
	"github.com/sketchd/sketchd/sketch"
)

const (
	readmePath = "../../README.md"
	// readmeHTTPAddr is the API address the README's commands use (the
	// default --http-addr, as curl writes it).
	readmeHTTPAddr = "localhost:8080"
	// readmeWait bounds every wait for the demo's data or a command's effect.
	readmeWait = 20 * time.Second
)

// readmeRewrite is the one place the README's commands are changed before
// they run: the default API address becomes the test server's. (The nats
// commands name no server; the CLI's default, nats://127.0.0.1:4222, is
// replaced by connecting to the test's embedded NATS.)
func readmeRewrite(cmd, httpHostPort string) string {
	return strings.ReplaceAll(cmd, readmeHTTPAddr, httpHostPort)
}

// readmeCmd is one command of a shell code block.
type readmeCmd struct {
	line int    // line of README.md the command starts on
	text string // as written; continuation lines joined with \n
}

func (c readmeCmd) String() string { return fmt.Sprintf("README.md:%d: %s", c.line, c.text) }

// readmeCommands returns the commands of every shell code block (```sh,
// ```bash, ```shell, ```console or an untagged fence) of the README, in
// order. A command in an inline code span of the prose (`curl ...`,
// `nats ...`) is an error: it would not be checked.
func readmeCommands(tb testing.TB, path string) []readmeCmd {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	inline := regexp.MustCompile("`([^`]+)`")
	var (
		cmds           []readmeCmd
		inBlock, shell bool
		pending        *readmeCmd
	)
	for i, l := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(l)
		if strings.HasPrefix(trim, "```") {
			if !inBlock {
				switch strings.TrimSpace(strings.TrimPrefix(trim, "```")) {
				case "", "sh", "bash", "shell", "console":
					shell = true
				}
				inBlock = true
				continue
			}
			if pending != nil {
				tb.Errorf("%s: unterminated at the end of its code block", pending)
				pending = nil
			}
			inBlock, shell = false, false
			continue
		}
		if !inBlock {
			for _, m := range inline.FindAllStringSubmatch(l, -1) {
				if w := strings.Fields(m[1]); len(w) > 1 && (w[0] == "curl" || w[0] == "nats") {
					tb.Errorf("README.md:%d: command %q in the prose: put it in a ```sh block, where TestReadmeQuickstart runs it", i+1, m[1])
				}
			}
			continue
		}
		if !shell {
			continue
		}
		if pending == nil {
			if trim == "" || strings.HasPrefix(trim, "#") {
				continue
			}
			pending = &readmeCmd{line: i + 1, text: l}
		} else {
			pending.text += "\n" + l
		}
		_, err := shellSplit(pending.text, readmeSubst)
		switch {
		case errors.Is(err, errShIncomplete):
			continue // a quoted string or a \ continuation goes on
		case err != nil:
			tb.Errorf("%s: %v", pending, err)
		default:
			cmds = append(cmds, *pending)
		}
		pending = nil
	}
	return cmds
}

// shWord is a word of a command line; op marks an unquoted operator (only
// the pipe, "|", is supported).
type shWord struct {
	s  string
	op bool
}

var errShIncomplete = errors.New("unterminated quote or line continuation")

// shellSplit splits a POSIX shell command line into words: blanks separate
// words, '…' is literal, "…" allows \" \\ \$ \` and $(…), a backslash
// escapes the next character, # starts a comment, | is an operator. Command
// substitutions are replaced by subst's result. Everything else a shell
// would treat specially (variables, globs, redirections, ;, &, braces,
// backquotes, ~) is an error, so a command that would not do in a shell
// what it says here fails the test.
func shellSplit(s string, subst func(cmd string) (string, error)) ([]shWord, error) {
	var (
		words  []shWord
		cur    strings.Builder
		inWord bool
	)
	flush := func() {
		if inWord {
			words = append(words, shWord{s: cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	dollar := func(i int) (string, int, error) { // s[i] == '$'; returns the value and the length consumed
		if !strings.HasPrefix(s[i:], "$(") {
			return "", 0, fmt.Errorf("unsupported $ expansion at %q (only $(command) is)", s[i:min(len(s), i+10)])
		}
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return "", 0, errShIncomplete
		}
		inner := s[i+2 : i+end]
		if strings.ContainsAny(inner, "$`'\"()") {
			return "", 0, fmt.Errorf("unsupported nested quoting in $(%s)", inner)
		}
		v, err := subst(inner)
		return v, end + 1, err
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errShIncomplete
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				inWord = true
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errShIncomplete
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(s) {
					return nil, errShIncomplete
				}
				c := s[i]
				if c == '"' {
					break
				}
				switch c {
				case '\\':
					if i+1 >= len(s) {
						return nil, errShIncomplete
					}
					switch n := s[i+1]; n {
					case '"', '\\', '$', '`':
						cur.WriteByte(n)
						i++
					case '\n':
						i++
					default:
						cur.WriteByte('\\')
					}
				case '$':
					v, n, err := dollar(i)
					if err != nil {
						return nil, err
					}
					cur.WriteString(v)
					i += n - 1
				case '`':
					return nil, errors.New("backquote substitution is not supported")
				default:
					cur.WriteByte(c)
				}
			}
		case c == '$':
			v, n, err := dollar(i)
			if err != nil {
				return nil, err
			}
			if strings.ContainsAny(v, " \t\n*?[") {
				return nil, fmt.Errorf("unquoted $(…) expands to %q, which a shell would split or glob", v)
			}
			cur.WriteString(v)
			inWord = true
			i += n - 1
		case c == '|':
			if i+1 < len(s) && s[i+1] == '|' {
				return nil, errors.New("|| is not supported")
			}
			flush()
			words = append(words, shWord{s: "|", op: true})
		case strings.IndexByte(";&<>`(){}*?[]~!", c) >= 0:
			return nil, fmt.Errorf("unquoted %q is special to the shell (quote it) or not supported here", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// readmeSubst runs the command substitutions the README uses.
func readmeSubst(cmd string) (string, error) {
	switch strings.Join(strings.Fields(cmd), " ") {
	case "date +%s": // portable: GNU and BSD date
		return strconv.FormatInt(time.Now().Unix(), 10), nil
	}
	return "", fmt.Errorf("command substitution $(%s) is not supported", cmd)
}

// readmePipeline splits words at the | operators.
func readmePipeline(words []shWord) [][]string {
	stages := [][]string{nil}
	for _, w := range words {
		if w.op {
			stages = append(stages, nil)
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], w.s)
	}
	return stages
}

// errReadmeNotYet marks a check that may pass once the demo has produced more
// data or a flush has committed it; readmeEventually retries it.
var errReadmeNotYet = errors.New("not yet")

func readmeNotYet(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errReadmeNotYet, fmt.Sprintf(format, a...))
}

// readmeEventually runs f until it returns nil, an error that is not errReadmeNotYet,
// or readmeWait passes.
func readmeEventually(tb testing.TB, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(readmeWait)
	for {
		err := f()
		if err == nil {
			return
		}
		if !errors.Is(err, errReadmeNotYet) {
			tb.Error(err)
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("still %v after %s", err, readmeWait)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readmeStream is what the test knows of a stream: its spec as the server
// returned it, and the events the README's nats commands published to it.
type readmeStream struct {
	Name              string `json:"name"`
	Subject           string `json:"subject"`
	LateSubject       string `json:"late_subject"`
	DeadLetterSubject string `json:"dead_letter_subject"`
	Aggregates        map[string]struct {
		Sketch string `json:"sketch"`
		Field  string `json:"field"`
		TopK   int    `json:"top_k"`
	} `json:"aggregates"`

	fromReadme bool             // created by a README command
	published  []map[string]any // events the README published to it
}

// readmeStatus is GET /v1/streams/{stream}.
type readmeStatus struct {
	Name               string     `json:"name"`
	State              string     `json:"state"`
	Watermark          *time.Time `json:"watermark"`
	CommittedWatermark *time.Time `json:"committed_watermark"`
	Counters           *struct {
		OnTime  *uint64           `json:"on_time"`
		Late    *uint64           `json:"late"`
		TooLate *uint64           `json:"too_late"`
		Invalid map[string]uint64 `json:"invalid"`
	} `json:"counters"`
	Spec readmeStream `json:"spec"`
}

func (s readmeStatus) invalid() uint64 {
	var n uint64
	for _, v := range s.Counters.Invalid {
		n += v
	}
	return n
}

// readmeRun is the state of one run of the README's commands.
type readmeRun struct {
	p       *sketchdProc
	apiHost string // host:port of the API, for readmeRewrite
	dir     string // working directory of the commands (curl -o writes here)
	nc      *nats.Conn
	js      jetstream.JetStream
	client  *http.Client
	streams map[string]*readmeStream
}

// TestReadmeQuickstart runs every command of the README's shell blocks, in
// order, against the real binary started as the README starts it.
func TestReadmeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cmds := readmeCommands(t, readmePath)
	if t.Failed() {
		t.FailNow()
	}
	// First pass: every command must be one this test knows how to check,
	// and every `go run` must start the same thing.
	var runArgs []string
	var runCmd *readmeCmd
	for i, c := range cmds {
		words, _ := shellSplit(c.text, readmeSubst)
		stages := readmePipeline(words)
		args := stages[0]
		switch {
		case len(args) >= 3 && args[0] == "go" && args[1] == "run":
			if args[2] != "./cmd/sketchd" || len(stages) > 1 {
				t.Errorf("%s: only `go run ./cmd/sketchd [flags]` is checked", c)
				continue
			}
			if runCmd != nil && !slices.Equal(args[3:], runArgs) {
				t.Errorf("%s: starts sketchd with %q, but %s starts it with %q; the test runs one server", c, args[3:], runCmd, runArgs)
			}
			runArgs, runCmd = args[3:], &cmds[i]
		case len(args) >= 2 && args[0] == "go" && args[1] == "test":
		case len(args) >= 1 && args[0] == "curl":
			if _, err := parseCurl(args[1:]); err != nil {
				t.Errorf("%s: %v", c, err)
			}
			for _, st := range stages[1:] {
				if _, err := parseGrep(st); err != nil {
					t.Errorf("%s: %v", c, err)
				}
			}
		case len(args) >= 2 && args[0] == "nats" && (args[1] == "pub" || args[1] == "publish"):
			if _, err := parseNATSPub(args[2:]); err != nil {
				t.Errorf("%s: %v", c, err)
			}
			if len(stages) > 1 {
				t.Errorf("%s: no pipe after nats pub is supported", c)
			}
		case len(args) >= 2 && args[0] == "nats" && (args[1] == "sub" || args[1] == "subscribe"):
			if _, err := parseNATSSub(args[2:]); err != nil {
				t.Errorf("%s: %v", c, err)
			}
			if len(stages) > 1 {
				t.Errorf("%s: no pipe after nats sub is supported", c)
			}
		default:
			t.Errorf("%s: TestReadmeQuickstart does not know how to check this command; teach it (cmd/sketchd/readme_test.go)", c)
		}
	}
	if runCmd == nil {
		t.Error("README.md shows no `go run ./cmd/sketchd` command to start the service")
	}
	if t.Failed() {
		t.FailNow()
	}

	// `go run ./cmd/sketchd --demo` is checked by running the built binary
	// with the same flags; the test adds its own data dir and free ports.
	bin := buildBinary(t)
	dir := t.TempDir()
	args := append(slices.Clone(runArgs), "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0")
	p := startSketchd(t, bin, args...)
	u, err := url.Parse(p.httpURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &readmeRun{p: p, apiHost: u.Host, dir: filepath.Join(dir, "work"),
		client: &http.Client{Timeout: 15 * time.Second}, streams: map[string]*readmeStream{}}
	if err := os.Mkdir(r.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	r.nc, err = nats.Connect(p.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.nc.Close()
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}

	// The demo stream documented in the Quickstart: wait until it has
	// committed on-time, too-late and invalid events, then learn its spec.
	if slices.Contains(runArgs, "--demo") {
		var st readmeStatus
		readmeEventually(t, func() error {
			var err error
			if st, err = r.status(demoStreamName); err != nil {
				return err
			}
			switch {
			case st.CommittedWatermark == nil:
				return readmeNotYet("demo: nothing committed")
			case *st.Counters.OnTime == 0 || *st.Counters.TooLate == 0 || st.invalid() == 0:
				return readmeNotYet("demo: on_time %d, too_late %d, invalid %d", *st.Counters.OnTime, *st.Counters.TooLate, st.invalid())
			}
			return nil
		})
		if t.Failed() {
			t.FailNow()
		}
		r.streams[st.Spec.Name] = &st.Spec
	}

	for _, c := range cmds {
		t.Run(fmt.Sprintf("README.md:%d", c.line), func(t *testing.T) {
			text := readmeRewrite(c.text, r.apiHost)
			words, err := shellSplit(text, readmeSubst)
			if err != nil {
				t.Fatal(err)
			}
			stages := readmePipeline(words)
			t.Logf("$ %s", text)
			switch args := stages[0]; {
			case args[0] == "go" && args[1] == "run":
				// Started above.
			case args[0] == "go" && args[1] == "test":
				readmeCheckTestCommand(t, args)
			case args[0] == "curl":
				r.curl(t, args[1:], stages[1:])
			case args[1] == "pub" || args[1] == "publish":
				r.natsPub(t, args[2:])
			default:
				r.natsSub(t, args[2:])
			}
		})
	}
	p.stop(t)
}

// readmeCheckTestCommand checks that the README's test command is the one CI
// (.ci/run) and `make test` run. (Running it here would run this test.)
func readmeCheckTestCommand(tb testing.TB, args []string) {
	tb.Helper()
	want := strings.Join(args, " ")
	for _, f := range []struct{ path, line string }{
		{"../../.ci/run", want},
		{"../../Makefile", "\t" + strings.Replace(want, "go ", "$(GO) ", 1)},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			tb.Fatal(err)
		}
		if !slices.Contains(strings.Split(string(b), "\n"), f.line) {
			tb.Errorf("%s does not run %q, the README's test command", f.path, want)
		}
	}
}

// ---- curl ----

// curlCmd is a parsed curl command line.
type curlCmd struct {
	method   string
	url      string
	header   http.Header
	data     []string // -d values; "@file" reads a file
	dataBin  []string // --data-binary values
	output   string   // -o FILE
	hasBody  bool
	explicit bool // -X given
}

// parseCurl parses the curl options the README uses; any other option is
// an error.
func parseCurl(args []string) (curlCmd, error) {
	c := curlCmd{header: http.Header{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("curl: %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var v string
		var err error
		switch a {
		case "-s", "--silent":
			continue
		case "-o", "--output", "-X", "--request", "-H", "--header", "-d", "--data", "--data-binary":
			if v, err = val(); err != nil {
				return c, err
			}
		default:
			if strings.HasPrefix(a, "-") {
				return c, fmt.Errorf("curl option %s is not supported by this test", a)
			}
			if c.url != "" {
				return c, fmt.Errorf("curl: a second URL %q is not supported", a)
			}
			c.url = a
			continue
		}
		switch a {
		case "-o", "--output":
			c.output = v
		case "-X", "--request":
			c.method, c.explicit = v, true
		case "-H", "--header":
			k, hv, ok := strings.Cut(v, ":")
			if !ok {
				return c, fmt.Errorf("curl: header %q has no colon", v)
			}
			c.header.Add(strings.TrimSpace(k), strings.TrimSpace(hv))
		case "-d", "--data":
			c.data, c.hasBody = append(c.data, v), true
		case "--data-binary":
			c.dataBin, c.hasBody = append(c.dataBin, v), true
		}
	}
	if c.url == "" {
		return c, errors.New("curl: no URL")
	}
	if strings.ContainsAny(c.url, "[]{}") {
		return c, fmt.Errorf("curl would glob the URL %q (it needs -g)", c.url)
	}
	if !strings.Contains(c.url, "://") {
		c.url = "http://" + c.url // curl's default scheme
	}
	if _, err := url.Parse(c.url); err != nil {
		return c, err
	}
	if c.method == "" {
		c.method = http.MethodGet
		if c.hasBody {
			c.method = http.MethodPost
		}
	}
	return c, nil
}

// body returns the request body the way curl builds it: -d values joined
// with &, @file read from dir (CR and LF stripped for -d, kept for
// --data-binary).
func (c curlCmd) body(dir string) ([]byte, error) {
	var parts [][]byte
	read := func(v string, strip bool) ([]byte, error) {
		if !strings.HasPrefix(v, "@") {
			return []byte(v), nil
		}
		b, err := os.ReadFile(filepath.Join(dir, v[1:]))
		if strip {
			b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)
		}
		return b, err
	}
	for _, v := range c.data {
		b, err := read(v, true)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	for _, v := range c.dataBin {
		b, err := read(v, false)
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	return bytes.Join(parts, []byte("&")), nil
}

// parseGrep parses `grep PATTERN` (a basic regular expression; only the
// part of the syntax that Go's regexp reads the same way).
func parseGrep(args []string) (*regexp.Regexp, error) {
	if len(args) != 2 || args[0] != "grep" || strings.HasPrefix(args[1], "-") {
		return nil, fmt.Errorf("only `| grep PATTERN` is supported after a command, got %q", args)
	}
	if strings.ContainsAny(args[1], `+?|(){}\`) {
		return nil, fmt.Errorf("grep pattern %q: BRE and Go regexp differ on +?|(){}\\", args[1])
	}
	return regexp.Compile(args[1])
}

// curlResult is a response to an interpreted curl command.
type curlResult struct {
	resp   *http.Response
	body   []byte
	output []string // what the readmePipeline printed, as lines (the body, or grep's matches)
	url    *url.URL
}

// do performs the request and writes -o as curl does.
func (r *readmeRun) do(c curlCmd, pipe [][]string) (curlResult, error) {
	body, err := c.body(r.dir)
	if err != nil {
		return curlResult{}, err
	}
	var rd io.Reader
	if c.hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), c.method, c.url, rd)
	if err != nil {
		return curlResult{}, err
	}
	req.Header = c.header.Clone()
	if c.hasBody && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return curlResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return curlResult{}, err
	}
	res := curlResult{resp: resp, body: b, url: req.URL}
	if c.output != "" {
		if err := os.WriteFile(filepath.Join(r.dir, c.output), b, 0o600); err != nil {
			return res, err
		}
	} else {
		res.output = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	for _, st := range pipe {
		re, err := parseGrep(st)
		if err != nil {
			return res, err
		}
		var kept []string
		for _, l := range res.output {
			if re.MatchString(l) {
				kept = append(kept, l)
			}
		}
		if len(kept) == 0 {
			return res, fmt.Errorf("%q prints nothing (grep exits 1)", st)
		}
		res.output = kept
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return res, fmt.Errorf("%s %s: status %d: %s", c.method, c.url, resp.StatusCode, b)
	}
	return res, nil
}

// readmeContentType fails unless the response has the media type want.
func readmeContentType(res curlResult, want string) error {
	mt, _, err := mime.ParseMediaType(res.resp.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return fmt.Errorf("Content-Type %q, want %s", res.resp.Header.Get("Content-Type"), want)
	}
	return nil
}

// curl runs one curl command (retried while its answer is not there yet)
// and checks the answer by route.
func (r *readmeRun) curl(t *testing.T, args []string, pipe [][]string) {
	c, err := parseCurl(args)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(c.url)
	if u.Host != r.apiHost {
		t.Fatalf("curl to %s, not to the API (%s before readmeRewrite)", u.Host, readmeHTTPAddr)
	}
	seg := strings.Split(strings.Trim(u.Path, "/"), "/")
	var check func(curlResult) error
	switch {
	case c.method == http.MethodPost && u.Path == "/v1/streams":
		// Not retried: a second POST would be a different request (409).
		res, err := r.do(c, pipe)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.checkCreated(c, res); err != nil {
			t.Error(err)
		}
		return
	case c.method == http.MethodPost && len(seg) == 4 && seg[0] == "v1" && seg[1] == "streams" && seg[3] == "events":
		r.curlPublish(t, c, seg[2], pipe)
		return
	case c.method != http.MethodGet:
		t.Fatalf("curl -X %s %s: no check for this route", c.method, u.Path)
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "streams":
		check = func(res curlResult) error {
			if u.Query().Has("pretty") && !bytes.Contains(res.body, []byte("\n  \"")) {
				return fmt.Errorf("?pretty: the answer is not indented: %s", res.body)
			}
			return r.checkStatus(seg[2], res)
		}
	case len(seg) == 5 && seg[0] == "v1" && seg[3] == "aggregates":
		check = func(res curlResult) error { return r.checkAggregate(seg[2], seg[4], res) }
	case len(seg) == 6 && seg[0] == "v1" && seg[3] == "aggregates" && seg[5] == "sketch":
		if c.output == "" {
			t.Fatal("the /sketch download has no -o FILE: the README should save it")
		}
		check = func(res curlResult) error { return r.checkSketch(seg[2], seg[4], c.output, res) }
	case u.Path == "/metrics":
		check = readmeCheckMetrics
	default:
		t.Fatalf("curl %s: no check for this route; teach TestReadmeQuickstart", u.Path)
	}
	readmeEventually(t, func() error {
		res, err := r.do(c, pipe)
		if err != nil {
			return err
		}
		return check(res)
	})
}

// checkCreated checks POST /v1/streams: 201, Location, the stream echoed
// back running with the spec sent.
func (r *readmeRun) checkCreated(c curlCmd, res curlResult) error {
	body, _ := c.body(r.dir)
	var sent readmeStream
	if err := json.Unmarshal(body, &sent); err != nil {
		return fmt.Errorf("the README's stream spec is not JSON: %w", err)
	}
	if res.resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d, want 201", res.resp.StatusCode)
	}
	if err := readmeContentType(res, "application/json"); err != nil {
		return err
	}
	if got, want := res.resp.Header.Get("Location"), "/v1/streams/"+sent.Name; got != want {
		return fmt.Errorf("Location %q, want %q", got, want)
	}
	var st readmeStatus
	if err := json.Unmarshal(res.body, &st); err != nil {
		return fmt.Errorf("answer is not a stream: %w: %s", err, res.body)
	}
	if st.Name != sent.Name || st.Spec.Subject != sent.Subject || st.State != "running" || len(st.Spec.Aggregates) != len(sent.Aggregates) {
		return fmt.Errorf("created stream %s (state %q, subject %q, %d aggregates), sent %s on %q with %d: %s",
			st.Name, st.State, st.Spec.Subject, len(st.Spec.Aggregates), sent.Name, sent.Subject, len(sent.Aggregates), res.body)
	}
	st.Spec.fromReadme = true
	r.streams[st.Name] = &st.Spec
	return nil
}

// status reads GET /v1/streams/{name}.
func (r *readmeRun) status(name string) (readmeStatus, error) {
	var st readmeStatus
	if err := r.getJSON(r.p.httpURL+"/v1/streams/"+name, &st); err != nil {
		return st, err
	}
	if st.Counters == nil || st.Counters.OnTime == nil || st.Counters.Late == nil || st.Counters.TooLate == nil {
		return st, fmt.Errorf("GET /v1/streams/%s: no on_time, late and too_late counters", name)
	}
	return st, nil
}

// checkStatus checks GET /v1/streams/{stream}: "streams, with live
// watermark and on-time / late / too-late / invalid counts".
func (r *readmeRun) checkStatus(name string, res curlResult) error {
	if err := readmeContentType(res, "application/json"); err != nil {
		return err
	}
	var st readmeStatus
	if err := json.Unmarshal(res.body, &st); err != nil {
		return fmt.Errorf("not a stream: %w: %s", err, res.body)
	}
	if st.Name != name || st.State != "running" || st.Counters == nil || st.Counters.OnTime == nil ||
		st.Counters.Late == nil || st.Counters.TooLate == nil {
		return fmt.Errorf("want stream %s running with on_time, late and too_late counters: %s", name, res.body)
	}
	if !bytes.Contains(res.body, []byte(`"watermark":`)) {
		return fmt.Errorf("no watermark: %s", res.body)
	}
	s := r.streams[name]
	switch {
	case s == nil:
		return fmt.Errorf("stream %s: neither the demo nor created by the README", name)
	case name == demoStreamName:
		// The demo publishes on-time, too-late and invalid events.
		if st.Watermark == nil || *st.Counters.OnTime == 0 || *st.Counters.TooLate == 0 || st.invalid() == 0 {
			return readmeNotYet("demo: watermark %v, on_time %d, too_late %d, invalid %d", st.Watermark, *st.Counters.OnTime, *st.Counters.TooLate, st.invalid())
		}
	case *st.Counters.OnTime < uint64(len(s.published)):
		return readmeNotYet("%s: on_time %d of %d published", name, *st.Counters.OnTime, len(s.published))
	}
	return nil
}

// readmeAnswer is the part of a query answer the checks read.
type readmeAnswer struct {
	Stream    string     `json:"stream"`
	Aggregate string     `json:"aggregate"`
	Kind      string     `json:"kind"`
	From      time.Time  `json:"from"`
	To        time.Time  `json:"to"`
	Step      *string    `json:"step"`
	Watermark *time.Time `json:"watermark"`
	Keys      int        `json:"keys"`
	Groups    []struct {
		Key     map[string]string `json:"key"`
		Windows []readmeWindow    `json:"windows"`
	} `json:"groups"`
}

type readmeWindow struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Events   *uint64   `json:"events"`
	Distinct *struct {
		Estimate   float64 `json:"estimate"`
		Lower      float64 `json:"lower"`
		Upper      float64 `json:"upper"`
		Confidence float64 `json:"confidence"`
	} `json:"distinct"`
	Total *uint64 `json:"total"`
	Top   []struct {
		Item     string  `json:"item"`
		Estimate float64 `json:"estimate"`
		Lower    *uint64 `json:"lower"`
		Upper    *uint64 `json:"upper"`
	} `json:"top"`
	Count     *uint64  `json:"count"`
	Min       *float64 `json:"min"`
	Max       *float64 `json:"max"`
	Quantiles []struct {
		Q     float64  `json:"q"`
		Value *float64 `json:"value"`
		Lower *float64 `json:"lower"`
		Upper *float64 `json:"upper"`
	} `json:"quantiles"`
	Population *uint64           `json:"population"`
	Sample     []json.RawMessage `json:"sample"`
}

// checkAggregate checks an aggregate query against its own parameters
// (group_by, step, q, where, top, n; any other is an error) and what the
// README published: every parameter shows in the answer, the answer is of
// the aggregate's kind with its error bounds, and it is not empty.
func (r *readmeRun) checkAggregate(stream, agg string, res curlResult) error {
	if err := readmeContentType(res, "application/json"); err != nil {
		return err
	}
	var a readmeAnswer
	if err := json.Unmarshal(res.body, &a); err != nil {
		return fmt.Errorf("not a query answer: %w: %s", err, res.body)
	}
	s := r.streams[stream]
	if s == nil {
		return fmt.Errorf("stream %s: neither the demo nor created by the README", stream)
	}
	spec, ok := s.Aggregates[agg]
	if !ok || a.Stream != stream || a.Aggregate != agg || a.Kind != spec.Sketch {
		return fmt.Errorf("answer for %s/%s (%s), want %s/%s (%s)", a.Stream, a.Aggregate, a.Kind, stream, agg, spec.Sketch)
	}
	q := res.url.Query()
	for p := range q {
		switch p {
		case "group_by", "step", "q", "where", "top", "n":
		default:
			return fmt.Errorf("query parameter %s: no check for it; teach TestReadmeQuickstart", p)
		}
	}
	// "over the last hour" is the default range.
	if a.To.Sub(a.From) < time.Hour {
		return fmt.Errorf("range %s..%s is shorter than the default hour", a.From, a.To)
	}
	var groupBy []string
	for _, g := range q["group_by"] {
		groupBy = append(groupBy, strings.Split(g, ",")...)
	}
	if len(a.Groups) == 0 {
		return readmeNotYet("no groups")
	}
	if len(groupBy) == 0 && (len(a.Groups) != 1 || len(a.Groups[0].Key) != 0) {
		return fmt.Errorf("no group_by, but %d groups: %s", len(a.Groups), res.body)
	}
	step := q.Get("step")
	var stepDur time.Duration
	if step != "" {
		var err error
		if stepDur, err = time.ParseDuration(step); err != nil {
			return err
		}
		if a.Step == nil || *a.Step != step {
			return fmt.Errorf("step %v, want %s", a.Step, step)
		}
	} else if a.Step != nil {
		return fmt.Errorf("step %v without step=", *a.Step)
	}
	var events uint64
	nonEmpty := false
	for _, g := range a.Groups {
		for _, d := range groupBy {
			if g.Key[d] == "" {
				return fmt.Errorf("group_by %s: group key %v lacks it", d, g.Key)
			}
		}
		if len(g.Key) != len(groupBy) {
			return fmt.Errorf("group key %v, want dimensions %v", g.Key, groupBy)
		}
		if step == "" && len(g.Windows) != 1 {
			return fmt.Errorf("no step, but %d windows", len(g.Windows))
		}
		for _, w := range g.Windows {
			if step != "" && w.End.Sub(w.Start) != stepDur {
				return fmt.Errorf("window %s..%s is not one step of %s", w.Start, w.End, step)
			}
			if w.Events == nil {
				return fmt.Errorf("window without events: %s", res.body)
			}
			events += *w.Events
			ne, err := readmeCheckKind(a.Kind, w, q, spec.TopK)
			if err != nil {
				return fmt.Errorf("group %v window %s: %w", g.Key, w.Start, err)
			}
			nonEmpty = nonEmpty || ne
		}
	}
	if !nonEmpty {
		return readmeNotYet("%s/%s: empty answer (%d events)", stream, agg, events)
	}
	if len(q["where"]) > 0 {
		if err := r.checkWhere(res.url, q, a.Keys); err != nil {
			return err
		}
	}
	if s.fromReadme {
		return readmeCheckPublished(s, spec.Field, a, events)
	}
	return nil
}

// readmeCheckKind checks one window's answer of its kind and says whether it is
// non-empty.
func readmeCheckKind(kind string, w readmeWindow, q url.Values, topK int) (bool, error) {
	switch kind {
	case "hll":
		d := w.Distinct
		if d == nil {
			return false, errors.New("no distinct")
		}
		// "with a 95% interval"
		if d.Confidence != 0.95 || d.Lower > d.Estimate || d.Estimate > d.Upper {
			return false, fmt.Errorf("distinct %+v: want lower <= estimate <= upper at confidence 0.95", *d)
		}
		return d.Estimate > 0, nil
	case "tdigest":
		want := []float64{0.5, 0.9, 0.99} // the documented default
		if qs := q["q"]; len(qs) > 0 {
			want = nil
			for _, s := range strings.Split(strings.Join(qs, ","), ",") {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return false, err
				}
				want = append(want, f)
			}
		}
		if w.Count == nil || len(w.Quantiles) != len(want) {
			return false, fmt.Errorf("count %v, %d quantiles, want %v", w.Count, len(w.Quantiles), want)
		}
		prev := math.Inf(-1)
		for i, qv := range w.Quantiles {
			if qv.Q != want[i] {
				return false, fmt.Errorf("quantile %d is q=%v, want %v", i, qv.Q, want[i])
			}
			if *w.Count == 0 {
				if qv.Value != nil {
					return false, fmt.Errorf("empty digest with value %v", *qv.Value)
				}
				continue
			}
			if qv.Value == nil || qv.Lower == nil || qv.Upper == nil || w.Min == nil || w.Max == nil {
				return false, errors.New("non-empty digest with null values")
			}
			v := *qv.Value
			if *qv.Lower > v || v > *qv.Upper || v < *w.Min || v > *w.Max || v < prev {
				return false, fmt.Errorf("q=%v: %v not within [%v, %v] and [min %v, max %v], or below the previous quantile", qv.Q, v, *qv.Lower, *qv.Upper, *w.Min, *w.Max)
			}
			prev = v
		}
		return *w.Count > 0, nil
	case "cms":
		top := topK
		if s := q.Get("top"); s != "" {
			var err error
			if top, err = strconv.Atoi(s); err != nil {
				return false, err
			}
		}
		if w.Total == nil || len(w.Top) > top {
			return false, fmt.Errorf("total %v, %d top items for top=%d", w.Total, len(w.Top), top)
		}
		for i, it := range w.Top {
			if it.Lower == nil || it.Upper == nil || float64(*it.Lower) > it.Estimate || it.Estimate > float64(*it.Upper) ||
				(i > 0 && it.Estimate > w.Top[i-1].Estimate) || it.Item == "" {
				return false, fmt.Errorf("top[%d] %+v: want lower <= estimate <= upper, by estimate descending", i, it)
			}
		}
		if *w.Total > 0 && len(w.Top) < top {
			return false, readmeNotYet("%d of the %d most frequent items", len(w.Top), top)
		}
		return *w.Total > 0, nil
	case "reservoir":
		if w.Population == nil {
			return false, errors.New("no population")
		}
		if s := q.Get("n"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return false, err
			}
			if *w.Population > 0 && *w.Population < n {
				return false, readmeNotYet("population %d, fewer than n=%d", *w.Population, n)
			}
			if want := min(n, *w.Population); uint64(len(w.Sample)) != want {
				return false, fmt.Errorf("%d sampled, want %d (n=%d, population %d)", len(w.Sample), want, n, *w.Population)
			}
		}
		if uint64(len(w.Sample)) > *w.Population {
			return false, fmt.Errorf("%d sampled from a population of %d", len(w.Sample), *w.Population)
		}
		for _, it := range w.Sample {
			if !json.Valid(it) {
				return false, fmt.Errorf("sample item %s is not JSON", it)
			}
		}
		return len(w.Sample) > 0, nil
	}
	return false, fmt.Errorf("kind %q: no check for it", kind)
}

// checkWhere re-asks a where= query grouped by the filtered dimensions (an
// extra request, not a README command) and checks that every key it merged
// matches the filter: the same dimension repeated is OR, different
// dimensions are AND.
func (r *readmeRun) checkWhere(u *url.URL, q url.Values, keys int) error {
	allowed := map[string][]string{}
	var dims []string
	for _, w := range q["where"] {
		d, v, ok := strings.Cut(w, "=")
		if !ok {
			return fmt.Errorf("where=%s: no =", w)
		}
		if allowed[d] == nil {
			dims = append(dims, d)
		}
		allowed[d] = append(allowed[d], v)
	}
	combos := 1
	for _, vs := range allowed {
		combos *= len(vs)
	}
	q2 := url.Values{}
	for k, v := range q {
		q2[k] = v
	}
	q2.Set("group_by", strings.Join(dims, ","))
	u2 := *u
	u2.RawQuery = q2.Encode()
	var a readmeAnswer
	if err := r.getJSON(u2.String(), &a); err != nil {
		return err
	}
	if len(a.Groups) > combos {
		return fmt.Errorf("where %v: %d groups by %v, more than the %d the filter allows", q["where"], len(a.Groups), dims, combos)
	}
	for _, g := range a.Groups {
		for d, vs := range allowed {
			if !slices.Contains(vs, g.Key[d]) {
				return fmt.Errorf("where %v: the answer merged key %v", q["where"], g.Key)
			}
		}
	}
	if keys == 0 {
		return readmeNotYet("where %v: no keys", q["where"])
	}
	return nil
}

// readmeCheckPublished checks an answer on a stream the README created against
// the events the README published to it: all counted, values as sent.
func readmeCheckPublished(s *readmeStream, field string, a readmeAnswer, events uint64) error {
	n := uint64(len(s.published))
	if events < n {
		return readmeNotYet("%d of the %d published events counted", events, n)
	}
	if events > n {
		return fmt.Errorf("%d events counted, the README published %d", events, n)
	}
	var vals []float64
	distinct := map[string]bool{}
	for _, e := range s.published {
		distinct[fmt.Sprint(e[field])] = true
		if f, ok := e[field].(float64); ok {
			vals = append(vals, f)
		}
	}
	for _, g := range a.Groups {
		for _, w := range g.Windows {
			switch {
			case w.Distinct != nil && *w.Events > 0:
				if d := float64(len(distinct)); d < w.Distinct.Lower || d > w.Distinct.Upper {
					return fmt.Errorf("%d distinct %s published, answer [%v, %v]", len(distinct), field, w.Distinct.Lower, w.Distinct.Upper)
				}
			case w.Quantiles != nil && *w.Events > 0:
				lo, hi := slices.Min(vals), slices.Max(vals)
				if *w.Min != lo || *w.Max != hi {
					return fmt.Errorf("min %v max %v, published %s from %v to %v", *w.Min, *w.Max, field, lo, hi)
				}
			}
		}
	}
	return nil
}

// getJSON is GET url into out; anything but 200 is an error.
func (r *readmeRun) getJSON(url string, out any) error {
	resp, err := r.client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("GET %s: %w: %s", url, err, b)
	}
	return nil
}

// checkSketch checks the /sketch download: the file holds a sketch
// envelope of the aggregate's kind that the sketch package decodes.
func (r *readmeRun) checkSketch(stream, agg, file string, res curlResult) error {
	if err := readmeContentType(res, "application/octet-stream"); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(r.dir, file))
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, []byte("SK")) {
		return fmt.Errorf("%s does not start with the envelope magic SK: % x", file, b[:min(len(b), 8)])
	}
	sk, err := sketch.Decode(b)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	s := r.streams[stream]
	if s == nil || s.Aggregates[agg].Sketch != sk.Kind().String() || res.resp.Header.Get("Sketchd-Kind") != sk.Kind().String() {
		return fmt.Errorf("%s holds a %s sketch, Sketchd-Kind %q, aggregate %s/%s", file, sk.Kind(), res.resp.Header.Get("Sketchd-Kind"), stream, agg)
	}
	events, err := strconv.ParseUint(res.resp.Header.Get("Sketchd-Events"), 10, 64)
	if err != nil {
		return fmt.Errorf("Sketchd-Events: %w", err)
	}
	if sk.Count() == 0 {
		return readmeNotYet("empty sketch")
	}
	if sk.Count() > events {
		return fmt.Errorf("sketch counts %d values, Sketchd-Events %d", sk.Count(), events)
	}
	return nil
}

// readmeCheckMetrics checks `/metrics | grep '^sketchd_'`: "what it ingested,
// what was late or invalid, how far the watermark lags".
func readmeCheckMetrics(res curlResult) error {
	if err := readmeContentType(res, "text/plain"); err != nil {
		return err
	}
	out := strings.Join(res.output, "\n")
	for _, want := range []string{
		`sketchd_events_total{outcome="on_time"`,
		`sketchd_events_total{outcome="too_late"`,
		`sketchd_invalid_events_total{`,
		`sketchd_watermark_lag_seconds{`,
	} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("the output lacks %s", want)
		}
	}
	return nil
}

// ---- nats ----

// natsPubCmd is `nats pub SUBJECT [BODY] [--count N] [-H K:V]... [-J]`.
type natsPubCmd struct {
	subject, body string
	count         int
	header        nats.Header
	jetstream     bool
}

func parseNATSPub(args []string) (natsPubCmd, error) {
	c := natsPubCmd{count: 1, header: nats.Header{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, v, hasV := strings.Cut(a, "=")
		next := func() (string, error) {
			if hasV {
				return v, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("nats pub: %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch name {
		case "--count":
			s, err := next()
			if err != nil {
				return c, err
			}
			if c.count, err = strconv.Atoi(s); err != nil || c.count < 1 {
				return c, fmt.Errorf("nats pub --count %q", s)
			}
		case "-H", "--header":
			s, err := next()
			if err != nil {
				return c, err
			}
			k, hv, ok := strings.Cut(s, ":")
			if !ok {
				return c, fmt.Errorf("nats pub header %q is not K:V", s)
			}
			c.header.Add(strings.TrimSpace(k), strings.TrimSpace(hv))
		case "-J", "--jetstream":
			c.jetstream = true
		default:
			if strings.HasPrefix(a, "-") {
				return c, fmt.Errorf("nats pub option %s is not supported by this test", a)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return c, fmt.Errorf("nats pub: want SUBJECT BODY, got %q (reading stdin is not supported)", pos)
	}
	c.subject, c.body = pos[0], pos[1]
	if strings.Contains(c.body, "{{") {
		return c, errors.New("nats pub: body templates are not supported by this test")
	}
	return c, nil
}

// natsPub publishes as the nats CLI does and checks that every stream
// reading the subject counts the events.
func (r *readmeRun) natsPub(t *testing.T, args []string) {
	c, err := parseNATSPub(args)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(c.body), &ev); err != nil {
		t.Fatalf("the README publishes %q, which is not a JSON event: %v", c.body, err)
	}
	var readers []*readmeStream
	for _, s := range r.streams {
		if sketchd.SubjectMatches(s.Subject, c.subject) {
			readers = append(readers, s)
		}
	}
	if len(readers) == 0 {
		t.Fatalf("no stream reads %s", c.subject)
	}
	before := map[string]readmeStatus{}
	for _, s := range readers {
		if before[s.Name], err = r.status(s.Name); err != nil {
			t.Fatal(err)
		}
	}
	for range c.count {
		msg := nats.NewMsg(c.subject)
		msg.Data = []byte(c.body)
		for k, vs := range c.header {
			msg.Header[k] = vs
		}
		if c.jetstream {
			_, err = r.js.PublishMsg(context.Background(), msg)
		} else {
			err = r.nc.PublishMsg(msg)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, s := range readers {
		r.waitCounted(t, s, before[s.Name], slices.Repeat([]map[string]any{ev}, c.count))
	}
}

// waitCounted records evs as published to s and, for a stream the README
// created, waits until they are all counted on time (none rejected) since
// the status before.
func (r *readmeRun) waitCounted(t *testing.T, s *readmeStream, before readmeStatus, evs []map[string]any) {
	t.Helper()
	s.published = append(s.published, evs...)
	if !s.fromReadme {
		return // the demo's counters move anyway
	}
	readmeEventually(t, func() error {
		st, err := r.status(s.Name)
		if err != nil {
			return err
		}
		if st.invalid() != before.invalid() || *st.Counters.TooLate != *before.Counters.TooLate {
			return fmt.Errorf("%s: a published event was rejected: %+v", s.Name, *st.Counters)
		}
		if got := *st.Counters.OnTime - *before.Counters.OnTime; got < uint64(len(evs)) {
			return readmeNotYet("%s: %d of %d published events counted on time", s.Name, got, len(evs))
		}
		return nil
	})
}

// curlPublish runs POST /v1/streams/{stream}/events once (a retry would
// publish again) and checks it as natsPub checks a publish: 202 with the
// number of events sent, and every event counted on time.
func (r *readmeRun) curlPublish(t *testing.T, c curlCmd, name string, pipe [][]string) {
	s := r.streams[name]
	if s == nil {
		t.Fatalf("the README publishes to stream %s, which is neither the demo nor created by it", name)
	}
	body, err := c.body(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	for _, l := range strings.Split(string(body), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("the README publishes %q, which is not a JSON event: %v", l, err)
		}
		evs = append(evs, ev)
	}
	before, err := r.status(name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.do(c, pipe)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Stream string `json:"stream"`
		Events int    `json:"events"`
	}
	if res.resp.StatusCode != http.StatusAccepted || json.Unmarshal(res.body, &ans) != nil || ans.Stream != name || ans.Events != len(evs) {
		t.Fatalf("status %d, want 202 with %d events published to %s: %s", res.resp.StatusCode, len(evs), name, res.body)
	}
	r.waitCounted(t, s, before, evs)
}

// natsSubCmd is `nats sub SUBJECT [--headers-only] [--count N]`.
type natsSubCmd struct {
	subject string
	count   int // 0: until interrupted
}

func parseNATSSub(args []string) (natsSubCmd, error) {
	var c natsSubCmd
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--headers-only": // only changes how messages are printed
		case a == "--count" || strings.HasPrefix(a, "--count="):
			v, ok := strings.CutPrefix(a, "--count=")
			if !ok {
				if i+1 >= len(args) {
					return c, errors.New("nats sub: --count needs a value")
				}
				i++
				v = args[i]
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("nats sub --count %q", v)
			}
			c.count = n
		case strings.HasPrefix(a, "-"):
			return c, fmt.Errorf("nats sub option %s is not supported by this test", a)
		case c.subject != "":
			return c, fmt.Errorf("nats sub: a second subject %q", a)
		default:
			c.subject = a
		}
	}
	if c.subject == "" {
		return c, errors.New("nats sub: no subject")
	}
	return c, nil
}

// natsSub subscribes as the nats CLI does and checks what the README says
// it shows: rejected events on the streams' dead-letter subjects and
// too-late ones on their late subjects, each with a Sketchd-Reason header.
// Without --count it reads until it has seen both from the demo.
func (r *readmeRun) natsSub(t *testing.T, args []string) {
	c, err := parseNATSSub(args)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.nc.SubscribeSync(c.subject)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	demo := r.streams[demoStreamName]
	want := map[string]bool{} // subjects still to be seen
	if demo != nil && c.count == 0 {
		for _, s := range []string{demo.DeadLetterSubject, demo.LateSubject} {
			if s != "" && sketchd.SubjectMatches(c.subject, s) {
				want[s] = true
			}
		}
		if len(want) == 0 {
			t.Fatalf("nats sub %s: matches none of the demo's dead-letter subjects", c.subject)
		}
	}
	deadline := time.Now().Add(readmeWait)
	for n := 0; (c.count > 0 && n < c.count) || (c.count == 0 && len(want) > 0); n++ {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("nats sub %s: after %d messages, still waiting for %v: %v", c.subject, n, want, err)
		}
		var st *readmeStream
		for _, s := range r.streams {
			if s.Name == m.Header.Get("Sketchd-Stream") {
				st = s
			}
		}
		reason := m.Header.Get("Sketchd-Reason")
		switch {
		case st == nil:
			t.Errorf("message on %s names stream %q", m.Subject, m.Header.Get("Sketchd-Stream"))
		case m.Subject == st.LateSubject && reason != "too_late":
			t.Errorf("too-late event on %s with Sketchd-Reason %q", m.Subject, reason)
		case m.Subject == st.DeadLetterSubject && (reason == "" || reason == "too_late"):
			t.Errorf("rejected event on %s with Sketchd-Reason %q", m.Subject, reason)
		case m.Subject != st.LateSubject && m.Subject != st.DeadLetterSubject:
			t.Errorf("message on %s, neither %s nor %s", m.Subject, st.LateSubject, st.DeadLetterSubject)
		}
		delete(want, m.Subject)
	}
}

// ---- configuration table ----

// TestReadmeConfigTable checks the README's configuration table against the
// settings: every setting (and --config) has a row with its environment
// variable and default, and every row is a setting; the defaults are the
// ones `sketchd --help` prints.
func TestReadmeConfigTable(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ env, def, what string }
	rows := map[string]row{}
	sec := string(b)
	start := strings.Index(sec, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README.md has no Configuration section")
	}
	sec = sec[start+1:]
	if end := strings.Index(sec[3:], "\n## "); end >= 0 {
		sec = sec[:end+3]
	}
	header := false
	sc := bufio.NewScanner(strings.NewReader(sec))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if !header {
			if !slices.Equal(cells, []string{"flag", "environment", "default", "what"}) {
				t.Fatalf("configuration table header %q, want flag | environment | default | what", cells)
			}
			header = true
			continue
		}
		if strings.Trim(cells[0], "-") == "" {
			continue // the |---| line
		}
		if len(cells) != 4 || !strings.HasPrefix(cells[0], "--") {
			t.Errorf("table row %q: want `--flag` | `ENV` | `default` | what", l)
			continue
		}
		name := strings.TrimPrefix(cells[0], "--")
		if _, dup := rows[name]; dup {
			t.Errorf("--%s has two rows", name)
		}
		rows[name] = row{cells[1], cells[2], cells[3]}
	}
	var help strings.Builder
	if _, err := loadConfig([]string{"--help"}, env(nil), &help); !errors.Is(err, errHelp) {
		t.Fatalf("--help: %v", err)
	}
	def := defaultConfig()
	want := map[string]row{"config": {env: "SKETCHD_CONFIG"}}
	for _, s := range def.settings() {
		want[s.name] = row{env: s.env(), def: s.get()}
		if !strings.Contains(help.String(), fmt.Sprintf("$%s, default %q", s.env(), s.get())) {
			t.Errorf("--help does not print $%s, default %q", s.env(), s.get())
		}
	}
	for name, w := range want {
		got, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("README configuration table lacks --%s (%s, default %q)", name, w.env, w.def)
		case got.env != w.env || got.def != w.def:
			t.Errorf("--%s: README says %s, default %q; the code has %s, default %q", name, got.env, got.def, w.env, w.def)
		case got.what == "":
			t.Errorf("--%s: no description", name)
		}
	}
	for name := range rows {
		if _, ok := want[name]; !ok {
			t.Errorf("README configuration table lists --%s, which is not a setting", name)
		}
	}
}

func TestReadmeShellSplit(t *testing.T) {
	subst := func(cmd string) (string, error) {
		if cmd == "date +%s" {
			return "1700000000", nil
		}
		return "", errors.New("unsupported")
	}
	tests := []struct {
		in      string
		want    []string // "|" stands for the operator
		wantErr bool
	}{
		{in: `curl -s 'a b' "c\"d" e\ f # comment`, want: []string{"curl", "-s", "a b", `c"d`, "e f"}},
		{in: `curl -s x | grep '^y_'`, want: []string{"curl", "-s", "x", "|", "grep", "^y_"}},
		{in: `nats pub s "{\"ts\": $(date +%s)}"`, want: []string{"nats", "pub", "s", `{"ts": 1700000000}`}},
		{in: "curl -d '{\n}' x", want: []string{"curl", "-d", "{\n}", "x"}},
		{in: "a \\\n b", want: []string{"a", "b"}},
		{in: `a#b`, want: []string{"a#b"}},
		{in: `curl 'x`, wantErr: true},
		{in: `curl x?a=1&b=2`, wantErr: true},
		{in: `echo $HOME`, wantErr: true},
		{in: `echo "$(date +%s%3N)"`, wantErr: true},
		{in: "echo `date`", wantErr: true},
		{in: `a > f`, wantErr: true},
		{in: `a || b`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			words, err := shellSplit(tt.in, subst)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var got []string
			for _, w := range words {
				got = append(got, w.s)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
