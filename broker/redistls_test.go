package broker_test

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
	"github.com/inboxmq/inboxmq/internal/testcerts"
)

// tlsRedis starts a redis-server that speaks only TLS and asks clients for
// a certificate signed by clientCA; it returns the server and the files a
// broker needs (CA of the server, a client certificate and key).
func tlsRedis(t *testing.T) (r *redistest.Server, caFile, certFile, keyFile string) {
	t.Helper()
	serverCA, clientCA := testcerts.NewCA(t, "redis CA"), testcerts.NewCA(t, "redis clients CA")
	dir := t.TempDir()
	srvCert, srvKey := serverCA.Server(t, "redis").Write(t, dir, "redis")
	clientCAFile := filepath.Join(dir, "clients-ca.pem")
	testcerts.WriteFile(t, clientCAFile, clientCA.PEM)
	caFile = filepath.Join(dir, "redis-ca.pem")
	testcerts.WriteFile(t, caFile, serverCA.PEM)
	client := clientCA.Client(t, "inboxmq")
	certFile, keyFile = client.Write(t, dir, "client")
	probe := &tls.Config{RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{client.TLS(t)}}
	r = redistest.Start(t, redistest.Config{TLS: &redistest.TLS{
		Cert: srvCert, Key: srvKey, CA: clientCAFile, AuthClients: true, Client: probe,
	}})
	return r, caFile, certFile, keyFile
}

func redisTLSConfig(t *testing.T, addr string, rt broker.RedisTLSConfig) broker.Config {
	t.Helper()
	cfg := mqtttest.Config(t)
	cfg.Store = "redis"
	cfg.Redis.Addresses = []string{addr}
	cfg.Redis.Prefix = "tls-" + strings.ReplaceAll(t.Name(), "/", "-") + ":"
	cfg.Redis.DialTimeout, cfg.Redis.Timeout = 500*time.Millisecond, 500*time.Millisecond
	cfg.Redis.TLS = rt
	cfg.Auth.Accounts = nil // tokens are enough here; each account costs a bcrypt check per New
	return cfg
}

// The Redis store, cluster signals and notification channel work over TLS
// with a client certificate, against a real redis-server (Debian's is
// built with TLS).
func TestRedisStoreOverTLS(t *testing.T) {
	r, caFile, certFile, keyFile := tlsRedis(t)
	b := mqtttest.Start(t, redisTLSConfig(t, r.Addr, broker.RedisTLSConfig{
		Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile,
	}))
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"stored in Redis over TLS"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("ct") != "stored in Redis over TLS" {
		t.Fatalf("bob got %s", e.Raw)
	}
}

// A broker that cannot make a TLS connection to Redis does not start, and
// says why.
func TestRedisTLSRefused(t *testing.T) {
	r, caFile, certFile, keyFile := tlsRedis(t)
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	testcerts.WriteFile(t, otherCA, testcerts.NewCA(t, "someone else").PEM)
	tests := []struct {
		name string
		tls  broker.RedisTLSConfig
		want string
	}{
		{"no TLS to a TLS server", broker.RedisTLSConfig{}, "open redis store"},
		{"server certificate from an unknown CA", broker.RedisTLSConfig{Enabled: true, CAFile: otherCA, CertFile: certFile, KeyFile: keyFile},
			"certificate signed by unknown authority"},
		{"no client certificate", broker.RedisTLSConfig{Enabled: true, CAFile: caFile}, "open redis store"},
		{"wrong server name", broker.RedisTLSConfig{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "redis.example.com"},
			"redis.example.com"},
		{"missing CA file", broker.RedisTLSConfig{Enabled: true, CAFile: caFile + ".missing"}, caFile + ".missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := broker.New(redisTLSConfig(t, r.Addr, tt.tls), nil)
			if err == nil {
				b.Close()
				t.Fatal("the broker started")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
	// insecure_skip_verify accepts the unknown CA (for tests only).
	b, err := broker.New(redisTLSConfig(t, r.Addr, broker.RedisTLSConfig{Enabled: true, InsecureSkipVerify: true, CertFile: certFile, KeyFile: keyFile}), nil)
	if err != nil {
		t.Fatalf("insecure_skip_verify: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
