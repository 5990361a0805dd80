package broker_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// rawClient speaks MQTT 3.1.1 packet by packet, to control packet ids.
type rawClient struct {
	t    *testing.T
	conn net.Conn
}

func (c rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// next reads packets until one of type typ, and returns its body.
func (c rawClient) next(typ byte) []byte {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		got, body, err := mqtttest.ReadRawPacket(c.conn)
		if err != nil {
			c.t.Fatalf("waiting for packet type %d: %v", typ, err)
		}
		if got == typ {
			return body
		}
	}
}

func (c rawClient) subscribe(pid uint16, filter string) (ackID uint16, code byte) {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    pid,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: 1}},
	})
	body := c.next(packets.Suback)
	return binary.BigEndian.Uint16(body), body[2]
}

// inboxPublish reads the next PUBLISH and returns its packet id and payload.
func (c rawClient) inboxPublish() (uint16, string) {
	c.t.Helper()
	body := c.next(packets.Publish)
	n := int(binary.BigEndian.Uint16(body))
	return binary.BigEndian.Uint16(body[2+n:]), string(body[4+n:])
}

// Client and server packet ids live in separate spaces (MQTT 4.2.3), but
// mochi v2.7.9 keeps one map for both. Inbox messages in flight must not
// make a client's SUBSCRIBE fail (0x80/0x91) or be lost to an inbound
// PUBLISH that happens to reuse their id, whatever ids the client picks.
// (Inbox ids enter mochi's map only once mochi's own ids come near them;
// the swap that path needs is tested in hooks/delivery,
// TestPacketIDs_SubscribeIDSwappedWhileReserved.)
func TestPacketIDs_ClientIDsClashingWithInboxIDs(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	connect := func() rawClient {
		conn, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{
			ClientIdentifier: "bob-phone", Username: []byte("10021"), Password: []byte(mqtttest.Token(t, "10021")),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return rawClient{t, conn}
	}
	bob := connect()
	if _, code := bob.subscribe(1, "inbox/10021"); code != 1 {
		t.Fatalf("inbox subscription: code %#x", code)
	}

	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"one"}`)
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"two"}`)
	id1, p1 := bob.inboxPublish()
	id2, p2 := bob.inboxPublish()
	if !strings.Contains(p1, `"ct":"one"`) || !strings.Contains(p2, `"ct":"two"`) || id1 == id2 {
		t.Fatalf("got %d %s and %d %s", id1, p1, id2, p2)
	}

	// A SUBSCRIBE with the id of an unacknowledged inbox message gets its
	// own id back in a successful SUBACK.
	if ackID, code := bob.subscribe(id1, "broadcast"); ackID != id1 || code != 1 {
		t.Fatalf("SUBSCRIBE with id %d: SUBACK id %d code %#x", id1, ackID, code)
	}
	// A request published with the other one's id is acknowledged and sent.
	bob.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "im/sendmsg",
		PacketID:    id2,
		Payload:     []byte(`{"uid":10001,"msg":"reply"}`),
	})
	if body := bob.next(packets.Puback); binary.BigEndian.Uint16(body) != id2 {
		t.Fatalf("PUBACK for id %d: % x", id2, body)
	}
	if e := alice.Inbox.NextMethod(t, "SendMsg", wait); e.Str("ct") != "reply" {
		t.Fatalf("alice got %s", e.Raw)
	}
	idSent, pSent := bob.inboxPublish() // bob's MsgSent copy of the reply
	if !strings.Contains(pSent, `"_method_":"MsgSent"`) || idSent == id1 || idSent == id2 {
		t.Fatalf("got %d %s", idSent, pSent)
	}

	// Acknowledging them moves the cursor: a new connection of the session
	// gets what comes next, not them again.
	for _, id := range []uint16{id1, id2, idSent} {
		bob.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	}
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"three"}`)
	id3, p3 := bob.inboxPublish()
	if !strings.Contains(p3, `"ct":"three"`) {
		t.Fatalf("got %s", p3)
	}
	bob.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id3})
	time.Sleep(100 * time.Millisecond) // the PUBACK reaches the broker before the connection ends
	bob.conn.Close()

	bob = connect()
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"four"}`)
	if _, p := bob.inboxPublish(); !strings.Contains(p, `"ct":"four"`) {
		t.Fatalf("after reconnect got %s, want four", p)
	}
}
