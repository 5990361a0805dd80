package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Topics opened by operator rules behave as plain MQTT: %u scoping,
// retained messages, QoS 2 and wills.
func TestOpenedTopics_PlainMQTT(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite devices/%u/#", "read public/#", "write public/%u"}
	b := mqtttest.Start(t, cfg)
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Clean: true, Subscribe: true})

	// Own device tree: retained QoS 2 message, delivered on subscribe.
	if err := alice.PubQoS("devices/10001/lamp", 2, true, "on"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Sub("devices/10001/#", 2); err != nil {
		t.Fatal(err)
	}
	if e := alice.Inbox.Next(t, wait); e.Topic != "devices/10001/lamp" || string(e.Raw) != "on" {
		t.Fatalf("retained = %s on %s", e.Raw, e.Topic)
	}
	// Someone else's device tree is closed.
	if err := bob.Sub("devices/10001/#", 1); err == nil {
		t.Fatal("bob subscribed to alice's devices")
	}
	bob.MustPub(t, "devices/10001/lamp", "off")
	if e := bob.Inbox.Next(t, wait); e.Method() != "Error" {
		t.Fatalf("want Error envelope, got %s", e.Raw)
	}

	// public/#: everyone reads, each writes only public/{uid}.
	if err := bob.Sub("public/#", 1); err != nil {
		t.Fatal(err)
	}
	alice.MustPub(t, "public/10001", "hello")
	if e := bob.Inbox.Next(t, wait); e.Topic != "public/10001" || string(e.Raw) != "hello" {
		t.Fatalf("public = %s", e.Raw)
	}
	alice.MustPub(t, "public/10021", "impersonation")
	bob.Inbox.None(t, 300*time.Millisecond)

	// A will on an allowed topic fires when the connection dies.
	carol, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{
		ClientIdentifier: "10031", Clean: true, Username: []byte("10031"), Password: []byte(mqtttest.Token(t, "10031")),
		WillFlag: true, WillTopic: "public/10031", WillPayload: []byte("gone"), WillQos: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	carol.Close() // no DISCONNECT: the will fires
	if e := bob.Inbox.Next(t, wait); e.Topic != "public/10031" || string(e.Raw) != "gone" {
		t.Fatalf("will = %s on %s", e.Raw, e.Topic)
	}
}

func TestAnonymous_OnlyListedTopics(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Auth.Anonymous = true
	cfg.ACL.Rules = []string{"readwrite public/#"}
	cfg.ACL.AnonymousRules = []string{"read public/#"}
	b := mqtttest.Start(t, cfg)
	anon := mqtttest.MustV3(t, b.MQTTAddr(), "", "", mqtttest.V3Options{ClientID: "kiosk-1", Clean: true})
	if err := anon.Sub("public/#", 1); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"broadcast", "inbox/10001", "#"} {
		if err := anon.Sub(f, 1); err == nil {
			t.Fatalf("anonymous subscribed to %s", f)
		}
	}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "public/news", "read me")
	if e := anon.Inbox.Next(t, wait); string(e.Raw) != "read me" {
		t.Fatalf("got %s", e.Raw)
	}
	anon.MustPub(t, "public/news", "graffiti") // acked, dropped: read-only for anonymous
	anon.MustPub(t, "im/sendmsg", `{"uid":10001,"msg":"x"}`)
	anon.Inbox.None(t, 300*time.Millisecond)
}

func TestTLSListeners(t *testing.T) {
	cert, key, pool := selfSigned(t)
	cfg := mqtttest.Config(t)
	cfg.Listeners.MQTT.TLS.Cert, cfg.Listeners.MQTT.TLS.Key = cert, key
	cfg.Listeners.WebSocket.TLS.Cert, cfg.Listeners.WebSocket.TLS.Key = cert, key
	b := mqtttest.Start(t, cfg)
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	var clients []paho.Client
	for i, url := range []string{"ssl://" + b.MQTTAddr(), "wss://" + b.WebSocketAddr() + "/mqtt"} {
		uid := fmt.Sprint(10001 + i)
		opts := paho.NewClientOptions().AddBroker(url).SetClientID(uid).SetUsername(uid).
			SetPassword(mqtttest.Token(t, uid)).SetTLSConfig(tlsCfg).SetAutoReconnect(false)
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("%s: %v", url, tok.Error())
		}
		clients = append(clients, c)
	}
	// Plain TCP to the TLS port fails. The TLS clients stay connected until
	// it has: mochi v2.7.9 adds each connection to its WaitGroup inside the
	// connection's goroutine, and a refused connection that takes the count
	// from zero is, for the race detector, a race with Close's Wait.
	if c, err := mqtttest.ConnectV3(b.MQTTAddr(), "10011", mqtttest.Token(t, "10011"), mqtttest.V3Options{Clean: true}); err == nil {
		c.Disconnect(0)
		t.Fatal("plain MQTT accepted on the TLS listener")
	}
	for _, c := range clients {
		c.Disconnect(0)
	}
}

func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	return certFile, keyFile, pool
}
