package broker_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// Standard MQTT on topics opened by acl rules, as the best brokers answer
// it, checked on the wire.

// The acks of client publishes carry valid codes and none of the
// publish's properties: 0x00 for a routed QoS 1 publish (mochi wrote
// 0x01, a SUBACK code), 0x87 in a PUBACK for a refused QoS 1 publish and in
// a PUBREC for a refused QoS 2 one (mochi wrote a PUBACK).
func TestConformance_PublishAcks(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite public/#"}
	b := mqtttest.Start(t, cfg)
	c, err := mqtttest.DialRawV5(b.MQTTAddr(), packets.ConnectParams{
		ClientIdentifier: "10001", Clean: true, Username: []byte("10001"), Password: []byte(mqtttest.Token(t, "10001")),
	}, packets.Properties{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	user := []packets.UserProperty{{Key: "trace", Val: "abc"}}
	for i, tt := range []struct {
		name    string
		topic   string
		qos     byte
		ackType byte
		code    byte
	}{
		{"QoS 1, opened topic", "public/news", 1, packets.Puback, 0x00},
		{"QoS 2, opened topic", "public/news", 2, packets.Pubrec, 0x00},
		{"deny: QoS 1, closed topic", "closed/x", 1, packets.Puback, 0x87},
		{"deny: QoS 2, closed topic", "closed/x", 2, packets.Pubrec, 0x87},
		{"deny: QoS 2, another user's inbox", "inbox/10021", 2, packets.Pubrec, 0x87},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := uint16(100 + i)
			err := c.Write(packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: tt.qos},
				TopicName:   tt.topic, PacketID: pid, Payload: []byte("x"),
				Properties: packets.Properties{User: user, ContentType: "text/plain"},
			})
			if err != nil {
				t.Fatal(err)
			}
			ack := readAck(t, c, pid)
			if ack.FixedHeader.Type != tt.ackType || ack.ReasonCode != tt.code {
				t.Fatalf("ack type %d code %#x, want type %d code %#x", ack.FixedHeader.Type, ack.ReasonCode, tt.ackType, tt.code)
			}
			if len(ack.Properties.User) != 0 || ack.Properties.ContentType != "" {
				t.Errorf("the ack echoes the publish's properties: %+v", ack.Properties)
			}
			if tt.ackType == packets.Pubrec && tt.code == 0 {
				if err := c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pid}); err != nil {
					t.Fatal(err)
				}
				if done := readAck(t, c, pid); done.FixedHeader.Type != packets.Pubcomp || done.ReasonCode != 0 {
					t.Fatalf("after PUBREL: type %d code %#x, want PUBCOMP 0", done.FixedHeader.Type, done.ReasonCode)
				}
			}
		})
	}
}

// readAck reads packets until the ack of pid, skipping envelopes (the
// Error envelope of a refusal goes to the inbox, which this client did not
// subscribe to, so none should come).
func readAck(t *testing.T, c *mqtttest.RawV5, pid uint16) packets.Packet {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		pk, err := c.Read()
		if err != nil {
			t.Fatalf("reading the ack of %d: %v", pid, err)
		}
		if pk.FixedHeader.Type != packets.Publish && pk.PacketID == pid {
			return pk
		}
	}
}

