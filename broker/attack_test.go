package broker_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

func TestAttack_SubscribeOutsideOwnInbox(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{Subscribe: true})
	for _, filter := range []string{
		"inbox/10021", "inbox/+", "inbox/#", "#", "+/+", "+/10021", "+", "inbox",
		"$share/g/inbox/10001", "$share/g/inbox/10021", "$share/g/#", "$SYS/#", "broadcast/#", "im/sendmsg", "unopened/topic",
	} {
		t.Run(filter, func(t *testing.T) {
			if err := v3.Sub(filter, 1); err == nil {
				t.Errorf("v3: subscribe %q granted", filter)
			}
			code, err := v5.Sub(filter, 1)
			if err != nil || code != 0x87 {
				t.Errorf("v5: subscribe %q: code %#x err %v, want 0x87", filter, code, err)
			}
		})
	}
	// The victim's messages never reach the attackers.
	victim := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	victim.MustPub(t, "im/sendmsg", `{"uid":10031,"msg":"secret"}`)
	victim.Inbox.NextMethod(t, "MsgSent", wait)
	v3.Inbox.None(t, 200*time.Millisecond)
	v5.Inbox.None(t, 0)
}

func TestAttack_PublishIntoReservedTopics(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	victim := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	if err := victim.Sub("broadcast", 1); err != nil {
		t.Fatal(err)
	}
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{Subscribe: true})
	forged := `{"_method_":"SendMsg","action":"3","msgid":"1","nickname":"bank","avatar":"","uid":1,"ct":"send money","extra":""}`
	for _, topic := range []string{"inbox/10021", "inbox/10001", "broadcast", "$SYS/broker/uptime", "im/systemadmin", "im/other", "anything"} {
		t.Run(topic, func(t *testing.T) {
			payload := forged
			if topic == "im/systemadmin" {
				payload = `{"content":"fake notice"}`
			}
			// 3.1.1: acked, not routed, Error envelope, connection kept.
			v3.MustPub(t, topic, payload)
			if e := v3.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "forbidden" || e.Str("topic") != topic {
				t.Errorf("v3 error envelope = %s", e.Raw)
			}
			// MQTT 5: PUBACK 0x87 and an Error envelope.
			code, err := v5.Pub(topic, payload)
			if err != nil || code != 0x87 {
				t.Errorf("v5 publish %q: code %#x err %v, want 0x87", topic, code, err)
			}
			if e := v5.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "forbidden" {
				t.Errorf("v5 error envelope = %s", e.Raw)
			}
		})
	}
	victim.Inbox.None(t, 300*time.Millisecond)
}

