package broker_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The rest of the conformance suite: wills, QoS flows and redelivery,
// sessions, topic aliases, shared subscriptions, flow control, packet
// sizes, request/response and the SUBACK codes, on opened topics, with raw
// MQTT 5 packets (libraries hide the wire: DUP flags, aliases, codes).

// wire is a raw MQTT 5 client that numbers its own packets.
type wire struct {
	t   *testing.T
	c   *mqtttest.RawV5
	pid uint16
}

// dialWire connects uid with client id clientID (uid when empty).
func dialWire(t *testing.T, b *broker.Broker, uid string, p packets.ConnectParams, props packets.Properties) *wire {
	t.Helper()
	if p.ClientIdentifier == "" {
		p.ClientIdentifier = uid
	}
	p.Username, p.Password = []byte(uid), []byte(mqtttest.Token(t, uid))
	c, err := mqtttest.DialRawV5(b.MQTTAddr(), p, props)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wire{t: t, c: c, pid: 1000}
}

func (w *wire) write(pk packets.Packet) {
	w.t.Helper()
	if err := w.c.Write(pk); err != nil {
		w.t.Fatal(err)
	}
}

// publish sends a PUBLISH and, for QoS > 0, returns its ack (a QoS 2 flow
// is completed when the PUBREC accepts it).
func (w *wire) publish(topic, payload string, qos byte, props packets.Properties) packets.Packet {
	w.t.Helper()
	w.pid++
	w.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName: topic, PacketID: w.pid, Payload: []byte(payload), Properties: props})
	if qos == 0 {
		return packets.Packet{}
	}
	ack := readAck(w.t, w.c, w.pid)
	if qos == 2 && ack.FixedHeader.Type == packets.Pubrec && ack.ReasonCode < 0x80 {
		w.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: w.pid})
		if done := readAck(w.t, w.c, w.pid); done.FixedHeader.Type != packets.Pubcomp {
			w.t.Fatalf("PUBREL answered with type %d", done.FixedHeader.Type)
		}
	}
	return ack
}

// subscribe sends one filter and returns its SUBACK code.
func (w *wire) subscribe(f packets.Subscription, id int) byte {
	w.t.Helper()
	w.pid++
	props := packets.Properties{}
	if id > 0 {
		props.SubscriptionIdentifier = []int{id}
	}
	w.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID: w.pid, Filters: packets.Subscriptions{f}, Properties: props})
	ack := readAck(w.t, w.c, w.pid)
	if ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != 1 {
		w.t.Fatalf("SUBACK: %+v", ack)
	}
	return ack.ReasonCodes[0]
}

// sync returns once the broker has read everything sent before it: it
// answers a PINGREQ after the packets before it. Closing a connection right
// after an ack may otherwise lose the ack, and MQTT then has the message
// sent again.
func (w *wire) sync() {
	w.t.Helper()
	w.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	_ = w.c.SetReadDeadline(time.Now().Add(wait))
	defer w.c.SetReadDeadline(time.Time{})
	for {
		pk, err := w.c.Read()
		if err != nil {
			w.t.Fatalf("waiting for PINGRESP: %v", err)
		}
		if pk.FixedHeader.Type == packets.Pingresp {
			return
		}
		w.t.Fatalf("unexpected packet type %d before PINGRESP", pk.FixedHeader.Type)
	}
}

// next returns the next packet other than PINGRESP, unanswered, or false
// when none comes within d (or the connection ends).
func (w *wire) next(d time.Duration) (packets.Packet, bool) {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(d))
	defer w.c.SetReadDeadline(time.Time{})
	for {
		pk, err := w.c.Read()
		if err != nil {
			return packets.Packet{}, false
		}
		if pk.FixedHeader.Type != packets.Pingresp {
			return pk, true
		}
	}
}

// mustDisconnect reads until the broker's DISCONNECT, which must carry
// code.
func (w *wire) mustDisconnect(code packets.Code) {
	w.t.Helper()
	for {
		pk, ok := w.next(wait)
		if !ok {
			w.t.Fatalf("no DISCONNECT %#x", code.Code)
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			if pk.ReasonCode != code.Code {
				w.t.Fatalf("DISCONNECT %#x, want %#x", pk.ReasonCode, code.Code)
			}
			return
		}
	}
}

