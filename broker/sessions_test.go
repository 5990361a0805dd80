package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// A persistent session keeps its subscriptions across a restart: a client
// that reconnects without subscribing again (what paho, CocoaMQTT and
// MQTT.js do when the CONNACK says session present) gets its inbox and its
// opened topics, with the QoS it subscribed with.
func TestSessions_SurviveRestartWithoutResubscribe(t *testing.T) {
	for _, proto := range []string{"v3", "v5"} {
		t.Run(proto, func(t *testing.T) {
			cfg := mqtttest.Config(t)
			cfg.ACL.Rules = []string{"readwrite devices/#"}
			b := mqtttest.Start(t, cfg)
			tokA, tokB := mqtttest.Token(t, "10001"), mqtttest.Token(t, "10021")
			// connectB connects B's persistent session; subscribe says
			// whether to subscribe (only the first time).
			connectB := func(addr string, subscribe bool) (in *mqtttest.Inbox, present bool, closeB func()) {
				t.Helper()
				if proto == "v3" {
					c := mqtttest.MustV3(t, addr, "10021", tokB, mqtttest.V3Options{})
					if subscribe {
						if err := c.Sub("inbox/10021", 1); err != nil {
							t.Fatal(err)
						}
						if err := c.Sub("devices/10021/#", 1); err != nil {
							t.Fatal(err)
						}
					}
					return c.Inbox, c.SessionPresent, func() { c.Disconnect(250) }
				}
				c := mqtttest.MustV5(t, addr, "10021", tokB, mqtttest.V5Options{SessionExpiry: 3600})
				if subscribe {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					sa, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{
						{Topic: "inbox/10021", QoS: 1},
						{Topic: "devices/10021/#", QoS: 1, NoLocal: true},
					}})
					if err != nil || sa.Reasons[0] != 1 || sa.Reasons[1] != 1 {
						t.Fatalf("subscribe: %v %v", sa, err)
					}
				}
				return c.Inbox, c.Connack.SessionPresent, c.Close
			}
			_, present, closeB := connectB(b.MQTTAddr(), true)
			if present {
				t.Fatal("a new session said session present")
			}
			closeB()

			alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", tokA, mqtttest.V3Options{Clean: true})
			sendN(t, alice, "10021", 0, 200)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b2 := mqtttest.Start(t, cfg)
			in, present, closeB := connectB(b2.MQTTAddr(), false)
			defer closeB()
			if !present {
				t.Fatal("CONNACK after the restart: session present 0, want 1")
			}
			checkOrder(t, in.Collect(t, 200, 30*time.Second), 0, 200)

			// The opened-topic subscription came back too.
			dev := mqtttest.MustV3(t, b2.MQTTAddr(), "10001", tokA, mqtttest.V3Options{Clean: true})
			if err := dev.PubQoS("devices/10021/lamp", 1, false, "on"); err != nil {
				t.Fatal(err)
			}
			if e := in.Next(t, wait); e.Topic != "devices/10021/lamp" || string(e.Raw) != "on" {
				t.Fatalf("opened topic after restart: %s on %s", e.Raw, e.Topic)
			}
		})
	}
}

// An MQTT 5 session that expired while the broker was down is gone after
// the restart: session present 0 and nothing delivered without a SUBSCRIBE.
func TestSessions_ExpiredSessionGoneAfterRestart(t *testing.T) {
	cfg := mqtttest.Config(t)
	b := mqtttest.Start(t, cfg)
	tokB := mqtttest.Token(t, "10021")
	c := mqtttest.MustV5(t, b.MQTTAddr(), "10021", tokB, mqtttest.V5Options{SessionExpiry: 1, Subscribe: true})
	c.Close()
	// A session with an hour to live, beside it, stays.
	keep := mqtttest.MustV5(t, b.MQTTAddr(), "10022", mqtttest.Token(t, "10022"), mqtttest.V5Options{SessionExpiry: 3600, Subscribe: true})
	keep.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	b2 := mqtttest.Start(t, cfg)
	c2 := mqtttest.MustV5(t, b2.MQTTAddr(), "10021", tokB, mqtttest.V5Options{SessionExpiry: 3600})
	if c2.Connack.SessionPresent {
		t.Fatal("expired session came back after the restart")
	}
	k2 := mqtttest.MustV5(t, b2.MQTTAddr(), "10022", mqtttest.Token(t, "10022"), mqtttest.V5Options{SessionExpiry: 3600})
	if !k2.Connack.SessionPresent {
		t.Fatal("unexpired session lost")
	}
	alice := mqtttest.MustV3(t, b2.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	sendN(t, alice, "10021", 0, 1)
	c2.Inbox.None(t, 300*time.Millisecond) // not subscribed: the expired session's subscription is gone
}

// A session that expires while the broker runs is removed from the store by
// the sweep, also when mochi does not hold it (3.1.1 sessions restored at
// start use the configured maximum).
func TestSessions_V3ExpiresAtConfiguredMaximum(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.MQTT.MaximumSessionExpiryInterval = time.Second
	b := mqtttest.Start(t, cfg)
	tokB := mqtttest.Token(t, "10021")
	c := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Subscribe: true})
	c.Disconnect(250)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := mqtttest.Start(t, cfg) // restored with under a second to live
	deadline := time.Now().Add(15 * time.Second)
	for {
		c2 := mqtttest.MustV3(t, b2.MQTTAddr(), "10021", tokB, mqtttest.V3Options{})
		present := c2.SessionPresent
		c2.Disconnect(0)
		if !present {
			break // expired; this connection's own session replaces it
		}
		if time.Now().After(deadline) {
			t.Fatal("3.1.1 session still present long after maximum_session_expiry_interval")
		}
		// Each reconnect starts the expiry again: wait it out.
		time.Sleep(2500 * time.Millisecond)
	}
}

