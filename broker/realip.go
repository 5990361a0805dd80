package broker

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a load balancer or reverse proxy every connection comes from the
// proxy's address. The real client's address arrives in a PROXY protocol
// header (TCP balancers, proxyproto.go) or in X-Forwarded-For / X-Real-IP
// (HTTP proxies, here), and is believed only from the proxies the
// operator names: anyone else could write either.

// netSet is a set of addresses given as IPs or CIDRs. A nil set holds none.
// It is read-only after parseNetSet, so safe for concurrent use.
type netSet []netip.Prefix

// parseNetSet reads IPs ("10.0.0.7", "::1") and CIDRs ("10.0.0.0/8").
func parseNetSet(list []string) (netSet, error) {
	set := make(netSet, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP or CIDR: %w", s, err)
			}
			set = append(set, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP or CIDR: %w", s, err)
		}
		set = append(set, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return set, nil
}

// contains reports whether ip (IPv4-mapped IPv6 counts as IPv4) is in the set.
func (s netSet) contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range s {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// containsHost is contains for "ip" or "ip:port"; anything else is not in.
func (s netSet) containsHost(hostport string) bool {
	if len(s) == 0 {
		return false
	}
	ip, ok := parseHost(hostport)
	return ok && s.contains(ip)
}

// parseHost reads "ip", "ip:port" or "[ip]:port".
func parseHost(hostport string) (netip.Addr, bool) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// forwardedFor is the client address of a request: the peer's, unless the
// peer is a trusted proxy that says whom it forwards for. X-Forwarded-For
// is read from the right: each trusted hop appended the address it saw,
// so the first address that is not a trusted proxy is the client (one
// further left was written by the client itself and proves nothing).
// X-Real-IP is read when there is no X-Forwarded-For. ok is false when the
// peer's address is the answer.
func (s netSet) forwardedFor(peer string, h http.Header) (client netip.Addr, ok bool) {
	if !s.containsHost(peer) {
		return netip.Addr{}, false
	}
	hops := h.Values("X-Forwarded-For")
	if len(hops) == 0 {
		if ip, valid := parseHost(strings.TrimSpace(h.Get("X-Real-IP"))); valid {
			return ip, true
		}
		return netip.Addr{}, false
	}
	all := strings.Split(strings.Join(hops, ","), ",")
	for i := len(all) - 1; i >= 0; i-- {
		ip, valid := parseHost(strings.TrimSpace(all[i]))
		if !valid {
			break // garbage: keep the last address a trusted hop vouched for
		}
		client, ok = ip, true
		if !s.contains(ip) {
			break
		}
	}
	return client, ok
}

// realIP sets r.RemoteAddr to the client's address when the peer is a
// trusted proxy, so the per-address request limit and every log line of
// the handlers after it see the client, not the proxy.
func realIP(trusted netSet, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip, ok := trusted.forwardedFor(r.RemoteAddr, r.Header); ok {
			r = r.WithContext(r.Context()) // a shallow copy: the caller's request stays as it was
			r.RemoteAddr = ip.String()
		}
		next.ServeHTTP(w, r)
	})
}
