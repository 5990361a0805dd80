package broker_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// An MQTT 5 sender gets the new message's id in the ack of its
// im/sendmsg (user property msgid), the same id MsgSent and the recipient
// carry; a resend with the same cid gets the original id; refused and
// other publishes get none.
func TestAckCarriesMsgID(t *testing.T) {
	b := openedBroker(t, nil)
	alice := dialWire(t, b, "10001", packets.ConnectParams{Clean: true}, packets.Properties{})
	bob := dialWire(t, b, "10021", packets.ConnectParams{Clean: true}, packets.Properties{})
	if code := bob.subscribe(sub1("inbox/10021"), 0); code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	msgid := func(ack packets.Packet) string {
		for _, u := range ack.Properties.User {
			if u.Key == "msgid" {
				return u.Val
			}
		}
		return ""
	}
	for _, qos := range []byte{1, 2} {
		ack := alice.publish("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"hi","cid":"c-%d"}`, qos), qos, packets.Properties{})
		id := msgid(ack)
		if id == "" || ack.ReasonCode != 0 {
			t.Fatalf("QoS %d ack: code %#x properties %+v, want msgid", qos, ack.ReasonCode, ack.Properties)
		}
		got := bob.mustPublish(wait)
		bob.ack(got)
		if got.FixedHeader.Qos == 2 {
			t.Fatal("inbox delivered at QoS 2")
		}
		var env struct {
			MsgID string `json:"msgid"`
		}
		if err := json.Unmarshal(got.Payload, &env); err != nil || env.MsgID != id {
			t.Fatalf("QoS %d: ack msgid %q, recipient got %s", qos, id, got.Payload)
		}
		// The same request again (a resend): the original id.
		if again := alice.publish("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"hi","cid":"c-%d"}`, qos), qos, packets.Properties{}); msgid(again) != id {
			t.Fatalf("QoS %d resend: msgid %q, want the original %q", qos, msgid(again), id)
		}
	}
	for _, tt := range []struct{ name, topic, payload string }{
		{"deny: refused request", "im/sendmsg", `{"uid":10001,"msg":"to myself"}`},
		{"deny: another request", "im/conn", `{"nickname":"A"}`},
		{"deny: opened topic", "public/x", "y"},
	} {
		if ack := alice.publish(tt.topic, tt.payload, 1, packets.Properties{}); msgid(ack) != "" {
			t.Errorf("%s: ack carries msgid %q", tt.name, msgid(ack))
		}
	}
	bob.none(300 * time.Millisecond)
}
