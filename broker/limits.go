package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/internal/keyrate"
)

// limitedListener guards a listener against connection floods and
// slowloris clients: a remote IP may open at most rate new connections per
// second (burst 2x), and a connection must send its CONNECT within
// connectTimeout (mochi sets no deadline before CONNECT; once connected,
// its keepalive deadline replaces ours).
type limitedListener struct {
	net.Listener
	log     *slog.Logger
	refused *atomic.Int64
	// proxied: the listener below reads PROXY protocol headers, so a
	// connection's address is known only once its header is read.
	proxied bool
	// exempt are trusted HTTP proxies: their connections are admitted
	// here, and the WebSocket handler admits the clients they forward.
	exempt    netSet
	proxyWarn logThrottle // refused PROXY headers
	gate      connGate    // see listengate.go

	mu             sync.Mutex
	connectTimeout time.Duration    // guarded by mu
	perIP          *keyrate.Limiter // nil: unlimited; guarded by mu
	warned         time.Time        // last refusal warning; guarded by mu
	unwarned       int              // refusals since; guarded by mu
}

// warnRefused logs refused connections at most every 10 s, with a count,
// so a flood is visible to operators without flooding the log.
func (l *limitedListener) warnRefused(remote string) {
	l.mu.Lock()
	l.unwarned++
	if time.Since(l.warned) < 10*time.Second {
		l.mu.Unlock()
		return
	}
	n := l.unwarned
	l.warned, l.unwarned = time.Now(), 0
	l.mu.Unlock()
	l.log.Warn("connections refused: rate per IP exceeded", "refused", n, "last_remote", remote)
}

// setLimits changes the limits for connections accepted from now on.
func (l *limitedListener) setLimits(connectTimeout time.Duration, perIPPerSecond float64) {
	var perIP *keyrate.Limiter // the buckets start afresh with the new rate
	if perIPPerSecond > 0 {
		perIP = keyrate.NewLimiter(perIPPerSecond, max(1, int(2*perIPPerSecond)))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connectTimeout, l.perIP = connectTimeout, perIP
}

func newLimitedListener(ln net.Listener, connectTimeout time.Duration, perIPPerSecond float64, refused *atomic.Int64, log *slog.Logger) *limitedListener {
	l := &limitedListener{Listener: ln, log: log, refused: refused}
	l.setLimits(connectTimeout, perIPPerSecond)
	return l
}

// Accept returns the next connection that is within its IP's rate; others
// are closed at once. Only a closed listener ends it: mochi stops serving a
// listener for good on any Accept error, so a passing one (out of file
// descriptors during a flood) is logged and retried with a backoff instead.
func (l *limitedListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err != nil {
			l.log.Warn("accept failed; retrying", "error", err, "backoff", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if l.proxied {
			// The header is read on the connection's first use, in its
			// own goroutine: read here, one slow sender would hold up
			// every connection behind it. The deadline bounds it too.
			l.setConnectDeadline(c)
			c = &proxiedConn{Conn: c, l: l}
		} else {
			if !l.admit(c.RemoteAddr()) {
				c.Close()
				continue
			}
			l.setConnectDeadline(c)
		}
		gated, ok := l.gate.admit(c)
		if !ok {
			c.Close()
			return nil, net.ErrClosed // shutting down: mochi's accept loop ends
		}
		return gated, nil
	}
}

func (l *limitedListener) setConnectDeadline(c net.Conn) {
	l.mu.Lock()
	timeout := l.connectTimeout
	l.mu.Unlock()
	if timeout > 0 {
		_ = c.SetDeadline(time.Now().Add(timeout))
	}
}

// admit decides on a new connection from addr; a refusal is counted and
// logged.
func (l *limitedListener) admit(addr net.Addr) bool {
	ip := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok {
		ip = tcp.IP.String()
	}
	if l.exempt.containsHost(ip) {
		return true
	}
	return l.allow(ip)
}

// allow takes one of ip's connection tokens; a refusal is counted and
// logged.
func (l *limitedListener) allow(ip string) bool {
	l.mu.Lock()
	perIP := l.perIP
	l.mu.Unlock()
	if perIP == nil {
		return true
	}
	if ok, _ := perIP.Allow(ip); ok { // forgets idle IPs, so its map stays small
		return true
	}
	l.refused.Add(1)
	l.warnRefused(ip)
	return false
}
