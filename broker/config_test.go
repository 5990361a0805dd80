package broker

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig_RepositoryFiles(t *testing.T) {
	t.Setenv(SecretEnv, "")
	if _, err := LoadConfig("../inboxmq.dev.yaml"); err != nil {
		t.Fatalf("dev config: %v", err)
	}
	// The production template has no secret: it must refuse to start...
	if _, err := LoadConfig("../inboxmq.yaml"); err == nil || !strings.Contains(err.Error(), SecretEnv) {
		t.Fatalf("inboxmq.yaml without a secret: err = %v", err)
	}
	// ...until the environment provides one.
	t.Setenv(SecretEnv, "an-environment-secret-of-32-bytes!!")
	cfg, err := LoadConfig("../inboxmq.yaml")
	if err != nil {
		t.Fatalf("inboxmq.yaml with %s: %v", SecretEnv, err)
	}
	if cfg.Auth.JWTSecret != "an-environment-secret-of-32-bytes!!" {
		t.Fatal("environment secret not applied")
	}
	// The template spells out every default.
	if want := DefaultConfig(); cfg.EmbeddedMemtableSize != want.EmbeddedMemtableSize || cfg.Inbox != want.Inbox || cfg.MQTT != want.MQTT || cfg.Limits != want.Limits || cfg.Store != want.Store || cfg.Push != want.Push || cfg.Events != want.Events || cfg.Redis.Prefix != want.Redis.Prefix || cfg.Listeners.MQTT != want.Listeners.MQTT {
		t.Fatalf("inboxmq.yaml differs from DefaultConfig:\n%+v\n%+v", cfg, want)
	}
}

