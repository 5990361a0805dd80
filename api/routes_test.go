package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/api"
)

// Each endpoint is served by the handler of its routes only: the user
// routes leave every admin endpoint at 404 (the broker's public listener)
// and the admin routes every user endpoint (its admin listener). The rule
// is the role an endpoint needs: admin or service makes it an admin route.
func TestRoutes_SplitByRole(t *testing.T) {
	f := newFixture(t, 0)
	f.conns.online[bob] = 1
	user := bearer(f.userToken(t, bob))
	admin := basic(adminName, adminPassword)
	endpoints := []struct {
		name, method, path string
		cred               cred
		body               string
		admin              bool
	}{
		{"conversations", "GET", "/api/v1/conversations", user, "", false},
		{"messages", "GET", "/api/v1/conversations/" + alice + "/messages", user, "", false},
		{"mark read", "POST", "/api/v1/conversations/" + alice + "/read", user, `{"msgid":"1"}`, false},
		{"delete", "DELETE", "/api/v1/messages/1", user, "", false},
		{"notices", "GET", "/api/v1/notices", user, "", false},
		{"notices read", "POST", "/api/v1/notices/read", user, `{"msgid":"1"}`, false},
		{"unread", "GET", "/api/v1/unread", user, "", false},
		{"openapi document", "GET", "/api/v1/openapi.json", user, "", false},
		{"send notice", "POST", "/api/v1/notices", admin, `{"uid":10021,"content":"c"}`, true},
		{"send message", "POST", "/api/v1/messages", admin, `{"from":10001,"uid":10021,"msg":"m"}`, true},
		{"online", "GET", "/api/v1/online?uid=" + bob, admin, "", true},
		{"kick", "POST", "/api/v1/kick", admin, `{"uid":10021}`, true},
	}
	for _, side := range []struct {
		name   string
		routes api.Routes
	}{{"user routes", api.UserRoutes}, {"admin routes", api.AdminRoutes}} {
		srv := httptest.NewServer(api.New(f.opts, side.routes))
		t.Cleanup(srv.Close)
		for _, e := range endpoints {
			t.Run(side.name+"/"+e.name, func(t *testing.T) {
				req, err := http.NewRequest(e.method, srv.URL+e.path, strings.NewReader(e.body))
				if err != nil {
					t.Fatal(err)
				}
				e.cred(req)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				served := e.admin == (side.routes == api.AdminRoutes)
				notFound := resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), `"no such endpoint"`)
				if served && notFound {
					t.Fatalf("%s %s not served: %d %s", e.method, e.path, resp.StatusCode, body)
				}
				if !served && !notFound {
					t.Fatalf("%s %s answered %d %s, want the 404 of an unknown endpoint", e.method, e.path, resp.StatusCode, body)
				}
			})
		}
	}
}
