package broker

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every size key takes bytes, decimal units (KB, MB, GB: 1000-based) and
// binary ones (KiB, MiB, GiB: 1024-based), in any case; a bad size is
// refused with the key's path and the text as given.
func TestParseConfig_Sizes(t *testing.T) {
	environ := []string{SecretEnv + "=an-environment-secret-of-32-bytes!!"}
	for _, tt := range []struct {
		name, yaml string
		get        func(Config) ByteSize
		want       ByteSize
		wantErr    string // all of its "|"-separated parts
	}{
		{"bytes", "inbox: {max_message_bytes: 512}", maxMessage, 512, ""},
		{"KB is 1000", "inbox: {max_message_bytes: 64KB}", maxMessage, 64000, ""},
		{"KiB is 1024", "inbox: {max_message_bytes: 64KiB}", maxMessage, 64 << 10, ""},
		{"lower case, a space", "inbox: {max_message_bytes: 64 kib}", maxMessage, 64 << 10, ""},
		{"MB", "mqtt: {maximum_packet_size: 64MB}", packetSize, 64_000_000, ""},
		{"MiB", "mqtt: {maximum_packet_size: 64MiB}", packetSize, 64 << 20, ""},
		{"GB", "runtime: {memory_limit: 1GB}", memoryLimit, 1_000_000_000, ""},
		{"GiB", "runtime: {memory_limit: 1gib}", memoryLimit, 1 << 30, ""},
		{"read buffer", "mqtt: {client_net_read_buffer_size: 1KiB}", readBuffer, 1024, ""},
		{"write buffer", "mqtt: {client_net_write_buffer_size: 4KB}", writeBuffer, 4000, ""},
		{"memtable", "embedded_memtable_size: 16MiB", memtable, 16 << 20, ""},
		{"deny: unknown unit", "inbox: {max_message_bytes: 64XB}", nil, 0, "'inbox.max_message_bytes'|\"64XB\""},
		{"deny: words", "mqtt: {maximum_packet_size: lots}", nil, 0, "'mqtt.maximum_packet_size'|\"lots\""},
		{"deny: negative number", "inbox: {max_message_bytes: -1}", nil, 0, "'inbox.max_message_bytes'|not negative"},
		{"deny: negative with a unit", "runtime: {memory_limit: -1GB}", nil, 0, "'runtime.memory_limit'|\"-1GB\""},
		{"deny: overflow", "runtime: {memory_limit: 99999999999TiB}", nil, 0, "'runtime.memory_limit'|\"99999999999TiB\""},
		{"deny: over int64", "runtime: {memory_limit: 9EiB}", nil, 0, "'runtime.memory_limit'|\"9EiB\""},
		{"deny: over MQTT's largest packet", "mqtt: {maximum_packet_size: 1GB}", nil, 0, "mqtt.maximum_packet_size must be"},
		{"deny: fraction of a byte", "inbox: {max_message_bytes: 1.5}", nil, 0, "'inbox.max_message_bytes'|whole number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, refused, err := parseExpecting(t, tt.yaml, environ, tt.wantErr)
			if refused {
				return
			}
			if err != nil || tt.get(cfg) != tt.want {
				t.Fatalf("got %d, %v; want %d", tt.get(cfg), err, tt.want)
			}
		})
	}
}

func maxMessage(c Config) ByteSize  { return c.Inbox.MaxMessageBytes }
func packetSize(c Config) ByteSize  { return c.MQTT.MaximumPacketSize }
func memoryLimit(c Config) ByteSize { return c.Runtime.MemoryLimit }
func readBuffer(c Config) ByteSize  { return c.MQTT.ClientNetReadBufferSize }
func writeBuffer(c Config) ByteSize { return c.MQTT.ClientNetWriteBufferSize }
func memtable(c Config) ByteSize    { return c.EmbeddedMemtableSize }

