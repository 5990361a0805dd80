package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener is MQTT over WebSocket. mochi's own listener accepts any path
// and any Origin; this one serves one path and can restrict Origins, and it
// listens on a net.Listener we opened so tests can use port 0.
type wsListener struct {
	id             string
	ln             net.Listener
	path           string
	origins        atomic.Pointer[map[string]bool] // allowed browser Origins (empty: any); a reload swaps them
	connectTimeout time.Duration
	maxPacket      uint32
	srv            *http.Server
	log            *slog.Logger
	upgrader       websocket.Upgrader
	once           sync.Once
	// establish is set by Serve before the server accepts connections.
	establish listeners.EstablishFn
	// proxies are trusted HTTP proxies: a request from one is known by
	// its X-Forwarded-For, and admitted by allow (the per-address
	// connection rate) here rather than at accept.
	proxies netSet
	allow   func(ip string) bool
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, ln net.Listener, path string, allowed []string, connectTimeout time.Duration, maxPacket uint32, log *slog.Logger) *wsListener {
	l := &wsListener{id: id, ln: ln, path: path, connectTimeout: connectTimeout, maxPacket: maxPacket, log: log}
	l.setOrigins(allowed)
	l.upgrader = websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		CheckOrigin:     l.checkOrigin,
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
	}
	mux := http.NewServeMux()
	mux.HandleFunc(path, l.serveWS)
	// The connect timeout holds until the upgrade: a request that is not
	// an upgrade (a plain GET, answered 404) does not keep its connection
	// open (no keep-alive), and slow headers or bodies are cut off.
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: connectTimeout, ReadTimeout: connectTimeout,
		WriteTimeout: connectTimeout, IdleTimeout: connectTimeout}
	l.srv.SetKeepAlivesEnabled(false)
	return l
}

// checkOrigin allows clients that send no Origin (native apps, IoT
// libraries) and, when origins are configured, only those browser Origins.
func (l *wsListener) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	origins := *l.origins.Load()
	if origin == "" || len(origins) == 0 {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	ok := origins[strings.ToLower(u.Scheme+"://"+u.Host)]
	if !ok {
		l.log.Warn("websocket origin refused", "origin", origin, "remote", r.RemoteAddr)
	}
	return ok
}

// setOrigins replaces the allowed Origins (listeners.websocket.allowed_origins)
// for the upgrades that follow.
func (l *wsListener) setOrigins(allowed []string) {
	m := make(map[string]bool, len(allowed))
	for _, o := range allowed {
		m[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	l.origins.Store(&m)
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Init(*slog.Logger) error { return nil }

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener failed", "error", err)
	}
}

func (l *wsListener) serveWS(w http.ResponseWriter, r *http.Request) {
	var remote net.Addr // nil: the connection's own
	if l.proxies.containsHost(r.RemoteAddr) {
		ip, forwarded := l.proxies.forwardedFor(r.RemoteAddr, r.Header)
		if !forwarded {
			ip, _ = parseHost(r.RemoteAddr)
		}
		if l.allow != nil && !l.allow(ip.String()) {
			http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
			return
		}
		if forwarded {
			remote = &net.TCPAddr{IP: ip.AsSlice()}
		}
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered with an HTTP error
	}
	defer c.Close()
	c.SetReadLimit(16 << 20)
	// The HTTP server's deadlines are gone after the upgrade: CONNECT must
	// still come in time (mochi sets the keepalive deadline after it).
	_ = c.UnderlyingConn().SetDeadline(time.Now().Add(l.connectTimeout))
	// The limited listener's size guard sees WebSocket frames, not MQTT:
	// guard the MQTT stream inside them instead.
	if err := l.establish(l.id, newSizeGuard(&wsConn{Conn: c.UnderlyingConn(), c: c, remote: remote}, l.maxPacket)); err != nil {
		l.log.Debug("websocket client ended", "remote", r.RemoteAddr, "error", err)
	}
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		closeClients(l.id)
		// Hijacked WebSocket connections are not tracked by Shutdown;
		// closeClients has ended them.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx)
		_ = l.ln.Close()
	})
}

// wsConn makes a WebSocket a net.Conn carrying MQTT in binary messages
// (MQTT packets may span messages, and a message may hold several).
// SetDeadline is the embedded TCP connection's: gorilla's own deadline
// setters are not safe beside a concurrent write, and mochi sets deadlines
// from the reader while another goroutine writes.
type wsConn struct {
	net.Conn
	c      *websocket.Conn
	r      io.Reader // the current message, nil between messages
	remote net.Addr  // the client behind a trusted HTTP proxy; nil: Conn's
}

// RemoteAddr is what mochi logs and limits by (cl.Net.Remote).
func (ws *wsConn) RemoteAddr() net.Addr {
	if ws.remote != nil {
		return ws.remote
	}
	return ws.Conn.RemoteAddr()
}

var errTextFrame = errors.New("websocket: MQTT needs binary messages")

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.Conn.Close() }