// mustPublish returns the next packet, which must be a PUBLISH.
func (w *wire) mustPublish(d time.Duration) packets.Packet {
	w.t.Helper()
	pk, ok := w.next(d)
	if !ok || pk.FixedHeader.Type != packets.Publish {
		w.t.Fatalf("want a PUBLISH, got ok=%v type %d", ok, pk.FixedHeader.Type)
	}
	return pk
}

// none fails if a PUBLISH arrives within d.
func (w *wire) none(d time.Duration) {
	w.t.Helper()
	if pk, ok := w.next(d); ok && pk.FixedHeader.Type == packets.Publish {
		w.t.Fatalf("unexpected PUBLISH on %s: %q", pk.TopicName, pk.Payload)
	}
}

func (w *wire) ack(pk packets.Packet) {
	w.t.Helper()
	switch pk.FixedHeader.Qos {
	case 1:
		w.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	case 2:
		w.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: pk.PacketID})
	}
}

// disconnect ends the connection gracefully with reason code and, when
// expiry is not nil, a new Session Expiry Interval.
func (w *wire) disconnect(code byte, expiry *uint32) {
	w.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code}
	if expiry != nil {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = *expiry, true
	}
	w.write(pk)
	w.c.Close()
}

func openedBroker(t *testing.T, edit func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite public/#"}
	if edit != nil {
		edit(&cfg)
	}
	return mqtttest.Start(t, cfg)
}

func sub1(filter string) packets.Subscription { return packets.Subscription{Filter: filter, Qos: 1} }