// The mqtt.* intervals are durations like every other key; a bare number
// (they used to be seconds) is refused with the key and the fix, and what
// MQTT cannot express (a fraction of a second, past its field) is refused.
func TestParseConfig_MQTTDurations(t *testing.T) {
	environ := []string{SecretEnv + "=an-environment-secret-of-32-bytes!!"}
	for _, tt := range []struct {
		name, yaml string
		get        func(MQTTConfig) time.Duration
		want       time.Duration
		wantErr    string
	}{
		{"keep alive", "mqtt: {maximum_keepalive: 60s}", keepalive, time.Minute, ""},
		{"keep alive off", "mqtt: {maximum_keepalive: 0}", keepalive, 0, ""},
		{"keep alive at its most", "mqtt: {maximum_keepalive: 65535s}", keepalive, 65535 * time.Second, ""},
		{"session expiry in days", "mqtt: {maximum_session_expiry_interval: 7d}", sessionExpiry, 7 * 24 * time.Hour, ""},
		{"message expiry in hours", "mqtt: {maximum_message_expiry_interval: 2h}", messageExpiry, 2 * time.Hour, ""},
		{"$SYS interval", "mqtt: {sys_topic_interval: 30s}", sysInterval, 30 * time.Second, ""},
		{"deny: bare seconds", "mqtt: {maximum_keepalive: 60}", nil, 0, "'mqtt.maximum_keepalive' 60: a duration needs a unit|write \"60s\""},
		{"deny: bare seconds, session", "mqtt: {maximum_session_expiry_interval: 604800}", nil, 0, "'mqtt.maximum_session_expiry_interval'|\"604800s\""},
		{"deny: bad unit", "mqtt: {sys_topic_interval: 10x}", nil, 0, "'mqtt.sys_topic_interval' invalid duration \"10x\""},
		{"deny: negative", "mqtt: {maximum_keepalive: -5s}", nil, 0, "mqtt.maximum_keepalive: must be at least 0s"},
		{"deny: a fraction of a second", "mqtt: {maximum_keepalive: 1500ms}", nil, 0, "mqtt.maximum_keepalive: MQTT counts it in whole seconds"},
		{"deny: keep alive overflow", "mqtt: {maximum_keepalive: 1d}", nil, 0, "mqtt.maximum_keepalive: must be at most 65535s"},
		{"deny: session expiry overflow", "mqtt: {maximum_session_expiry_interval: 50000d}", nil, 0, "mqtt.maximum_session_expiry_interval: must be at most 4294967295s"},
		{"deny: no session expiry", "mqtt: {maximum_session_expiry_interval: 0}", nil, 0, "mqtt.maximum_session_expiry_interval: must be at least 1s"},
		{"deny: duration overflow", "mqtt: {maximum_message_expiry_interval: 999999999d}", nil, 0, "'mqtt.maximum_message_expiry_interval'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, refused, err := parseExpecting(t, tt.yaml, environ, tt.wantErr)
			if refused {
				return
			}
			if err != nil || tt.get(cfg.MQTT) != tt.want {
				t.Fatalf("got %v, %v; want %v", tt.get(cfg.MQTT), err, tt.want)
			}
		})
	}
	// mochi gets whole seconds.
	c := DefaultConfig()
	c.MQTT.MaximumSessionExpiryInterval, c.MQTT.MaximumMessageExpiryInterval = 7*24*time.Hour, 90*time.Second
	if caps := c.capabilities(); caps.MaximumSessionExpiryInterval != 604800 || caps.MaximumMessageExpiryInterval != 90 {
		t.Fatalf("capabilities: session expiry %d, message expiry %d", caps.MaximumSessionExpiryInterval, caps.MaximumMessageExpiryInterval)
	}
	if c.MQTT.MaximumSessionExpiryInterval/time.Second > math.MaxUint32 {
		t.Fatal("default session expiry does not fit MQTT's field")
	}
}

func keepalive(m MQTTConfig) time.Duration     { return m.MaximumKeepalive }
func sessionExpiry(m MQTTConfig) time.Duration { return m.MaximumSessionExpiryInterval }
func messageExpiry(m MQTTConfig) time.Duration { return m.MaximumMessageExpiryInterval }
func sysInterval(m MQTTConfig) time.Duration   { return m.SysTopicInterval }

// Every key whose name says it is a size or a time takes the one syntax
// of its kind: a new key of an ad hoc type (integer seconds, bytes only)
// fails here.
func TestConfigKeys_OneSyntaxPerKind(t *testing.T) {
	for path, typ := range configKeys(reflect.TypeFor[Config](), "", map[string]reflect.Type{}) {
		name := path[strings.LastIndex(path, ".")+1:]
		switch {
		case strings.HasSuffix(name, "_size") || strings.HasSuffix(name, "_bytes") || name == "memory_limit":
			if typ != reflect.TypeFor[ByteSize]() {
				t.Errorf("%s is a size of type %s, want ByteSize", path, typ)
			}
		case strings.HasSuffix(name, "_interval") || strings.HasSuffix(name, "_timeout") || strings.HasSuffix(name, "_window") && name != "delivery_window" /* a count */ ||
			strings.HasSuffix(name, "keepalive") || name == "retention" || name == "max_age" || name == "after" || name == "timeout":
			if typ != reflect.TypeFor[time.Duration]() {
				t.Errorf("%s is a time of type %s, want time.Duration", path, typ)
			}
		}
	}
}

// parseExpecting parses yaml; with wantErr ("|"-separated parts that the
// error must all contain) it fails the test unless parsing is refused
// with them, and reports refused.
func parseExpecting(t *testing.T, yaml string, environ []string, wantErr string) (cfg Config, refused bool, err error) {
	t.Helper()
	cfg, err = parseConfig([]byte(yaml+"\n"), environ)
	if wantErr == "" {
		return cfg, false, err
	}
	if err == nil {
		t.Fatalf("accepted; want an error with %q", wantErr)
	}
	for _, part := range strings.Split(wantErr, "|") {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("err = %v, want it to contain %q", err, part)
		}
	}
	return cfg, true, err
}
