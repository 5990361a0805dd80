package broker

import (
	"strings"
	"testing"
)

// INBOXMQ_NODE_ID gives each node sharing one config file its own id (the
// Kubernetes manifests and compose files rely on it); anything but a
// number in range is refused with an error that names the key.
func TestNodeIDFromEnvironment(t *testing.T) {
	t.Setenv(SecretEnv, "an-environment-secret-of-32-bytes!!")
	tests := []struct {
		name    string
		env     string
		wantID  int
		wantErr string
	}{
		{"unset keeps the file's node_id", "", 7, ""},
		{"a pod index", "2", 2, ""},
		{"the highest id", "1023", 1023, ""},
		{"deny: out of range", "1024", 0, "node_id must be 0..1023"},
		{"deny: negative", "-1", 0, "node_id must be 0..1023"},
		{"deny: not a number", "inboxmq-2", 0, "node_id"},
		{"deny: blank padding", " 2", 0, "node_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(NodeIDEnv, tt.env)
			cfg, err := ParseConfig([]byte("node_id: 7\n"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NodeID != tt.wantID {
				t.Fatalf("node_id %d, want %d", cfg.NodeID, tt.wantID)
			}
		})
	}
}
