package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The admin endpoints (metrics, the admin API) answer on the admin
// listener only; the public listener keeps health and the user API.
func TestBinary_AdminListener(t *testing.T) {
	p := mqtttest.StartProcess(t, mqtttest.WriteConfig(t, t.TempDir()))
	if p.Admin == "" || p.Admin == p.HTTP {
		t.Fatalf("admin listener at %q, http at %q", p.Admin, p.HTTP)
	}
	mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	admin := mqtttest.Auth{User: mqtttest.AdminName, Password: mqtttest.AdminPassword}
	public, private := mqtttest.HTTP{Base: "http://" + p.HTTP}, mqtttest.HTTP{Base: "http://" + p.Admin}
	for _, tc := range []struct {
		name, method, path string
		auth               mqtttest.Auth
		body               any
		public, admin      int
	}{
		{"metrics", "GET", "/metrics", mqtttest.Auth{}, nil, 404, 200},
		{"online", "GET", "/api/v1/online?uid=10021", admin, nil, 404, 200},
		{"notice", "POST", "/api/v1/notices", admin, map[string]any{"uid": 10021, "content": "hi"}, 404, 202},
		{"kick", "POST", "/api/v1/kick", admin, map[string]any{"uid": 10021}, 404, 200},
		{"profiles are off", "GET", "/debug/pprof/", mqtttest.Auth{}, nil, 404, 404},
		{"user API stays public", "GET", "/api/v1/unread", mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, nil, 200, 404},
		{"health stays public", "GET", "/healthz", mqtttest.Auth{}, nil, 200, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The public listener first: a kick must not have happened there.
			if r := public.Do(t, tc.method, tc.path, tc.auth, tc.body); r.Status != tc.public {
				t.Fatalf("public listener: %d %s, want %d", r.Status, r.Raw, tc.public)
			}
			r := private.Do(t, tc.method, tc.path, tc.auth, tc.body)
			if r.Status != tc.admin {
				t.Fatalf("admin listener: %d %s, want %d", r.Status, r.Raw, tc.admin)
			}
			if tc.name == "metrics" && !strings.Contains(string(r.Raw), "\ninboxmq_connections 1\n") {
				t.Fatalf("metrics without the connection:\n%.400s", r.Raw)
			}
			if tc.name == "kick" && fmt.Sprint(r.Body["kicked"]) != "1" {
				t.Fatalf("kick: %s", r.Raw)
			}
		})
	}
}

// proxyV1 and proxyV2 are PROXY protocol headers (TCP over IPv4) saying
// the connection comes from src, written by hand from the spec rather than
// by the library the broker parses them with.
func proxyV1(src netip.AddrPort) []byte {
	return fmt.Appendf(nil, "PROXY TCP4 %s 127.0.0.1 %d 1883\r\n", src.Addr(), src.Port())
}

func proxyV2(src netip.AddrPort) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c") // signature, v2 PROXY, TCP4, 12 address bytes
	h = append(h, src.Addr().AsSlice()...)
	h = append(h, 127, 0, 0, 1)
	h = binary.BigEndian.AppendUint16(h, src.Port())
	return binary.BigEndian.AppendUint16(h, 1883)
}

// dialFrom opens a TCP connection from the loopback address from (all of
// 127.0.0.0/8 is the machine's own), so one test has a trusted and an
// untrusted peer.
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

// connectVia sends prelude (a PROXY header, or nothing) then CONNECT as uid.
func connectVia(t *testing.T, c net.Conn, prelude []byte, uid string) error {
	t.Helper()
	if _, err := c.Write(prelude); err != nil {
		return err
	}
	return mqtttest.RawConnectOn(c, packets.ConnectParams{
		ClientIdentifier: uid + "/raw", Clean: true, Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid)),
	})
}

