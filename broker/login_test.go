package broker_test

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// A second login of the same uid logs the first out with a Logout
// envelope and DISCONNECT 0x8E; messages then reach the new device only.
func TestSingleLogin_SecondLoginKicksFirst(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	tok := mqtttest.Token(t, "10021")
	phone := mqtttest.MustV5(t, b.MQTTAddr(), "10021", tok, mqtttest.V5Options{ClientID: "10021/phone", Subscribe: true, SessionExpiry: 3600})
	tablet := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/tablet", Subscribe: true})

	logout := phone.Inbox.NextMethod(t, "Logout", wait)
	if logout.Str("action") != "5" || logout.Str("reason") == "" {
		t.Fatalf("logout envelope = %s", logout.Raw)
	}
	select {
	case d := <-phone.Disconnects:
		if d.ReasonCode != 0x8E {
			t.Fatalf("disconnect reason %#x, want 0x8E", d.ReasonCode)
		}
	case <-time.After(wait):
		t.Fatal("first login was not disconnected")
	}

	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"to the new device"}`)
	checkSendMsg(t, tablet.Inbox.Next(t, wait), "10001", "to the new device")
}

// With single_login false every device keeps its session and gets a copy.
func TestMultiDevice_EachGetsACopy(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Inbox.SingleLogin = false
	b := mqtttest.Start(t, cfg)
	tok := mqtttest.Token(t, "10021")
	phone := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/phone", Subscribe: true})
	tablet := mqtttest.MustV5(t, b.MQTTAddr(), "10021", tok, mqtttest.V5Options{ClientID: "10021/tablet", Subscribe: true, SessionExpiry: 3600})

	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"both"}`)
	checkSendMsg(t, phone.Inbox.Next(t, wait), "10001", "both")
	checkSendMsg(t, tablet.Inbox.Next(t, wait), "10001", "both")

	// The phone goes offline (after its PUBACK arrived); its own copy waits for it.
	waitMetric(t, "http://"+b.AdminAddr(), "inboxmq_inbox_acks_total", 2)
	phone.Disconnect(250)
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"while the phone sleeps"}`)
	checkSendMsg(t, tablet.Inbox.Next(t, wait), "10001", "while the phone sleeps")
	phone2 := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/phone"})
	checkSendMsg(t, phone2.Inbox.Next(t, wait), "10001", "while the phone sleeps")
	phone2.Inbox.None(t, 200*time.Millisecond)
}

// With single_login false a new device starts at the end of the inbox, and
// from its first connection on it misses nothing: its position is saved at
// once, not at its first acknowledgement.
func TestMultiDevice_NewDeviceMissesNothingOnceConnected(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Inbox.SingleLogin = false
	b := mqtttest.Start(t, cfg)
	tok := mqtttest.Token(t, "10021")
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"before the phone"}`)

	phone := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/phone", Subscribe: true})
	phone.Inbox.None(t, 300*time.Millisecond) // history is in the API
	phone.Disconnect(250)
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"while the phone sleeps"}`)
	phone2 := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/phone"})
	checkSendMsg(t, phone2.Inbox.Next(t, wait), "10001", "while the phone sleeps")
	phone2.Inbox.None(t, 200*time.Millisecond)
}

// A reused client id of the same account takes the session over cleanly,
// also when the old connection was non-persistent (mochi bug 2 in the notes).
func TestSameClientIDReconnects(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	tok := mqtttest.Token(t, "10021")
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	for i := 0; i < 30; i++ {
		c := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{Clean: i%2 == 0, Subscribe: true})
		alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"ping"}`)
		e := c.Inbox.Next(t, wait)
		if e.Method() != "SendMsg" {
			t.Fatalf("round %d: got %s", i, e.Raw)
		}
		// Leave without DISCONNECT on odd rounds: the next login takes over.
		if i%2 == 0 {
			c.Disconnect(0)
		}
	}
}

// A new login that reuses the old connection's client id (the {uid}
// convention) also tells the old one Logout before the takeover, for
// persistent and non-persistent sessions alike.
func TestSingleLogin_SameClientIDGetsLogout(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	tok := mqtttest.Token(t, "10021")
	for _, clean := range []bool{false, true} {
		old := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021", Clean: clean, Subscribe: true})
		mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021", Clean: clean, Subscribe: true})
		if e := old.Inbox.NextMethod(t, "Logout", wait); e.Str("action") != "5" {
			t.Fatalf("clean=%v: logout = %s", clean, e.Raw)
		}
	}
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10021", tok, mqtttest.V5Options{ClientID: "10021", SessionExpiry: 60, Subscribe: true})
	mqtttest.MustV5(t, b.MQTTAddr(), "10021", tok, mqtttest.V5Options{ClientID: "10021", SessionExpiry: 60, Subscribe: true})
	v5.Inbox.NextMethod(t, "Logout", wait)
}

// MQTT 3.1.1 has no server-to-client DISCONNECT: a 3.1.1 connection ended
// by a newer login (another client id or the same one) or an admin kick
// gets its Logout envelope and then a closed socket, never the bytes e0 00
// (paho reports them as rc=2, mosquitto_sub as a protocol error).
func TestLogout_311GetsNoDisconnectPacket(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	tok := mqtttest.Token(t, "10021")
	api := mqtttest.HTTP{Base: "http://" + b.AdminAddr()} // the admin API: kicks
	for _, tc := range []struct {
		name  string
		clean bool
		end   func()
	}{
		{"newer login, other client id", false, func() {
			mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "10021/tablet", Clean: true})
		}},
		{"newer login, same client id, persistent", false, func() {
			mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "raw"})
		}},
		{"newer login, same client id, clean", true, func() {
			mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: "raw", Clean: true})
		}},
		{"admin kick", false, func() {
			resp := api.Do(t, "POST", "/api/v1/kick", mqtttest.Auth{User: mqtttest.AdminName, Password: mqtttest.AdminPassword},
				map[string]any{"uid": "10021", "reason": "test"})
			if resp.Status != 200 {
				t.Fatalf("kick: %d %s", resp.Status, resp.Raw)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{
				ClientIdentifier: "raw", Clean: tc.clean, Username: []byte("10021"), Password: []byte(tok),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if code, err := mqtttest.RawSubscribe(conn, "inbox/10021", 0); err != nil || code != 0 {
				t.Fatalf("SUBACK: %#x, %v", code, err)
			}
			tc.end()
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			sawLogout := false
			for {
				typ, body, err := mqtttest.ReadRawPacket(conn)
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					break
				}
				if err != nil {
					t.Fatalf("reading until the socket closes: %v", err)
				}
				switch typ {
				case packets.Disconnect:
					t.Fatalf("a 3.1.1 connection got a DISCONNECT packet (% x)", body)
				case packets.Publish:
					sawLogout = sawLogout || bytes.Contains(body, []byte(`"Logout"`))
				}
			}
			if !sawLogout && tc.name != "newer login, same client id, clean" {
				t.Fatal("socket closed without the Logout envelope")
			}
		})
	}
}
