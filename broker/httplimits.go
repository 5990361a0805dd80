package broker

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/inboxmq/inboxmq/internal/keyrate"
)

// HTTP listener limits: one address may hold only so many connections
// open at once and send only so many requests a second. Without them 1,500
// idle connections from one address stayed open, and 1,010 of them ran
// the process out of descriptors so that MQTT logins timed out.

// ipConnCap caps the connections one remote IP holds open on a listener;
// a connection over the cap is closed as soon as it is accepted.
type ipConnCap struct {
	net.Listener
	max     int
	refused *atomic.Int64
	// exempt are trusted proxies: many clients share their connections,
	// and the request rate limits those clients by their own addresses.
	exempt netSet

	mu   sync.Mutex
	open map[string]int // remote IP -> open connections; guarded by mu
}

func newIPConnCap(ln net.Listener, max int, refused *atomic.Int64) *ipConnCap {
	return &ipConnCap{Listener: ln, max: max, refused: refused, open: make(map[string]int)}
}

// Accept returns the next connection whose address is under the cap.
func (l *ipConnCap) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		if l.exempt.containsHost(ip) {
			return c, nil
		}
		l.mu.Lock()
		if l.open[ip] >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &cappedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *ipConnCap) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// cappedConn gives its place under the cap back when closed, once.
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func hostOf(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// limitRequests answers 429 to an address over its request rate; the
// rest go to next. Basic-auth guesses count like any request.
func limitRequests(perSecond float64, next http.Handler, refused *atomic.Int64) http.Handler {
	if perSecond <= 0 {
		return next
	}
	lim := keyrate.NewLimiter(perSecond, max(1, int(2*perSecond)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if ok, _ := lim.Allow(host); !ok {
			refused.Add(1)
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"too many requests from this address"}}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
