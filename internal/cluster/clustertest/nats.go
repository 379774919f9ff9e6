// Package clustertest starts a nats-server cluster with JetStream for
// tests: three (or more) nodes on loopback, each with its own t.TempDir,
// inside the test process (the default) or as child nats-server processes
// that a test can kill -9 and restart (Options.Processes).
package clustertest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Cluster is a running nats-server cluster.
type Cluster struct {
	// Servers are the in-process nodes (nil with Options.Processes).
	Servers []*server.Server
	nodes   []*node // the child processes with Options.Processes
}

// Options tune the servers; zero values keep nats-server's defaults.
type Options struct {
	// MaxPayload caps one message (0 = 1 MiB).
	MaxPayload int32
	// Processes runs each node as a child nats-server process (built
	// once per test binary from go.mod's nats-server; the test binary's
	// TestMain calls RemoveBinary), in its own process group, so that
	// Kill is a real SIGKILL; the processes are killed at cleanup.
	Processes bool
}

// Start runs n nodes (n ≥ 3 for JetStream R3) on 127.0.0.1 with random
// client ports, full-mesh routes, and waits until JetStream has a meta
// leader and every node is current. The nodes are shut down at cleanup.
func Start(tb testing.TB, n int, o Options) *Cluster {
	tb.Helper()
	c := &Cluster{}
	if o.Processes {
		c.startProcesses(tb, n, o)
		return c
	}
	// The store dirs' root first (startNodes makes the dirs in it):
	// t.TempDir's removal is a cleanup, registered at its first call, and
	// cleanups run last-registered first, so the servers' shutdown,
	// registered after, runs before it. The other way round, the dirs were
	// removed while the servers ran, and a server still writing (a
	// consumer's replica being created) failed the test with "directory
	// not empty".
	tb.TempDir()
	tb.Cleanup(c.Shutdown)
	for attempt := 1; ; attempt++ {
		err := c.startNodes(tb, n, o)
		if err == nil {
			break
		}
		c.Shutdown()
		c.Servers = nil
		if !errors.Is(err, errNodeFatal) || attempt == startAttempts {
			tb.Fatalf("clustertest: %v", err)
		}
		tb.Logf("clustertest: %v; starting again on other ports", err)
	}
	c.waitJetStream(tb)
	return c
}

// startAttempts bounds how often Start starts the nodes: freePorts closes
// its listeners before the nodes bind the ports, so another process (a
// test binary run in parallel) can take one in between, and that node
// never gets ready ("clustertest: n2 not ready" in CI after 60 s).
const startAttempts = 3

// errNodeFatal: a node logged a fatal error while starting.
var errNodeFatal = errors.New("fatal error")

// readyWait bounds how long a node may take to be ready for connections.
const readyWait = 60 * time.Second

// startNodes starts n in-process nodes on fresh route ports and store
// dirs and waits until each is ready for connections; a node that logs a
// fatal error meanwhile (a route port it cannot listen on) fails it at
// once, with that error.
func (c *Cluster) startNodes(tb testing.TB, n int, o Options) error {
	ports := freePorts(tb, n)
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	logs := make([]*startLog, n)
	for i := range n {
		so := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			MaxPayload: o.MaxPayload,
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "sketchd-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		}
		ns, log, err := startNode(so)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		c.Servers, logs[i] = append(c.Servers, ns), log
	}
	deadline := time.Now().Add(readyWait)
	for i, ns := range c.Servers {
		if err := waitReady(ns, logs[i], deadline); err != nil {
			return err
		}
	}
	return nil
}

// startNode starts one in-process node whose fatal errors are kept.
func startNode(so *server.Options) (*server.Server, *startLog, error) {
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, nil, err
	}
	log := &startLog{}
	ns.SetLogger(log, false, false)
	go ns.Start()
	return ns, log, nil
}