// mqtt.maximum_keepalive: an MQTT 5 client asking for more is told the
// maximum (Server Keep Alive); a 3.1.1 client asking for more is refused
// with CONNACK 2, as Mosquitto does; below it nothing changes.
func TestConformance_MaximumKeepalive(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.MQTT.MaximumKeepalive = 60 * time.Second
	b := mqtttest.Start(t, cfg)
	for _, tt := range []struct {
		name       string
		version    byte
		keepalive  uint16
		code       byte   // CONNACK reason / return code
		serverKeep uint16 // 0: none sent
	}{
		{"MQTT 5 above the maximum", 5, 7200, 0, 60},
		{"MQTT 5 at the maximum", 5, 60, 0, 0},
		{"MQTT 5 below it", 5, 30, 0, 0},
		{"deny: 3.1.1 above the maximum", 4, 7200, 2, 0},
		{"deny: 3.1.1 asking for none", 4, 0, 2, 0},
		{"3.1.1 below it", 4, 30, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			connack := rawConnack(t, b.MQTTAddr(), tt.version, tt.keepalive)
			if connack.ReasonCode != tt.code {
				t.Fatalf("CONNACK code %#x, want %#x", connack.ReasonCode, tt.code)
			}
			got := uint16(0)
			if connack.Properties.ServerKeepAliveFlag {
				got = connack.Properties.ServerKeepAlive
			}
			if got != tt.serverKeep {
				t.Fatalf("Server Keep Alive %d, want %d", got, tt.serverKeep)
			}
		})
	}
}

// rawConnack sends a CONNECT with keepalive as user 10001 and decodes the
// CONNACK.
func rawConnack(t *testing.T, addr string, version byte, keepalive uint16) packets.Packet {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive, ClientIdentifier: "10001",
			UsernameFlag: true, Username: []byte("10001"), PasswordFlag: true, Password: []byte(mqtttest.Token(t, "10001")),
		}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, body, err := mqtttest.ReadRawPacket(conn)
	if err != nil || typ != packets.Connack {
		t.Fatalf("CONNACK: type %d, %v", typ, err)
	}
	out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: version}
	if err := out.ConnackDecode(body); err != nil {
		t.Fatal(err)
	}
	return out
}

// A filter starting with a wildcard is granted where the rules allow it
// (here "readwrite #"), and like '$' topics for such filters in MQTT, the
// broker's own namespaces never reach it: no inbox message, no notice
// (stored, to everyone, or live), no im/ request of anyone, over both
// protocols and as a shared subscription. What it does get: the opened
// topics.
func TestConformance_WildcardFiltersSkipReservedNamespaces(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite #"}
	cfg.Redis.Addresses = []string{r.Addr} // the back-end's notification channel, for a live notice
	b := mqtttest.Start(t, cfg)

	watcher3 := mqtttest.MustV3(t, b.MQTTAddr(), "10090", mqtttest.Token(t, "10090"), mqtttest.V3Options{Clean: true})
	watcher5 := mqtttest.MustV5(t, b.MQTTAddr(), "10091", mqtttest.Token(t, "10091"), mqtttest.V5Options{})
	shared := mqtttest.MustV5(t, b.MQTTAddr(), "10092", mqtttest.Token(t, "10092"), mqtttest.V5Options{})
	for _, f := range []string{"#", "+/+", "+"} {
		if err := watcher3.Sub(f, 1); err != nil {
			t.Fatalf("3.1.1 SUBSCRIBE %s refused: %v", f, err)
		}
		if code, err := watcher5.Sub(f, 1); err != nil || code > 2 {
			t.Fatalf("MQTT 5 SUBSCRIBE %s: %#x %v", f, code, err)
		}
	}
	if code, err := shared.Sub("$share/g/#", 1); err != nil || code > 2 {
		t.Fatalf("SUBSCRIBE $share/g/#: %#x %v", code, err)
	}
	// Naming a reserved namespace stays refused.
	for _, f := range []string{"inbox/+", "inbox/#", "$share/g/inbox/10090", "broadcast/#", "im/#"} {
		if code, err := watcher5.Sub(f, 1); err == nil && code < 0x80 {
			t.Fatalf("SUBSCRIBE %s granted (%#x)", f, code)
		}
	}

	// Everything the broker carries on its own topics.
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Clean: true, Subscribe: true})
	if err := bob.Sub("broadcast", 1); err != nil {
		t.Fatal(err)
	}
	alice := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	if code, err := alice.Pub("im/sendmsg", `{"uid":10021,"msg":"private"}`); err != nil || code != 0 {
		t.Fatalf("send: %#x %v", code, err)
	}
	admin := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})
	admin.MustPub(t, "im/systemadmin", `{"uid":10021,"content":"to bob"}`)
	admin.MustPub(t, "im/systemadmin", `{"content":"to everyone"}`)
	if err := r.Client(t).Publish(context.Background(), "notification",
		`{"needStore":false,"content":"live to everyone"}`).Err(); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 4 {
		e := bob.Inbox.Next(t, wait)
		got[e.Str("ct")] = true
	}
	for _, want := range []string{"private", "to bob", "to everyone", "live to everyone"} {
		if !got[want] {
			t.Fatalf("bob got %v, not %q", got, want)
		}
	}

	// The positive control: an opened topic reaches every watcher.
	alice.Pub("public/news", "hello")
	for name, in := range map[string]*mqtttest.Inbox{"3.1.1": watcher3.Inbox, "MQTT 5": watcher5.Inbox, "shared": shared.Inbox} {
		e := in.Next(t, wait)
		if e.Topic != "public/news" {
			t.Fatalf("%s watcher got %s on %s before the opened topic's message", name, e.Raw, e.Topic)
		}
		in.None(t, 300*time.Millisecond)
	}
}

