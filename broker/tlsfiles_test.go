package broker

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/inboxmq/inboxmq/internal/logbuf"
	"github.com/inboxmq/inboxmq/internal/testcerts"
)

// tlsBroker is a broker whose only listener is MQTT over TLS with the
// given files.
func tlsBroker(t *testing.T, certPath, keyPath string) (*Broker, *logbuf.Buffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Auth.JWTSecret = strings.Repeat("s", 32)
	cfg.Listeners.MQTT = ListenerConfig{Address: "127.0.0.1:0", TLS: TLSConfig{Cert: certPath, Key: keyPath}}
	cfg.Listeners.WebSocket.Address, cfg.Listeners.HTTP.Address, cfg.Listeners.Admin.Address = "", "", ""
	logs := new(logbuf.Buffer)
	b, err := New(cfg, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return b, logs
}

// Close ends the certificate watches with the broker.
func TestCertificateWatchEndsWithClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ca := testcerts.NewCA(t, "test CA")
	certPath, keyPath := ca.Server(t, "first").Write(t, t.TempDir(), "server")
	b, _ := tlsBroker(t, certPath, keyPath)
	if len(b.certs.list) != 1 {
		t.Fatalf("%d certificate sets, want 1", len(b.certs.list))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// SIGHUP (Reload) re-reads the certificate files by itself: with the
// file watch stopped, a swapped certificate is served only after Reload.
func TestReloadRereadsCertificates(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "first").Write(t, dir, "server")
	b, logs := tlsBroker(t, certPath, keyPath)
	defer b.Close()
	served := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", b.MQTTAddr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	for _, c := range b.certs.list {
		if err := c.Close(); err != nil { // stop the watch: only Reload may reload now
			t.Fatal(err)
		}
	}
	next := ca.Server(t, "second")
	for path, data := range map[string][]byte{certPath: next.CertPEM, keyPath: next.KeyPEM} {
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	if got := served(); got != "first" {
		t.Fatalf("served %q without a watch or a reload, want first", got)
	}
	if _, err := b.Reload(b.cfg); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "second" {
		t.Fatalf("served %q after Reload, want second", got)
	}
	if lines := logs.Lines("TLS certificate reloaded", "trigger=reload", filepath.Base(certPath)); len(lines) != 1 {
		t.Errorf("reload log lines: %q\n%s", lines, logs.String())
	}
}
