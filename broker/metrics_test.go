package broker_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// A fresh broker's first scrape already holds every labelled series whose
// label values are known at start, at 0: the docs promise them, and rate()
// and alerts need a series before its first increase.
func TestMetrics_LabelledSeriesStartAtZero(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()
	cfg := mqtttest.Config(t)
	cfg.Events.Webhook.URL = hook.URL
	cfg.Events.Webhook.Secret = "webhook-secret-0123456789"
	b := mqtttest.Start(t, cfg)
	m := mqtttest.Scrape(t, b.AdminAddr())

	type series struct {
		name   string
		labels map[string]string
	}
	var want []series
	for _, code := range bridge.Codes() {
		want = append(want, series{"inboxmq_requests_rejected_total", map[string]string{"code": code}})
	}
	for _, why := range access.FailureReasons() {
		want = append(want, series{"inboxmq_auth_failures_total", map[string]string{"reason": why}})
	}
	for _, name := range []string{"inboxmq_events_failed_total", "inboxmq_events_given_up_total", "inboxmq_events_dropped_total",
		"inboxmq_events_sent_total", "inboxmq_events_backlog"} {
		want = append(want, series{name, map[string]string{"sink": "webhook"}})
	}
	want = append(want,
		series{"inboxmq_messages_dropped_total", map[string]string{"reason": "overflow"}},
		series{"inboxmq_messages_dropped_total", map[string]string{"reason": "expired"}},
		series{"inboxmq_messages_out_total", map[string]string{"method": "SendMsg"}},
		series{"inboxmq_inbox_appends_total", map[string]string{"method": "SystemNot"}},
		series{"inboxmq_http_requests_total", map[string]string{"listener": "http", "route": "/api/v1/conversations/{peer}/messages", "method": "GET", "code": "200"}},
		series{"inboxmq_http_requests_total", map[string]string{"listener": "http", "route": "/readyz", "method": "GET", "code": "503"}},
		series{"inboxmq_http_requests_total", map[string]string{"listener": "admin", "route": "/api/v1/notices", "method": "POST", "code": "500"}},
		series{"inboxmq_http_request_duration_seconds", map[string]string{"listener": "admin", "route": "/api/v1/kick", "method": "POST"}},
		series{"inboxmq_store_errors_total", map[string]string{"backend": "pebble", "op": "submit"}},
		series{"inboxmq_store_errors_total", map[string]string{"backend": "pebble", "op": "is_blocked"}},
	)
	for _, s := range want {
		v, ok := m.Value(s.name, s.labels)
		if !ok {
			t.Errorf("%s%v is not on the first scrape", s.name, s.labels)
		} else if v != 0 && s.name != "inboxmq_events_backlog" {
			t.Errorf("%s%v = %v on a fresh broker, want 0", s.name, s.labels, v)
		}
	}
	// Deny row: the store that is not configured has no series.
	if _, ok := m.Value("inboxmq_store_errors_total", map[string]string{"backend": "redis"}); ok {
		t.Error("an embedded-store broker exports redis store series")
	}
	if v, ok := m.Value("inboxmq_memory_limit_bytes", nil); !ok || v < 64<<20 {
		t.Errorf("inboxmq_memory_limit_bytes = %v (present %v), want the runtime's limit", v, ok)
	}
	for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_gc_gomemlimit_bytes", "process_resident_memory_bytes", "go_goroutines"} {
		if _, ok := m.Value(name, nil); !ok {
			t.Errorf("%s is not exported", name)
		}
	}
}