// A deny rule closes part of an opened tree: its topic cannot be
// subscribed to or published on, while a wider filter stays granted.
func TestConformance_DenyRules(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite #", "deny test/nosubscribe"}
	b := mqtttest.Start(t, cfg)
	c := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{})
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V3Options{Clean: true})
	if code, err := c.Sub("test/nosubscribe", 1); err == nil && code < 0x80 {
		t.Fatalf("SUBSCRIBE to a denied topic granted (%#x)", code)
	}
	if err := v3.Sub("test/nosubscribe", 1); err == nil {
		t.Fatal("3.1.1 SUBSCRIBE to a denied topic granted")
	}
	if code, err := c.Sub("test/#", 1); err != nil || code > 2 {
		t.Fatalf("SUBSCRIBE test/#: %#x %v", code, err)
	}
	if code, err := c.Pub("test/nosubscribe", "x"); err != nil || code != 0x87 {
		t.Fatalf("publish to a denied topic: %#x %v, want 0x87", code, err)
	}
	if code, err := c.Pub("test/ok", "y"); err != nil || code != 0 {
		t.Fatalf("publish next to it: %#x %v", code, err)
	}
	if e := c.Inbox.Next(t, wait); e.Topic != "test/ok" {
		t.Fatalf("got %s on %s, want the message on test/ok", e.Raw, e.Topic)
	}
	c.Inbox.None(t, 300*time.Millisecond)
}

// Messages on an opened topic wait for a persistent session while its
// client is away (both protocols), and an MQTT 5 message whose Message
// Expiry Interval ran out while it waited is not delivered.
func TestConformance_QueuedForOfflineSessions(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite public/#"}
	b := mqtttest.Start(t, cfg)
	pub := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{})
	publish := func(payload string, expiry uint32) {
		t.Helper()
		p := &paho5.Publish{Topic: "public/news", QoS: 1, Payload: []byte(payload)}
		if expiry > 0 {
			p.Properties = &paho5.PublishProperties{MessageExpiry: &expiry}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if r, err := pub.Publish(ctx, p); err != nil || (r != nil && r.ReasonCode != 0) {
			t.Fatalf("publish %s: %v %+v", payload, err, r)
		}
	}

	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10050", mqtttest.Token(t, "10050"), mqtttest.V5Options{ClientID: "tablet", SessionExpiry: 3600})
	if code, err := v5.Sub("public/news", 1); err != nil || code != 1 {
		t.Fatalf("subscribe: %#x %v", code, err)
	}
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10051", mqtttest.Token(t, "10051"), mqtttest.V3Options{ClientID: "sensor"})
	if err := v3.Sub("public/news", 1); err != nil {
		t.Fatal(err)
	}
	v5.Close()
	v3.Disconnect(100)

	publish("short-lived", 1)
	publish("kept", 0)
	publish("kept with expiry", 600)
	time.Sleep(2 * time.Second) // "short-lived" expires while it waits

	v5 = mqtttest.MustV5(t, b.MQTTAddr(), "10050", mqtttest.Token(t, "10050"), mqtttest.V5Options{ClientID: "tablet", SessionExpiry: 3600})
	if !v5.Connack.SessionPresent {
		t.Fatal("MQTT 5 session not present")
	}
	v3 = mqtttest.MustV3(t, b.MQTTAddr(), "10051", mqtttest.Token(t, "10051"), mqtttest.V3Options{ClientID: "sensor"})
	if !v3.SessionPresent {
		t.Fatal("3.1.1 session not present")
	}
	for name, in := range map[string]*mqtttest.Inbox{"MQTT 5": v5.Inbox, "3.1.1": v3.Inbox} {
		got := map[string]bool{}
		for len(got) < 2 {
			e := in.Next(t, wait)
			got[string(e.Raw)] = true
		}
		if !got["kept"] || !got["kept with expiry"] || got["short-lived"] {
			t.Fatalf("%s session got %v, want the two unexpired messages", name, got)
		}
		in.None(t, 300*time.Millisecond)
	}
}

