package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sketchd/sketchd/internal/testbin"
)

// The nats-server binary of the process mode is built once per test
// binary, from the module go.mod already requires (the module cache
// serves it offline); RemoveBinary deletes it.
var natsServer testbin.Binary

// buildBinary returns the path of nats-server built from go.mod's version.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	return natsServer.Path(tb, "nats-server", "github.com/nats-io/nats-server/v2")
}

// RemoveBinary deletes the nats-server built for the process mode; a test
// binary that uses the mode calls it from TestMain after m.Run.
func RemoveBinary() { natsServer.Remove() }

// node is one nats-server child process: its config (ports, store dir)
// survives a kill, so Restart brings the same node back.
type node struct {
	name    string
	dir     string // config, log and the JetStream store
	port    int    // client port
	monitor int    // HTTP monitoring port (/healthz)
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startProcesses runs n nodes as child processes, each in its own
// process group, killed at cleanup.
func (c *Cluster) startProcesses(tb testing.TB, n int, o Options) {
	tb.Helper()
	bin := buildBinary(tb)
	ports := freePorts(tb, 3*n) // client, cluster, monitor per node
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i])
	}
	for i := range n {
		nd := &node{name: fmt.Sprintf("n%d", i+1), dir: tb.TempDir(), port: ports[i], monitor: ports[2*n+i]}
		conf := fmt.Sprintf(`server_name: %s
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream { store_dir: %q }
cluster { name: sketchd-test, listen: "127.0.0.1:%d", routes: [%s] }
`, nd.name, nd.port, nd.monitor, filepath.Join(nd.dir, "js"), ports[n+i], strings.Join(routes, ", "))
		if o.MaxPayload > 0 {
			conf += fmt.Sprintf("max_payload: %d\n", o.MaxPayload)
		}
		if err := os.WriteFile(filepath.Join(nd.dir, "nats.conf"), []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	tb.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
			if tb.Failed() {
				nd.logTail(tb, 20)
			}
		}
	})
	for _, nd := range c.nodes {
		nd.start(tb, bin)
	}
	for _, nd := range c.nodes {
		nd.waitHealthy(tb, 60*time.Second)
	}
}

// start runs the node's process; its output goes to nats.log in its dir.
func (nd *node) start(tb testing.TB, bin string) {
	tb.Helper()
	logf, err := os.OpenFile(filepath.Join(nd.dir, "nats.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", filepath.Join(nd.dir, "nats.conf"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("clustertest: start %s: %v", nd.name, err)
	}
	nd.cmd, nd.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}(nd.exited)
}

// kill sends SIGKILL to the node's process group and waits for the
// process; a node not running is left alone.
func (nd *node) kill() {
	if nd.cmd == nil {
		return
	}
	select {
	case <-nd.exited: // died on its own: its pid may be reused
	default:
		killGroup(nd.cmd.Process)
		<-nd.exited
	}
	nd.cmd = nil
}

// waitHealthy waits until the node's /healthz answers 200: it is ready
// for clients, JetStream has a meta leader, and its streams and consumers
// are current.
func (nd *node) waitHealthy(tb testing.TB, d time.Duration) {
	tb.Helper()
	if last, ok := nd.healthy(tb, d, ""); !ok {
		nd.logTail(tb, 20)
		tb.Fatalf("clustertest: %s not healthy after %s: %s", nd.name, d, last)
	}
}

// waitRejoined waits until the restarted node's JetStream is back in the
// cluster (/healthz?js-server-only=true: running, a meta leader known),
// then up to current more for its streams and consumers to be current,
// and returns why they are not (nil when they are). A consumer created or
// reset while the node was down can stay "consumer node missing" on it
// for minutes (nats-server's health check), which is not the node's
// failure to rejoin.
func (nd *node) waitRejoined(tb testing.TB, d, current time.Duration) error {
	tb.Helper()
	if last, ok := nd.healthy(tb, d, "?js-server-only=true"); !ok {
		nd.logTail(tb, 20)
		tb.Fatalf("clustertest: %s's JetStream not back after %s: %s", nd.name, d, last)
	}
	if last, ok := nd.healthy(tb, current, ""); !ok {
		return fmt.Errorf("%s rejoined, its assets not all current after %s more: %s", nd.name, current, last)
	}
	return nil
}

// healthy polls /healthz with query until it answers 200 or d passes, and
// returns its last answer otherwise.
func (nd *node) healthy(tb testing.TB, d time.Duration, query string) (string, bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-nd.exited:
			nd.logTail(tb, 20)
			tb.Fatalf("clustertest: %s exited while starting", nd.name)
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz%s", nd.monitor, query))
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "", true
			}
			last = b.String()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last, false
}

// logTail logs the last lines the node wrote.
func (nd *node) logTail(tb testing.TB, lines int) {
	b, err := os.ReadFile(filepath.Join(nd.dir, "nats.log"))
	if err != nil {
		return
	}
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range ls[max(0, len(ls)-lines):] {
		tb.Logf("%s: %s", nd.name, l)
	}
}

// metaLeader reads the meta leader from the node's /jsz.
func (nd *node) metaLeader(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/jsz", nd.monitor), nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("clustertest: %s /jsz: %v", nd.name, err)
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		tb.Fatalf("clustertest: %s /jsz: %v", nd.name, err)
	}
	return jsz.Meta.Leader
}