// Wills: sent when the connection ends without DISCONNECT or with
// DISCONNECT 0x04, not after a normal DISCONNECT, with their properties;
// a Will Delay Interval holds it back, and a reconnect inside the delay
// cancels it (MQTT-3.1.3-9, 3.1.2.5).
func TestConformance_Wills(t *testing.T) {
	b := openedBroker(t, nil)
	watch := dialWire(t, b, "10002", packets.ConnectParams{Clean: true}, packets.Properties{})
	if code := watch.subscribe(sub1("public/will/#"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	willing := func(name string, delay uint32, expiry uint32) *wire {
		t.Helper()
		return dialWire(t, b, "10001", packets.ConnectParams{ClientIdentifier: name, Clean: true,
			WillFlag: true, WillTopic: "public/will/" + name, WillPayload: []byte("gone " + name), WillQos: 1,
			WillProperties: packets.Properties{WillDelayInterval: delay, ContentType: "text/plain",
				PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: 600,
				ResponseTopic: "public/reply", CorrelationData: []byte("c"),
				User: []packets.UserProperty{{Key: "k", Val: "v"}}}},
			packets.Properties{SessionExpiryInterval: expiry, SessionExpiryIntervalFlag: expiry > 0})
	}

	for _, tt := range []struct {
		name string
		end  func(w *wire)
		sent bool
	}{
		{"dropped", func(w *wire) { w.c.Close() }, true},
		{"disconnect-with-will", func(w *wire) { w.disconnect(0x04, nil) }, true},
		{"deny: normal-disconnect", func(w *wire) { w.disconnect(0x00, nil) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.end(willing(tt.name, 0, 0))
			if !tt.sent {
				watch.none(500 * time.Millisecond)
				return
			}
			pk := watch.mustPublish(wait)
			watch.ack(pk)
			if pk.TopicName != "public/will/"+tt.name || string(pk.Payload) != "gone "+tt.name {
				t.Fatalf("will: %s %q", pk.TopicName, pk.Payload)
			}
			p := pk.Properties
			if p.ContentType != "text/plain" || !p.PayloadFormatFlag || p.PayloadFormat != 1 || p.ResponseTopic != "public/reply" ||
				string(p.CorrelationData) != "c" || p.MessageExpiryInterval == 0 || p.MessageExpiryInterval > 600 ||
				len(p.User) != 1 || p.User[0] != (packets.UserProperty{Key: "k", Val: "v"}) {
				t.Errorf("will properties: %+v", p)
			}
		})
	}

	t.Run("delayed", func(t *testing.T) {
		willing("delayed", 2, 60).c.Close()
		start := time.Now()
		watch.none(time.Second)
		pk := watch.mustPublish(wait)
		watch.ack(pk)
		if pk.TopicName != "public/will/delayed" || time.Since(start) < 1500*time.Millisecond {
			t.Fatalf("delayed will %s after %v, want after the 2 s delay", pk.TopicName, time.Since(start))
		}
	})
	t.Run("deny: reconnect inside the delay", func(t *testing.T) {
		willing("back", 2, 60).c.Close()
		time.Sleep(300 * time.Millisecond)
		dialWire(t, b, "10001", packets.ConnectParams{ClientIdentifier: "back"},
			packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true})
		watch.none(3 * time.Second)
	})
}

// QoS 1 and 2 to a persistent session: an unacknowledged PUBLISH comes
// again after a reconnect with DUP set and the same packet id; a PUBREC'd
// one continues with PUBREL (MQTT-4.4.0-1).
func TestConformance_RedeliveryOnReconnect(t *testing.T) {
	b := openedBroker(t, nil)
	pub := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	session := packets.Properties{SessionExpiryInterval: 300, SessionExpiryIntervalFlag: true}
	connect := func(clean bool) *wire {
		return dialWire(t, b, "10002", packets.ConnectParams{ClientIdentifier: "phone", Clean: clean}, session)
	}
	s := connect(true)
	if code := s.subscribe(packets.Subscription{Filter: "public/q/#", Qos: 2}, 0); code != 2 {
		t.Fatalf("SUBACK %#x, want 2", code)
	}
	for qos := byte(1); qos <= 2; qos++ {
		topic := fmt.Sprintf("public/q/%d", qos)
		if ack := pub.publish(topic, "m", qos, packets.Properties{}); ack.ReasonCode != 0 {
			t.Fatalf("QoS %d publish: code %#x", qos, ack.ReasonCode)
		}
		first := s.mustPublish(wait)
		if first.FixedHeader.Qos != qos || first.FixedHeader.Dup {
			t.Fatalf("first delivery: QoS %d dup %v", first.FixedHeader.Qos, first.FixedHeader.Dup)
		}
		s.c.Close() // unacknowledged
		s = connect(false)
		if !s.c.Connack.SessionPresent {
			t.Fatal("session not present")
		}
		again := s.mustPublish(wait)
		if again.TopicName != topic || !again.FixedHeader.Dup || again.PacketID != first.PacketID || again.FixedHeader.Qos != qos {
			t.Fatalf("redelivery: %s dup %v id %d (first %d) QoS %d", again.TopicName, again.FixedHeader.Dup, again.PacketID, first.PacketID, again.FixedHeader.Qos)
		}
		s.ack(again)
		if qos == 1 {
			s.sync()
			continue
		}
		if rel, ok := s.next(wait); !ok || rel.FixedHeader.Type != packets.Pubrel || rel.PacketID != again.PacketID {
			t.Fatalf("after PUBREC: ok=%v type %d", ok, rel.FixedHeader.Type)
		}
		s.c.Close() // PUBREL not answered
		s = connect(false)
		if rel, ok := s.next(wait); !ok || rel.FixedHeader.Type != packets.Pubrel || rel.PacketID != again.PacketID {
			t.Fatalf("PUBREL after reconnect: ok=%v type %d id %d", ok, rel.FixedHeader.Type, rel.PacketID)
		}
		s.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: again.PacketID})
		s.none(500 * time.Millisecond) // exactly once: no third copy
	}
}