// A clean reconnect ends the stored session: a restart does not bring its
// subscriptions back.
func TestSessions_CleanStartRemovesStoredSession(t *testing.T) {
	cfg := mqtttest.Config(t)
	b := mqtttest.Start(t, cfg)
	tokB := mqtttest.Token(t, "10021")
	c := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Subscribe: true})
	c.Disconnect(250)
	clean := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tokB, mqtttest.V3Options{Clean: true})
	if clean.SessionPresent {
		t.Fatal("clean session said session present")
	}
	clean.Disconnect(250)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := mqtttest.Start(t, cfg)
	c2 := mqtttest.MustV3(t, b2.MQTTAddr(), "10021", tokB, mqtttest.V3Options{})
	if c2.SessionPresent {
		t.Fatal("a session ended by a clean connection came back after a restart")
	}
}

// Retained messages of opened topics survive a restart; a cleared one stays
// cleared.
func TestSessions_RetainedMessagesSurviveRestart(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.ACL.Rules = []string{"readwrite devices/%u/#"}
	b := mqtttest.Start(t, cfg)
	tok := mqtttest.Token(t, "10001")
	a := mqtttest.MustV3(t, b.MQTTAddr(), "10001", tok, mqtttest.V3Options{Clean: true})
	for _, p := range []struct{ topic, payload string }{
		{"devices/10001/lamp", "on"}, {"devices/10001/door", "open"}, {"devices/10001/door", "closed"},
		{"devices/10001/fan", "fast"}, {"devices/10001/fan", ""}, // cleared
	} {
		if err := a.PubQoS(p.topic, 1, true, p.payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := mqtttest.Start(t, cfg)
	a2 := mqtttest.MustV3(t, b2.MQTTAddr(), "10001", tok, mqtttest.V3Options{Clean: true})
	if err := a2.Sub("devices/10001/#", 1); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range 2 {
		e := a2.Inbox.Next(t, wait)
		got[e.Topic] = string(e.Raw)
	}
	if fmt.Sprint(got) != "map[devices/10001/door:closed devices/10001/lamp:on]" {
		t.Fatalf("retained after restart = %v", got)
	}
	a2.Inbox.None(t, 300*time.Millisecond)
}

// One account cannot pile up persistent sessions with new client ids:
// past limits.max_sessions_per_account the sessions disconnected longest
// ago end, in the store too, and a connected one is never ended.
func TestSessions_CapPerAccount(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.MaxSessionsPerAccount = 3
	b := mqtttest.Start(t, cfg)
	tok := mqtttest.Token(t, "10021")
	for i := 1; i <= 5; i++ {
		c := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: fmt.Sprintf("c%d", i), Subscribe: true})
		c.Disconnect(250)
		time.Sleep(20 * time.Millisecond)
	}
	present := func(i int) bool {
		c := mqtttest.MustV3(t, b.MQTTAddr(), "10021", tok, mqtttest.V3Options{ClientID: fmt.Sprintf("c%d", i)})
		defer c.Disconnect(250)
		return c.SessionPresent
	}
	for _, i := range []int{5, 4, 3} {
		if !present(i) {
			t.Fatalf("session c%d, among the 3 newest, was ended", i)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := mqtttest.Start(t, cfg) // the store agrees
	b = b2
	for _, i := range []int{1, 2} {
		if present(i) {
			t.Fatalf("session c%d, over the cap of 3, was kept", i)
		}
	}
}
