package broker_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// TestOffline_1000InOrder: B is offline with a persistent session; 1,000
// messages arrive, in order, when B reconnects, and again (none lost, none
// reordered) across a broker restart on the same data dir.
func TestOffline_1000InOrder(t *testing.T) {
	for _, proto := range []string{"v3", "v5"} {
		t.Run(proto, func(t *testing.T) {
			cfg := mqtttest.Config(t)
			b := mqtttest.Start(t, cfg)
			tokA, tokB := mqtttest.Token(t, "10001"), mqtttest.Token(t, "10021")

			// B's first connection creates the persistent session and leaves.
			// connectB reconnects B, collects n messages it has not seen
			// and disconnects. A message whose PUBACK had not reached the
			// broker when B last disconnected may come again (MQTT QoS 1):
			// such repeats are skipped here, and only they are allowed.
			seen := map[string]bool{}
			connectB := func(addr string, n int) []mqtttest.Envelope {
				var in *mqtttest.Inbox
				if proto == "v3" {
					c := mqtttest.MustV3(t, addr, "10021", tokB, mqtttest.V3Options{Subscribe: true})
					defer c.Disconnect(250)
					in = c.Inbox
				} else {
					c := mqtttest.MustV5(t, addr, "10021", tokB, mqtttest.V5Options{Subscribe: true, SessionExpiry: 3600, ReceiveMaximum: 20})
					defer c.Close()
					in = c.Inbox
				}
				var got []mqtttest.Envelope
				repeats := 0
				for len(got) < n {
					e := in.Next(t, 30*time.Second)
					if seen[e.Str("msgid")] {
						repeats++
						continue
					}
					seen[e.Str("msgid")] = true
					got = append(got, e)
				}
				if repeats > 64 { // at most the unacked window
					t.Errorf("%d repeated messages, more than the delivery window", repeats)
				}
				return got
			}
			bob, err := mqtttest.ConnectV3(b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Subscribe: true})
			if err != nil {
				t.Fatal(err)
			}
			bob.Disconnect(0)

			alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", tokA, mqtttest.V3Options{Clean: true})
			sendN(t, alice, "10021", 0, 1000)
			got := connectB(b.MQTTAddr(), 1000)
			checkOrder(t, got, 0, 1000)

			// Offline again, 1,000 more, then a restart before B reconnects.
			// (The SIGKILL variant runs against the real binary in cmd/inboxmq.)
			time.Sleep(100 * time.Millisecond)
			sendN(t, alice, "10021", 1000, 1000)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b2 := mqtttest.Start(t, cfg)
			got = connectB(b2.MQTTAddr(), 1000)
			checkOrder(t, got, 1000, 1000)
		})
	}
}

func sendN(t *testing.T, from *mqtttest.V3, to string, start, n int) {
	t.Helper()
	for i := start; i < start+n; i++ {
		from.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":%q,"msg":"m%d"}`, to, i))
	}
}

// checkOrder asserts messages m{start}..m{start+n-1} in order with increasing ids.
func checkOrder(t *testing.T, got []mqtttest.Envelope, start, n int) {
	t.Helper()
	prev := uint64(0)
	for i, e := range got {
		if want := fmt.Sprintf("m%d", start+i); e.Str("ct") != want {
			t.Fatalf("message %d: want %s, got %s", i, want, e.Raw)
		}
		id, err := strconv.ParseUint(e.Str("msgid"), 10, 64)
		if err != nil || id <= prev {
			t.Fatalf("message %d: msgid %q not increasing after %d", i, e.Str("msgid"), prev)
		}
		prev = id
	}
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
}

// TestOffline_DuplicatesOnlyForUnacked: what a session acknowledged is not
// delivered again after it reconnects.
func TestOffline_NoRedeliveryOfAcked(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Config(t))
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	tokB := mqtttest.Token(t, "10021")
	bob, err := mqtttest.ConnectV3(b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	sendN(t, alice, "10021", 0, 10)
	checkOrder(t, bob.Inbox.Collect(t, 10, wait), 0, 10)
	waitMetric(t, "http://"+b.AdminAddr(), "inboxmq_inbox_acks_total", 10) // the PUBACKs reached the broker
	bob.Disconnect(250)
	sendN(t, alice, "10021", 10, 5)
	bob2 := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{})
	checkOrder(t, bob2.Inbox.Collect(t, 5, wait), 10, 5)
	bob2.Inbox.None(t, 300*time.Millisecond)
}

// Over inbox.max_messages the oldest messages are dropped, logged and
// counted, never silently; the newest still arrive in order.
func TestRetention_OverflowDropsOldestAndCounts(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Inbox.MaxMessages = 3
	b := mqtttest.Start(t, cfg)
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	sendN(t, alice, "10021", 0, 5)
	waitMetric(t, "http://"+b.AdminAddr(), `inboxmq_messages_dropped_total{reason="overflow"}`, 2)
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	checkOrder(t, bob.Inbox.Collect(t, 3, wait), 2, 3)
	bob.Inbox.None(t, 200*time.Millisecond)
}
