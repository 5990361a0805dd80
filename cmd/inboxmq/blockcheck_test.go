package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// On Redis the block list check of a direct message is part of the store
// script, not a request of its own: a recipient who blocks nobody costs
// no block list read at all (the real binary, through every decorator
// between the messaging service and the store), and one who blocks the
// sender still refuses the message.
func TestRedis_BlockCheckInsideTheStoreScript(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	nodes, _ := startNodes(t, 1, []string{r.Addr}, false)
	const wait = 10 * time.Second
	bob := mqtttest.MustV5(t, nodes[0].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{Subscribe: true})
	alice := mqtttest.MustV5(t, nodes[0].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	calls := func(cmd string) int {
		t.Helper()
		n, err := redistest.CommandCalls(r.Addr, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	send := func(text string) byte {
		t.Helper()
		code, err := alice.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":%q,"cid":%q}`, text, text))
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	// The first message marks bob's inbox as blocking nobody.
	if code := send("m-first"); code != 0 {
		t.Fatalf("first message: PUBACK %#x", code)
	}
	bob.Inbox.NextMethod(t, "SendMsg", wait)
	before := calls("sismember")
	const n = 20
	for i := range n {
		if code := send(fmt.Sprintf("m%d", i)); code != 0 {
			t.Fatalf("message %d: PUBACK %#x", i, code)
		}
		if e := bob.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: got %s", i, e.Raw)
		}
	}
	if got := calls("sismember") - before; got != 0 {
		t.Errorf("%d block list reads for %d messages to a user who blocks nobody, want none", got, n)
	}

	if code, err := bob.Pub("im/block", `{"uid":10001}`); err != nil || code != 0 {
		t.Fatalf("im/block: PUBACK %#x, %v", code, err)
	}
	deadline := time.Now().Add(wait)
	for {
		code := send("after the block")
		if code == 0x87 {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("message after the block: PUBACK %#x, want 0x87", code)
		}
		bob.Inbox.NextMethod(t, "SendMsg", wait) // sent before the block took effect
		time.Sleep(20 * time.Millisecond)
	}
	if e := alice.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "blocked" {
		t.Fatalf("alice's answer = %s, want Error blocked", e.Raw)
	}
}
