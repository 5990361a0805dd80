package broker_test

import (
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// On Redis an acknowledged message leaves the push schedule with the
// cursor write that follows the PUBACK, long before its check is due, and
// an unacknowledged one still gets its push event.
func TestPush_RedisAckedLeavesSchedule(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	hook := newHookReceiver(t)
	cfg := mqtttest.Config(t)
	cfg.Store = "redis"
	cfg.Redis.Addresses = []string{r.Addr}
	cfg.Redis.Prefix = "push:"
	cfg.Events.Webhook.URL = hook.srv.URL
	cfg.Events.Webhook.Secret = webhookSecret
	cfg.Push.After = time.Hour // nothing is due during the test but what it makes due
	cfg.Push.CheckInterval = 50 * time.Millisecond
	b := mqtttest.Start(t, cfg)
	addr := b.MQTTAddr()
	scheduled := func() string {
		t.Helper()
		n, err := redistest.Do(r.Addr, 5*time.Second, "ZCARD", "push:{$global}:push")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	carol := mqtttest.MustV3(t, addr, "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Subscribe: true}) // online, acking
	alice := mqtttest.MustV3(t, addr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"nobody reads this"}`)
	alice.MustPub(t, "im/sendmsg", `{"uid":10031,"msg":"carol reads this at once"}`)
	carol.Inbox.Next(t, wait)
	deadline := time.Now().Add(10 * time.Second)
	for scheduled() != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("%s push checks scheduled after carol's ack, want 1 (the unread message's)", scheduled())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(hook.ofType("push")); n != 0 {
		t.Fatalf("%d push events before any was due", n)
	}

	// The one left still fires when due (made due now).
	if _, err := redistest.Do(r.Addr, 5*time.Second, "EVAL",
		"for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('ZADD', KEYS[1], 0, m) end", "1", "push:{$global}:push"); err != nil {
		t.Fatal(err)
	}
	pushes := hook.waitFor(t, "push", 1, 10*time.Second)
	if pushes[0]["uid"] != "10021" {
		t.Fatalf("push event %v, want 10021's", pushes[0])
	}
	time.Sleep(500 * time.Millisecond)
	if got := hook.ofType("push"); len(got) != 1 {
		t.Fatalf("push events %v, want one", got)
	}
}