// HTTP requests are counted under the mux pattern that served them, never
// the raw path or an arbitrary method, so clients cannot grow the series.
func TestMetrics_HTTPRequestsByRoutePattern(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.Auth{Token: mqtttest.Token(t, "alice")}

	if r := api.Do(t, "GET", "/api/v1/conversations/bob4711/messages", alice, nil); r.Status != 200 {
		t.Fatalf("GET messages: %d %s", r.Status, r.Raw)
	}
	if r := api.Do(t, "GET", "/api/v1/conversations/carol4711/messages", mqtttest.Auth{}, nil); r.Status != 401 {
		t.Fatalf("GET messages without a token: %d %s", r.Status, r.Raw)
	}
	if r := api.Do(t, "GET", "/api/v1/no-such-thing-4711", alice, nil); r.Status != 404 {
		t.Fatalf("GET an unknown path: %d", r.Status)
	}
	if r := api.Do(t, "BREW", "/api/v1/unread", alice, nil); r.Status != 405 {
		t.Fatalf("BREW /api/v1/unread: %d", r.Status)
	}
	m := mqtttest.Scrape(t, b.AdminAddr())
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"served", map[string]string{"listener": "http", "route": "/api/v1/conversations/{peer}/messages", "method": "GET", "code": "200"}, 1},
		{"refused", map[string]string{"listener": "http", "route": "/api/v1/conversations/{peer}/messages", "method": "GET", "code": "401"}, 1},
		{"unknown API path", map[string]string{"listener": "http", "route": "/api/", "method": "GET", "code": "404"}, 1},
		{"unknown method", map[string]string{"listener": "http", "route": "/api/", "method": "OTHER", "code": "405"}, 1},
		// Deny row: nothing was asked of the admin API yet.
		{"admin untouched", map[string]string{"listener": "admin", "route": "/api/v1/online", "method": "GET", "code": "200"}, 0},
	}
	for _, tc := range tests {
		if got, ok := m.Value("inboxmq_http_requests_total", tc.labels); !ok || got != tc.want {
			t.Errorf("%s: inboxmq_http_requests_total%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if n, ok := m.Value("inboxmq_http_request_duration_seconds", map[string]string{"listener": "http", "route": "/api/v1/conversations/{peer}/messages", "method": "GET"}); !ok || n != 2 {
		t.Errorf("latency of GET /api/v1/conversations/{peer}/messages observed %v times, want 2", n)
	}
	// The API's store read went through the measured store.
	if n, _ := m.Value("inboxmq_store_operation_duration_seconds", map[string]string{"backend": "pebble", "op": "thread"}); n < 1 {
		t.Errorf("store op thread observed %v times after a history request, want at least 1", n)
	}
	for _, raw := range []string{"bob4711", "carol4711", "no-such-thing-4711", "BREW"} {
		if strings.Contains(m.Raw, raw) {
			t.Errorf("/metrics holds %q from a request: labels must be patterns, not what clients sent", raw)
		}
	}
	// The scrapes themselves are counted on the admin listener.
	m = mqtttest.Scrape(t, b.AdminAddr())
	if v, _ := m.Value("inboxmq_http_requests_total", map[string]string{"listener": "admin", "route": "/metrics", "code": "200"}); v < 1 {
		t.Errorf("scrapes of /metrics counted %v times, want at least 1", v)
	}
}

// A request refused before routing (the per-address rate) is counted under
// route "unmatched", so 429s show up beside the routes they kept away.
func TestMetrics_HTTPRefusedBeforeRouting(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.HTTPRequestsPerIP = 1 // a burst of 2, then 1 a second
	b := mqtttest.Start(t, cfg)
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	refused := 0
	for range 6 {
		if api.Do(t, "GET", "/healthz", mqtttest.Auth{}, nil).Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("6 requests in a row at 1 a second: none refused, the limit is not on")
	}
	m := mqtttest.Scrape(t, b.AdminAddr())
	if v, _ := m.Value("inboxmq_http_requests_total", map[string]string{"listener": "http", "route": "unmatched", "code": "429"}); v != float64(refused) {
		t.Errorf(`inboxmq_http_requests_total{route="unmatched",code="429"} = %v, want the %d refused`, v, refused)
	}
	if v, _ := m.Value("inboxmq_http_requests_total", map[string]string{"listener": "http", "route": "/healthz", "code": "200"}); v != float64(6-refused) {
		t.Errorf(`inboxmq_http_requests_total{route="/healthz",code="200"} = %v, want the %d served`, v, 6-refused)
	}
}

// The embedded store's WAL syncs are timed: a stored notice waits for one,
// and the histogram counts it.
func TestMetrics_WALFsyncObserved(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	syncs := func() float64 {
		n, ok := mqtttest.Scrape(t, b.AdminAddr()).Value("inboxmq_store_wal_fsync_duration_seconds", nil)
		if !ok {
			t.Fatal("inboxmq_store_wal_fsync_duration_seconds is not exported by an embedded-store broker")
		}
		return n
	}
	before := syncs()
	adminAPI := mqtttest.HTTP{Base: "http://" + b.AdminAddr()}
	service := mqtttest.Auth{User: mqtttest.ServiceName, Password: mqtttest.ServicePassword}
	if r := adminAPI.Do(t, "POST", "/api/v1/notices", service, map[string]any{"uid": 10021, "content": "stored", "msgtype": 3}); r.Status != 202 {
		t.Fatalf("notice: %d %s", r.Status, r.Raw)
	}
	if after := syncs(); after <= before {
		t.Errorf("WAL syncs observed %v before a stored notice and %v after, want more", before, after)
	}
}

// TestEmbeddedWALSyncInterval_FromConfig: embedded_wal_sync_interval
// reaches the store. Notices stored one after another each wait for a
// WAL sync of their own, so with syncs 10 ms apart (the most allowed)
// eleven of them take at least 100 ms (a lower bound: a slow machine only
// adds to it); with the key not passed on they take a few milliseconds.
func TestEmbeddedWALSyncInterval_FromConfig(t *testing.T) {
	const interval, notices = 10 * time.Millisecond, 11
	cfg := mqtttest.Config(t)
	cfg.EmbeddedWALSyncInterval = interval
	b := mqtttest.Start(t, cfg)
	adminAPI := mqtttest.HTTP{Base: "http://" + b.AdminAddr()}
	service := mqtttest.Auth{User: mqtttest.ServiceName, Password: mqtttest.ServicePassword}
	start := time.Now()
	for i := range notices {
		if r := adminAPI.Do(t, "POST", "/api/v1/notices", service, map[string]any{"uid": 10021, "content": fmt.Sprint("n", i), "msgtype": 3}); r.Status != 202 {
			t.Fatalf("notice %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if took := time.Since(start); took < (notices-1)*interval {
		t.Errorf("%d stored notices took %s with WAL syncs %s apart, want at least %s", notices, took, interval, (notices-1)*interval)
	}
}
