package broker_test

import (
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// A connection does not outlive its token: when the token expires (plus
// auth.token_leeway) the client gets a Logout envelope saying why, then
// DISCONNECT 0x87 (MQTT 5) or a closed socket (3.1.1). Static accounts,
// which have no expiry, stay.
func TestExpiry_ConnectionEndsWithItsToken(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Auth.TokenLeeway = time.Second
	b := mqtttest.Start(t, cfg)
	short := func(uid string) string {
		return mqtttest.TokenWith(t, auth.Claims{UID: uid, TTL: 2 * time.Second})
	}
	start := time.Now()
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10001", short("10001"), mqtttest.V5Options{Subscribe: true})
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10002", short("10002"), mqtttest.V3Options{Subscribe: true, Clean: true})
	admin := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})

	for _, in := range []*mqtttest.Inbox{v5.Inbox, v3.Inbox} {
		if e := in.NextMethod(t, "Logout", 10*time.Second); e.Str("reason") != "token expired" {
			t.Fatalf("logout = %s", e.Raw)
		}
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("logged out after %s, before the token (2 s) and the leeway (1 s) ran out", took)
	}
	select {
	case d := <-v5.Disconnects:
		if d.ReasonCode != 0x87 {
			t.Fatalf("DISCONNECT %#x, want 0x87", d.ReasonCode)
		}
	case <-time.After(wait):
		t.Fatal("MQTT 5 connection not ended at its token's expiry")
	}
	for deadline := time.Now().Add(wait); v3.IsConnectionOpen(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("3.1.1 connection still open after its token expired")
		}
	}
	if !admin.IsConnectionOpen() {
		t.Fatal("a static account was logged out")
	}
	admin.MustPub(t, "im/systemadmin", `{"uid":10001,"content":"still here"}`)
	// A new token logs in again.
	mqtttest.MustV3(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V3Options{Clean: true})
}
