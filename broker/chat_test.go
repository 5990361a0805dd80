package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

const wait = 10 * time.Second

func TestChatBothWays_V3(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})

	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"你好","extra":"x","cid":"c-1"}`)
	got := bob.Inbox.Next(t, wait)
	checkSendMsg(t, got, "10001", "你好")
	if got.Str("extra") != "x" {
		t.Errorf("extra = %q", got.Str("extra"))
	}
	sent := alice.Inbox.Next(t, wait)
	if sent.Method() != "MsgSent" || sent.Str("action") != "6" || sent.Str("to") != "10021" ||
		sent.Str("cid") != "c-1" || sent.Str("msgid") != got.Str("msgid") || sent.Str("ct") != "你好" {
		t.Fatalf("sender copy = %s", sent.Raw)
	}

	bob.MustPub(t, "im/sendmsg", `{"uid":"10001","msg":"hi back"}`)
	checkSendMsg(t, alice.Inbox.NextMethod(t, "SendMsg", wait), "10021", "hi back")
}

func TestChatBothWays_V5(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	// Receive Maximum set: the case that deadlocks unpatched mochi v2.7.9.
	o := mqtttest.V5Options{Subscribe: true, SessionExpiry: 3600, ReceiveMaximum: 10}
	alice := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), o)
	bob := mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), o)

	for i := 0; i < 50; i++ {
		code, err := alice.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"a%d"}`, i))
		if err != nil || code != 0 {
			t.Fatalf("publish %d: code %#x err %v", i, code, err)
		}
		code, err = bob.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10001,"msg":"b%d"}`, i))
		if err != nil || code != 0 {
			t.Fatalf("publish %d: code %#x err %v", i, code, err)
		}
	}
	for i := 0; i < 50; i++ {
		checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", fmt.Sprintf("a%d", i))
		checkSendMsg(t, alice.Inbox.NextMethod(t, "SendMsg", wait), "10021", fmt.Sprintf("b%d", i))
	}
}

func TestChatAcrossProtocols(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "u3", mqtttest.Token(t, "u3"), mqtttest.V3Options{Subscribe: true})
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "u5", mqtttest.Token(t, "u5"), mqtttest.V5Options{Subscribe: true})
	v3.MustPub(t, "im/sendmsg", `{"uid":"u5","msg":"from v3"}`)
	checkSendMsg(t, v5.Inbox.Next(t, wait), "u3", "from v3")
	if code, err := v5.Pub("im/sendmsg", `{"uid":"u3","msg":"from v5"}`); err != nil || code != 0 {
		t.Fatalf("code %#x err %v", code, err)
	}
	checkSendMsg(t, v3.Inbox.NextMethod(t, "SendMsg", wait), "u5", "from v5")
}

func TestChatOverWebSocket(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	ws, err := mqtttest.ConnectV3WS("ws://"+b.WebSocketAddr()+"/mqtt", "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Disconnect(0)
	ws.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"over websocket"}`)
	checkSendMsg(t, bob.Inbox.Next(t, wait), "10001", "over websocket")
	bob.MustPub(t, "im/sendmsg", `{"uid":10001,"msg":"back over tcp"}`)
	checkSendMsg(t, ws.Inbox.NextMethod(t, "SendMsg", wait), "10021", "back over tcp")
}

// checkSendMsg asserts a SendMsg envelope with the broker-stamped sender.
func checkSendMsg(t *testing.T, e mqtttest.Envelope, from, text string) {
	t.Helper()
	if e.Method() != "SendMsg" || e.Str("action") != "3" || e.Str("uid") != from || e.Str("ct") != text ||
		e.Str("nickname") != "nick-"+from || e.Str("avatar") != "https://a.example/"+from+".png" || e.Str("msgid") == "" {
		t.Fatalf("want SendMsg from %s %q, got %s", from, text, e.Raw)
	}
}

// A resent request (same cid, e.g. a QoS 1 publish whose PUBACK was lost)
// is acknowledged again but stored once.
func TestResendWithSameCIDStoredOnce(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	for i := 0; i < 3; i++ {
		alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"once","cid":"c-42"}`)
	}
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"twice","cid":"c-43"}`)
	if e := bob.Inbox.Next(t, wait); e.Str("ct") != "once" {
		t.Fatalf("got %s", e.Raw)
	}
	if e := bob.Inbox.Next(t, wait); e.Str("ct") != "twice" {
		t.Fatalf("the resend was stored again: %s", e.Raw)
	}
}

// An inbox message larger than the MQTT 5 client's Maximum Packet Size is
// discarded for that client, as the spec says [MQTT-3.1.2-25], and the ones
// after it still arrive: it must not wedge the inbox.
func TestChat_OverClientMaximumPacketSizeIsSkipped(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	bob := mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"),
		mqtttest.V5Options{Subscribe: true, SessionExpiry: 3600, MaximumPacketSize: 400})

	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"small before"}`)
	alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"%s"}`, strings.Repeat("x", 1000)))
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"small after"}`)

	checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "small before")
	checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "small after")
	// The cursor moved past the skipped message: a new connection of the
	// session gets what comes next, and neither the skipped message nor
	// the ones after it again. (Before, the skipped message stayed
	// unacknowledged in the window for good and held the cursor back, so
	// every reconnect redelivered everything after it.) bob's own request
	// is acknowledged only after the broker has read every packet bob
	// sent before it, including the PUBACK of "small after".
	time.Sleep(100 * time.Millisecond) // paho writes that PUBACK once the handler returned
	if code, err := bob.Pub("im/conn", `{"uid":10021,"nickname":"bob"}`); err != nil || code != 0 {
		t.Fatalf("im/conn: code %#x err %v", code, err)
	}
	bob.Close()
	bob = mqtttest.MustV5(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"),
		mqtttest.V5Options{Subscribe: true, SessionExpiry: 3600, MaximumPacketSize: 400})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"sentinel"}`)
	checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "sentinel")
	// The big one was stored: the sender's copy reaches a client without
	// such a limit.
	for _, want := range []int{len("small before"), 1000, len("small after"), len("sentinel")} {
		if e := alice.Inbox.NextMethod(t, "MsgSent", wait); len(e.Str("ct")) != want {
			t.Fatalf("want a MsgSent copy with %d bytes of text, got %s", want, e.Raw)
		}
	}
}
