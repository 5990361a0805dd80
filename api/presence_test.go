package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/api"
)

// everywhere is Connections of a node that shares Redis with others: its
// deployment-wide count, or an error when Redis cannot be read.
type everywhere struct {
	*conns
	count map[string]int
	err   error
}

var _ api.DeploymentPresence = everywhere{}

func (e everywhere) OnlineEverywhere(_ context.Context, uid string) (int, error) {
	return e.count[uid], e.err
}

// With Connections that count every node, GET /api/v1/online answers for
// the whole deployment, and 503 when that count cannot be had (never this
// node's count passed off as the deployment's).
func TestOnlineEverywhere(t *testing.T) {
	f := newFixture(t, 0)
	f.conns.online[bob] = 1 // this node's
	for _, tc := range []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"counted on every node", nil, http.StatusOK, `{"devices":3,"online":true,"uid":"10021"}`},
		{"redis unreachable", errors.New("dial tcp: connection refused"), http.StatusServiceUnavailable, `"internal"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := f.opts
			opts.Connections = everywhere{conns: f.conns, count: map[string]int{bob: 3}, err: tc.err}
			srv := httptest.NewServer(api.New(opts, api.AllRoutes))
			defer srv.Close()
			req, err := http.NewRequest("GET", srv.URL+"/api/v1/online?uid="+bob, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth(adminName, adminPassword)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("status %d, body %s; want %d with %s", resp.StatusCode, body, tc.status, tc.want)
			}
			if strings.Contains(string(body), "connection refused") {
				t.Errorf("the Redis error leaked to the client: %s", body)
			}
		})
	}
}
