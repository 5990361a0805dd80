package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
)

// The public HTTP listener: health, readiness, the user API and the web
// page. Metrics, profiles and the admin API are on the admin listener
// (admin.go): here they answer 404.

// startHTTP opens the public HTTP listener, when configured.
func (b *Broker) startHTTP() error {
	l := b.cfg.Listeners.HTTP
	if l.Address == "" {
		return nil
	}
	capIP := func(ln net.Listener) net.Listener {
		if b.cfg.Limits.HTTPConnectionsPerIP <= 0 {
			return ln
		}
		c := newIPConnCap(ln, b.cfg.Limits.HTTPConnectionsPerIP, &b.refusedHTTP)
		c.exempt = b.httpProxies
		return c
	}
	var err error
	if b.httpLn, err = b.listen(l.Address, l.TLS, capIP); err != nil {
		return fmt.Errorf("http listener %s: %w", l.Address, err)
	}
	// The request rate and the handlers see the client behind a trusted
	// proxy (realIP), not the proxy.
	handler := realIP(b.httpProxies, limitRequests(b.cfg.Limits.HTTPRequestsPerIP, b.httpHandler(), &b.refusedHTTP))
	b.httpSrv = b.httpServer(handler)
	go b.serveHTTP(b.httpSrv, b.httpLn, "http")
	return nil
}

// httpServer bounds every phase of a request: a client that sends its
// headers or body slowly, or never, or idles on a kept-alive connection,
// is cut off.
func (b *Broker) httpServer(h http.Handler) *http.Server {
	t := b.cfg.Limits.HTTPTimeout
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(t, 10*time.Second),
		ReadTimeout:       t,
		WriteTimeout:      t,
		IdleTimeout:       2 * t,
		MaxHeaderBytes:    64 << 10,
	}
}

func (b *Broker) serveHTTP(srv *http.Server, ln net.Listener, name string) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		b.log.Error(name+" listener failed", "error", err)
	}
}

func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", b.readyz)
	if b.cfg.Web.Enabled {
		mux.Handle("/", b.webHandler())
	}
	mux.Handle("/api/", api.New(b.apiOptions(), api.UserRoutes))
	return mux
}

func (b *Broker) apiOptions() api.Options {
	return api.Options{
		Store:       b.store,
		Service:     b.service,
		Connections: b.connections(),
		Credentials: b.access.Credentials,
		MaxBody:     int64(2*b.cfg.Inbox.MaxMessageBytes + 64<<10),
		Limits:      bridge.Limits{MaxContent: b.cfg.Inbox.MaxMessageBytes},
		Log:         b.log,
		Backup:      b.backupFunc(),
	}
}

// readyz answers 200 when the store answers and the listeners are up,
// 503 otherwise, so a load balancer sends clients elsewhere.
func (b *Broker) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	problem := ""
	select {
	case <-b.stop:
		problem = "shutting down"
	default:
		if !b.serving.Load() {
			problem = "starting"
			break
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, _, err := b.store.Bounds(ctx, inbox.BroadcastInbox); err != nil {
			problem = "store unavailable"
			b.log.Warn("not ready", "error", err)
		}
	}
	if problem != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"status\":%q}\n", problem)
		return
	}
	io.WriteString(w, `{"status":"ready"}`+"\n")
}
