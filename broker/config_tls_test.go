package broker

import (
	"strings"
	"testing"
)

// The TLS keys: listener client certificates and TLS to Redis.
func TestParseConfig_TLSKeys(t *testing.T) {
	t.Setenv(SecretEnv, "")
	const base = "auth: {jwt_secret: 0123456789abcdef0123456789abcdef}\n"
	tests := []struct {
		name string
		yaml string
		want string // "" = accepted; else a substring of the error
	}{
		{"client certificates required", `listeners: {mqtt: {tls: {cert: c.pem, key: k.pem, client_ca: ca.pem, require_client_cert: true}}}`, ""},
		{"client certificates optional", `listeners: {mqtt: {tls: {cert: c.pem, key: k.pem, client_ca: ca.pem}}}`, ""},
		{"required without client_ca", `listeners: {mqtt: {tls: {cert: c.pem, key: k.pem, require_client_cert: true}}}`,
			"listeners.mqtt.tls.require_client_cert needs client_ca"},
		{"client_ca without TLS", `listeners: {websocket: {tls: {client_ca: ca.pem}}}`,
			"listeners.websocket.tls.client_ca and require_client_cert need a cert and key"},
		{"redis TLS", `redis: {tls: {enabled: true, ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: redis.internal}}`, ""},
		{"redis TLS, system roots", `redis: {tls: {enabled: true}}`, ""},
		{"redis TLS keys without enabled", `redis: {tls: {ca_file: ca.pem}}`, "redis.tls: set enabled: true"},
		{"redis client cert without key", `redis: {tls: {enabled: true, cert_file: c.pem}}`, "both cert_file and key_file"},
		{"redis TLS unknown key", `redis: {tls: {enable: true}}`, "enable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(base + tt.yaml + "\n"))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