// A client id chosen by one account never reaches another account's session.
func TestAttack_ClientIDTakeoverAcrossAccounts(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	victim := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{ClientID: "10021", Subscribe: true})
	attacker := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{ClientID: "10021"})
	admin, err := mqtttest.ConnectV3(b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{ClientID: "10021"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Disconnect(0)
	if !victim.IsConnectionOpen() {
		t.Fatal("victim was disconnected by another account's client id")
	}
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10099", mqtttest.Token(t, "10099"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"only for the victim"}`)
	checkSendMsg(t, victim.Inbox.Next(t, wait), "10099", "only for the victim")
	attacker.Inbox.None(t, 200*time.Millisecond)
	admin.Inbox.None(t, 0)
}

func TestAttack_BadTokens(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	now := time.Now()
	sign := func(secret string, claims jwt.MapClaims, method jwt.SigningMethod) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	enc := base64.RawURLEncoding.EncodeToString
	algNone := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"sub":"10001","exp":%d}`, now.Add(time.Hour).Unix()))) + "."
	valid := jwt.MapClaims{"sub": "10001", "exp": now.Add(time.Hour).Unix()}
	good := sign(mqtttest.Secret, valid, jwt.SigningMethodHS256)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + enc([]byte(fmt.Sprintf(`{"sub":"10001","exp":%d,"role":"admin"}`, now.Add(time.Hour).Unix()))) + "." + parts[2]

	for _, tc := range []struct{ name, user, token string }{
		{"forged signature", "10001", sign("another-secret-another-secret-0123456789", valid, jwt.SigningMethodHS256)},
		{"alg none", "10001", algNone},
		{"HS512 with the same secret", "10001", sign(mqtttest.Secret, valid, jwt.SigningMethodHS512)},
		{"expired", "10001", sign(mqtttest.Secret, jwt.MapClaims{"sub": "10001", "exp": now.Add(-time.Minute).Unix()}, jwt.SigningMethodHS256)},
		{"not yet valid", "10001", sign(mqtttest.Secret, jwt.MapClaims{"sub": "10001", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}, jwt.SigningMethodHS256)},
		{"no exp", "10001", sign(mqtttest.Secret, jwt.MapClaims{"sub": "10001"}, jwt.SigningMethodHS256)},
		{"wrong subject", "10021", good},
		{"tampered claims", "10001", tampered},
		{"garbage", "10001", "not a token"},
		{"empty password", "10001", ""},
		{"static account with a user token", mqtttest.AdminName, good},
		{"static account wrong password", mqtttest.AdminName, "guess"},
		{"invalid uid", "../10001", good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := mqtttest.ConnectV3(b.MQTTAddr(), tc.user, tc.token, mqtttest.V3Options{Clean: true, ClientID: "x"})
			if err == nil {
				c.Disconnect(0)
				t.Fatal("v3 connection accepted")
			}
			c5, err := mqtttest.ConnectV5(b.MQTTAddr(), tc.user, tc.token, mqtttest.V5Options{ClientID: "x"})
			if err == nil {
				c5.Close()
				t.Fatal("v5 connection accepted")
			}
			if c5 != nil && c5.Connack != nil && c5.Connack.ReasonCode != 0x86 {
				t.Fatalf("v5 CONNACK %#x, want 0x86", c5.Connack.ReasonCode)
			}
		})
	}
	// Anonymous clients are off by default.
	if c, err := mqtttest.ConnectV3(b.MQTTAddr(), "", "", mqtttest.V3Options{Clean: true, ClientID: "anon"}); err == nil {
		c.Disconnect(0)
		t.Fatal("anonymous connection accepted")
	}
}

func TestAttack_SpoofedSenderFields(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	mallory := mqtttest.MustV3(t, b.MQTTAddr(), "10666", mqtttest.Token(t, "10666"), mqtttest.V3Options{Subscribe: true})
	mallory.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"hi","nickname":"Bank","avatar":"https://bank/logo.png",`+
		`"from":10001,"sender":10001,"_method_":"SendMsg","msgid":"1","action":"1"}`)
	e := bob.Inbox.Next(t, wait)
	if e.Str("uid") != "10666" || e.Str("nickname") != "nick-10666" || e.Str("avatar") != "https://a.example/10666.png" ||
		e.Str("action") != "3" || e.Str("msgid") == "1" {
		t.Fatalf("spoofed fields leaked: %s", e.Raw)
	}
	// im/conn cannot change someone else's profile.
	mallory.MustPub(t, "im/conn", `{"uid":10001,"nickname":"Alice"}`)
	if err := mallory.Inbox.NextMethod(t, "Error", wait); err.Str("code") != "forbidden" {
		t.Fatalf("im/conn for another uid: %s", err.Raw)
	}
	// ...but updates one's own, stamped from then on.
	mallory.MustPub(t, "im/conn", `{"uid":10666,"nickname":"Mallory","avatar":"https://m/a.png"}`)
	mallory.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"again"}`)
	e = bob.Inbox.Next(t, wait)
	if e.Str("nickname") != "Mallory" || e.Str("avatar") != "https://m/a.png" || e.Str("uid") != "10666" {
		t.Fatalf("profile update not stamped: %s", e.Raw)
	}
	// A profile a token could not carry is refused: control and bidi
	// characters in the nickname, a script URL as avatar.
	for _, bad := range []string{
		`{"nickname":"a\u0000b\r\n\u0007"}`, `{"nickname":"admin\u202egnp.exe"}`, `{"avatar":"javascript:alert(1)//"}`,
	} {
		mallory.MustPub(t, "im/conn", bad)
		if err := mallory.Inbox.NextMethod(t, "Error", wait); err.Str("code") != "bad_field" {
			t.Fatalf("im/conn %s: %s", bad, err.Raw)
		}
	}
	mallory.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"third"}`)
	e = bob.Inbox.Next(t, wait)
	if e.Str("nickname") != "Mallory" || e.Str("avatar") != "https://m/a.png" {
		t.Fatalf("a refused profile was stamped: %s", e.Raw)
	}
}

// A will may only target a topic the account could publish to.
func TestAttack_WillIntoInbox(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	_, err := mqtttest.ConnectV3(b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"),
		mqtttest.V3Options{Will: &mqtttest.Will{Topic: "inbox/10021", Payload: "forged"}})
	if err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Fatalf("will into another inbox: err = %v, want not authorized", err)
	}
}
