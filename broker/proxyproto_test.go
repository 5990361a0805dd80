package broker_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A balancer that stalls in the middle of a PROXY header holds up nothing
// but its own connection: headers are read in each connection's goroutine,
// not in the accept loop. The stalled one would hold the accept loop for
// the whole header timeout (1 minute here); the next client must get its
// CONNACK within RawConnectOn's 5 s.
func TestProxyProtocol_StalledHeaderBlocksNoOne(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Listeners.ProxyProtocol.Trusted = []string{"127.0.0.1"}
	cfg.Listeners.ProxyProtocol.HeaderTimeout = time.Minute
	cfg.Limits.ConnectTimeout = time.Minute
	b := mqtttest.Start(t, cfg)

	for range 3 {
		stalled := dialFrom(t, "127.0.0.1", b.MQTTAddr())
		if _, err := io.WriteString(stalled, "\r\n\r\n"); err != nil { // a v2 signature begun, never finished
			t.Fatal(err)
		}
	}
	c := dialFrom(t, "127.0.0.1", b.MQTTAddr())
	if _, err := io.WriteString(c, "PROXY TCP4 203.0.113.2 127.0.0.1 40000 1883\r\n"); err != nil {
		t.Fatal(err)
	}
	tok := mqtttest.Token(t, "10001")
	if err := mqtttest.RawConnectOn(c, packets.ConnectParams{ClientIdentifier: "p", Clean: true, Username: []byte("10001"), Password: []byte(tok)}); err != nil {
		t.Fatalf("a client behind stalled headers: %v", err)
	}
}

// limits.http_connections_per_ip does not count a trusted proxy's
// connections (many clients share them); anyone else is still capped.
func TestHTTPConnCap_TrustedProxyExempt(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.HTTPConnectionsPerIP = 1
	cfg.Listeners.TrustedProxies = []string{"127.0.0.2"}
	b := mqtttest.Start(t, cfg)
	// healthz answers on an open connection: the connection was kept.
	served := func(c net.Conn) bool {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	proxy1, proxy2 := dialFrom(t, "127.0.0.2", b.HTTPAddr()), dialFrom(t, "127.0.0.2", b.HTTPAddr())
	if !served(proxy1) || !served(proxy2) {
		t.Fatal("a trusted proxy's second connection was capped")
	}
	other1 := dialFrom(t, "127.0.0.1", b.HTTPAddr())
	if !served(other1) {
		t.Fatal("a first connection was refused")
	}
	if served(dialFrom(t, "127.0.0.1", b.HTTPAddr())) {
		t.Fatal("an untrusted address's second connection was not capped")
	}
}
