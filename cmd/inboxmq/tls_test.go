package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/testcerts"
)

// writeTLSConfig writes a config whose MQTT listener speaks TLS with the
// given tls block (YAML flow mapping), for the real binary.
func writeTLSConfig(t *testing.T, dataDir, tlsBlock string) string {
	t.Helper()
	text := fmt.Sprintf(`data_dir: %q
listeners:
  mqtt:
    address: "127.0.0.1:0"
    tls: %s
  websocket: {address: ""}
  http: {address: "127.0.0.1:0"}
  admin: {address: ""}
auth:
  jwt_secret: %q
limits:
  connections_per_ip: 0
  message_rate: 0
`, dataDir, tlsBlock, mqtttest.Secret)
	path := filepath.Join(t.TempDir(), "inboxmq.yaml")
	testcerts.WriteFile(t, path, []byte(text))
	return path
}

// seenCert is a client TLS config that trusts ca and records the name of
// the certificate each of its connections was shown.
type seenCert struct {
	mu   sync.Mutex
	last string
}

func (s *seenCert) config(ca *testcerts.CA, client ...tls.Certificate) *tls.Config {
	return &tls.Config{
		RootCAs: ca.Pool(), ServerName: "localhost", Certificates: client,
		VerifyConnection: func(cs tls.ConnectionState) error {
			s.mu.Lock()
			s.last = cs.PeerCertificates[0].Subject.CommonName
			s.mu.Unlock()
			return nil
		},
	}
}

func (s *seenCert) name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// servedCert is the name of the certificate a new TLS connection to addr
// is shown.
func servedCert(addr string, ca *testcerts.CA) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// replaceFile writes data beside path and renames it over path, as
// certificate tools (certbot, cert-manager's sidecars) do.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	testcerts.WriteFile(t, path+".new", data)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// A certificate swapped on disk under a running broker: new connections
// get the new one, connections made before it keep working both ways, and
// a bad file afterwards keeps the good one and logs its path.
func TestBinary_TLSCertificateSwap(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "first").Write(t, dir, "server")
	cfg := writeTLSConfig(t, t.TempDir(), fmt.Sprintf("{cert: %q, key: %q}", certPath, keyPath))
	p := mqtttest.StartProcess(t, cfg)

	var bobSaw, aliceSaw, carolSaw seenCert
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true, TLS: bobSaw.config(ca)})
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true, TLS: aliceSaw.config(ca)})
	if bobSaw.name() != "first" || aliceSaw.name() != "first" {
		t.Fatalf("before the swap the clients saw %q and %q, want first", bobSaw.name(), aliceSaw.name())
	}

	next := ca.Server(t, "second")
	replaceFile(t, keyPath, next.KeyPEM)
	replaceFile(t, certPath, next.CertPEM)
	deadline := time.Now().Add(15 * time.Second)
	for {
		name, err := servedCert(p.MQTTAddr, ca)
		if err == nil && name == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new connections still get %q (%v) after the swap:\n%s", name, err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}

	carol := mqtttest.MustV3(t, p.MQTTAddr, "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Clean: true, TLS: carolSaw.config(ca)})
	if carolSaw.name() != "second" {
		t.Fatalf("an MQTT client connecting after the swap saw %q, want second", carolSaw.name())
	}
	// The connections made before the swap still carry traffic, both ways.
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"from before the swap"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("ct") != "from before the swap" {
		t.Fatalf("bob got %s", e.Raw)
	}
	carol.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"from after the swap"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("ct") != "from after the swap" {
		t.Fatalf("bob got %s", e.Raw)
	}
	if !strings.Contains(p.Log(), `msg="TLS certificate reloaded"`) {
		t.Errorf("no reload logged:\n%s", p.Log())
	}

	// A broken file is refused: the log names it, the good one stays.
	replaceFile(t, certPath, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	deadline = time.Now().Add(15 * time.Second)
	for !strings.Contains(p.Log(), "TLS certificate not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for a broken certificate file:\n%s", p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if line := logLine(p.Log(), "TLS certificate not reloaded"); !strings.Contains(line, certPath) {
		t.Errorf("the error does not name %s: %s", certPath, line)
	}
	if name, err := servedCert(p.MQTTAddr, ca); err != nil || name != "second" {
		t.Errorf("after a broken file new connections get %q (%v), want second", name, err)
	}
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"still fine"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("ct") != "still fine" {
		t.Fatalf("bob got %s", e.Raw)
	}
}

func logLine(log, substr string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// require_client_cert: a client without a certificate, or with one from
// another CA, is refused; one signed by client_ca logs in and exchanges
// messages (it still needs its token).
func TestBinary_TLSClientCertificateRequired(t *testing.T) {
	ca := testcerts.NewCA(t, "server CA")
	clientCA := testcerts.NewCA(t, "client CA")
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "server").Write(t, dir, "server")
	caPath := filepath.Join(dir, "clients.pem")
	testcerts.WriteFile(t, caPath, clientCA.PEM)
	cfg := writeTLSConfig(t, t.TempDir(),
		fmt.Sprintf("{cert: %q, key: %q, client_ca: %q, require_client_cert: true}", certPath, keyPath, caPath))
	p := mqtttest.StartProcess(t, cfg)

	var seen seenCert
	tests := []struct {
		name   string
		client []tls.Certificate
	}{
		{"no client certificate", nil},
		{"certificate of another CA", []tls.Certificate{testcerts.NewCA(t, "other").Client(t, "mallory").TLS(t)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := seen.config(ca)
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if tt.client == nil {
					return &tls.Certificate{}, nil
				}
				return &tt.client[0], nil // sent even though the server's CA list does not name its CA
			}
			c, err := mqtttest.ConnectV3(p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true, TLS: conf})
			if err == nil {
				c.Disconnect(0)
				t.Fatal("connected without a valid client certificate")
			}
		})
	}

	good := clientCA.Client(t, "alice").TLS(t)
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true, TLS: seen.config(ca, clientCA.Client(t, "bob").TLS(t))})
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true, TLS: seen.config(ca, good)})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"with a client certificate"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("ct") != "with a client certificate" {
		t.Fatalf("bob got %s", e.Raw)
	}
	// The certificate secures the transport; the login is still checked.
	if c, err := mqtttest.ConnectV3(p.MQTTAddr, "10001", "not a token", mqtttest.V3Options{Clean: true, TLS: seen.config(ca, good)}); err == nil {
		c.Disconnect(0)
		t.Fatal("a client certificate let in a client with a bad token")
	}
}
