package broker

import (
	"fmt"
	"net/url"
	"time"
)

// AdminConfig is the private HTTP listener: /metrics, the admin API
// (endpoints that need the admin or service role) and, with Pprof, Go's
// runtime profiles at /debug/pprof/. An empty address disables it.
type AdminConfig struct {
	Address string    `yaml:"address"`
	TLS     TLSConfig `yaml:"tls"`
	// Pprof serves profiles; they reveal internals and cost CPU while taken.
	Pprof bool `yaml:"pprof"`
}

// ProxyProtocolConfig: PROXY protocol v1 and v2. A connection from a
// trusted address may start with a header (one without is served with its
// own address: balancers' health checks, clients inside the network); a
// header from any other address is refused. Empty Trusted: off.
type ProxyProtocolConfig struct {
	Trusted []string `yaml:"trusted"` // IPs or CIDRs of the balancers
	// HeaderTimeout bounds the wait for the header (within connect_timeout).
	HeaderTimeout time.Duration `yaml:"header_timeout"`
}

// trustedNets parses proxy_protocol.trusted and trusted_proxies
// (Validate has checked them).
func (l ListenersConfig) trustedNets() (proxyProtocol, httpProxies netSet, err error) {
	if proxyProtocol, err = parseNetSet(l.ProxyProtocol.Trusted); err != nil {
		return nil, nil, fmt.Errorf("listeners.proxy_protocol.trusted: %w", err)
	}
	if httpProxies, err = parseNetSet(l.TrustedProxies); err != nil {
		return nil, nil, fmt.Errorf("listeners.trusted_proxies: %w", err)
	}
	return proxyProtocol, httpProxies, nil
}

// validateProxies checks the admin listener, PROXY protocol, trusted
// proxies and web.mqtt_url (part of Validate).
func (c Config) validateProxies(bad func(format string, args ...any)) {
	l := c.Listeners
	if _, err := parseNetSet(l.ProxyProtocol.Trusted); err != nil {
		bad("listeners.proxy_protocol.trusted: %w", err)
	}
	if t := l.ProxyProtocol.HeaderTimeout; t < 100*time.Millisecond || t > time.Minute {
		bad("listeners.proxy_protocol.header_timeout must be 100ms..1m, got %s", t)
	}
	if _, err := parseNetSet(l.TrustedProxies); err != nil {
		bad("listeners.trusted_proxies: %w", err)
	}
	if s := c.Web.MQTTURL; s != "" {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.User != nil || u.Fragment != "" {
			bad("web.mqtt_url must be a ws:// or wss:// URL with a host, e.g. wss://chat.example.com/mqtt; got %q", s)
		}
	}
}