// Session present and session expiry: a session is kept for its Session
// Expiry Interval and no longer; Clean Start drops it; DISCONNECT may
// change the interval (MQTT-3.1.2-4, 3.14.2.2.2).
func TestConformance_SessionExpiry(t *testing.T) {
	b := openedBroker(t, nil)
	pub := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	connect := func(id string, clean bool, expiry uint32) *wire {
		return dialWire(t, b, "10002", packets.ConnectParams{ClientIdentifier: id, Clean: clean},
			packets.Properties{SessionExpiryInterval: expiry, SessionExpiryIntervalFlag: true})
	}
	subscribed := func(id string, expiry uint32) *wire {
		w := connect(id, true, expiry)
		if code := w.subscribe(sub1("public/s/"+id), 0); code != 1 {
			t.Fatalf("SUBACK %#x", code)
		}
		return w
	}
	// delivers reports whether the session's subscription is there: a
	// message published now reaches the reconnected client.
	delivers := func(w *wire, id string) bool {
		pub.publish("public/s/"+id, "probe", 1, packets.Properties{})
		pk, ok := w.next(time.Second)
		return ok && pk.FixedHeader.Type == packets.Publish
	}

	t.Run("kept within its expiry", func(t *testing.T) {
		subscribed("kept", 60).c.Close()
		w := connect("kept", false, 60)
		if !w.c.Connack.SessionPresent || !delivers(w, "kept") {
			t.Fatal("session or subscription lost")
		}
	})
	t.Run("deny: gone after its expiry", func(t *testing.T) {
		subscribed("short", 1).c.Close()
		time.Sleep(4 * time.Second) // mochi ends sessions on a 1 s tick, in whole seconds past the expiry
		w := connect("short", false, 60)
		if w.c.Connack.SessionPresent || delivers(w, "short") {
			t.Fatal("an expired session was kept")
		}
	})
	t.Run("deny: expiry 0 ends with the connection", func(t *testing.T) {
		subscribed("zero", 0).c.Close()
		time.Sleep(200 * time.Millisecond)
		w := connect("zero", false, 60)
		if w.c.Connack.SessionPresent {
			t.Fatal("session with expiry 0 kept")
		}
	})
	t.Run("deny: clean start drops the session", func(t *testing.T) {
		subscribed("clean", 60).c.Close()
		w := connect("clean", true, 60)
		if w.c.Connack.SessionPresent || delivers(w, "clean") {
			t.Fatal("clean start kept the session")
		}
	})
	t.Run("lowered at DISCONNECT", func(t *testing.T) {
		zero := uint32(0)
		subscribed("lowered", 60).disconnect(0, &zero)
		time.Sleep(200 * time.Millisecond)
		if w := connect("lowered", false, 60); w.c.Connack.SessionPresent {
			t.Fatal("session kept after DISCONNECT set its expiry to 0")
		}
	})
}

// Topic aliases both ways: an inbound alias stands for its topic in later
// publishes; the broker aliases topics to a client that allows it; an
// alias above the broker's maximum ends the connection (0x94).
func TestConformance_TopicAliases(t *testing.T) {
	b := openedBroker(t, func(c *broker.Config) { c.MQTT.TopicAliasMaximum = 8 })
	recv := dialWire(t, b, "10002", packets.ConnectParams{Clean: true}, packets.Properties{TopicAliasMaximum: 4})
	if code := recv.subscribe(sub1("public/alias/#"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	send := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	if got := send.c.Connack.Properties.TopicAliasMaximum; got != 8 {
		t.Fatalf("CONNACK Topic Alias Maximum %d, want 8", got)
	}
	alias := packets.Properties{TopicAlias: 3, TopicAliasFlag: true}
	send.publish("public/alias/x", "one", 1, alias)
	send.publish("", "two", 1, alias)

	first, second := recv.mustPublish(wait), recv.mustPublish(wait)
	recv.ack(first)
	recv.ack(second)
	if first.TopicName != "public/alias/x" || first.Properties.TopicAlias == 0 || string(first.Payload) != "one" {
		t.Fatalf("first: topic %q alias %d payload %q", first.TopicName, first.Properties.TopicAlias, first.Payload)
	}
	if second.TopicName != "" || second.Properties.TopicAlias != first.Properties.TopicAlias || string(second.Payload) != "two" {
		t.Fatalf("second: topic %q alias %d, want the alias alone (%d)", second.TopicName, second.Properties.TopicAlias, first.Properties.TopicAlias)
	}

	t.Run("deny: alias above the maximum", func(t *testing.T) {
		bad := dialWire(t, b, "10003", packets.ConnectParams{Clean: true}, packets.Properties{})
		bad.pid++
		bad.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "public/alias/y",
			PacketID: bad.pid, Payload: []byte("x"), Properties: packets.Properties{TopicAlias: 9, TopicAliasFlag: true}})
		bad.mustDisconnect(packets.ErrTopicAliasInvalid)
	})
}