// waitLogLine waits until one line of the process's log holds every part.
func waitLogLine(t *testing.T, p *mqtttest.Process, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for line := range strings.SplitSeq(p.Log(), "\n") {
			if containsAll(line, parts) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q", parts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Behind a TCP balancer (here 127.0.0.2, the one trusted address) the
// broker knows clients by the address in their PROXY header, v1 or v2: in
// its log and for the per-address connection rate. A header from any other
// peer is refused; a connection without one is served with its own address.
// Behind an HTTP proxy, X-Forwarded-For is believed from the trusted proxy
// only, on the WebSocket and HTTP listeners.
func TestBinary_ProxyProtocolAndForwardedFor(t *testing.T) {
	const balancer, other = "127.0.0.2", "127.0.0.1"
	p := mqtttest.StartProcess(t, mqtttest.WriteConfig(t, t.TempDir(),
		strings.TrimSuffix(mqtttest.ListenersYAML, "\n"),
		`  proxy_protocol: {trusted: ["127.0.0.2/32"], header_timeout: 2s}`,
		`  trusted_proxies: ["127.0.0.2"]`,
		`limits:`,
		`  connections_per_ip: 0.1   # a burst of 1: a second connection from one address within 10 s is refused`,
		`  message_rate: 0`,
		`  http_connections_per_ip: 0`,
		`  http_requests_per_ip: 0.1 # likewise for requests`,
		``))
	client := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

	t.Run("mqtt", func(t *testing.T) {
		if err := connectVia(t, dialFrom(t, balancer, p.MQTTAddr), proxyV2(client("203.0.113.7:40000")), "30001"); err != nil {
			t.Fatalf("v2 header from the balancer: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30001", "remote=203.0.113.7:40000")
		if err := connectVia(t, dialFrom(t, balancer, p.MQTTAddr), proxyV1(client("203.0.113.8:40001")), "30002"); err != nil {
			t.Fatalf("v1 header from the balancer: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30002", "remote=203.0.113.8:40001")
		// Both came from the balancer's address: the rate is per client.
		// A second connection of 203.0.113.7 is over its rate.
		if err := connectVia(t, dialFrom(t, balancer, p.MQTTAddr), proxyV2(client("203.0.113.7:40002")), "30003"); err == nil {
			t.Fatal("a second connection of 203.0.113.7 within 10 s was accepted")
		}
		waitLogLine(t, p, "connections refused: rate per IP exceeded", "last_remote=203.0.113.7")
		// Anyone else claiming an address is refused.
		if err := connectVia(t, dialFrom(t, other, p.MQTTAddr), proxyV2(client("203.0.113.9:40003")), "30004"); err == nil {
			t.Fatal("a PROXY header from an untrusted peer was accepted")
		}
		waitLogLine(t, p, "PROXY protocol header refused", "last_remote=127.0.0.1:")
		// Without a header, peers are known by their own address.
		if err := connectVia(t, dialFrom(t, other, p.MQTTAddr), nil, "30005"); err != nil {
			t.Fatalf("a plain connection from an untrusted peer: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30005", "remote=127.0.0.1:")
		if err := connectVia(t, dialFrom(t, balancer, p.MQTTAddr), nil, "30006"); err != nil {
			t.Fatalf("the balancer's own connection (a health check) without a header: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30006", "remote=127.0.0.2:")
		if strings.Contains(p.Log(), "203.0.113.9") {
			t.Fatal("the untrusted peer's claimed address reached the log")
		}
	})

	t.Run("websocket", func(t *testing.T) {
		url := "ws://" + p.WSAddr + "/mqtt"
		ws := func(from string, prelude []byte, xff, uid string) error {
			t.Helper()
			h := http.Header{}
			if xff != "" {
				h.Set("X-Forwarded-For", xff)
			}
			c, err := mqtttest.DialWS(url, from, prelude, h)
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
			return mqtttest.RawConnectOn(c, packets.ConnectParams{
				ClientIdentifier: uid + "/ws", Clean: true, Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid)),
			})
		}
		if err := ws(balancer, nil, "198.51.100.99, 198.51.100.1", "30011"); err != nil {
			t.Fatalf("through the trusted HTTP proxy: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30011", "remote=198.51.100.1:")
		// Its rate is the forwarded client's, not the proxy's.
		var refused *mqtttest.WSRefused
		if err := ws(balancer, nil, "198.51.100.1", "30012"); !errors.As(err, &refused) || refused.Status != http.StatusTooManyRequests {
			t.Fatalf("a second connection of 198.51.100.1: %v, want 429", err)
		}
		if err := ws(other, nil, "198.51.100.2", "30013"); err != nil {
			t.Fatalf("from an untrusted peer: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30013", "remote=127.0.0.1:")
		if err := ws(balancer, proxyV2(client("203.0.113.20:41000")), "", "30014"); err != nil {
			t.Fatalf("a PROXY header on the WebSocket listener: %v", err)
		}
		waitLogLine(t, p, "msg=connected", "uid=30014", "remote=203.0.113.20:41000")
		if err := ws(other, proxyV1(client("203.0.113.21:41001")), "", "30015"); err == nil {
			t.Fatal("a PROXY header from an untrusted peer was accepted on the WebSocket listener")
		}
		if strings.Contains(p.Log(), "198.51.100.2") || strings.Contains(p.Log(), "203.0.113.21") {
			t.Fatal("an address claimed by an untrusted peer reached the log")
		}
	})

	t.Run("http", func(t *testing.T) {
		get := func(from, xff string, auth ...string) int {
			t.Helper()
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
			req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+p.HTTP+"/api/v1/unread", nil)
			req.Header.Set("X-Forwarded-For", xff)
			if len(auth) == 2 {
				req.SetBasicAuth(auth[0], auth[1])
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		// The request rate is per forwarded client behind the trusted proxy...
		if a, b, c := get(balancer, "198.51.100.50"), get(balancer, "198.51.100.50"), get(balancer, "198.51.100.51"); a != 401 || b != 429 || c != 401 {
			t.Fatalf("through the trusted proxy: %d %d %d, want 401 429 401", a, b, c)
		}
		// ...and per peer for anyone else, whatever they forward.
		if a, b := get(other, "198.51.100.60"), get(other, "198.51.100.61"); a != 401 || b != 429 {
			t.Fatalf("from an untrusted peer: %d %d, want 401 429", a, b)
		}
		// The log names the forwarded client.
		if s := get(balancer, "198.51.100.70", mqtttest.AdminName, "a wrong password"); s != 401 {
			t.Fatalf("bad password: %d", s)
		}
		waitLogLine(t, p, "api login refused", "remote=198.51.100.70")
	})
}

// web.mqtt_url must be a ws:// or wss:// URL: check-config says which key
// is wrong, for each kind of mistake.
func TestBinary_CheckConfigMQTTURL(t *testing.T) {
	bin := mqtttest.Binary(t)
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"wss://chat.example.com/mqtt", true},
		{"ws://127.0.0.1:8083/mqtt", true},
		{"https://chat.example.com/mqtt", false},
		{"chat.example.com/mqtt", false},
		{"wss:///mqtt", false},
		{"wss://user:pw@chat.example.com/mqtt", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			cfg := mqtttest.WriteConfig(t, t.TempDir(), fmt.Sprintf("web: {enabled: true, mqtt_url: %q}", tc.url))
			out, err := exec.Command(bin, "check-config", "--config", cfg).CombinedOutput()
			if tc.ok != (err == nil) {
				t.Fatalf("check-config: %v\n%s", err, out)
			}
			if !tc.ok && !strings.Contains(string(out), "web.mqtt_url must be a ws:// or wss:// URL") {
				t.Fatalf("unclear error:\n%s", out)
			}
		})
	}
	// A bad trusted address is named too.
	cfg := mqtttest.WriteConfig(t, t.TempDir(), strings.TrimSuffix(mqtttest.ListenersYAML, "\n"), `  proxy_protocol: {trusted: ["10.0.0.0/33"]}`)
	if out, err := exec.Command(bin, "check-config", "--config", cfg).CombinedOutput(); err == nil || !strings.Contains(string(out), "listeners.proxy_protocol.trusted") {
		t.Fatalf("check-config accepted a bad CIDR: %v\n%s", err, out)
	}
}
