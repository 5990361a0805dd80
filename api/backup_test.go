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

// backupServer serves the API with opts.Backup set to backup.
func backupServer(t *testing.T, f *fixture, backup func(context.Context, io.Writer) error) string {
	t.Helper()
	opts := f.opts
	opts.Backup = backup
	srv := httptest.NewServer(api.New(opts, api.AdminRoutes))
	t.Cleanup(srv.Close)
	return srv.URL
}

func postBackup(t *testing.T, url string, c cred) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/admin/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	c(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// The backup endpoint: admins only, a stream on success, 409 without an
// embedded store, 500 when it fails before sending anything, and a cut
// connection (never a clean end) when it fails part-way.
func TestBackupEndpoint(t *testing.T) {
	f := newFixture(t, 0)
	admin := bearer(f.adminToken(t, "operator-7"))
	ok := func(ctx context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "a whole stream")
		return err
	}
	tests := []struct {
		name    string
		backup  func(context.Context, io.Writer) error
		cred    cred
		status  int
		body    string // for 200
		readErr bool   // the body ends with an error
	}{
		{"admin", ok, admin, http.StatusOK, "a whole stream", false},
		{"user", ok, bearer(f.userToken(t, "10001")), http.StatusForbidden, "", false},
		{"service account", ok, basic(serviceName, servicePassword), http.StatusForbidden, "", false},
		{"no credentials", ok, func(*http.Request) {}, http.StatusUnauthorized, "", false},
		{"redis store", nil, admin, http.StatusConflict, "", false},
		{"fails before sending", func(context.Context, io.Writer) error { return errors.New("disk full") }, admin,
			http.StatusInternalServerError, "", false},
		{"fails part-way", func(_ context.Context, w io.Writer) error {
			_, _ = io.WriteString(w, strings.Repeat("x", 100<<10))
			return errors.New("disk full")
		}, admin, http.StatusOK, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, err := postBackup(t, backupServer(t, f, tt.backup), tt.cred)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%s)", status, tt.status, body)
			}
			if tt.readErr != (err != nil) {
				t.Fatalf("reading the body: %v, want an error: %v", err, tt.readErr)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if status >= 400 && strings.Contains(string(body), "disk full") {
				t.Fatalf("the error leaks its cause: %s", body)
			}
		})
	}
}
