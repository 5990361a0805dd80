package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/inboxmq/inboxmq/broker"
)

// TestShippedConfig: the broker under test gets inboxmq.yaml with only the
// harness's overrides changed, and inboxmq accepts the result.
func TestShippedConfig(t *testing.T) {
	dir := t.TempDir()
	tgt := &Target{Kind: Inboxmq}
	argv, err := tgt.inboxmqConfig(dir, "127.0.0.1:18830", "", "/bin/true", []byte(strings.Repeat("k", 32)),
		"store: embedded\ninbox: {max_messages: 500}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != 3 || argv[2] != filepath.Join(dir, "inboxmq.yaml") {
		t.Fatalf("argv %q", argv)
	}
	got, err := broker.LoadConfig(argv[2])
	if err != nil {
		t.Fatalf("inboxmq refuses the harness's config: %v", err)
	}
	t.Setenv(broker.SecretEnv, strings.Repeat("s", 32))
	shipped, err := broker.LoadConfig("../../inboxmq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// What the harness changes.
	if got.Listeners.MQTT.Address != "127.0.0.1:18830" || got.Listeners.Admin.Address != tgt.Admin || !got.Listeners.Admin.Pprof ||
		got.Listeners.WebSocket.Address != "" || got.Listeners.HTTP.Address != "" || got.DataDir != filepath.Join(dir, "data") ||
		got.Limits.ConnectionsPerIP != 0 || got.Limits.MessageRate != 0 || got.Log.Level != "warn" || len(got.Auth.Accounts) != 1 {
		t.Errorf("overrides not applied: listeners %+v, data_dir %q, limits %+v, log %+v, %d accounts",
			got.Listeners, got.DataDir, got.Limits, got.Log, len(got.Auth.Accounts))
	}
	if got.Inbox.MaxMessages != 500 {
		t.Errorf("extra YAML not merged: inbox.max_messages %d", got.Inbox.MaxMessages)
	}
	// What it keeps: the shipped values, also beside a merged key.
	got.Inbox.MaxMessages = shipped.Inbox.MaxMessages
	if got.Inbox != shipped.Inbox || got.MQTT != shipped.MQTT || got.Runtime != shipped.Runtime || got.Push != shipped.Push ||
		got.Limits.MaxSubscriptions != shipped.Limits.MaxSubscriptions || got.Listeners.WebSocket.Path != shipped.Listeners.WebSocket.Path {
		t.Errorf("shipped values changed:\n got %+v %+v %+v\nwant %+v %+v %+v", got.Inbox, got.MQTT, got.Runtime,
			shipped.Inbox, shipped.MQTT, shipped.Runtime)
	}
}

func TestMergeYAML(t *testing.T) {
	for _, tc := range []struct {
		name, base, over, want string
	}{
		{"nested key replaced, siblings kept", "a: {b: 1, c: 2}\nd: 3\n", "a: {b: 9}\n", "a: {b: 9, c: 2}\nd: 3\n"},
		{"new key appended", "a: 1\n", "b: {c: 2}\n", "a: 1\nb: {c: 2}\n"},
		{"sequence replaced, not appended", "a: [1, 2]\n", "a: [3]\n", "a: [3]\n"},
		{"mapping replaces a scalar", "a: x\n", "a: {b: 1}\n", "a: {b: 1}\n"},
		{"scalar replaces a mapping", "a: {b: 1}\n", "a: \"\"\n", "a: \"\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, err := yamlMapping([]byte(tc.base))
			if err != nil {
				t.Fatal(err)
			}
			over, err := yamlMapping([]byte(tc.over))
			if err != nil {
				t.Fatal(err)
			}
			mergeYAML(base, over)
			var got, want any
			b, err := yaml.Marshal(base)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if gb, wb := mustYAML(t, got), mustYAML(t, want); gb != wb {
				t.Fatalf("merged:\n%s\nwant:\n%s", gb, wb)
			}
		})
	}
	for _, bad := range []string{"- a\n- b\n", "just text\n", "a: [\n"} {
		if _, err := yamlMapping([]byte(bad)); err == nil {
			t.Errorf("yamlMapping(%q) accepted a document that is not a mapping", bad)
		}
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestShippedConfigNeedsTheTemplate: outside the module there is no
// inboxmq.yaml to start from, and the harness says so.
func TestShippedConfigNeedsTheTemplate(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if _, err := shippedConfig(); err == nil || !strings.Contains(err.Error(), "go.mod") {
		t.Fatalf("outside the module (was %s): err = %v, want one naming go.mod", wd, err)
	}
}
