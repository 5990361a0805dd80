package broker_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Every goroutine a broker starts ends with it: after a New that fails
// half-way, and after a Close that follows real traffic. The other tests
// of the package may run at the same time, so the goroutines alive when
// each test starts are ignored.

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// New fails after the store, the events outbox, the push checks, the
// messaging core and the hooks are up: the cluster signals cannot reach
// Redis. Nothing it started may stay behind.
func TestLifecycle_NewFailingHalfWayLeavesNoGoroutine(t *testing.T) {
	hook := httpSink(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := mqtttest.Config(t)
	cfg.Redis.Addresses = []string{closedPort(t)}
	cfg.Redis.DialTimeout = 200 * time.Millisecond
	cfg.Redis.Timeout = 200 * time.Millisecond
	cfg.Events.Webhook.URL = hook
	cfg.Events.Webhook.Secret = "webhook-secret-0123456789"
	cfg.Push.After = time.Second
	b, err := broker.New(cfg, nil)
	if err == nil {
		b.Close()
		t.Fatal("New with an unreachable Redis for the cluster signals succeeded")
	}
	t.Logf("New failed as it should: %v", err)
}

// A broker that served a user and an admin, then closed, leaves nothing.
func TestLifecycle_CloseLeavesNoGoroutine(t *testing.T) {
	hook := httpSink(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := mqtttest.Config(t)
	cfg.Events.Webhook.URL = hook
	cfg.Events.Webhook.Secret = "webhook-secret-0123456789"
	cfg.Push.After = time.Second
	b, err := broker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	bob, err := mqtttest.ConnectV3(b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := mqtttest.ConnectV3(b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"hi"}`)
	bob.Inbox.NextMethod(t, "SendMsg", 10*time.Second)
	alice.Disconnect(100)
	bob.Disconnect(100)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // a second Close is harmless
		t.Fatal(err)
	}
}

// httpSink is a webhook receiver that accepts everything, closed when
// the test ends. Start it before goleak.IgnoreCurrent: its goroutines
// outlive the check.
func httpSink(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/hook"
}
