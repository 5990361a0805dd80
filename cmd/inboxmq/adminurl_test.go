package main

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/testcerts"
)

// Over TLS, backup reaches the admin listener only if it presents the
// certificate in the config's cert file (whatever names it carries).
func TestAdminURLPinsTheConfiguredCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "ops CA")
	dir := t.TempDir()
	configured := ca.Server(t, "admin")
	certPath, keyPath := configured.Write(t, dir, "admin")
	for _, tt := range []struct {
		name   string
		served testcerts.Pair
		ok     bool
	}{
		{"the configured certificate", configured, true},
		{"another certificate of the same CA", ca.Server(t, "impostor"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tt.served.TLS(t)}}
			srv.StartTLS()
			defer srv.Close()
			url, conf, err := adminURL(broker.AdminConfig{Address: srv.Listener.Addr().String(), TLS: broker.TLSConfig{Cert: certPath, Key: keyPath}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(url, "https://127.0.0.1:") {
				t.Fatalf("url %s", url)
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("request error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	for _, a := range []broker.AdminConfig{{Address: ""}, {Address: "127.0.0.1:0"}} {
		if _, _, err := adminURL(a); err == nil || !strings.Contains(err.Error(), "--url") {
			t.Errorf("adminURL(%+v) = %v, want an error pointing to --url", a, err)
		}
	}
	if url, _, err := adminURL(broker.AdminConfig{Address: ":9090"}); err != nil || url != "http://127.0.0.1:9090" {
		t.Errorf("adminURL(:9090) = %q, %v", url, err)
	}
}