// Retained messages (set, replace, clear, on a wildcard subscribe, with
// their properties), retain handling 0/1/2, retain as published, no local
// and subscription identifiers, on the wire.
func TestConformance_RetainedAndSubscriptionOptions(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite public/#"}
	b := mqtttest.Start(t, cfg)
	dial := func(uid string) *mqtttest.RawV5 {
		t.Helper()
		c, err := mqtttest.DialRawV5(b.MQTTAddr(), packets.ConnectParams{
			ClientIdentifier: uid, Clean: true, Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid)),
		}, packets.Properties{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	pub, sub := dial("10001"), dial("10002")
	pid := uint16(0)
	publish := func(c *mqtttest.RawV5, topic, payload string, retain bool, props packets.Properties) {
		t.Helper()
		pid++
		if err := c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
			TopicName: topic, PacketID: pid, Payload: []byte(payload), Properties: props}); err != nil {
			t.Fatal(err)
		}
		if ack := readAck(t, c, pid); ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
			t.Fatalf("publish %s: ack type %d code %#x", topic, ack.FixedHeader.Type, ack.ReasonCode)
		}
	}
	subscribe := func(c *mqtttest.RawV5, f packets.Subscription, id int) byte {
		t.Helper()
		pid++
		props := packets.Properties{}
		if id > 0 {
			props.SubscriptionIdentifier = []int{id}
		}
		if err := c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			PacketID: pid, Filters: packets.Subscriptions{f}, Properties: props}); err != nil {
			t.Fatal(err)
		}
		ack := readAck(t, c, pid)
		if ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != 1 {
			t.Fatalf("SUBACK: %+v", ack)
		}
		return ack.ReasonCodes[0]
	}
	// next reads the next PUBLISH (acknowledging it), or fails after d.
	next := func(c *mqtttest.RawV5, d time.Duration) (packets.Packet, bool) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(d))
		defer c.SetReadDeadline(time.Time{})
		for {
			pk, err := c.Read()
			if err != nil {
				return packets.Packet{}, false
			}
			if pk.FixedHeader.Type != packets.Publish {
				continue
			}
			if pk.FixedHeader.Qos == 1 {
				_ = c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
			}
			return pk, true
		}
	}
	format := byte(1)
	props := packets.Properties{
		User: []packets.UserProperty{{Key: "k", Val: "v"}}, ContentType: "text/plain",
		PayloadFormat: format, PayloadFormatFlag: true, ResponseTopic: "public/reply", CorrelationData: []byte("c1"),
	}
	publish(pub, "public/a", "one", true, props)
	publish(pub, "public/a", "two", true, props) // replaces "one"
	publish(pub, "public/b", "bee", true, packets.Properties{})
	publish(pub, "public/b", "", true, packets.Properties{}) // clears public/b

	if code := subscribe(sub, packets.Subscription{Filter: "public/#", Qos: 1}, 7); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	// A publisher's message is routed after its PUBACK, so the last ones
	// may still reach the new subscription live (retain flag 0); the
	// retained ones come with the flag set.
	retained := func(d time.Duration) []packets.Packet {
		t.Helper()
		var out []packets.Packet
		for {
			pk, ok := next(sub, d)
			if !ok {
				return out
			}
			if pk.FixedHeader.Retain {
				out = append(out, pk)
			}
		}
	}
	all := retained(time.Second)
	if len(all) != 1 {
		t.Fatalf("%d retained messages on subscribe, want public/a alone: %+v", len(all), all)
	}
	got := all[0]
	if got.TopicName != "public/a" || string(got.Payload) != "two" {
		t.Fatalf("retained on subscribe: %s %q, want public/a \"two\"", got.TopicName, got.Payload)
	}
	p := got.Properties
	if len(p.User) != 1 || p.User[0] != (packets.UserProperty{Key: "k", Val: "v"}) || p.ContentType != "text/plain" ||
		!p.PayloadFormatFlag || p.PayloadFormat != 1 || p.ResponseTopic != "public/reply" || string(p.CorrelationData) != "c1" {
		t.Errorf("retained message's properties: %+v", p)
	}
	if len(p.SubscriptionIdentifier) != 1 || p.SubscriptionIdentifier[0] != 7 {
		t.Errorf("retained message's subscription identifiers %v, want [7] (the SUBSCRIBE's)", p.SubscriptionIdentifier)
	}
	if p.MessageExpiryInterval != 0 {
		t.Errorf("retained message has Message Expiry Interval %d; its publisher set none", p.MessageExpiryInterval)
	}
	// Retain handling 1: only for a new subscription; 2: never.
	if code := subscribe(sub, packets.Subscription{Filter: "public/#", Qos: 1, RetainHandling: 1}, 7); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	if extra, ok := next(sub, 300*time.Millisecond); ok {
		t.Fatalf("retain handling 1 on an existing subscription sent %s", extra.TopicName)
	}
	if code := subscribe(sub, packets.Subscription{Filter: "public/a", Qos: 1, RetainHandling: 2}, 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	if extra, ok := next(sub, 300*time.Millisecond); ok {
		t.Fatalf("retain handling 2 sent %s", extra.TopicName)
	}

	// No local: the publisher's own message does not come back to it.
	if code := subscribe(pub, packets.Subscription{Filter: "public/#", Qos: 1, NoLocal: true, RetainHandling: 2}, 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	// Retain as published: a retained live message keeps its flag on a
	// subscription that asks for it (sub), and loses it on one that does
	// not (plain, which has no other subscription it could merge with).
	plain := dial("10003")
	if code := subscribe(sub, packets.Subscription{Filter: "public/r", Qos: 1, RetainAsPublished: true, RetainHandling: 2}, 9); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	if code := subscribe(plain, packets.Subscription{Filter: "public/r", Qos: 1, RetainHandling: 2}, 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	publish(pub, "public/r", "live", true, packets.Properties{})
	if extra, ok := next(pub, 300*time.Millisecond); ok {
		t.Fatalf("no local: the publisher got its own %s", extra.TopicName)
	}
	if pk, ok := next(plain, wait); !ok || pk.TopicName != "public/r" || pk.FixedHeader.Retain {
		t.Errorf("without retain as published: got %v, retain=%v, want the message with retain 0", ok, pk.FixedHeader.Retain)
	}
	for {
		pk, ok := next(sub, wait)
		if !ok {
			t.Fatal("the retain-as-published subscriber got nothing")
		}
		if pk.TopicName == "public/r" {
			if !pk.FixedHeader.Retain {
				t.Error("retain as published: the retain flag was cleared")
			}
			break
		}
	}
}
