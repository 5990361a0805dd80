package broker_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Every bad request gets its Error envelope (and reason code on MQTT 5),
// and the same connection keeps working afterwards.
func TestBadInput_ErrorThenConnectionStillWorks(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{Subscribe: true})

	// Messages bob sent to each of them, which they may not delete.
	bobsID := map[string]string{}
	for _, uid := range []string{"10001", "10002"} {
		bob.MustPub(t, "im/sendmsg", `{"uid":`+uid+`,"msg":"bob's"}`)
		bobsID[uid] = bob.Inbox.NextMethod(t, "MsgSent", wait).Str("msgid")
	}
	v3.Inbox.NextMethod(t, "SendMsg", wait)
	v5.Inbox.NextMethod(t, "SendMsg", wait)
	payload := func(tmpl, self string) string {
		return strings.NewReplacer("%SELF%", self, "%BOBS%", bobsID[self]).Replace(tmpl)
	}

	cases := []struct {
		name, topic, payload, code string
		v5code                     byte
	}{
		{"malformed JSON", "im/sendmsg", `{"uid":10021,"msg":`, "bad_json", 0x99},
		{"not an object", "im/sendmsg", `[1,2,3]`, "bad_json", 0x99},
		{"invalid UTF-8", "im/sendmsg", "{\"uid\":10021,\"msg\":\"\xff\xfe\"}", "bad_json", 0x99},
		{"deeply nested", "im/sendmsg", `{"uid":10021,"msg":"x","extra":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, "bad_json", 0x99},
		{"msg wrong type", "im/sendmsg", `{"uid":10021,"msg":5}`, "bad_field", 0x99},
		{"uid wrong type", "im/sendmsg", `{"uid":true,"msg":"x"}`, "bad_field", 0x99},
		{"missing msg", "im/sendmsg", `{"uid":10021}`, "missing_field", 0x99},
		{"missing uid", "im/sendmsg", `{"msg":"x"}`, "missing_field", 0x99},
		{"invalid uid", "im/sendmsg", `{"uid":"a b","msg":"x"}`, "bad_uid", 0x99},
		{"fractional uid", "im/sendmsg", `{"uid":1.5,"msg":"x"}`, "bad_uid", 0x99},
		{"message to yourself", "im/sendmsg", `{"uid":%SELF%,"msg":"x"}`, "bad_uid", 0x99},
		{"empty message", "im/sendmsg", `{"uid":10021,"msg":""}`, "empty_message", 0x99},
		{"oversize message", "im/sendmsg", `{"uid":10021,"msg":"` + strings.Repeat("x", 70000) + `"}`, "too_large", 0x99},
		{"unknown method", "im", `{"_method_":"Eval","uid":10021}`, "unknown_method", 0x99},
		{"method mismatch", "im/sendmsg", `{"_method_":"DelMsg","uid":10021,"msg":"x"}`, "unknown_method", 0x99},
		{"delete unknown message", "im/delmsg", `{"msgid":"123456789"}`, "not_found", 0x83},
		{"delete someone else's message", "im/delmsg", `{"msgid":"%BOBS%"}`, "forbidden", 0x87},
		{"notice from a user", "im", `{"_method_":"SystemAdmin","content":"x"}`, "forbidden", 0x87},
		{"unknown im topic", "im/eval", `{}`, "forbidden", 0x87},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// 3.1.1
			v3.MustPub(t, tc.topic, payload(tc.payload, "10001"))
			e := v3.Inbox.NextMethod(t, "Error", wait)
			if e.Str("code") != tc.code || e.Str("action") != "0" || e.Str("topic") != tc.topic || e.Str("detail") == "" {
				t.Fatalf("v3: want %s, got %s", tc.code, e.Raw)
			}
			// MQTT 5
			code, err := v5.Pub(tc.topic, payload(tc.payload, "10002"))
			if err != nil || code != tc.v5code {
				t.Fatalf("v5: reason code %#x err %v, want %#x", code, err, tc.v5code)
			}
			if e := v5.Inbox.NextMethod(t, "Error", wait); e.Str("code") != tc.code {
				t.Fatalf("v5: want %s, got %s", tc.code, e.Raw)
			}
			// Same connections, still working.
			v3.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"after %s","cid":"ok"}`, tc.name))
			if e := v3.Inbox.NextMethod(t, "MsgSent", wait); e.Str("cid") != "ok" {
				t.Fatalf("v3 after error: %s", e.Raw)
			}
			if code, err := v5.Pub("im/sendmsg", `{"uid":10021,"msg":"v5 after"}`); err != nil || code != 0 {
				t.Fatalf("v5 after error: %#x %v", code, err)
			}
			checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "after "+tc.name)
			checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10002", "v5 after")
		})
	}
	// The cid of a refused request is echoed so the app can match it.
	v3.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"","cid":"c-9"}`)
	if e := v3.Inbox.NextMethod(t, "Error", wait); e.Str("cid") != "c-9" {
		t.Fatalf("cid not echoed: %s", e.Raw)
	}
}

func TestDeleteMessage(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"oops"}`)
	id := bob.Inbox.Next(t, wait).Str("msgid")
	alice.Inbox.NextMethod(t, "MsgSent", wait)

	// The recipient may not delete it...
	bob.MustPub(t, "im/delmsg", `{"uid":10001,"msgid":"`+id+`"}`)
	if e := bob.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "forbidden" {
		t.Fatalf("recipient delete: %s", e.Raw)
	}
	// ...the sender may; both sides are told (the sender's other devices too).
	alice.MustPub(t, "im/delmsg", `{"uid":10021,"msgid":"`+id+`"}`)
	for _, in := range []*mqtttest.Inbox{bob.Inbox, alice.Inbox} {
		if e := in.NextMethod(t, "DelMsg", wait); e.Str("msgid") != id || e.Str("action") != "4" {
			t.Fatalf("DelMsg = %s", e.Raw)
		}
	}
}
