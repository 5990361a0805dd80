package broker

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"30s", 30 * time.Second, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"0", 0, false},
		{"deny: 7", 0, true},
		{"deny: 7x", 0, true},
		{"deny: d", 0, true},
		{"deny: 1d1d", 0, true},
		{"deny: ", 0, true},
	} {
		in := strings.TrimPrefix(tt.in, "deny: ")
		got, err := ParseDuration(in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", in, got, err, tt.want, tt.bad)
		}
	}
}

// Every key can come from the environment (INBOXMQ_ + its path), over the
// file; lists are YAML flow; the older names still work; values take the
// file's syntax, and bad ones are refused with the key's path.
func TestParseConfig_Environment(t *testing.T) {
	const file = "inbox:\n  retention: 7d\nacl:\n  rules: [\"readwrite a/#\", \"read b/#\", \"read c/#\"]\n"
	for _, tt := range []struct {
		name    string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		{"file alone: days", nil, func(c Config) bool { return c.Inbox.Retention == 7*24*time.Hour }, ""},
		{"nested key with underscores", map[string]string{"INBOXMQ_INBOX_DEDUPE_WINDOW": "2m"},
			func(c Config) bool { return c.Inbox.DedupeWindow == 2*time.Minute }, ""},
		{"environment wins over the file", map[string]string{"INBOXMQ_INBOX_RETENTION": "2d"},
			func(c Config) bool { return c.Inbox.Retention == 48*time.Hour }, ""},
		{"a shorter list replaces the file's", map[string]string{"INBOXMQ_ACL_RULES": `["readwrite public/#"]`},
			func(c Config) bool { return len(c.ACL.Rules) == 1 && c.ACL.Rules[0] == "readwrite public/#" }, ""},
		{"a number", map[string]string{"INBOXMQ_LIMITS_MESSAGE_BURST": "7"},
			func(c Config) bool { return c.Limits.MessageBurst == 7 }, ""},
		{"the older secret name", map[string]string{SecretEnv: "another-environment-secret-32-bytes"},
			func(c Config) bool { return c.Auth.JWTSecret == "another-environment-secret-32-bytes" }, ""},
		{"the secret by its path", map[string]string{"INBOXMQ_AUTH_JWT_SECRET": "a-third-environment-secret-32-bytes"},
			func(c Config) bool { return c.Auth.JWTSecret == "a-third-environment-secret-32-bytes" }, ""},
		{"deny: a duration without a unit", map[string]string{"INBOXMQ_INBOX_RETENTION": "7"}, nil, "'inbox.retention' invalid duration \"7\""},
		{"deny: a bad duration", map[string]string{"INBOXMQ_LIMITS_MESSAGE_WAIT": "soon"}, nil, "'limits.message_wait' invalid duration"},
		{"deny: a list that is not one", map[string]string{"INBOXMQ_ACL_RULES": "readwrite #"}, nil, "INBOXMQ_ACL_RULES"},
		{"deny: not a number", map[string]string{"INBOXMQ_LIMITS_MESSAGE_BURST": "many"}, nil, "limits.message_burst"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			environ := []string{SecretEnv + "=an-environment-secret-of-32-bytes!!"}
			for k, v := range tt.env {
				environ = append(environ, k+"="+v)
			}
			cfg, err := parseConfig([]byte(file), environ)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(cfg) {
				t.Fatalf("err %v, config %+v", err, cfg)
			}
		})
	}
}

// A key that does not exist is refused with its path, in the file at any
// depth, also inside a list of accounts.
func TestParseConfig_UnknownKeys(t *testing.T) {
	environ := []string{SecretEnv + "=an-environment-secret-of-32-bytes!!"}
	for _, tt := range []struct{ yaml, want string }{
		{"inbox:\n  retension: 7d\n", "'inbox' has invalid keys: retension"},
		{"listeners:\n  mqtt:\n    adress: x\n", "'listeners.mqtt' has invalid keys: adress"},
		{"auth:\n  accounts:\n    - nmae: svc\n", "has invalid keys: nmae"},
		{"nosuch: 1\n", "invalid keys: nosuch"},
		{"inbox:\n  retention: 7\n", "'inbox.retention' 7: a duration needs a unit"},
	} {
		if _, err := parseConfig([]byte(tt.yaml), environ); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

// Listener addresses are host:port, and no two listeners share a port
// (any free port, :0, never clashes).
func TestValidate_ListenerAddresses(t *testing.T) {
	for _, tt := range []struct {
		name           string
		mqtt, ws, http string
		admin          string
		wantErr        string
	}{
		{"distinct ports", ":1883", ":8083", ":8080", "127.0.0.1:9090", ""},
		{"one port, two hosts", "127.0.0.1:1883", "127.0.0.2:1883", ":8080", "", ""},
		{"free ports", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"deny: admin on the public http port", ":1883", ":8083", ":8080", "127.0.0.1:8080", "two listeners on one port"},
		{"deny: two on one port", ":1883", "0.0.0.0:1883", ":8080", "", "two listeners on one port"},
		{"deny: no port", "localhost", ":8083", ":8080", "", "listeners.mqtt.address \"localhost\": want host:port"},
		{"deny: port out of range", ":1883", ":99999", ":8080", "", "listeners.websocket.address \":99999\": the port must be"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Auth.JWTSecret = "an-environment-secret-of-32-bytes!!"
			c.Listeners.MQTT.Address, c.Listeners.WebSocket.Address = tt.mqtt, tt.ws
			c.Listeners.HTTP.Address, c.Listeners.Admin.Address = tt.http, tt.admin
			err := c.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckFiles(t *testing.T) {
	c := DefaultConfig()
	if err := c.CheckFiles(); err != nil {
		t.Fatalf("no files named: %v", err)
	}
	c.Listeners.MQTT.TLS.Cert = "/nonexistent/cert.pem"
	c.Redis.TLS.CAFile = "/nonexistent/ca.pem"
	err := c.CheckFiles()
	if err == nil || !strings.Contains(err.Error(), "listeners.mqtt.tls.cert") || !strings.Contains(err.Error(), "redis.tls.ca_file") {
		t.Fatalf("err = %v, want both missing files named by key", err)
	}
}