// A shared subscription's members share the messages: each message reaches
// exactly one member, and no retained message is sent at SUBSCRIBE.
func TestConformance_SharedSubscriptions(t *testing.T) {
	b := openedBroker(t, nil)
	pub := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	pub.publish("public/jobs/retained", "old", 1, packets.Properties{})
	pub.pid++
	pub.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: "public/jobs/r", PacketID: pub.pid, Payload: []byte("retained")})
	readAck(t, pub.c, pub.pid)

	members := []*wire{
		dialWire(t, b, "10002", packets.ConnectParams{Clean: true}, packets.Properties{}),
		dialWire(t, b, "10003", packets.ConnectParams{Clean: true}, packets.Properties{}),
	}
	for _, m := range members {
		if code := m.subscribe(sub1("$share/workers/public/jobs/#"), 0); code != 1 {
			t.Fatalf("SUBACK %#x", code)
		}
	}
	const n = 20
	for i := range n {
		pub.publish("public/jobs/x", fmt.Sprint(i), 1, packets.Properties{})
	}
	var got []string
	for _, m := range members {
		for {
			pk, ok := m.next(500 * time.Millisecond)
			if !ok {
				break
			}
			if pk.FixedHeader.Type != packets.Publish {
				continue
			}
			m.ack(pk)
			if string(pk.Payload) == "retained" {
				// Routed after its PUBACK, it may still reach a member
				// live; sent as the retained message it would carry
				// the flag.
				if pk.FixedHeader.Retain {
					t.Fatal("a shared subscription got a retained message at SUBSCRIBE")
				}
				continue
			}
			got = append(got, string(pk.Payload))
		}
	}
	slices.Sort(got)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprint(i)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the group got %v, want each of 0..%d once (and no retained message)", got, n-1)
	}
}

// Flow control both ways: the broker sends a client no more unacknowledged
// QoS 1 PUBLISHes than its Receive Maximum, and announces its own, which
// a client exceeding with QoS 2 publishes is disconnected for (0x93).
func TestConformance_ReceiveMaximum(t *testing.T) {
	b := openedBroker(t, func(c *broker.Config) { c.MQTT.ReceiveMaximum = 2 })
	pub := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	if got := pub.c.Connack.Properties.ReceiveMaximum; got != 2 {
		t.Fatalf("CONNACK Receive Maximum %d, want 2", got)
	}
	slow := dialWire(t, b, "10002", packets.ConnectParams{Clean: true}, packets.Properties{ReceiveMaximum: 2})
	if code := slow.subscribe(sub1("public/flow"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	for i := range 5 {
		pub.publish("public/flow", fmt.Sprint(i), 1, packets.Properties{})
	}
	a, c := slow.mustPublish(wait), slow.mustPublish(wait)
	slow.none(500 * time.Millisecond) // the third waits for an ack
	slow.ack(a)
	third := slow.mustPublish(wait)
	if string(a.Payload) != "0" || string(c.Payload) != "1" || string(third.Payload) != "2" {
		t.Fatalf("order: %q %q %q", a.Payload, c.Payload, third.Payload)
	}

	t.Run("deny: a client over the broker's maximum", func(t *testing.T) {
		greedy := dialWire(t, b, "10003", packets.ConnectParams{Clean: true}, packets.Properties{})
		for i := range 3 { // QoS 2, never released: 3 > 2 outstanding
			greedy.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2},
				TopicName: "public/flow2", PacketID: uint16(i + 1), Payload: []byte("x")})
		}
		greedy.mustDisconnect(packets.ErrReceiveMaximum)
	})
}

// Maximum packet sizes both ways: the broker announces its own and ends a
// connection that sends more (0x95); it never sends a client a packet
// larger than the client's Maximum Packet Size (the message is skipped for
// that client, MQTT-3.1.2-25).
func TestConformance_MaximumPacketSize(t *testing.T) {
	b := openedBroker(t, func(c *broker.Config) { c.MQTT.MaximumPacketSize = 200 << 10 })
	small := dialWire(t, b, "10002", packets.ConnectParams{Clean: true}, packets.Properties{MaximumPacketSize: 200})
	if got := small.c.Connack.Properties.MaximumPacketSize; got != 200<<10 {
		t.Fatalf("CONNACK Maximum Packet Size %d, want %d", got, 200<<10)
	}
	if code := small.subscribe(sub1("public/size"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	pub := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	pub.publish("public/size", string(bytes.Repeat([]byte("x"), 500)), 1, packets.Properties{})
	pub.publish("public/size", "fits", 1, packets.Properties{})
	if pk := small.mustPublish(wait); string(pk.Payload) != "fits" {
		t.Fatalf("got %d bytes, want only the message that fits", len(pk.Payload))
	}

	t.Run("deny: a packet over the broker's maximum", func(t *testing.T) {
		pub.pid++
		pub.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "public/size",
			PacketID: pub.pid, Payload: bytes.Repeat([]byte("y"), 201<<10)})
		pub.mustDisconnect(packets.ErrPacketTooLarge)
	})
}

