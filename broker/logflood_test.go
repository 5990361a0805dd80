package broker_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// heldBack matches a login refusal line that counts lines held back.
var heldBack = regexp.MustCompile(`reason=client_id_too_long .*suppressed_before=[1-9]`)

// A client cannot flood the log: refused SUBSCRIBE filters of 60,000
// control bytes, 65,000-byte usernames and client ids are clipped, refusal
// lines are rate-limited per connection and per address (with a count of
// what was held back), and over-long client ids are refused at CONNECT.
func TestAttack_LogFloodIsBounded(t *testing.T) {
	cfg := loggedConfig(t)
	b, logs := mqtttest.StartLogged(t, cfg)
	by := startBystanders(t, b.MQTTAddr())
	tok := mqtttest.Token(t, "10001")

	// 20 SUBSCRIBEs of 4 refused filters, 4.8 MB sent: the old broker
	// logged 19.2 MB for them.
	conn, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{ClientIdentifier: "flood", Clean: true,
		Username: []byte("10001"), Password: []byte(tok)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := len(logs.String())
	huge := "inbox/" + strings.Repeat("\x01", 60000)
	sent := 0
	for i := range 20 {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: uint16(i + 1)}
		for j := range 4 {
			pk.Filters = append(pk.Filters, packets.Subscription{Filter: huge + string(rune('a'+j)), Qos: 1})
		}
		var buf bytes.Buffer
		if err := pk.SubscribeEncode(&buf); err != nil {
			t.Fatal(err)
		}
		sent += buf.Len()
		if _, err := conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if typ, body, err := mqtttest.ReadRawPacket(conn); err != nil || typ != packets.Suback || body[2] != 0x80 {
			t.Fatalf("SUBACK %d: type %d % x, %v", i, typ, body[:min(len(body), 6)], err)
		}
	}
	logs.Wait(t, wait, "read denied", "uid=10001")
	if grew := len(logs.String()) - before; grew > 32<<10 {
		t.Fatalf("%d bytes of refused filters grew the log by %d bytes", sent, grew)
	}

	// Without credentials: 65,000-byte username and client id, many times.
	before = len(logs.String())
	long := strings.Repeat("u", 65000)
	for range 30 {
		if c, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{ClientIdentifier: long, Clean: true,
			Username: []byte(long), Password: []byte("x")}); err == nil {
			c.Close()
			t.Fatal("a 65,000-byte client id was accepted")
		} else if !strings.Contains(err.Error(), "02") {
			t.Fatalf("CONNACK: %v, want 0x02 (identifier rejected)", err)
		}
	}
	logs.Wait(t, wait, "login refused", "reason=client_id_too_long")
	if grew := len(logs.String()) - before; grew > 8<<10 {
		t.Fatalf("30 refused 65,000-byte logins grew the log by %d bytes", grew)
	}
	// The limit is exact, and MQTT 5 gets 0x85.
	ok := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{ClientID: strings.Repeat("c", 128)})
	ok.Close()
	c, err := mqtttest.ConnectV5(b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{ClientID: strings.Repeat("c", 129)})
	if err == nil || c == nil || c.Connack == nil || c.Connack.ReasonCode != 0x85 {
		t.Fatalf("129-byte client id: %v, want CONNACK 0x85", err)
	}
	// Held-back lines are counted in the next one.
	time.Sleep(1100 * time.Millisecond)
	if _, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{ClientIdentifier: long, Clean: true}); err == nil {
		t.Fatal("accepted")
	}
	logs.Wait(t, wait, "reason=client_id_too_long", "suppressed_before=")
	for deadline := time.Now().Add(wait); !heldBack.MatchString(logs.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no line counts the refusal lines held back")
		}
	}
	by.check(t)
}
