package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// A block set on node A refuses a message sent on node B: the list is in
// the shared store, not in a node's memory.
func TestCluster_BlockHoldsOnEveryNode(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	nodes, _ := startNodes(t, 2, []string{r.Addr}, false)
	const wait = 10 * time.Second

	apiA := mqtttest.HTTP{Base: "http://" + nodes[0].HTTP}
	alice := mqtttest.Auth{Token: mqtttest.Token(t, "10001")}
	if resp := apiA.Do(t, "PUT", "/api/v1/blocks/10021", alice, nil); resp.Status != http.StatusOK {
		t.Fatalf("PUT /api/v1/blocks/10021 on node A: %d %s", resp.Status, resp.Raw)
	}

	bob := mqtttest.MustV5(t, nodes[1].MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{Subscribe: true})
	if code, err := bob.Pub("im/sendmsg", `{"uid":10001,"msg":"via B"}`); err != nil || code != 0x87 {
		t.Fatalf("message on node B to a user who blocked the sender on node A: PUBACK %#x, %v; want 0x87", code, err)
	}
	if e := bob.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "blocked" {
		t.Fatalf("bob's answer on node B = %s, want Error blocked", e.Raw)
	}
	// Stored nowhere: alice's history on node A is empty.
	resp := apiA.Do(t, "GET", "/api/v1/conversations", alice, nil)
	if resp.Status != http.StatusOK || len(resp.List("conversations")) != 0 {
		t.Fatalf("alice's conversations: %d %s, want none", resp.Status, resp.Raw)
	}

	// Unblocked over MQTT on node B, bob's message gets through on node A.
	aliceB := mqtttest.MustV3(t, nodes[1].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	aliceB.MustPub(t, "im/unblock", `{"uid":"10021"}`)
	deadline := time.Now().Add(wait)
	for {
		resp := apiA.Do(t, "GET", "/api/v1/blocks", alice, nil)
		if l, _ := resp.Body["blocks"].([]any); resp.Status == http.StatusOK && len(l) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("block list on node A after im/unblock on node B: %s", resp.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	aliceA := mqtttest.MustV3(t, nodes[0].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	if code, err := bob.Pub("im/sendmsg", `{"uid":10001,"msg":"via B again"}`); err != nil || code != 0 {
		t.Fatalf("message after unblock: PUBACK %#x, %v", code, err)
	}
	if e := aliceA.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") != "via B again" || e.Str("uid") != "10021" {
		t.Fatalf("alice on node A got %s", e.Raw)
	}
}
