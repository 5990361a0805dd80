package broker

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP request metrics of the public and admin listeners, by listener,
// route and method (and code, for the count). The route is the pattern of
// the ServeMux that answered (/api/v1/conversations/{peer}/messages), not
// the path, so a client cannot make new series by asking for new paths;
// methods outside the standard set count as OTHER for the same reason.

// routeUnmatched is the route of a request no mux pattern took: refused
// before routing (429 from the per-address limit) or a path nothing serves.
const routeUnmatched = "unmatched"

// httpCodes are the status codes whose series start at 0 for each route.
var httpCodes = []int{200, 400, 401, 403, 404, 405, 429, 500, 503}

type httpMetrics struct {
	requests *prometheus.CounterVec   // listener, route, method, code
	duration *prometheus.HistogramVec // listener, route, method
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	h := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inboxmq_http_requests_total",
			Help: "HTTP requests answered, by listener (http, admin), route pattern, method and status code.",
		}, []string{"listener", "route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "inboxmq_http_request_duration_seconds",
			Help:    "Time from receiving an HTTP request to its handler's return, by listener, route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"listener", "route", "method"}),
	}
	reg.MustRegister(h.requests, h.duration)
	return h
}

// httpRoute is one route a listener serves, known before any request.
type httpRoute struct{ method, route string }

// routeObservers are one (route, method)'s pre-resolved children.
type routeObservers struct {
	took  prometheus.Observer
	codes map[int]prometheus.Counter
}

// httpObserver measures the requests of one listener.
type httpObserver struct {
	m        *httpMetrics
	listener string
	known    map[httpRoute]*routeObservers // read-only once built
	next     http.Handler
}

// observe wraps next, the whole handler of listener, and starts the series
// of routes (and of unmatched requests) at 0. next's mux must be wrapped
// in notePattern, which tells observe the pattern that matched.
func (h *httpMetrics) observe(listener string, routes []httpRoute, next http.Handler) http.Handler {
	o := &httpObserver{m: h, listener: listener, known: map[httpRoute]*routeObservers{}, next: next}
	routes = append(routes, httpRoute{http.MethodGet, routeUnmatched})
	for _, rt := range routes {
		obs := &routeObservers{took: h.duration.WithLabelValues(listener, rt.route, rt.method), codes: map[int]prometheus.Counter{}}
		for _, code := range httpCodes {
			obs.codes[code] = h.requests.WithLabelValues(listener, rt.route, rt.method, strconv.Itoa(code))
		}
		o.known[rt] = obs
	}
	return o
}

// patternSlot is where notePattern leaves the matched pattern for observe.
type patternSlot struct{}

func (o *httpObserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	pattern := new(string)
	r = r.WithContext(context.WithValue(r.Context(), patternSlot{}, pattern))
	sw := &statusWriter{ResponseWriter: w}
	o.next.ServeHTTP(sw, r)
	took := time.Since(start).Seconds()

	rt := httpRoute{method: methodLabel(r.Method), route: routeLabel(*pattern)}
	code := sw.code
	if code == 0 {
		code = http.StatusOK // the handler wrote nothing, or only a body
	}
	if obs := o.known[rt]; obs != nil {
		obs.took.Observe(took)
		if c := obs.codes[code]; c != nil {
			c.Inc()
			return
		}
	} else {
		o.m.duration.WithLabelValues(o.listener, rt.route, rt.method).Observe(took)
	}
	o.m.requests.WithLabelValues(o.listener, rt.route, rt.method, strconv.Itoa(code)).Inc()
}

// notePattern wraps a ServeMux so that the pattern it (or a mux it hands
// the request to, such as the API's) matched reaches observe: the mux sets
// r.Pattern on the request it was given, which a middleware between
// observe and the mux (realIP) may have copied.
func notePattern(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if slot, ok := r.Context().Value(patternSlot{}).(*string); ok {
			*slot = r.Pattern
		}
	})
}

// routeLabel is the route of a mux pattern: without its method and host
// ("GET /api/v1/unread" -> "/api/v1/unread").
func routeLabel(pattern string) string {
	if pattern == "" {
		return routeUnmatched
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " ")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 { // a host before the path
		pattern = pattern[i:]
	}
	return pattern
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// statusWriter records the status code a handler sent. Unwrap lets
// http.ResponseController reach the connection's Flush and deadlines (the
// backup stream uses them).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // not an informational 1xx
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is for handlers that look for http.Flusher directly.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
