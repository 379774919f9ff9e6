package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestClusterConfig: the cluster settings reach cluster.Options; cluster
// mode without an external NATS, a bad cluster name and a bad instance id
// are refused, naming the setting; no cluster_name is a single node.
func TestClusterConfig(t *testing.T) {
	cfg, err := loadConfig([]string{"--nats-url", "nats://127.0.0.1:1,nats://127.0.0.1:2", "--cluster-name", "prod",
		"--failover-timeout", "2s", "--discovery-interval", "500ms", "--instance-id", "sk-a"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.clusterOptions()
	if o.Name != "prod" || o.Replicas != 3 || o.FailoverTimeout != 2*time.Second || o.DiscoveryInterval != 500*time.Millisecond ||
		o.DiscoveryGather >= o.DiscoveryInterval || cfg.InstanceID != "sk-a" {
		t.Errorf("cluster options %+v, instance %q", o, cfg.InstanceID)
	}
	if def, err := loadConfig(nil, env(nil), io.Discard); err != nil || def.ClusterName != "" {
		t.Errorf("default: cluster %q, %v: want a single node", def.ClusterName, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-name", "prod"}, "setting cluster-name: cluster mode needs"},
		{[]string{"--nats-url", "nats://127.0.0.1:1", "--cluster-name", "a.b"}, "setting cluster-name:"},
		{[]string{"--nats-url", "nats://127.0.0.1:1", "--cluster-name", "p", "--failover-timeout", "100ms"}, "failover_timeout"},
		{[]string{"--instance-id", "a b"}, "setting instance-id:"},
	} {
		_, err := loadConfig(tc.args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
