package clustertest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestNodePortTaken: a node whose route port another listener holds
// (freePorts' port taken between its check and the node's bind) fails
// waitReady with the node's own fatal error (errNodeFatal, naming the
// port), not after readyWait, so Start tries other ports; a node on free
// ports gets ready.
func TestNodePortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	node := func(port int) *server.Options {
		return &server.Options{ServerName: "n1", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
			NoSigs: true, NoLog: true, Cluster: server.ClusterOpts{Name: "sketchd-test", Host: "127.0.0.1", Port: port},
			Routes: []*url.URL{{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", port)}}}
	}
	for _, tc := range []struct {
		name string
		port int
		want string // in the error; "" for none
	}{
		{"taken", taken, fmt.Sprint(taken)},
		{"free", freePorts(t, 1)[0], ""},
	} {
		ns, log, err := startNode(node(tc.port))
		if err != nil {
			t.Fatal(err)
		}
		err = waitReady(ns, log, time.Now().Add(readyWait))
		ns.Shutdown()
		ns.WaitForShutdown()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, errNodeFatal) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want the node's listen error on port %s", tc.name, err, tc.want)
		}
	}
}
