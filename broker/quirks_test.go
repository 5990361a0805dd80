package broker_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Protocol corners where mochi answers wrongly or not at all.
func TestProtocolQuirks(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	tok := mqtttest.Token(t, "10021")
	creds := packets.ConnectParams{ClientIdentifier: "q", Clean: true, Username: []byte("10021"), Password: []byte(tok)}

	// expectDisconnect82 reads until the broker's DISCONNECT: protocol error.
	expectDisconnect82 := func(t *testing.T, r *mqtttest.RawV5) {
		t.Helper()
		_ = r.SetReadDeadline(time.Now().Add(wait))
		for {
			pk, err := r.Read()
			if err != nil {
				t.Fatalf("no DISCONNECT before the connection ended: %v", err)
			}
			if pk.FixedHeader.Type == packets.Disconnect {
				if pk.ReasonCode != 0x82 {
					t.Fatalf("DISCONNECT %#x, want 0x82 (protocol error)", pk.ReasonCode)
				}
				if _, err := r.Read(); !errors.Is(err, io.EOF) {
					t.Fatalf("after DISCONNECT: %v, want the socket closed", err)
				}
				return
			}
		}
	}

	t.Run("AUTH without an authentication method", func(t *testing.T) {
		r, err := mqtttest.DialRawV5(b.MQTTAddr(), creds, packets.Properties{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Conn.Write([]byte{0xF0, 0x02, 0x00, 0x00}); err != nil { // AUTH, reason 0, no properties
			t.Fatal(err)
		}
		expectDisconnect82(t, r)
	})

	t.Run("topic alias never set, empty topic", func(t *testing.T) {
		r, err := mqtttest.DialRawV5(b.MQTTAddr(), creds, packets.Properties{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		err = r.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
			Properties: packets.Properties{TopicAlias: 5, TopicAliasFlag: true}, Payload: []byte(`{"uid":10022,"msg":"x"}`)})
		if err != nil {
			t.Fatal(err)
		}
		expectDisconnect82(t, r)
	})

	t.Run("3.1.1 empty client id with clean session 0", func(t *testing.T) {
		_, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{Username: []byte("10021"), Password: []byte(tok)})
		if err == nil || !strings.Contains(err.Error(), "00 02") {
			t.Fatalf("CONNACK: %v, want return code 2 (identifier rejected)", err)
		}
	})

	t.Run("will on a request topic", func(t *testing.T) {
		_, err := mqtttest.ConnectV3(b.MQTTAddr(), "10021", tok, mqtttest.V3Options{Clean: true,
			Will: &mqtttest.Will{Topic: "im/sendmsg", Payload: `{"uid":10022,"msg":"from my will"}`}})
		if err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Fatalf("connect with a will on im/sendmsg: %v, want refused (not authorized)", err)
		}
	})
}
