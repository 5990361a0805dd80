package broker

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inboxmq/inboxmq/api"
)

// The admin listener (listeners.admin, 127.0.0.1:9090 by default): what
// only operators and the app's back-end may reach. It serves
//   - GET /metrics, the Prometheus metrics;
//   - the admin API: every endpoint that needs the admin or service role
//     (api.AdminRoutes: POST /api/v1/notices, GET /api/v1/online,
//     POST /api/v1/kick, POST /api/v1/admin/backup), which still
//     authenticates each request;
//   - Go's runtime profiles at /debug/pprof/, with listeners.admin.pprof.
// The public HTTP listener answers 404 to all of them: exposing it to the
// internet exposes none of this. The admin listener has the HTTP timeouts
// but not the per-address limits, which are for the public.

// startAdmin opens the admin listener, when configured.
func (b *Broker) startAdmin() error {
	a := b.cfg.Listeners.Admin
	if a.Address == "" {
		return nil
	}
	var err error
	if b.adminLn, err = b.listen(a.Address, a.TLS, nil); err != nil {
		return fmt.Errorf("admin listener %s: %w", a.Address, err)
	}
	b.adminSrv = b.httpServer(b.metrics.http.observe("admin", b.adminRoutes(), b.adminHandler()))
	go b.serveHTTP(b.adminSrv, b.adminLn, "admin")
	if a.Pprof {
		b.log.Warn("pprof profiles served on the admin listener; keep it private", "admin", b.adminLn.Addr().String())
	}
	return nil
}

func (b *Broker) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	mux.Handle("/api/", api.New(b.apiOptions(), api.AdminRoutes))
	if b.cfg.Listeners.Admin.Pprof {
		// net/http/pprof extends the write deadline of a profile by the
		// seconds asked for, so limits.http_timeout does not cut it off.
		mux.Handle("/debug/pprof/", pprofHandler())
	}
	return notePattern(mux)
}

// adminRoutes are the routes of adminHandler, whose metrics start at 0.
func (b *Broker) adminRoutes() []httpRoute {
	routes := append([]httpRoute{{http.MethodGet, "/metrics"}}, apiRoutes(api.AdminRoutes)...)
	if b.cfg.Listeners.Admin.Pprof {
		routes = append(routes, httpRoute{http.MethodGet, "/debug/pprof/"})
	}
	return routes
}

// AdminAddr is the admin listener's bound address ("" when disabled).
func (b *Broker) AdminAddr() string { return addrString(b.adminLn) }
