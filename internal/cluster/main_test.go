package cluster

import (
	"os"
	"testing"

	"github.com/sketchd/sketchd/internal/cluster/clustertest"
)

// TestMain removes the nats-server binary the process-mode clusters
// (clustertest.Options.Processes) built.
func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBinary()
	os.Exit(code)
}
