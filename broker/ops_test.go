package broker_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// metric reads one sample of a Prometheus text exposition; base is the
// admin listener's URL.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %s", base, resp.StatusCode, body)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitMetric polls /metrics until name reaches at least min: tests use it
// to know the broker has processed PUBACKs before they disconnect.
func waitMetric(t *testing.T, base, name string, min float64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for metric(t, base, name) < min {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed below %v", name, min)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsMoveAndHealth(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	base := "http://" + b.HTTPAddr()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	sendN(t, alice, "10021", 0, 5)
	bob.Inbox.Collect(t, 5, wait)
	base = "http://" + b.AdminAddr()
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":""}`)
	if _, err := mqtttest.ConnectV3(b.MQTTAddr(), "10099", "forged", mqtttest.V3Options{Clean: true}); err == nil {
		t.Fatal("forged login accepted")
	}
	for name, min := range map[string]float64{
		`inboxmq_connections`:                                   2,
		`inboxmq_online_users`:                                  2,
		`inboxmq_inbox_appends_total{method="SendMsg"}`:         5,
		`inboxmq_inbox_appends_total{method="MsgSent"}`:         5,
		`inboxmq_messages_out_total{method="SendMsg"}`:          5,
		`inboxmq_delivery_latency_seconds_count`:                5,
		`inboxmq_store_append_seconds_count`:                    5,
		`inboxmq_requests_rejected_total{code="empty_message"}`: 1,
		`inboxmq_auth_failures_total{reason="token_malformed"}`: 1,
		`inboxmq_messages_in_total`:                             6,
	} {
		if v := metric(t, base, name); v < min {
			t.Errorf("%s = %v, want >= %v", name, v, min)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// Profiles are served only on the admin listener and only with
// listeners.admin.pprof; with no admin address, metrics are nowhere (the
// public listener never serves them).
func TestAdminListener_PprofAndOff(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	off := mqtttest.Start(t, mqtttest.Config(t))
	for _, url := range []string{
		"http://" + off.AdminAddr() + "/debug/pprof/",
		"http://" + off.HTTPAddr() + "/debug/pprof/",
		"http://" + off.HTTPAddr() + "/metrics",
	} {
		if code := get(url); code != http.StatusNotFound {
			t.Fatalf("GET %s with pprof off: %d, want 404", url, code)
		}
	}

	cfg := mqtttest.Config(t)
	cfg.Listeners.Admin.Pprof = true
	cfg.Limits.HTTPTimeout = time.Second
	on := mqtttest.Start(t, cfg)
	if code := get("http://" + on.AdminAddr() + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Fatalf("GET goroutine profile on the admin listener: %d, want 200", code)
	}
	// A CPU profile longer than limits.http_timeout is not cut off.
	resp, err := http.Get("http://" + on.AdminAddr() + "/debug/pprof/profile?seconds=2")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("2 s CPU profile with a 1 s write timeout: %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	if code := get("http://" + on.HTTPAddr() + "/debug/pprof/goroutine?debug=1"); code != http.StatusNotFound {
		t.Fatalf("GET goroutine profile on the HTTP listener with pprof on: %d, want 404", code)
	}

	cfg = mqtttest.Config(t)
	cfg.Listeners.Admin.Address = ""
	none := mqtttest.Start(t, cfg)
	if none.AdminAddr() != "" {
		t.Fatalf("admin listener open at %s with no address", none.AdminAddr())
	}
	if code := get("http://" + none.HTTPAddr() + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("GET /metrics on the HTTP listener without an admin listener: %d, want 404", code)
	}
}
