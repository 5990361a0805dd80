package broker

import (
	"net"
	"sync"
	"time"
)

// connGate keeps a connection handed to mochi from reaching mochi's
// client count after shutdown began. mochi counts a connection
// (Listeners.ClientsWg.Add) in the goroutine that serves it, and its Close
// waits on that count: an Add that comes after the Wait started panics
// ("WaitGroup is reused before previous Wait has returned"). The window is
// wide with PROXY protocol, whose header mochi waits for (RemoteAddr) before
// counting. So the gate counts each connection from Accept until mochi
// first reads it or closes it, both of which mochi does only after its own
// Add, and the broker waits for that count to drop before closing mochi.
type connGate struct {
	mu      sync.Mutex
	closing bool           // guarded by mu
	pending sync.WaitGroup // Add under mu while !closing
}

// admit counts c as pending and wraps it, or refuses it once closing.
func (g *connGate) admit(c net.Conn) (net.Conn, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return nil, false
	}
	g.pending.Add(1)
	return &gatedConn{Conn: c, reached: sync.OnceFunc(g.pending.Done)}, true
}

// drain refuses new connections and waits, at most max, until mochi holds
// every connection already handed to it.
func (g *connGate) drain(max time.Duration) {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(max):
	}
}

// gatedConn tells its gate when mochi first reads or closes it.
type gatedConn struct {
	net.Conn
	reached func()
}

func (c *gatedConn) Read(p []byte) (int, error) {
	c.reached()
	return c.Conn.Read(p)
}

func (c *gatedConn) Close() error {
	c.reached()
	return c.Conn.Close()
}
