package broker_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The client's Receive Maximum holds for everything sent to it together:
// inbox messages, notices on broadcast and QoS 1 on an opened topic. A raw
// MQTT 5 client acknowledges only when it holds its maximum (or nothing
// has come for a moment) and counts what is outstanding: never more than
// its maximum, nothing lost, no stall, each stream in order.
func TestReceiveMaximum_AllSendersTogether(t *testing.T) {
	for _, rm := range []uint16{1, 2, 10} {
		t.Run(fmt.Sprintf("RM%d", rm), func(t *testing.T) {
			cfg := mqtttest.Config(t)
			cfg.ACL.Rules = []string{"readwrite devices/#"}
			b := mqtttest.Start(t, cfg)
			const inboxN, noticeN, openedN = 1000, 50, 200
			uid := "10021"
			r, err := mqtttest.DialRawV5(b.MQTTAddr(), packets.ConnectParams{
				ClientIdentifier: "raw", Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid)),
			}, packets.Properties{ReceiveMaximum: rm, SessionExpiryInterval: 3600})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Write(packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
				Filters: packets.Subscriptions{
					{Filter: "inbox/" + uid, Qos: 1}, {Filter: "broadcast", Qos: 1}, {Filter: "devices/" + uid + "/#", Qos: 1},
				},
			}); err != nil {
				t.Fatal(err)
			}
			pks := make(chan packets.Packet, 1024)
			go func() {
				defer close(pks)
				for {
					pk, err := r.Read()
					if err != nil {
						return
					}
					pks <- pk
				}
			}()
			if pk := <-pks; pk.FixedHeader.Type != packets.Suback || len(pk.ReasonCodes) != 3 || pk.ReasonCodes[2] != 1 {
				t.Fatalf("SUBACK = %+v", pk)
			}

			var wg sync.WaitGroup
			send := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
			send(func() {
				alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
				for i := range inboxN {
					alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":%s,"msg":"m%d"}`, uid, i))
				}
			})
			send(func() {
				admin := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})
				for i := range noticeN {
					admin.MustPub(t, "im/systemadmin", fmt.Sprintf(`{"content":"n%d"}`, i))
				}
			})
			send(func() {
				dev := mqtttest.MustV3(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V3Options{Clean: true})
				for i := range openedN {
					if err := dev.PubQoS("devices/"+uid+"/temp", 1, false, fmt.Sprintf("d%d", i)); err != nil {
						t.Error(err)
						return
					}
				}
			})

			next := map[string]int{}
			outstanding := map[uint16]bool{}
			var unacked []uint16
			ack := func(pid uint16) {
				delete(outstanding, pid)
				if err := r.Write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid}); err != nil {
					t.Fatal(err)
				}
			}
			maxSeen, total := 0, 0
			deadline := time.After(90 * time.Second)
			for total < inboxN+noticeN+openedN {
				select {
				case <-deadline:
					t.Fatalf("stalled: got %d of %d (%v), %d outstanding", total, inboxN+noticeN+openedN, next, len(outstanding))
				case <-time.After(20 * time.Millisecond):
					for _, pid := range unacked { // quiet: give everything back
						ack(pid)
					}
					unacked = unacked[:0]
					continue
				case pk, ok := <-pks:
					if !ok {
						t.Fatalf("connection closed after %d messages (%v)", total, next)
					}
					if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 1 {
						t.Fatalf("unexpected packet %+v", pk.FixedHeader)
					}
					if outstanding[pk.PacketID] {
						t.Fatalf("packet id %d sent again while outstanding", pk.PacketID)
					}
					outstanding[pk.PacketID] = true
					maxSeen = max(maxSeen, len(outstanding))
					if len(outstanding) > int(rm) {
						t.Fatalf("%d unacknowledged PUBLISHes outstanding, over the client's Receive Maximum %d", len(outstanding), rm)
					}
					unacked = append(unacked, pk.PacketID)
					text := string(pk.Payload)
					if pk.TopicName != "devices/"+uid+"/temp" {
						var env struct{ Ct string }
						if err := json.Unmarshal(pk.Payload, &env); err != nil {
							t.Fatalf("bad envelope on %s: %s", pk.TopicName, pk.Payload)
						}
						text = env.Ct
					}
					stream := text[:1]
					if want := fmt.Sprintf("%s%d", stream, next[stream]); text != want {
						t.Fatalf("got %s on %s, want %s", text, pk.TopicName, want)
					}
					next[stream]++
					total++
					if len(unacked) >= int(rm) { // hold the maximum: free one
						ack(unacked[0])
						unacked = unacked[1:]
					}
				}
			}
			wg.Wait()
			t.Logf("Receive Maximum %d: %d messages, at most %d outstanding", rm, total, maxSeen)
			if maxSeen != int(rm) {
				t.Fatalf("never reached the maximum (%d of %d): the test did not press the limit", maxSeen, rm)
			}
		})
	}
}