// waitReady waits until ns is ready for connections, it logged a fatal
// error, or the deadline passed.
func waitReady(ns *server.Server, log *startLog, deadline time.Time) error {
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		if msg := log.fatal(); msg != "" {
			return fmt.Errorf("%s: %w: %s", ns.Name(), errNodeFatal, msg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s", ns.Name(), readyWait)
		}
	}
	return nil
}

// startLog is a node's logger: it keeps the first fatal error (a listener
// that failed) and drops the rest.
type startLog struct {
	mu    sync.Mutex
	first string
}

func (l *startLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first == "" {
		l.first = fmt.Sprintf(format, v...)
	}
}

// fatal is the first fatal error logged, "" when none was.
func (l *startLog) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (*startLog) Noticef(string, ...any) {}
func (*startLog) Warnf(string, ...any)   {}
func (*startLog) Errorf(string, ...any)  {}
func (*startLog) Debugf(string, ...any)  {}
func (*startLog) Tracef(string, ...any)  {}

// freePorts reserves n loopback ports for the cluster routes (the routes
// must be known before the nodes start).
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("clustertest: free port: %v", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// waitJetStream waits for a meta leader and every node current.
func (c *Cluster) waitJetStream(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		leader, current := false, 0
		for _, ns := range c.Servers {
			if ns.JetStreamIsLeader() {
				leader = true
			}
			if ns.JetStreamIsCurrent() {
				current++
			}
		}
		if leader && current == len(c.Servers) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("clustertest: JetStream cluster has no meta leader after 30s")
}

// URLs is every node's client URL, comma-separated (for nats.Connect).
func (c *Cluster) URLs() string {
	u := make([]string, c.Len())
	for i := range u {
		u[i] = c.URL(i)
	}
	return strings.Join(u, ",")
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.Servers) + len(c.nodes) }

// URL is node i's client URL (it stays the same across Restart).
func (c *Cluster) URL(i int) string {
	if c.nodes != nil {
		return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].port)
	}
	return c.Servers[i].ClientURL()
}

// Name is node i's server name (n1, n2, ...).
func (c *Cluster) Name(i int) string {
	if c.nodes != nil {
		return c.nodes[i].name
	}
	return c.Servers[i].Name()
}

// Kill sends SIGKILL to node i (Options.Processes only) and waits for
// the process to exit.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	if c.nodes == nil {
		tb.Fatal("clustertest: Kill needs Options.Processes")
	}
	c.nodes[i].kill()
}

// Restart starts killed node i again on its ports and store dir
// (Options.Processes only), and waits until its JetStream is back in the
// cluster (a meta leader known; it fails the test after a minute), then
// up to 30 s for its streams and consumers to be current: it returns why
// they are not, which a test may log (see waitRejoined).
func (c *Cluster) Restart(tb testing.TB, i int) error {
	tb.Helper()
	if c.nodes == nil {
		tb.Fatal("clustertest: Restart needs Options.Processes")
	}
	c.nodes[i].start(tb, buildBinary(tb))
	return c.nodes[i].waitRejoined(tb, 60*time.Second, 30*time.Second)
}

// Connect opens a client connection to node i (closed at cleanup).
func (c *Cluster) Connect(tb testing.TB, i int) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(c.URL(i), nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatalf("clustertest: connect to %s: %v", c.Name(i), err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Shutdown stops every node and waits for it; safe to call twice. Child
// processes are killed.
func (c *Cluster) Shutdown() {
	for _, nd := range c.nodes {
		nd.kill()
	}
	for _, ns := range c.Servers {
		ns.Shutdown()
	}
	for _, ns := range c.Servers {
		ns.WaitForShutdown()
	}
}

// MetaLeader is the name of the node leading the JetStream meta group (it
// places new assets), as a running node sees it; "" while there is none.
func (c *Cluster) MetaLeader(tb testing.TB) string {
	tb.Helper()
	for _, ns := range c.Servers {
		if ns.JetStreamIsLeader() {
			return ns.Name()
		}
	}
	for _, nd := range c.nodes {
		if nd.cmd != nil {
			return nd.metaLeader(tb)
		}
	}
	return ""
}
