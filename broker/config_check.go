package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
)

// listenerAddresses names each listener's address by its key.
func (c Config) listenerAddresses() []struct{ key, addr string } {
	l := c.Listeners
	return []struct{ key, addr string }{
		{"listeners.mqtt.address", l.MQTT.Address},
		{"listeners.websocket.address", l.WebSocket.Address},
		{"listeners.http.address", l.HTTP.Address},
		{"listeners.admin.address", l.Admin.Address},
	}
}

// validateAddresses checks that every listener address is host:port with
// a port number, and that no two listeners share one (part of Validate).
// Port 0 (any free port) never clashes.
func (c Config) validateAddresses(bad func(format string, args ...any)) {
	seen := map[string]string{}
	for _, a := range c.listenerAddresses() {
		if a.addr == "" {
			continue // the listener is off
		}
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			bad("%s %q: want host:port, e.g. :1883 or 127.0.0.1:9090: %w", a.key, a.addr, err)
			continue
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil {
			bad("%s %q: the port must be a number 0..65535", a.key, a.addr)
			continue
		} else if n == 0 {
			continue
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "*" // every address: clashes with any host on that port
		}
		for other, key := range seen {
			oh, op, _ := net.SplitHostPort(other)
			if op == port && (oh == host || oh == "*" || host == "*") {
				bad("%s %q and %s %q: two listeners on one port", key, other, a.key, a.addr)
			}
		}
		seen[net.JoinHostPort(host, port)] = a.key
	}
}

// CheckFiles reports the files the configuration names that cannot be read
// (TLS certificates, keys and CA bundles). check-config runs it; a broker
// starting finds the same when it loads them.
func (c Config) CheckFiles() error {
	var errs []error
	check := func(key, path string) {
		if path == "" {
			return
		}
		if f, err := os.Open(path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		} else {
			f.Close()
		}
	}
	for _, t := range []struct {
		key string
		tls TLSConfig
	}{
		{"listeners.mqtt.tls", c.Listeners.MQTT.TLS},
		{"listeners.websocket.tls", c.Listeners.WebSocket.TLS},
		{"listeners.http.tls", c.Listeners.HTTP.TLS},
		{"listeners.admin.tls", c.Listeners.Admin.TLS},
	} {
		check(t.key+".cert", t.tls.Cert)
		check(t.key+".key", t.tls.Key)
		check(t.key+".client_ca", t.tls.ClientCA)
	}
	r := c.Redis.TLS
	check("redis.tls.ca_file", r.CAFile)
	check("redis.tls.cert_file", r.CertFile)
	check("redis.tls.key_file", r.KeyFile)
	return errors.Join(errs...)
}
