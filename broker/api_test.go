package broker_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

// A chat screen pages back 120 messages as 50, 50, 20, newest first, with
// no gaps or repeats, while new messages keep arriving.
func TestAPI_HistoryPaging(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	sendN(t, alice, "10021", 0, 120)
	bob := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}

	var pages []int
	seen := map[string]bool{}
	next := 119
	before := ""
	for {
		path := "/api/v1/conversations/10001/messages"
		if before != "" {
			path += "?before=" + before
		}
		resp := api.Do(t, "GET", path, bob, nil)
		if resp.Status != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.Status, resp.Raw)
		}
		msgs := resp.List("messages")
		pages = append(pages, len(msgs))
		for _, m := range msgs {
			if want := fmt.Sprintf("m%d", next); m["ct"] != want || str(m["from"]) != "10001" || str(m["to"]) != "10021" {
				t.Fatalf("want %s from 10001, got %v", want, m)
			}
			if seen[str(m["msgid"])] {
				t.Fatalf("repeated %v", m)
			}
			seen[str(m["msgid"])] = true
			next--
		}
		// New messages arrive between pages: they must not disturb paging.
		alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"late"}`)
		before = str(resp.Body["next"])
		if before == "" {
			break
		}
	}
	if fmt.Sprint(pages) != "[50 50 20]" || next != -1 {
		t.Fatalf("pages %v, next %d", pages, next)
	}
	// limit is clamped to 50.
	if resp := api.Do(t, "GET", "/api/v1/conversations/10001/messages?limit=500", bob, nil); len(resp.List("messages")) != 50 {
		t.Fatalf("limit=500 gave %d", len(resp.List("messages")))
	}
	// The sender sees the same conversation from its side.
	resp := api.Do(t, "GET", "/api/v1/conversations/10021/messages?limit=1", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if m := resp.List("messages"); len(m) != 1 || m[0]["ct"] != "late" || str(m[0]["from"]) != "10001" {
		t.Fatalf("sender view: %s", resp.Raw)
	}
}

func TestAPI_UnreadAndReceipts(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	carol := mqtttest.MustV3(t, b.MQTTAddr(), "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Clean: true})
	var ids []string
	for i := 0; i < 3; i++ {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"a%d"}`, i))
		ids = append(ids, alice.Inbox.NextMethod(t, "MsgSent", wait).Str("msgid"))
	}
	sendN(t, carol, "10021", 0, 2)
	if _, err := mqtttest.MosquittoPub(b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, "im/systemadmin", `{"uid":10021,"content":"n","msgtype":7}`); err != nil {
		t.Fatal(err)
	}
	bob := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}
	checkUnread := func(want string) {
		t.Helper()
		resp := api.Do(t, "GET", "/api/v1/unread", bob, nil)
		got := fmt.Sprintf("peers=%v notices=%v broadcast=%v total=%v", resp.Body["peers"], resp.Body["notices"], resp.Body["broadcast"], resp.Body["total"])
		if got != want {
			t.Fatalf("unread: got %s, want %s", got, want)
		}
	}
	checkUnread("peers=map[10001:3 10031:2] notices=map[7:1] broadcast=0 total=6")

	resp := api.Do(t, "POST", "/api/v1/conversations/10001/read", bob, map[string]string{"msgid": ids[1]})
	if resp.Status != 200 {
		t.Fatalf("read: %d %s", resp.Status, resp.Raw)
	}
	receipt := alice.Inbox.NextMethod(t, "ReadMsg", wait)
	if receipt.Str("uid") != "10021" || receipt.Str("msgid") != ids[1] || receipt.Str("action") != "7" {
		t.Fatalf("receipt = %s", receipt.Raw)
	}
	checkUnread("peers=map[10001:1 10031:2] notices=map[7:1] broadcast=0 total=4")

	// Over MQTT too.
	bobMQTT := mqtttest.MustV3(t, b.MQTTAddr(), "10021", bob.Token, mqtttest.V3Options{Clean: true})
	bobMQTT.MustPub(t, "im/read", `{"uid":10001,"msgid":"`+ids[2]+`"}`)
	alice.Inbox.NextMethod(t, "ReadMsg", wait)
	checkUnread("peers=map[10031:2] notices=map[7:1] broadcast=0 total=3")

	// Conversation list: newest first, with unread counts.
	conv := api.Do(t, "GET", "/api/v1/conversations", bob, nil).List("conversations")
	if len(conv) != 2 || str(conv[0]["peer"]) != "10031" || str(conv[0]["unread"]) != "2" || str(conv[1]["peer"]) != "10001" || str(conv[1]["unread"]) != "0" {
		t.Fatalf("conversations = %v", conv)
	}
}