// Request/response and the other PUBLISH properties reach subscribers as
// sent: Response Topic, Correlation Data, User Properties (in order),
// Content Type and Payload Format Indicator; a live message carries no
// Message Expiry Interval unless the publisher set one, and then what is
// left of it.
func TestConformance_PublishPropertiesRoundTrip(t *testing.T) {
	b := openedBroker(t, nil)
	responder := dialWire(t, b, "10002", packets.ConnectParams{Clean: true}, packets.Properties{})
	if code := responder.subscribe(sub1("public/req"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	requester := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	if code := requester.subscribe(sub1("public/resp/10001"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	user := []packets.UserProperty{{Key: "a", Val: "1"}, {Key: "b", Val: "2"}, {Key: "a", Val: "3"}}
	requester.publish("public/req", "question", 1, packets.Properties{ResponseTopic: "public/resp/10001",
		CorrelationData: []byte{0, 1, 2}, User: user, ContentType: "application/json", PayloadFormat: 1, PayloadFormatFlag: true})
	req := responder.mustPublish(wait)
	responder.ack(req)
	p := req.Properties
	if p.ResponseTopic != "public/resp/10001" || !bytes.Equal(p.CorrelationData, []byte{0, 1, 2}) || !slices.Equal(p.User, user) ||
		p.ContentType != "application/json" || !p.PayloadFormatFlag || p.PayloadFormat != 1 || p.MessageExpiryInterval != 0 {
		t.Fatalf("request properties: %+v", p)
	}
	responder.publish(p.ResponseTopic, "answer", 1, packets.Properties{CorrelationData: p.CorrelationData, MessageExpiryInterval: 60})
	resp := requester.mustPublish(wait)
	requester.ack(resp)
	if string(resp.Payload) != "answer" || !bytes.Equal(resp.Properties.CorrelationData, []byte{0, 1, 2}) {
		t.Fatalf("response: %q %+v", resp.Payload, resp.Properties)
	}
	if e := resp.Properties.MessageExpiryInterval; e == 0 || e > 60 {
		t.Fatalf("response's Message Expiry Interval %d, want what is left of 60", e)
	}
}

// Every SUBACK code a SUBSCRIBE can get on this broker.
func TestConformance_SubackCodes(t *testing.T) {
	b := openedBroker(t, func(c *broker.Config) { c.ACL.Rules = append(c.ACL.Rules, "read feed/#") })
	w := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	for _, tt := range []struct {
		filter string
		qos    byte
		noLoc  bool
		code   byte
	}{
		{"public/a", 0, false, 0x00},
		{"public/a", 1, false, 0x01},
		{"public/a", 2, false, 0x02},
		{"feed/x", 2, false, 0x02},
		{"inbox/10001", 2, false, 0x01},    // the broker's own topics: QoS 1 at most
		{"deny: closed/x", 1, false, 0x87}, // no rule
		{"deny: inbox/10021", 1, false, 0x87},
		{"deny: inbox/+", 1, false, 0x87},
		{"deny: public/#/x", 1, false, 0x8F},                // malformed filter
		{"deny: $share/g/public/a", 1, true, 0x82},          // no local on a shared subscription
		{"deny: $share/g/inbox/10001", 1, false, 0x87},      // reserved, also shared
		{"deny: $SYS/broker/clients/total", 1, false, 0x87}, // $SYS is closed by default
	} {
		filter := tt.filter
		if len(filter) > 6 && filter[:6] == "deny: " {
			filter = filter[6:]
		}
		t.Run(tt.filter, func(t *testing.T) {
			if code := w.subscribe(packets.Subscription{Filter: filter, Qos: tt.qos, NoLocal: tt.noLoc}, 0); code != tt.code {
				t.Fatalf("SUBACK %#x, want %#x", code, tt.code)
			}
		})
	}
}
