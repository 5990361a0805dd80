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
		ok, timeout := l.admit(c.RemoteAddr())
		if !ok {
			l.refused.Add(1)
			l.warnRefused(c.RemoteAddr().String())
			c.Close()
			continue
		}
		if timeout > 0 {
			_ = c.SetDeadline(time.Now().Add(timeout))
		}
		return c, nil
	}
}

// admit decides on a new connection and returns the connect timeout to set.
func (l *limitedListener) admit(addr net.Addr) (bool, time.Duration) {
	ip := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok {
		ip = tcp.IP.String()
	}
	l.mu.Lock()
	perIP, timeout := l.perIP, l.connectTimeout
	l.mu.Unlock()
	if perIP == nil {
		return true, timeout
	}
	ok, _ := perIP.Allow(ip) // forgets idle IPs, so its map stays small
	return ok, timeout
}
