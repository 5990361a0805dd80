package broker_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Notices to everyone are a log, delivered like an inbox: a device that
// subscribed to broadcast once gets what was sent while it was offline at
// its next connection (a resumed session needs no new SUBSCRIBE), also
// across a broker restart, each notice once and in order. A device new to
// broadcast starts with what comes next; the rest is in the history API.
func TestBroadcast_OfflineDevicesCatchUp(t *testing.T) {
	cfg := mqtttest.Config(t)
	b := mqtttest.Start(t, cfg)
	tokB := mqtttest.Token(t, "10021")
	notice := func(addr, text string) {
		t.Helper()
		admin := mqtttest.MustV3(t, addr, mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})
		admin.MustPub(t, "im/systemadmin", fmt.Sprintf(`{"content":%q}`, text))
		admin.Disconnect(0)
	}
	expect := func(in *mqtttest.Inbox, texts ...string) {
		t.Helper()
		for _, want := range texts {
			if e := in.Next(t, wait); e.Topic != "broadcast" || e.Str("ct") != want {
				t.Fatalf("want %q on broadcast, got %s on %s", want, e.Raw, e.Topic)
			}
		}
		in.None(t, 300*time.Millisecond)
	}
	acks := 0
	leave := func(c *mqtttest.V3, n int) {
		t.Helper()
		acks += n
		waitMetric(t, "http://"+b.AdminAddr(), "inboxmq_inbox_acks_total", float64(acks)) // the PUBACKs reached the broker
		c.Disconnect(250)
	}

	notice(b.MQTTAddr(), "before bob subscribed")
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{})
	if err := bob.Sub("broadcast", 1); err != nil {
		t.Fatal(err)
	}
	notice(b.MQTTAddr(), "b1")
	expect(bob.Inbox, "b1")
	leave(bob, 1)

	notice(b.MQTTAddr(), "b2")
	bob = mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{}) // session resumed, no SUBSCRIBE
	expect(bob.Inbox, "b2")
	leave(bob, 1)

	notice(b.MQTTAddr(), "b3")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mqtttest.Start(t, cfg)
	acks = 0 // a new process, new metrics
	notice(b.MQTTAddr(), "b4")
	bob = mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{})
	if err := bob.Sub("broadcast", 1); err != nil {
		t.Fatal(err)
	}
	expect(bob.Inbox, "b3", "b4")

	carol := mqtttest.MustV3(t, b.MQTTAddr(), "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{})
	if err := carol.Sub("broadcast", 1); err != nil {
		t.Fatal(err)
	}
	carol.Inbox.None(t, 300*time.Millisecond)
	notice(b.MQTTAddr(), "b5")
	expect(carol.Inbox, "b5")
	expect(bob.Inbox, "b5")
}

// A subscriber of broadcast that never acknowledges holds at most the
// delivery window in flight; the rest waits in the log and follows its
// acknowledgements. (Before broadcasts were a log, mochi kept every
// unacknowledged one in memory, up to 8,192 per stuck client.) The inbox
// has a window of its own: a full broadcast window does not hold up chat.
func TestBroadcast_SlowConsumerHoldsOneWindow(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	conn, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{
		ClientIdentifier: "slow", Username: []byte("10021"), Password: []byte(mqtttest.Token(t, "10021")),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	slow := rawClient{t, conn}
	for i, topic := range []string{"broadcast", "inbox/10021"} {
		if _, code := slow.subscribe(uint16(i+1), topic); code != 1 {
			t.Fatalf("%s subscription: code %#x", topic, code)
		}
	}
	admin := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	const total, window = 100, 64 // inbox.delivery_window's default
	for i := range total {
		admin.MustPub(t, "im/systemadmin", fmt.Sprintf(`{"content":"n%d"}`, i))
	}

	// publishes reads PUBLISH packets until the line is quiet and returns
	// their packet ids, checking that each log comes in order.
	next := map[string]int{}
	publishes := func() (ids []uint16, per map[string]int) {
		t.Helper()
		per = map[string]int{}
		seen := map[uint16]bool{}
		for {
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			typ, body, err := mqtttest.ReadRawPacket(conn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return ids, per
			}
			if err != nil {
				t.Fatal(err)
			}
			if typ != packets.Publish {
				continue
			}
			n := int(body[0])<<8 | int(body[1])
			topic, pid, payload := string(body[2:2+n]), uint16(body[2+n])<<8|uint16(body[3+n]), string(body[4+n:])
			prefix := map[string]string{"broadcast": "n", "inbox/10021": "m"}[topic]
			if want := fmt.Sprintf(`"ct":"%s%d"`, prefix, next[topic]); prefix == "" || !strings.Contains(payload, want) {
				t.Fatalf("on %s: want %s in %s", topic, want, payload)
			}
			if seen[pid] {
				t.Fatalf("packet id %d twice in flight", pid)
			}
			seen[pid] = true
			next[topic]++
			per[topic]++
			ids = append(ids, pid)
		}
	}
	ids, per := publishes()
	if per["broadcast"] != window {
		t.Fatalf("%d notices in flight without acknowledgements, want the window of %d", per["broadcast"], window)
	}
	sendN(t, alice, "10021", 0, total)
	more, per := publishes()
	if per["inbox/10021"] != window || per["broadcast"] != 0 {
		t.Fatalf("with the broadcast window full: %v, want %d inbox messages", per, window)
	}
	ids = append(ids, more...)
	for len(ids) > 0 {
		for _, id := range ids {
			slow.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
		}
		ids, _ = publishes()
	}
	if next["broadcast"] != total || next["inbox/10021"] != total {
		t.Fatalf("delivered after acknowledgements: %v, want %d each", next, total)
	}
}