func TestLoadConfig_PartialCapabilitiesKeepDefaults(t *testing.T) {
	t.Setenv(SecretEnv, "")
	cfg, err := LoadConfig("../testdata/config/partial_mqtt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	caps := cfg.capabilities()
	if caps.MaximumClients != 10 || caps.MaximumQos != 2 || caps.ReceiveMaximum == 0 || caps.MaximumInflight == 0 ||
		caps.RetainAvailable != 1 || caps.MaximumClientWritesPending != DefaultConfig().MQTT.MaximumClientWritesPending {
		t.Fatalf("capabilities = %+v", caps)
	}
}

func TestLoadConfig_Rejects(t *testing.T) {
	t.Setenv(SecretEnv, "")
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "unknown_key.yaml", []string{"retension"}},
		{"invalid values", "invalid.yaml", []string{
			"node_id", "jwt_secret", "accounts", "acl", "max_messages", "maximum_clients", "maximum_qos", "max_blocks",
		}},
		{"missing file", "does_not_exist.yaml", []string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig("../testdata/config/" + tc.file)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadConfig_RulesAndDurations(t *testing.T) {
	t.Setenv(SecretEnv, "")
	cfg, err := LoadConfig("../testdata/config/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ACL.Rules) != 2 || !cfg.Auth.Anonymous || cfg.Inbox.Retention != 7*24*time.Hour {
		t.Fatalf("config = %+v", cfg)
	}
	if _, err := ParseConfig([]byte("inbox:\n  retention: 2h\nauth:\n  anonymous: true\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte("inbox:\n  retention: forever\n")); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestParseConfig_EmptyMeansDefaultsButNeedsAuth(t *testing.T) {
	t.Setenv(SecretEnv, "")
	if _, err := ParseConfig(nil); err == nil || !strings.Contains(err.Error(), "nobody can log in") {
		t.Fatalf("empty config: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"../inboxmq.yaml", "../inboxmq.dev.yaml", "../testdata/config/rules.yaml", "../testdata/config/invalid.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("mqtt: [1, 2]"))
	f.Add([]byte("auth: {anonymous: true}\nmqtt: {maximum_keepalive: 60s, maximum_packet_size: 1MB}\ninbox: {max_message_bytes: 64 kib, retention: 1.5d}"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Whatever parses must also validate, and keep the invariants
		// the broker relies on.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		if cfg.MQTT.MaximumClients < 1 || cfg.MQTT.MaximumQos < 1 || cfg.Inbox.DeliveryWindow < 1 {
			t.Fatalf("invariant broken: %+v", cfg)
		}
	})
}

func TestParseConfig_MemoryKeys(t *testing.T) {
	t.Setenv(SecretEnv, "")
	const base = "auth:\n  anonymous: true\n"
	d := DefaultConfig()
	if d.MQTT.ClientNetReadBufferSize != 512 || d.MQTT.ClientNetWriteBufferSize != 2048 || d.MQTT.MaximumClientWritesPending != 64 ||
		d.Runtime != (RuntimeConfig{MemoryLimit: 0, GOGC: 100}) {
		t.Fatalf("defaults = %+v, runtime %+v", d.MQTT, d.Runtime)
	}
	cfg, err := ParseConfig([]byte(base + "runtime:\n  memory_limit: 1GiB\nmqtt:\n  client_net_read_buffer_size: 4096\n  client_net_write_buffer_size: 1024\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Runtime != (RuntimeConfig{MemoryLimit: 1 << 30, GOGC: 100}) || cfg.MQTT.ClientNetReadBufferSize != 4096 || cfg.MQTT.ClientNetWriteBufferSize != 1024 {
		t.Fatalf("parsed %+v, runtime %+v", cfg.MQTT, cfg.Runtime)
	}
	// A partial mqtt block keeps the other defaults.
	if cfg.MQTT.MaximumClientWritesPending != d.MQTT.MaximumClientWritesPending {
		t.Fatalf("maximum_client_writes_pending = %d", cfg.MQTT.MaximumClientWritesPending)
	}
	if cfg, err := ParseConfig([]byte(base + "embedded_memtable_size: 4MiB\n")); err != nil || cfg.EmbeddedMemtableSize != 4<<20 || d.EmbeddedMemtableSize != 64<<20 {
		t.Fatalf("embedded_memtable_size: 4MiB = %d, %v (default %d)", cfg.EmbeddedMemtableSize, err, d.EmbeddedMemtableSize)
	}
	for in, want := range map[string]time.Duration{"": time.Millisecond, "embedded_wal_sync_interval: 0\n": 0, "embedded_wal_sync_interval: 10ms\n": 10 * time.Millisecond, "embedded_wal_sync_interval: 250us\n": 250 * time.Microsecond} {
		if cfg, err := ParseConfig([]byte(base + in)); err != nil || cfg.EmbeddedWALSyncInterval != want {
			t.Errorf("%q: embedded_wal_sync_interval = %s, %v; want %s", in, cfg.EmbeddedWALSyncInterval, err, want)
		}
	}
	for in, want := range map[string]ByteSize{"0": 0, "67108864": 64 << 20, "512MiB": 512 << 20, "65536 KiB": 64 << 20, "2GiB": 2 << 30, "1TiB": 1 << 40} {
		cfg, err := ParseConfig([]byte(base + "runtime:\n  memory_limit: " + in + "\n"))
		if err != nil || cfg.Runtime.MemoryLimit != want {
			t.Errorf("runtime.memory_limit: %s = %d, %v; want %d", in, cfg.Runtime.MemoryLimit, err, want)
		}
	}
	if cfg, err := ParseConfig([]byte(base + "runtime:\n  gogc: 50\n")); err != nil || cfg.Runtime.GOGC != 50 {
		t.Errorf("runtime.gogc: 50 = %d, %v", cfg.Runtime.GOGC, err)
	}
	for _, in := range []string{
		"runtime:\n  memory_limit: -1\n", "runtime:\n  memory_limit: 1GX\n", "runtime:\n  memory_limit: lots\n",
		"runtime:\n  memory_limit: 99999999999TiB\n", "runtime:\n  memory_limit: 1MiB\n", "memory_limit: 1GiB\n",
		"runtime:\n  gogc: 0\n", "runtime:\n  gogc: 5\n", "runtime:\n  gogc: 2000\n", "runtime:\n  gogc: off\n",
		"mqtt:\n  client_net_read_buffer_size: 0\n", "mqtt:\n  client_net_write_buffer_size: 8\n",
		"mqtt:\n  client_net_read_buffer_size: 2000000\n",
		"embedded_memtable_size: 512KiB\n", "embedded_memtable_size: 2GiB\n", "embedded_memtable_size: 0\n",
		"embedded_wal_sync_interval: -1ms\n", "embedded_wal_sync_interval: 11ms\n", "embedded_wal_sync_interval: soon\n",
	} {
		if _, err := ParseConfig([]byte(base + in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
	// The production template spells out the runtime defaults too.
	t.Setenv(SecretEnv, "an-environment-secret-of-32-bytes!!")
	tmpl, err := LoadConfig("../inboxmq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Runtime != d.Runtime {
		t.Fatalf("inboxmq.yaml runtime = %+v, default %+v", tmpl.Runtime, d.Runtime)
	}
}
