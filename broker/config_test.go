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
	if want := DefaultConfig(); cfg.Inbox != want.Inbox || cfg.MQTT != want.MQTT || cfg.Limits != want.Limits || cfg.Store != want.Store || cfg.Push != want.Push || cfg.Events != want.Events || cfg.Redis.Prefix != want.Redis.Prefix || cfg.Listeners.MQTT != want.Listeners.MQTT {
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
			"node_id", "jwt_secret", "accounts", "acl", "max_messages", "maximum_clients", "maximum_qos",
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
