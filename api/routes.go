package api

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/inboxmq/inboxmq/messaging"
)

// Routes selects the endpoints a handler serves. An endpoint that needs
// the admin or service role is an admin route; every other one is a user
// route. A broker serves the user routes on its public HTTP listener and
// the admin routes on its private admin listener, so an admin endpoint is
// not even reachable from where users are.
type Routes uint8

const (
	UserRoutes  Routes = 1 << iota // conversations, messages, notices (read), unread, the OpenAPI document
	AdminRoutes                    // every endpoint that needs the admin or service role, backups, reloads
	AllRoutes   = UserRoutes | AdminRoutes
)

// Endpoint is one endpoint of the API: a method and a path pattern in the
// syntax of net/http (/api/v1/conversations/{peer}/messages), and the
// routes it belongs to. The OpenAPI document (openapi.json) describes
// exactly these, which a test checks.
type Endpoint struct {
	Method, Path string
	Routes       Routes // UserRoutes or AdminRoutes
}

// access is who may call an endpoint.
type access uint8

const (
	anyone     access = iota // no credentials (the OpenAPI document)
	signedIn                 // any user or account
	adminOrSvc               // the admin or service role
)

type route struct {
	Endpoint
	access  access
	handler func(http.ResponseWriter, *http.Request, messaging.Actor)
}

// table is every endpoint of the API with its handler on a.
func (a *api) table() []route {
	user := func(method, path string, h func(http.ResponseWriter, *http.Request, messaging.Actor)) route {
		return route{Endpoint{method, path, UserRoutes}, signedIn, h}
	}
	admin := func(method, path string, h func(http.ResponseWriter, *http.Request, messaging.Actor)) route {
		return route{Endpoint{method, path, AdminRoutes}, adminOrSvc, h}
	}
	return []route{
		{Endpoint{"GET", "/api/v1/openapi.json", UserRoutes}, anyone, a.openAPI},
		user("GET", "/api/v1/conversations", a.conversations),
		user("GET", "/api/v1/conversations/{peer}/messages", a.messages),
		user("POST", "/api/v1/conversations/{peer}/read", a.markRead),
		user("DELETE", "/api/v1/messages/{msgid}", a.deleteMessage),
		user("PUT", "/api/v1/messages/{msgid}", a.editMessage),
		user("GET", "/api/v1/notices", a.notices),
		user("POST", "/api/v1/notices/read", a.markNoticesRead),
		user("GET", "/api/v1/unread", a.unread),
		user("GET", "/api/v1/blocks", a.blocks),
		user("PUT", "/api/v1/blocks/{uid}", a.block),
		user("DELETE", "/api/v1/blocks/{uid}", a.unblock),
		admin("POST", "/api/v1/messages", a.sendMessage),
		admin("POST", "/api/v1/notices", a.sendNotice),
		admin("GET", "/api/v1/online", a.online),
		admin("POST", "/api/v1/kick", a.kick),
		admin("POST", "/api/v1/admin/backup", a.backup),
		admin("POST", "/api/v1/admin/reload", a.reload),
	}
}

// Endpoints lists the endpoints a handler of the given routes serves.
func Endpoints(routes Routes) []Endpoint {
	var out []Endpoint
	for _, rt := range (&api{}).table() {
		if rt.Routes&routes != 0 {
			out = append(out, rt.Endpoint)
		}
	}
	return out
}

// catchAll is the pattern that takes every request no endpoint matches.
const catchAll = "/api/"

// New returns the API handler for the given routes, serving paths under
// /api/v1/. A wrong method on a path it serves answers 405 with an Allow
// header; any other path under /api/, an endpoint of the routes left out
// included, answers a JSON 404.
func New(opts Options, routes Routes) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 256 << 10
	}
	a := &api{opts}
	served, every := http.NewServeMux(), http.NewServeMux()
	for _, rt := range a.table() {
		pattern := rt.Method + " " + rt.Path
		every.Handle(pattern, http.NotFoundHandler()) // only asked which pattern matches
		if rt.Routes&routes == 0 {
			continue
		}
		if rt.access == anyone {
			served.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { rt.handler(w, r, messaging.Actor{}) })
		} else {
			served.HandleFunc(pattern, a.authenticated(rt.access == adminOrSvc, rt.handler))
		}
	}
	every.Handle(catchAll, http.NotFoundHandler())
	served.HandleFunc(catchAll, func(w http.ResponseWriter, r *http.Request) {
		// An endpoint of the other listener is not here at all: 404, as
		// for any unknown path, not a 405 naming what this path does serve.
		if _, p := every.Handler(r); p == catchAll {
			if allowed := allowedMethods(served, r); len(allowed) > 0 {
				w.Header().Set("Allow", strings.Join(allowed, ", "))
				writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
					"this endpoint takes "+strings.Join(allowed, ", "))
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return served
}

// allowedMethods lists the methods mux serves r's path with (HEAD with
// GET, as net/http answers HEAD with a GET handler).
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := mux.Handler(probe); p != catchAll && p != "" {
			out = append(out, m)
			if m == http.MethodGet {
				out = append(out, http.MethodHead)
			}
		}
	}
	return out
}