// Users only ever see their own inbox; errors have the documented shape.
func TestAPI_AccessAndErrors(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	adminAPI := mqtttest.HTTP{Base: "http://" + b.AdminAddr()}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"private"}`)
	id := alice.Inbox.NextMethod(t, "MsgSent", wait).Str("msgid")
	carol := mqtttest.Auth{Token: mqtttest.Token(t, "10031")}
	bob := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}

	for _, tc := range []struct {
		name, method, path string
		auth               mqtttest.Auth
		body               any
		status             int
		code               string
	}{
		{"no token", "GET", "/api/v1/unread", mqtttest.Auth{}, nil, 401, "unauthorized"},
		{"forged token", "GET", "/api/v1/unread", mqtttest.Auth{Token: "x.y.z"}, nil, 401, "unauthorized"},
		{"wrong admin password", "GET", "/api/v1/online?uid=1", mqtttest.Auth{User: "admin", Password: "nope"}, nil, 401, "unauthorized"},
		{"user on admin endpoint", "POST", "/api/v1/notices", carol, map[string]any{"content": "x"}, 403, "forbidden"},
		{"user kicks", "POST", "/api/v1/kick", carol, map[string]any{"uid": 10001}, 403, "forbidden"},
		{"delete someone else's", "DELETE", "/api/v1/messages/" + id, bob, nil, 403, "forbidden"},
		{"delete unknown", "DELETE", "/api/v1/messages/123", carol, nil, 404, "not_found"},
		{"read a message not in the conversation", "POST", "/api/v1/conversations/10001/read", carol, map[string]string{"msgid": id}, 404, "not_found"},
		{"bad peer", "GET", "/api/v1/conversations/a%20b/messages", carol, nil, 400, "bad_uid"},
		{"bad cursor", "GET", "/api/v1/conversations/10001/messages?before=abc", carol, nil, 400, "bad_field"},
		{"bad limit", "GET", "/api/v1/conversations/10001/messages?limit=-1", carol, nil, 400, "bad_field"},
		{"bad json", "POST", "/api/v1/conversations/10001/read", carol, "{", 400, "bad_json"},
		{"too large", "POST", "/api/v1/notices", mqtttest.Auth{User: "admin", Password: mqtttest.AdminPassword},
			`{"content":"` + strings.Repeat("x", 300<<10) + `"}`, 413, "too_large"},
		{"unknown endpoint", "GET", "/api/v1/nope", carol, nil, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := api
			if adminRoute(tc.method, tc.path) {
				on = adminAPI
			}
			resp := on.Do(t, tc.method, tc.path, tc.auth, tc.body)
			if resp.Status != tc.status || resp.ErrorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", resp.Status, resp.Raw, tc.status, tc.code)
			}
		})
	}
	// Carol's view of "her conversation with 10001" is hers, not alice's with bob.
	if msgs := api.Do(t, "GET", "/api/v1/conversations/10001/messages", carol, nil).List("messages"); len(msgs) != 0 {
		t.Fatalf("carol sees %v", msgs)
	}
}

// Deleting removes the message from history and from the offline queue.
func TestAPI_DeleteFromHistoryAndQueue(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	tokB := mqtttest.Token(t, "10021")
	first, err := mqtttest.ConnectV3(b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	first.Disconnect(100) // bob is offline with a persistent session
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	var ids []string
	for i := 0; i < 3; i++ {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i))
		ids = append(ids, alice.Inbox.NextMethod(t, "MsgSent", wait).Str("msgid"))
	}
	resp := api.Do(t, "DELETE", "/api/v1/messages/"+ids[1], mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if resp.Status != 200 {
		t.Fatalf("delete: %d %s", resp.Status, resp.Raw)
	}
	if e := alice.Inbox.NextMethod(t, "DelMsg", wait); e.Str("msgid") != ids[1] {
		t.Fatalf("sender DelMsg = %s", e.Raw)
	}
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Subscribe: true})
	got := bob.Inbox.Collect(t, 3, wait)
	if got[0].Str("ct") != "m0" || got[1].Str("ct") != "m2" || got[2].Method() != "DelMsg" || got[2].Str("msgid") != ids[1] {
		t.Fatalf("offline queue after delete: %s | %s | %s", got[0].Raw, got[1].Raw, got[2].Raw)
	}
	bob.Inbox.None(t, 200*time.Millisecond)
	for _, who := range []struct{ uid, peer string }{{"10021", "10001"}, {"10001", "10021"}} {
		msgs := api.Do(t, "GET", "/api/v1/conversations/"+who.peer+"/messages", mqtttest.Auth{Token: mqtttest.Token(t, who.uid)}, nil).List("messages")
		if len(msgs) != 2 || msgs[0]["ct"] != "m2" || msgs[1]["ct"] != "m0" {
			t.Fatalf("%s history after delete: %v", who.uid, msgs)
		}
	}
	unread := api.Do(t, "GET", "/api/v1/unread", mqtttest.Auth{Token: tokB}, nil)
	if str(unread.Body["total"]) != "2" {
		t.Fatalf("unread after delete: %s", unread.Raw)
	}
}

// A message older than the retention period is gone from history and queue.
func TestAPI_Retention(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Inbox.Retention = 2 * time.Second
	cfg.Inbox.ExpireInterval = time.Second
	b := mqtttest.Start(t, cfg)
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"old"}`)
	bob := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}
	if msgs := api.Do(t, "GET", "/api/v1/conversations/10001/messages", bob, nil).List("messages"); len(msgs) != 1 {
		t.Fatalf("before expiry: %v", msgs)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if msgs := api.Do(t, "GET", "/api/v1/conversations/10001/messages", bob, nil).List("messages"); len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message outlived the retention period")
		}
		time.Sleep(200 * time.Millisecond)
	}
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"new"}`)
	c := mqtttest.MustV3(t, b.MQTTAddr(), "10021", bob.Token, mqtttest.V3Options{Subscribe: true})
	if e := c.Inbox.Next(t, wait); e.Str("ct") != "new" {
		t.Fatalf("first delivery after expiry: %s", e.Raw)
	}
}

func TestAPI_AdminNoticesOnlineKick(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	adminAPI := mqtttest.HTTP{Base: "http://" + b.AdminAddr()}
	admin := mqtttest.Auth{User: mqtttest.AdminName, Password: mqtttest.AdminPassword}
	service := mqtttest.Auth{User: mqtttest.ServiceName, Password: mqtttest.ServicePassword}
	bob := mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{Subscribe: true})
	if code, err := bob.Sub("broadcast", 1); err != nil || code != 1 {
		t.Fatal(code, err)
	}

	if r := adminAPI.Do(t, "POST", "/api/v1/notices", service, map[string]any{"uid": 10021, "content": "to bob", "msgtype": 3}); r.Status != 202 {
		t.Fatalf("targeted notice: %d %s", r.Status, r.Raw)
	}
	if e := bob.Inbox.Next(t, wait); e.Topic != "inbox/10021" || e.Str("ct") != "to bob" || e.Str("msgtype") != "3" {
		t.Fatalf("targeted = %s", e.Raw)
	}
	if r := adminAPI.Do(t, "POST", "/api/v1/notices", admin, map[string]any{"uids": []any{10021, "10031"}, "content": "to two"}); r.Status != 202 {
		t.Fatalf("multi notice: %d %s", r.Status, r.Raw)
	}
	bob.Inbox.NextMethod(t, "SystemNot", wait)
	if r := adminAPI.Do(t, "POST", "/api/v1/notices", admin, map[string]any{"content": "to all", "event": "promo"}); r.Status != 202 {
		t.Fatalf("broadcast: %d %s", r.Status, r.Raw)
	}
	if e := bob.Inbox.Next(t, wait); e.Topic != "broadcast" || e.Str("ct") != "to all" {
		t.Fatalf("broadcast = %s", e.Raw)
	}

	// Notice history: targeted and broadcast merged, newest first; unread.
	bobAuth := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}
	notices := api.Do(t, "GET", "/api/v1/notices", bobAuth, nil).List("notices")
	if len(notices) != 3 || notices[0]["ct"] != "to all" || notices[0]["broadcast"] != true || notices[2]["ct"] != "to bob" {
		t.Fatalf("notices = %v", notices)
	}
	if u := api.Do(t, "GET", "/api/v1/unread", bobAuth, nil); str(u.Body["broadcast"]) != "1" || str(u.Body["total"]) != "3" {
		t.Fatalf("unread = %s", u.Raw)
	}
	api.Do(t, "POST", "/api/v1/notices/read", bobAuth, map[string]any{"msgid": str(notices[0]["msgid"])})
	if u := api.Do(t, "GET", "/api/v1/unread", bobAuth, nil); str(u.Body["total"]) != "0" {
		t.Fatalf("unread after reading notices = %s", u.Raw)
	}

	if r := adminAPI.Do(t, "GET", "/api/v1/online?uid=10021", admin, nil); r.Body["online"] != true || str(r.Body["devices"]) != "1" {
		t.Fatalf("online = %s", r.Raw)
	}
	if r := adminAPI.Do(t, "POST", "/api/v1/kick", admin, map[string]any{"uid": "10021"}); str(r.Body["kicked"]) != "1" {
		t.Fatalf("kick = %s", r.Raw)
	}
	if e := bob.Inbox.NextMethod(t, "Logout", wait); e.Str("action") != "5" {
		t.Fatalf("logout = %s", e.Raw)
	}
	select {
	case d := <-bob.Disconnects:
		if d.ReasonCode != 0x8E {
			t.Fatalf("kick reason %#x", d.ReasonCode)
		}
	case <-time.After(wait):
		t.Fatal("kicked client not disconnected")
	}
	deadline := time.Now().Add(wait)
	for adminAPI.Do(t, "GET", "/api/v1/online?uid=10021", admin, nil).Body["online"] != false {
		if time.Now().After(deadline) {
			t.Fatal("still online after kick")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminRoute reports the endpoints of the admin listener (those that need
// the admin or service role).
func adminRoute(method, path string) bool {
	switch {
	case method == "POST" && path == "/api/v1/notices", method == "POST" && path == "/api/v1/kick":
		return true
	}
	return method == "GET" && strings.HasPrefix(path, "/api/v1/online")
}
