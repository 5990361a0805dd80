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
	handler = b.metrics.http.observe("http", b.httpRoutes(), handler) // requests refused by the limits included
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
	// The web page is mounted even when off (404): a reload may turn it on.
	web := b.live.Load().Web
	b.web.set(b.webHandler(web))
	if web.Enabled && web.DevLogin {
		b.log.Warn("web.dev_login is on: anyone who can reach the web page can log in as anyone (development only)")
	}
	mux.Handle("/", &b.web)
	mux.Handle("/api/", api.New(b.apiOptions(), api.UserRoutes))
	return notePattern(mux)
}

// httpRoutes are the routes of httpHandler, whose metrics start at 0.
func (b *Broker) httpRoutes() []httpRoute {
	// "/" answers while the web page is off; web.Handler's patterns when it
	// is on (a reload may turn it on, so both are listed).
	routes := []httpRoute{{http.MethodGet, "/healthz"}, {http.MethodGet, "/readyz"}, {http.MethodGet, "/"},
		{http.MethodGet, "/web-config.json"}, {http.MethodPost, "/dev/token"}, {http.MethodGet, "/{path...}"}}
	return append(routes, apiRoutes(api.UserRoutes)...)
}

// apiRoutes are the API's endpoints of routes and its catch-all (404, 405).
func apiRoutes(routes api.Routes) []httpRoute {
	out := []httpRoute{{http.MethodGet, "/api/"}}
	for _, e := range api.Endpoints(routes) {
		out = append(out, httpRoute{e.Method, e.Path})
	}
	return out
}

func (b *Broker) apiOptions() api.Options {
	return api.Options{
		Store:       b.store,
		Service:     b.service,
		Connections: b.connections(),
		Credentials: b.access.Credentials,
		MaxBody:     int64(2*b.cfg.Inbox.MaxMessageBytes + 64<<10),
		Limits:      bridge.Limits{MaxContent: int(b.cfg.Inbox.MaxMessageBytes)},
		Log:         b.log,
		Backup:      b.backupFunc(),
		Reload:      b.apiReload,
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
