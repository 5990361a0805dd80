package broker_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// checkServerTime checks that an envelope carries ts, the broker's time in
// Unix milliseconds, from since (minus a second of clock granularity) to now.
func checkServerTime(t *testing.T, raw []byte, since time.Time) int64 {
	t.Helper()
	var env struct {
		TS json.Number `json:"ts"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("envelope %s: %v", raw, err)
	}
	ts, err := env.TS.Int64()
	if err != nil {
		t.Fatalf("envelope %s: ts is not an integer: %v", raw, err)
	}
	if ts < since.Add(-time.Second).UnixMilli() || ts > time.Now().UnixMilli() {
		t.Fatalf("envelope %s: ts %d is not between %d and now", raw, ts, since.UnixMilli())
	}
	return ts
}

// Every stored envelope carries the time the broker stored it, the same
// time on both parties' copies and in history; a message that waited
// offline keeps the time it was sent, not the time it arrived.
func TestServerTime(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})

	// bob is offline (no session yet: his first session gets everything held).
	start := time.Now()
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"while you were away"}`)
	sent := alice.Inbox.NextMethod(t, "MsgSent", wait)
	sentTS := checkServerTime(t, sent.Raw, start)

	time.Sleep(20 * time.Millisecond) // so that arrival time and send time differ
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	got := bob.Inbox.NextMethod(t, "SendMsg", wait)
	if ts := checkServerTime(t, got.Raw, start); ts != sentTS {
		t.Fatalf("SendMsg ts %d, MsgSent ts %d: want the one stored time", ts, sentTS)
	}
	if !strings.HasPrefix(string(got.Raw), `{"_method_":"SendMsg","action":"3","msgid":"`+got.Str("msgid")+`","nickname":`) {
		t.Fatalf("legacy fields moved: %s", got.Raw)
	}

	r := api.Do(t, "GET", "/api/v1/conversations/10001/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, nil)
	items := r.List("messages")
	if r.Status != 200 || len(items) != 1 || fmt.Sprint(items[0]["ts"]) != strconv.FormatInt(sentTS, 10) || fmt.Sprint(items[0]["time"]) != strconv.FormatInt(sentTS, 10) {
		t.Fatalf("history = %d %s, want the message with ts %d", r.Status, r.Raw, sentTS)
	}

	bob.MustPub(t, "im/read", fmt.Sprintf(`{"uid":10001,"msgid":%q}`, got.Str("msgid")))
	checkServerTime(t, alice.Inbox.NextMethod(t, "ReadMsg", wait).Raw, start)
	alice.MustPub(t, "im/delmsg", fmt.Sprintf(`{"uid":10021,"msgid":%q}`, got.Str("msgid")))
	checkServerTime(t, bob.Inbox.NextMethod(t, "DelMsg", wait).Raw, start)
}

// inbox.delete_window: the sender deletes within it, and gets too_late
// (MQTT 5: PUBACK 0x83; HTTP 409) past it; nothing is deleted then.
func TestRecallWindow(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Inbox.DeleteWindow = 50 * time.Millisecond
	b := mqtttest.Start(t, cfg)
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})

	send := func(text string) string {
		t.Helper()
		if code, err := alice.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":%q}`, text)); err != nil || code != 0 {
			t.Fatalf("send: %#x %v", code, err)
		}
		return bob.Inbox.NextMethod(t, "SendMsg", wait).Str("msgid")
	}
	// Past the window: wait until the message is certainly older than it.
	late := send("too old to recall")
	time.Sleep(cfg.Inbox.DeleteWindow + 20*time.Millisecond)
	code, err := alice.Pub("im/delmsg", fmt.Sprintf(`{"uid":10021,"msgid":%q}`, late))
	if err != nil || code != 0x83 {
		t.Fatalf("late delete: PUBACK %#x %v, want 0x83", code, err)
	}
	if e := alice.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "too_late" || e.Str("topic") != "im/delmsg" {
		t.Fatalf("late delete: %s", e.Raw)
	}
	r := api.Do(t, "DELETE", "/api/v1/messages/"+late, mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if r.Status != 409 || r.ErrorCode() != "too_late" {
		t.Fatalf("late delete over HTTP: %d %s", r.Status, r.Raw)
	}
	h := api.Do(t, "GET", "/api/v1/conversations/10001/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, nil)
	if items := h.List("messages"); len(items) != 1 || items[0]["msgid"] != late {
		t.Fatalf("bob's history after refused deletes = %s", h.Raw)
	}

	// Within the window: deleted as before.
	fresh := send("oops")
	if code, err := alice.Pub("im/delmsg", fmt.Sprintf(`{"uid":10021,"msgid":%q}`, fresh)); err != nil || code != 0 {
		t.Fatalf("delete in time: %#x %v", code, err)
	}
	if d := bob.Inbox.NextMethod(t, "DelMsg", wait); d.Str("msgid") != fresh {
		t.Fatalf("DelMsg = %s", d.Raw)
	}
}

// A read mark on one device reaches the reader's other devices with the
// new unread total, over MQTT and over HTTP; the peer gets its receipt.
func TestReadSync(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Inbox.SingleLogin = false
	b := mqtttest.Start(t, cfg)
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	tok := mqtttest.Token(t, "10021")
	phone := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/phone", Subscribe: true})
	tablet := mqtttest.MustV5(t, b.MQTTAddr(), "10021", tok, mqtttest.V5Options{ClientID: "10021/tablet", Subscribe: true, SessionExpiry: 3600})
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	carol := mqtttest.MustV3(t, b.MQTTAddr(), "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Subscribe: true})

	var ids []string
	for i := range 3 {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"a%d"}`, i))
		ids = append(ids, phone.Inbox.NextMethod(t, "SendMsg", wait).Str("msgid"))
		tablet.Inbox.NextMethod(t, "SendMsg", wait)
	}
	carol.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"c"}`)
	phone.Inbox.NextMethod(t, "SendMsg", wait)
	tablet.Inbox.NextMethod(t, "SendMsg", wait)

	checkSync := func(e mqtttest.Envelope, msgid, unread string) {
		t.Helper()
		if e.Str("uid") != "10001" || e.Str("msgid") != msgid || e.Str("unread") != unread || e.Str("ts") == "" {
			t.Fatalf("read sync = %s, want uid 10001, msgid %s, unread %s", e.Raw, msgid, unread)
		}
	}
	// The phone reads the first message over MQTT: 2 of alice's and carol's remain.
	phone.MustPub(t, "im/read", fmt.Sprintf(`{"uid":10001,"msgid":%q}`, ids[0]))
	checkSync(tablet.Inbox.NextMethod(t, "ReadMsg", wait), ids[0], "3")
	checkSync(phone.Inbox.NextMethod(t, "ReadMsg", wait), ids[0], "3")
	if r := alice.Inbox.NextMethod(t, "ReadMsg", wait); r.Str("uid") != "10021" || r.Str("msgid") != ids[0] || r.Fields["unread"] != nil {
		t.Fatalf("alice's receipt = %s", r.Raw)
	}

	// The tablet reads the rest over HTTP: only carol's remains.
	r := api.Do(t, "POST", "/api/v1/conversations/10001/read", mqtttest.Auth{Token: tok}, map[string]string{"msgid": ids[2]})
	if r.Status != 200 {
		t.Fatalf("mark read over HTTP: %d %s", r.Status, r.Raw)
	}
	checkSync(phone.Inbox.NextMethod(t, "ReadMsg", wait), ids[2], "1")
	checkSync(tablet.Inbox.NextMethod(t, "ReadMsg", wait), ids[2], "1")

	// A refused mark syncs nothing.
	phone.MustPub(t, "im/read", `{"uid":10001,"msgid":"12345"}`)
	if e := phone.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "not_found" {
		t.Fatalf("bad mark: %s", e.Raw)
	}
	tablet.Inbox.None(t, 200*time.Millisecond)
}

// im/typing reaches the recipient's online connections at QoS 0 with the
// sender stamped by the broker, is never stored, and is rate limited.
func TestTyping(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	alice := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})

	start := time.Now()
	if code, err := alice.Pub("im/typing", `{"uid":10021,"from":"someone-else"}`); err != nil || code != 0 {
		t.Fatalf("typing: %#x %v", code, err)
	}
	got := bob.Inbox.NextMethod(t, "Typing", wait)
	if got.Str("uid") != "10001" || got.Str("action") != "9" || got.Topic != "inbox/10021" {
		t.Fatalf("Typing = %s on %s", got.Raw, got.Topic)
	}
	checkServerTime(t, got.Raw, start)

	for _, tt := range []struct {
		name, topic, payload, code string
		reason                     byte
	}{
		{"deny: to yourself", "im/typing", `{"uid":10001}`, "bad_uid", 0x99},
		{"deny: no uid", "im/typing", `{}`, "missing_field", 0x99},
		{"deny: bad uid", "im/typing", `{"uid":"a b"}`, "bad_uid", 0x99},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, err := alice.Pub(tt.topic, tt.payload); err != nil || code != tt.reason {
				t.Fatalf("PUBACK %#x %v, want %#x", code, err, tt.reason)
			}
			if e := alice.Inbox.NextMethod(t, "Error", wait); e.Str("code") != tt.code {
				t.Fatalf("Error = %s, want %s", e.Raw, tt.code)
			}
		})
	}

	// Over the burst the sender is told to slow down (0x97); bob gets fewer.
	limited := 0
	for range 10 {
		code, err := alice.Pub("im/typing", `{"uid":10021}`)
		if err != nil {
			t.Fatal(err)
		}
		if code == 0x97 {
			limited++
		}
	}
	if limited < 5 {
		t.Fatalf("%d of 10 typing signals refused, want most", limited)
	}

	// Nothing was stored: bob's next session, and history, have no Typing.
	bob.Disconnect(250)
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	r := api.Do(t, "GET", "/api/v1/conversations", mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, nil)
	if r.Status != 200 || len(r.List("conversations")) != 0 {
		t.Fatalf("bob's conversations = %s", r.Raw)
	}
	bob2 := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice.Pub("im/sendmsg", `{"uid":10021,"msg":"marker"}`)
	if e := bob2.Inbox.Next(t, wait); e.Method() != "SendMsg" {
		t.Fatalf("bob's next session got %s before the marker", e.Raw)
	}
}

