package broker

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseNetSet(t *testing.T) {
	set, err := parseNetSet([]string{"10.0.0.0/8", "192.168.1.7", " 2001:db8::/32 ", "::ffff:172.16.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		in   bool
	}{
		{"10.1.2.3", true},
		{"10.1.2.3:4567", true},
		{"[::ffff:10.1.2.3]:80", true}, // IPv4-mapped counts as IPv4
		{"192.168.1.7", true},
		{"172.16.0.1", true},
		{"2001:db8::1", true},
		{"[2001:db8::1]:443", true},
		{"11.0.0.1", false},
		{"192.168.1.8", false},
		{"2001:db9::1", false},
		{"not-an-ip", false},
		{"", false},
	} {
		if got := set.containsHost(tc.addr); got != tc.in {
			t.Errorf("containsHost(%q) = %v, want %v", tc.addr, got, tc.in)
		}
	}
	if (netSet(nil)).containsHost("127.0.0.1") {
		t.Error("an empty set trusts 127.0.0.1")
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0", "example.com", "10.0.0.0/8/8", ""} {
		if _, err := parseNetSet([]string{bad}); err == nil {
			t.Errorf("parseNetSet(%q) accepted", bad)
		}
	}
}

func TestForwardedFor(t *testing.T) {
	trusted, err := parseNetSet([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		header     map[string][]string
		want       string // "" : the peer's own address
	}{
		{"untrusted peer: XFF ignored", "203.0.113.5:1000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, ""},
		{"untrusted peer: X-Real-IP ignored", "203.0.113.5:1000", map[string][]string{"X-Real-IP": {"198.51.100.1"}}, ""},
		{"trusted peer without headers", "10.0.0.1:1000", nil, ""},
		{"trusted peer, one hop", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"client-written entries left of the real one", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1"}}, "198.51.100.1"},
		{"chain of trusted proxies", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"198.51.100.1, 10.0.0.9", "10.0.0.8"}}, "198.51.100.1"},
		{"only trusted hops", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"10.0.0.9"}}, "10.0.0.9"},
		{"garbage stops the walk", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"198.51.100.1, nonsense, 10.0.0.9"}}, "10.0.0.9"},
		{"garbage only", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"nonsense"}}, ""},
		{"with a port", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"198.51.100.1:5555"}}, "198.51.100.1"},
		{"ipv6", "10.0.0.1:1000", map[string][]string{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7"},
		{"X-Real-IP without XFF", "10.0.0.1:1000", map[string][]string{"X-Real-IP": {"198.51.100.2"}}, "198.51.100.2"},
		{"bad X-Real-IP", "10.0.0.1:1000", map[string][]string{"X-Real-IP": {"a; b"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tc.header {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			ip, ok := trusted.forwardedFor(tc.peer, h)
			if got := ip.String(); ok != (tc.want != "") || ok && got != tc.want {
				t.Fatalf("forwardedFor = %v %v, want %q", ip, ok, tc.want)
			}
		})
	}
}

// realIP rewrites RemoteAddr for the handlers after it, only behind a
// trusted proxy.
func TestRealIP(t *testing.T) {
	trusted, _ := parseNetSet([]string{"10.0.0.1"})
	var seen string
	h := realIP(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }))
	for _, tc := range []struct{ peer, xff, want string }{
		{"10.0.0.1:999", "198.51.100.1", "198.51.100.1"},
		{"10.0.0.2:999", "198.51.100.1", "10.0.0.2:999"},
		{"10.0.0.1:999", "", "10.0.0.1:999"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		h.ServeHTTP(nil, r)
		if seen != tc.want || r.RemoteAddr != tc.peer {
			t.Errorf("peer %s, XFF %q: handler saw %s (caller's request now %s), want %s", tc.peer, tc.xff, seen, r.RemoteAddr, tc.want)
		}
	}
}

func TestValidate_ListenerKeys(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Auth.Anonymous = true
		return c
	}
	d := DefaultConfig()
	if d.Listeners.Admin.Address != "127.0.0.1:9090" || d.Listeners.Admin.Pprof || len(d.Listeners.ProxyProtocol.Trusted) != 0 ||
		len(d.Listeners.TrustedProxies) != 0 || d.Listeners.ProxyProtocol.HeaderTimeout != 5*time.Second || d.Web.MQTTURL != "" {
		t.Fatalf("defaults: %+v, web %+v", d.Listeners, d.Web)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		error string // "" : valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"admin off", func(c *Config) { c.Listeners.Admin.Address = "" }, ""},
		{"admin on the http port", func(c *Config) { c.Listeners.Admin.Address = ":8080" }, "listeners.admin.address"},
		{"admin on the mqtt port", func(c *Config) { c.Listeners.Admin.Address = ":1883" }, "listeners.admin.address"},
		{"admin tls half set", func(c *Config) { c.Listeners.Admin.TLS.Cert = "x.pem" }, "listeners.admin.tls"},
		{"proxy protocol from a CIDR and an IP", func(c *Config) { c.Listeners.ProxyProtocol.Trusted = []string{"10.0.0.0/8", "192.168.0.4"} }, ""},
		{"proxy protocol: bad CIDR", func(c *Config) { c.Listeners.ProxyProtocol.Trusted = []string{"10.0.0.0/40"} }, "listeners.proxy_protocol.trusted"},
		{"proxy protocol: a name", func(c *Config) { c.Listeners.ProxyProtocol.Trusted = []string{"lb.internal"} }, "listeners.proxy_protocol.trusted"},
		{"header timeout too short", func(c *Config) { c.Listeners.ProxyProtocol.HeaderTimeout = time.Millisecond }, "header_timeout"},
		{"header timeout too long", func(c *Config) { c.Listeners.ProxyProtocol.HeaderTimeout = time.Hour }, "header_timeout"},
		{"trusted proxies", func(c *Config) { c.Listeners.TrustedProxies = []string{"::1", "fd00::/8"} }, ""},
		{"trusted proxies: bad", func(c *Config) { c.Listeners.TrustedProxies = []string{"10.0.0.0/8", "*"} }, "listeners.trusted_proxies"},
		{"mqtt_url wss", func(c *Config) { c.Web.MQTTURL = "wss://chat.example.com/mqtt" }, ""},
		{"mqtt_url ws with port", func(c *Config) { c.Web.MQTTURL = "ws://10.0.0.5:8083/mqtt" }, ""},
		{"mqtt_url http", func(c *Config) { c.Web.MQTTURL = "http://chat.example.com/mqtt" }, "web.mqtt_url"},
		{"mqtt_url relative", func(c *Config) { c.Web.MQTTURL = "/mqtt" }, "web.mqtt_url"},
		{"mqtt_url no host", func(c *Config) { c.Web.MQTTURL = "wss:///mqtt" }, "web.mqtt_url"},
		{"mqtt_url credentials", func(c *Config) { c.Web.MQTTURL = "wss://u:p@chat.example.com/mqtt" }, "web.mqtt_url"},
		{"mqtt_url fragment", func(c *Config) { c.Web.MQTTURL = "wss://chat.example.com/mqtt#x" }, "web.mqtt_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			if tc.error == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)) {
				t.Fatalf("error %v, want one naming %s", err, tc.error)
			}
		})
	}
	// The YAML keys, as an operator writes them.
	cfg, err := ParseConfig([]byte(`auth: {anonymous: true}
listeners:
  admin: {address: "10.0.0.5:9090", pprof: true}
  proxy_protocol: {trusted: [10.0.0.0/8], header_timeout: 3s}
  trusted_proxies: [192.168.0.0/16]
web: {mqtt_url: "wss://chat.example.com/mqtt"}
`))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners
	if l.Admin.Address != "10.0.0.5:9090" || !l.Admin.Pprof || l.ProxyProtocol.Trusted[0] != "10.0.0.0/8" ||
		l.ProxyProtocol.HeaderTimeout != 3*time.Second || l.TrustedProxies[0] != "192.168.0.0/16" || cfg.Web.MQTTURL != "wss://chat.example.com/mqtt" {
		t.Fatalf("parsed %+v, web %+v", l, cfg.Web)
	}
	// The production template spells out these defaults.
	t.Setenv(SecretEnv, "an-environment-secret-of-32-bytes!!")
	tmpl, err := LoadConfig("../inboxmq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if tl := tmpl.Listeners; tl.Admin != d.Listeners.Admin || tl.ProxyProtocol.HeaderTimeout != d.Listeners.ProxyProtocol.HeaderTimeout ||
		len(tl.ProxyProtocol.Trusted) != 0 || len(tl.TrustedProxies) != 0 || tmpl.Web.MQTTURL != "" {
		t.Fatalf("inboxmq.yaml listeners %+v, web %+v; defaults %+v", tl, tmpl.Web, d.Listeners)
	}
}
