package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol (v1 text and v2 binary, as HAProxy, AWS NLB, nginx
// stream and Envoy send it) on the MQTT and WebSocket listeners, parsed by
// github.com/pires/go-proxyproto. Layering, from the socket up:
//
//	TCP -> proxyproto.Listener -> limitedListener (+ proxiedConn) -> TLS -> MQTT or HTTP
//
// The header comes before TLS, so the balancer can pass TLS through.
//
// Policy: a connection from a trusted address may start with a header and
// is then known by the address in it; one without a header is served with
// its own address (USE, not REQUIRE), so the balancer's health checks and
// clients inside the network need no header. Guessing is exact here: the
// first byte of MQTT (0x10), TLS (0x16) or an HTTP request is never that of
// a header ('P' or '\r'). A header from any other address is refused
// (REJECT): whoever can reach the port could otherwise claim any address
// and dodge the per-address limits.

// errRefusedRate is a connection over its address's rate, known only once
// its PROXY header was read.
var errRefusedRate = errors.New("connections per IP exceeded")

// proxyProtocol wraps ln so that connections from trusted may carry a
// PROXY header, read within timeout of the first read.
func proxyProtocol(ln net.Listener, trusted netSet, timeout time.Duration) net.Listener {
	return &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if trusted.containsHost(o.Upstream.String()) {
				return proxyproto.USE, nil
			}
			return proxyproto.REJECT, nil
		},
		ReadHeaderTimeout: timeout,
	}
}

// proxiedConn admits a connection by the client address in its PROXY
// header, on first use (mochi asks for RemoteAddr first, the HTTP server
// too): it reads the header, then takes a token of the per-address rate.
// A refused connection is closed; its reads and writes fail.
type proxiedConn struct {
	net.Conn // a *proxyproto.Conn
	l        *limitedListener
	once     sync.Once
	err      error
}

func (c *proxiedConn) admit() error {
	c.once.Do(func() {
		// A zero-length Read makes go-proxyproto read and check the
		// header and nothing more; the header's error, if any, is kept
		// and returned by every later read.
		if _, err := c.Conn.Read(nil); err != nil {
			c.err = fmt.Errorf("PROXY protocol: %w", err)
			if !isNetError(err) {
				c.l.proxyWarn.warn(c.l.log, "PROXY protocol header refused", c.Conn.RemoteAddr().String(), err)
			}
		} else if !c.l.admit(c.Conn.RemoteAddr()) {
			c.err = errRefusedRate
		}
		if c.err != nil {
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if err := c.admit(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *proxiedConn) Write(p []byte) (int, error) {
	if err := c.admit(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// RemoteAddr is the client's address: from the header when there is one.
func (c *proxiedConn) RemoteAddr() net.Addr {
	_ = c.admit() // a refused connection still has the peer's address
	return c.Conn.RemoteAddr()
}

// isNetError tells the socket's own failures (reset, closed, deadline)
// from a header that was refused or malformed.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// logThrottle logs one kind of refusal at most every 10 s, with a count,
// so a flood shows in the log without flooding it.
type logThrottle struct {
	mu     sync.Mutex
	last   time.Time // guarded by mu
	unsaid int       // refusals since last; guarded by mu
}

func (t *logThrottle) warn(log *slog.Logger, msg, remote string, err error) {
	t.mu.Lock()
	t.unsaid++
	if time.Since(t.last) < 10*time.Second {
		t.mu.Unlock()
		return
	}
	n := t.unsaid
	t.last, t.unsaid = time.Now(), 0
	t.mu.Unlock()
	log.Warn(msg, "refused", n, "last_remote", remote, "error", err)
}