// A typing signal reaches the recipient on another node sharing the
// Redis store.
func TestTypingAcrossNodes(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	node := func(id int) string {
		cfg := mqtttest.Config(t)
		cfg.Store = "redis"
		cfg.NodeID = id
		cfg.Redis.Addresses = []string{r.Addr}
		cfg.Redis.Prefix = "typing:"
		return mqtttest.Start(t, cfg).MQTTAddr()
	}
	a, b := node(1), node(2)
	alice := mqtttest.MustV3(t, a, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	bob := mqtttest.MustV3(t, b, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice.MustPub(t, "im/typing", `{"uid":10021}`)
	if got := bob.Inbox.NextMethod(t, "Typing", wait); got.Str("uid") != "10001" {
		t.Fatalf("Typing across nodes = %s", got.Raw)
	}
}

// im/editmsg and PUT /api/v1/messages/{msgid}: the sender edits within
// inbox.edit_window, both parties get EditMsg, history shows the new text
// and when; everyone else, and late edits, are refused.
func TestEditMessage(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	alice := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	bob := mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{Subscribe: true})

	if code, err := alice.Pub("im/sendmsg", `{"uid":10021,"msg":"teh text","extra":"x"}`); err != nil || code != 0 {
		t.Fatalf("send: %#x %v", code, err)
	}
	msgid := bob.Inbox.NextMethod(t, "SendMsg", wait).Str("msgid")
	alice.Inbox.NextMethod(t, "MsgSent", wait)

	start := time.Now()
	if code, err := alice.Pub("im/editmsg", fmt.Sprintf(`{"uid":10021,"msgid":%q,"msg":"the text"}`, msgid)); err != nil || code != 0 {
		t.Fatalf("edit: %#x %v", code, err)
	}
	var editTS int64
	for _, c := range []*mqtttest.V5{bob, alice} {
		e := c.Inbox.NextMethod(t, "EditMsg", wait)
		if e.Str("action") != "8" || e.Str("msgid") != msgid || e.Str("ct") != "the text" {
			t.Fatalf("EditMsg = %s", e.Raw)
		}
		editTS = checkServerTime(t, e.Raw, start)
	}
	h := api.Do(t, "GET", "/api/v1/conversations/10001/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, nil)
	items := h.List("messages")
	if len(items) != 1 || items[0]["ct"] != "the text" || items[0]["extra"] != "x" || fmt.Sprint(items[0]["edited"]) != strconv.FormatInt(editTS, 10) {
		t.Fatalf("bob's history after the edit = %s (EditMsg ts %d)", h.Raw, editTS)
	}

	for _, tt := range []struct {
		name    string
		by      *mqtttest.V5
		payload string
		code    string
		reason  byte
	}{
		{"deny: the recipient", bob, fmt.Sprintf(`{"uid":10001,"msgid":%q,"msg":"mine now"}`, msgid), "forbidden", 0x87},
		{"deny: unknown msgid", alice, `{"uid":10021,"msgid":"12345","msg":"x"}`, "not_found", 0x83},
		{"deny: wrong recipient", alice, fmt.Sprintf(`{"uid":10031,"msgid":%q,"msg":"x"}`, msgid), "not_found", 0x83},
		{"deny: empty", alice, fmt.Sprintf(`{"uid":10021,"msgid":%q,"msg":""}`, msgid), "empty_message", 0x99},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, err := tt.by.Pub("im/editmsg", tt.payload); err != nil || code != tt.reason {
				t.Fatalf("PUBACK %#x %v, want %#x", code, err, tt.reason)
			}
			if e := tt.by.Inbox.NextMethod(t, "Error", wait); e.Str("code") != tt.code || e.Str("topic") != "im/editmsg" {
				t.Fatalf("Error = %s, want %s", e.Raw, tt.code)
			}
		})
	}

	// Over HTTP, by the sender.
	r := api.Do(t, "PUT", "/api/v1/messages/"+msgid, mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, map[string]string{"msg": "final"})
	if r.Status != 200 {
		t.Fatalf("edit over HTTP: %d %s", r.Status, r.Raw)
	}
	if e := bob.Inbox.NextMethod(t, "EditMsg", wait); e.Str("ct") != "final" {
		t.Fatalf("EditMsg after HTTP edit = %s", e.Raw)
	}
	r = api.Do(t, "PUT", "/api/v1/messages/"+msgid, mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, map[string]string{"msg": "x"})
	if r.Status != 403 || r.ErrorCode() != "forbidden" {
		t.Fatalf("edit by the recipient over HTTP: %d %s", r.Status, r.Raw)
	}
	h = api.Do(t, "GET", "/api/v1/conversations/10021/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
	if items := h.List("messages"); len(items) != 1 || items[0]["ct"] != "final" {
		t.Fatalf("alice's history = %s", h.Raw)
	}
}

// inbox.edit_window: past it an edit is too_late; 0 turns editing off.
func TestEditWindow(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window time.Duration
		code   string
		reason byte
	}{
		{"deny: past the window", 50 * time.Millisecond, "too_late", 0x83},
		{"deny: editing off", 0, "forbidden", 0x87},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mqtttest.Config(t)
			cfg.Inbox.EditWindow = tt.window
			b := mqtttest.Start(t, cfg)
			alice := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
			alice.Pub("im/sendmsg", `{"uid":10021,"msg":"x"}`)
			msgid := alice.Inbox.NextMethod(t, "MsgSent", wait).Str("msgid")
			time.Sleep(tt.window + 20*time.Millisecond)
			if code, err := alice.Pub("im/editmsg", fmt.Sprintf(`{"uid":10021,"msgid":%q,"msg":"y"}`, msgid)); err != nil || code != tt.reason {
				t.Fatalf("PUBACK %#x %v, want %#x", code, err, tt.reason)
			}
			if e := alice.Inbox.NextMethod(t, "Error", wait); e.Str("code") != tt.code {
				t.Fatalf("Error = %s", e.Raw)
			}
			api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
			h := api.Do(t, "GET", "/api/v1/conversations/10021/messages", mqtttest.Auth{Token: mqtttest.Token(t, "10001")}, nil)
			if items := h.List("messages"); len(items) != 1 || items[0]["ct"] != "x" || items[0]["edited"] != nil {
				t.Fatalf("history after a refused edit = %s", h.Raw)
			}
		})
	}
}
