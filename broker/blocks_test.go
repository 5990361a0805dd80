package broker_test

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// blockList returns uid's block list over HTTP.
func blockList(t *testing.T, api mqtttest.HTTP, uid string) []string {
	t.Helper()
	r := api.Do(t, "GET", "/api/v1/blocks", mqtttest.Auth{Token: mqtttest.Token(t, uid)}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/v1/blocks as %s: %d %s", uid, r.Status, r.Raw)
	}
	raw, _ := r.Body["blocks"].([]any)
	out := []string{}
	for _, v := range raw {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// A block set over MQTT refuses the blocked user's messages (Error
// "blocked", MQTT 5 PUBACK 0x87) and stores them nowhere, leaves notices
// alone, holds only one way, and ends with an unblock over HTTP.
func TestBlock_RefusesDirectMessages(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	bob := mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{Subscribe: true})
	carol := mqtttest.MustV3(t, b.MQTTAddr(), "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Subscribe: true})

	alice.MustPub(t, "im/block", `{"uid":10021}`)
	// The block is in place once the list shows it: the publish above
	// is acknowledged before it is handled on the broker's side.
	deadline := time.Now().Add(wait)
	for !reflect.DeepEqual(blockList(t, api, "10001"), []string{"10021"}) {
		if time.Now().After(deadline) {
			t.Fatalf("alice's block list = %v, want [10021]", blockList(t, api, "10001"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	code, err := bob.Pub("im/sendmsg", `{"uid":10001,"msg":"let me in","cid":"b-1"}`)
	if err != nil || code != 0x87 {
		t.Fatalf("message to a user who blocked the sender: PUBACK %#x, %v; want 0x87", code, err)
	}
	if e := bob.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "blocked" || e.Str("cid") != "b-1" {
		t.Fatalf("bob's answer = %s, want Error blocked with cid b-1", e.Raw)
	}
	// Over HTTP too, the refused message was stored nowhere: neither
	// party has a conversation.
	for _, uid := range []string{"10001", "10021"} {
		r := api.Do(t, "GET", "/api/v1/conversations", mqtttest.Auth{Token: mqtttest.Token(t, uid)}, nil)
		if r.Status != http.StatusOK || len(r.List("conversations")) != 0 {
			t.Fatalf("%s's conversations after a refused message: %d %s", uid, r.Status, r.Raw)
		}
	}

	// Others still get through, the block is one-way, and notices are
	// not messages from a user.
	carol.MustPub(t, "im/sendmsg", `{"uid":10001,"msg":"from carol"}`)
	checkSendMsg(t, alice.Inbox.NextMethod(t, "SendMsg", wait), "10031", "from carol")
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"I can still write"}`)
	checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "I can still write")
	if out, err := mqtttest.MosquittoPub(b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, "im/systemadmin",
		`{"uid":10001,"content":"still told","msgtype":2}`); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	if e := alice.Inbox.NextMethod(t, "SystemNot", wait); e.Str("ct") != "still told" {
		t.Fatalf("notice to a user with a block list = %s", e.Raw)
	}

	// Unblock over HTTP; then bob's messages arrive again.
	r := api.Do(t, "DELETE", "/api/v1/blocks/10021", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("DELETE /api/v1/blocks/10021: %d %s", r.Status, r.Raw)
	}
	if got := blockList(t, api, "10001"); len(got) != 0 {
		t.Fatalf("block list after unblock = %v", got)
	}
	if code, err := bob.Pub("im/sendmsg", `{"uid":10001,"msg":"hello again","cid":"b-1"}`); err != nil || code != 0 {
		t.Fatalf("message after unblock: PUBACK %#x, %v", code, err)
	}
	checkSendMsg(t, alice.Inbox.NextMethod(t, "SendMsg", wait), "10021", "hello again")
}

// The HTTP endpoints: PUT is idempotent, bad uids and self-blocks are
// refused, the cap holds (limits.max_blocks), and a block survives a
// restart of the broker (it lives in the store).
func TestBlock_HTTPCapAndRestart(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.MaxBlocks = 2
	b := mqtttest.Start(t, cfg)
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	me := mqtttest.Auth{Token: mqtttest.Token(t, "10001")}
	for _, c := range []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"block", "PUT", "/api/v1/blocks/10021", 200, ""},
		{"block again", "PUT", "/api/v1/blocks/10021", 200, ""},
		{"second", "PUT", "/api/v1/blocks/10031", 200, ""},
		{"over the cap", "PUT", "/api/v1/blocks/10041", http.StatusRequestEntityTooLarge, "too_large"},
		{"yourself", "PUT", "/api/v1/blocks/10001", http.StatusBadRequest, "bad_uid"},
		{"bad uid", "PUT", "/api/v1/blocks/a%20b", http.StatusBadRequest, "bad_uid"},
		{"unblock unlisted", "DELETE", "/api/v1/blocks/10099", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := api.Do(t, c.method, c.path, me, nil)
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Fatalf("%s %s: %d %s, want %d %q", c.method, c.path, r.Status, r.Raw, c.status, c.code)
			}
		})
	}
	if r := api.Do(t, "GET", "/api/v1/blocks", mqtttest.Auth{}, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/blocks without credentials: %d", r.Status)
	}
	want := []string{"10021", "10031"}
	if got := blockList(t, api, "10001"); !reflect.DeepEqual(got, want) {
		t.Fatalf("block list = %v, want %v", got, want)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := mqtttest.Start(t, cfg)
	api2 := mqtttest.HTTP{Base: "http://" + b2.HTTPAddr()}
	if got := blockList(t, api2, "10001"); !reflect.DeepEqual(got, want) {
		t.Fatalf("block list after a restart = %v, want %v", got, want)
	}
	bob := mqtttest.MustV3(t, b2.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	bob.MustPub(t, "im/sendmsg", `{"uid":10001,"msg":"after restart"}`)
	if e := bob.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "blocked" {
		t.Fatalf("after a restart: %s, want Error blocked", e.Raw)
	}
}
