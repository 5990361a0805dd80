package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// A direct message to a user connected to another node reaches them with
// the wake signal: that node does not read the log back (a Redis round
// trip per message), and everything arrives once, in order.
func TestCluster_CrossNodeMessageNeedsNoRead(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	nodes, _ := startNodes(t, 2, []string{r.Addr}, false)
	const wait = 10 * time.Second
	bob := mqtttest.MustV3(t, nodes[1].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, nodes[0].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	// The first message also settles bob's start (its reads happen before).
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"m-first"}`)
	if e := bob.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") != "m-first" {
		t.Fatalf("got %s", e.Raw)
	}
	reads := func() int { // ZRANGE is the log read (Store.Read)
		t.Helper()
		n, err := redistest.CommandCalls(r.Addr, "zrange")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := reads()
	const n = 20
	for i := range n {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i))
		if e := bob.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: got %s", i, e.Raw)
		}
	}
	if got := reads() - before; got > 2 {
		t.Errorf("%d log reads for %d messages to a user on the other node, want about none", got, n)
	}
}
