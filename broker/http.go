package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/inbox"
)

// The public HTTP listener: health, readiness, metrics, the API and the
// web page.

func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", b.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	if b.cfg.Web.Enabled {
		mux.Handle("/", b.webHandler())
	}
	mux.Handle("/api/", api.New(api.Options{
		Store:       b.store,
		Service:     b.service,
		Connections: b.delivery,
		Credentials: b.access.Credentials,
		MaxBody:     int64(2*b.cfg.Inbox.MaxMessageBytes + 64<<10),
		Log:         b.log,
	}))
	return mux
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
