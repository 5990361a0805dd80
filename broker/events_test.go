package broker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

const webhookSecret = "webhook-secret-webhook-secret"

// hookReceiver is the app's back-end: it verifies signatures and records events.
type hookReceiver struct {
	mu     sync.Mutex
	events []map[string]any
	srv    *httptest.Server
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if !events.VerifySignature([]byte(webhookSecret), body, req.Header.Get(events.HeaderSignature)) {
			t.Errorf("webhook signature does not verify: %s", body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e map[string]any
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) ofType(typ string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, e := range r.events {
		if e["event"] == typ {
			out = append(out, e)
		}
	}
	return out
}

func (r *hookReceiver) waitFor(t *testing.T, typ string, n int, timeout time.Duration) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := r.ofType(typ); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events within %s, want %d", len(r.ofType(typ)), typ, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pushBroker(t *testing.T, hook *hookReceiver, dataDir string) *broker.Broker {
	t.Helper()
	cfg := mqtttest.Config(t)
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	cfg.Events.Webhook.URL = hook.srv.URL
	cfg.Events.Webhook.Secret = webhookSecret
	cfg.Push.After = 1500 * time.Millisecond
	cfg.Push.CheckInterval = 50 * time.Millisecond
	return mqtttest.Start(t, cfg)
}

// A message nobody acknowledges within push.after produces one push event;
// a message a device acknowledged in time does not.
func TestPush_FiresForOfflineNotForAcking(t *testing.T) {
	hook := newHookReceiver(t)
	b := pushBroker(t, hook, "")
	addr := b.MQTTAddr()
	carol := mqtttest.MustV3(t, addr, "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Subscribe: true}) // online, acking
	alice := mqtttest.MustV3(t, addr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"are you there? this preview is long enough to be cut somewhere after sixty characters"}`)
	alice.MustPub(t, "im/sendmsg", `{"uid":10031,"msg":"carol reads this at once"}`)
	carol.Inbox.Next(t, wait)

	pushes := hook.waitFor(t, "push", 1, 10*time.Second)
	time.Sleep(2 * time.Second) // carol's would be due by now
	pushes = hook.ofType("push")
	if len(pushes) != 1 {
		t.Fatalf("push events: %v", pushes)
	}
	p := pushes[0]
	if p["uid"] != "10021" || p["from"] != "10001" || p["nickname"] != "nick-10001" || str(p["unread"]) != "1" ||
		p["msgid"] == "" || len([]rune(p["preview"].(string))) > 61 {
		t.Fatalf("push event = %v", p)
	}
	// Login and logout events too.
	if len(hook.ofType("login")) < 2 {
		t.Fatalf("login events: %v", hook.ofType("login"))
	}
}

// The schedule is kept in the store: a broker restarted before the push
// was due still fires it, once.
func TestPush_SurvivesRestart(t *testing.T) {
	hook := newHookReceiver(t)
	dir := t.TempDir()
	b := pushBroker(t, hook, dir)
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"sent before the restart"}`)
	alice.Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(hook.ofType("push")); n != 0 {
		t.Fatalf("push fired before it was due: %d", n)
	}
	pushBroker(t, hook, dir)
	hook.waitFor(t, "push", 1, 10*time.Second)
	time.Sleep(time.Second)
	if got := hook.ofType("push"); len(got) != 1 || got[0]["preview"] != "sent before the restart" {
		t.Fatalf("push events after restart: %v", got)
	}
}

// Back-end notices on the legacy Redis "notification" channel: stored ones
// reach offline users later; the others only users online now. Login
// events go out on login_message_channel.
func TestNotificationChannelAndRedisEvents(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	rdb := r.Client(t)
	cfg := mqtttest.Config(t)
	cfg.Redis.Addresses = []string{r.Addr}
	b := mqtttest.Start(t, cfg)
	ctx := context.Background()

	logins := rdb.Subscribe(ctx, "login_message_channel")
	defer logins.Close()
	if _, err := logins.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	msg, err := logins.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]any
	if err := json.Unmarshal([]byte(msg.Payload), &login); err != nil || login["event"] != "login" || login["uid"] != "10021" {
		t.Fatalf("login event = %s (%v)", msg.Payload, err)
	}
	// carol has a session but is offline.
	carolTok := mqtttest.Token(t, "10031")
	c, err := mqtttest.ConnectV3(b.MQTTAddr(), "10031", carolTok, mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(100)

	publish := func(payload string) {
		t.Helper()
		if err := rdb.Publish(ctx, "notification", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	publish(`{"toWho":[10021,"10031"],"needStore":true,"content":"stored notice","msgtype":4}`)
	publish(`{"toWho":[10021,10031],"needStore":false,"content":"live only"}`)
	publish(`{"toWho":"not a list"`) // malformed: logged and counted, never fatal
	publish(`{"needStore":false,"content":"live to everyone"}`)

	// Live notices skip the log, so they may overtake the stored one.
	got := map[string]string{}
	for len(got) < 2 {
		e := bob.Inbox.NextMethod(t, "SystemNot", wait)
		got[e.Str("ct")] = e.Str("msgtype")
	}
	if got["stored notice"] != "4" || got["live only"] != "0" {
		t.Fatalf("bob's notices = %v", got)
	}
	carol := mqtttest.MustV3(t, b.MQTTAddr(), "10031", carolTok, mqtttest.V3Options{Subscribe: true})
	if e := carol.Inbox.NextMethod(t, "SystemNot", wait); e.Str("ct") != "stored notice" {
		t.Fatalf("carol's stored notice = %s", e.Raw)
	}
	carol.Inbox.None(t, 300*time.Millisecond) // the live-only notice was not kept for her
	waitMetric(t, "http://"+b.AdminAddr(), "inboxmq_notifications_malformed_total", 1)
}
