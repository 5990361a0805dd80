package broker_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The ack of a QoS 1 im/sendmsg comes before the sender's MsgSent copy
// (both go out in one write, hooks/delivery/ackcopy.go), with the copy's
// msgid; and while a sender's request is being stored, messages to the
// sender still arrive: two users sending to each other at once each get
// every ack, every copy and every message of the other.

// wireMsg is what a test reads of an inbox envelope.
type wireMsg struct {
	Method string `json:"_method_"`
	MsgID  string `json:"msgid"`
	Text   string `json:"ct"`
}

func msgIDProperty(pk packets.Packet) string {
	for _, u := range pk.Properties.User {
		if u.Key == "msgid" {
			return u.Val
		}
	}
	return ""
}

func TestAckThenCopy(t *testing.T) {
	b := openedBroker(t, nil)
	alice := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	bob := dialWire(t, b, "10021", packets.ConnectParams{Clean: true}, packets.Properties{})
	for _, w := range []*wire{alice, bob} {
		if code := w.subscribe(sub1("inbox/"+map[*wire]string{alice: "10001", bob: "10021"}[w]), 0); code != 1 {
			t.Fatalf("SUBACK %#x", code)
		}
	}
	for i := range 10 {
		alice.pid++
		pid := alice.pid
		alice.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "im/sendmsg", PacketID: pid, Payload: fmt.Appendf(nil, `{"uid":10021,"msg":"m%d","cid":"c-%d"}`, i, i)})
		ack, ok := alice.next(wait)
		if !ok || ack.FixedHeader.Type != packets.Puback || ack.PacketID != pid || ack.ReasonCode != 0 {
			t.Fatalf("message %d: first packet back %+v (%v), want the PUBACK of %d", i, ack.FixedHeader, ok, pid)
		}
		copyPk, ok := alice.next(wait)
		if !ok || copyPk.FixedHeader.Type != packets.Publish || copyPk.TopicName != "inbox/10001" {
			t.Fatalf("message %d: after the ack %+v (%v), want the MsgSent copy", i, copyPk.FixedHeader, ok)
		}
		alice.ack(copyPk)
		var m wireMsg
		if err := json.Unmarshal(copyPk.Payload, &m); err != nil || m.Method != "MsgSent" || m.MsgID != msgIDProperty(ack) {
			t.Fatalf("message %d: copy %s (%v), want MsgSent with the ack's msgid %q", i, copyPk.Payload, err, msgIDProperty(ack))
		}
		got := bob.mustPublish(wait)
		bob.ack(got)
		if err := json.Unmarshal(got.Payload, &m); err != nil || m.MsgID != msgIDProperty(ack) {
			t.Fatalf("message %d: bob got %s (%v), want msgid %q", i, got.Payload, err, msgIDProperty(ack))
		}
	}
}

func TestAckCopyBothWays(t *testing.T) {
	const n = 50
	b := openedBroker(t, nil)
	users := []string{"10001", "10021"}
	ws := []*wire{
		dialWire(t, b, users[0], packets.ConnectParams{Clean: true}, packets.Properties{}),
		dialWire(t, b, users[1], packets.ConnectParams{Clean: true}, packets.Properties{}),
	}
	for i, w := range ws {
		if code := w.subscribe(sub1("inbox/"+users[i]), 0); code != 1 {
			t.Fatalf("SUBACK %#x", code)
		}
	}
	type tally struct{ acks, copies, received int }
	done := make(chan tally, 2)
	for i, w := range ws {
		go func() {
			var got tally
			other := users[1-i]
			for k := range n { // all sent first: both directions in flight at once
				w.pid++
				if err := w.c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
					TopicName: "im/sendmsg", PacketID: w.pid,
					Payload: fmt.Appendf(nil, `{"uid":%s,"msg":"from %s %d","cid":"c-%d"}`, other, users[i], k, k)}); err != nil {
					done <- got
					return
				}
			}
			_ = w.c.SetReadDeadline(time.Now().Add(wait))
			for got.acks < n || got.copies < n || got.received < n {
				pk, err := w.c.Read()
				if err != nil {
					break
				}
				switch pk.FixedHeader.Type {
				case packets.Puback:
					got.acks++
				case packets.Publish:
					if pk.FixedHeader.Qos > 0 {
						_ = w.c.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
					}
					var m wireMsg
					if json.Unmarshal(pk.Payload, &m) == nil && m.Method == "MsgSent" {
						got.copies++
					} else if m.Method == "SendMsg" && strings.HasPrefix(m.Text, "from "+other) {
						got.received++
					}
				}
			}
			done <- got
		}()
	}
	for range ws {
		if got := <-done; got != (tally{n, n, n}) {
			t.Errorf("acks, copies, messages received = %+v, want %d of each", got, n)
		}
	}
}
