package ingest

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:pw@h:4222", "nats://REDACTED@h:4222"},
		{"nats://tok@h:4222, nats://u:pw@h2:4222", "nats://REDACTED@h:4222,nats://REDACTED@h2:4222"},
		{"nats://u:pw%zz@h:4222", "nats://REDACTED@h:4222"},  // unparsable escape
		{"nats://u:p@w%zz@h:4222", "nats://REDACTED@h:4222"}, // '@' in the password
		{"u:pw%zz@h:4222", "REDACTED@h:4222"},                // no scheme
		{"nats://h:4222/%zz", "nats://h:4222/%zz"},           // unparsable, no user info
	} {
		got := redact(tt.in)
		if got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "pw") {
			t.Errorf("redact(%q) = %q shows the password", tt.in, got)
		}
	}
}
