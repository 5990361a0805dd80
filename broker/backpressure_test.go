package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// With the shipped limits (20/s, burst 40, wait up to 10 s), a 3.1.1 and an
// MQTT 5 account each send 500 messages as fast as they can: the broker
// slows them down instead of refusing, every PUBACKed message is stored
// and delivered in order, and sending takes about what the rate says.
func TestBackpressure_ShippedLimitsSlowSendersDown(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits = broker.DefaultConfig().Limits
	cfg.Limits.ConnectionsPerIP = 0
	b := mqtttest.Start(t, cfg)
	const n = 500
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{Subscribe: true})

	start := time.Now()
	v3done := make(chan error, 1)
	go func() {
		// paho keeps every publish in flight at once: a real burst.
		var toks []interface{ WaitTimeout(time.Duration) bool }
		errs := make([]func() error, 0, n)
		for i := range n {
			tok := v3.Publish("im/sendmsg", 1, false, fmt.Sprintf(`{"uid":10021,"msg":"a%d"}`, i))
			toks = append(toks, tok)
			errs = append(errs, tok.Error)
		}
		for i, tok := range toks {
			if !tok.WaitTimeout(2 * time.Minute) {
				v3done <- fmt.Errorf("3.1.1 publish %d not acknowledged", i)
				return
			}
			if err := errs[i](); err != nil {
				v3done <- fmt.Errorf("3.1.1 publish %d: %w", i, err)
				return
			}
		}
		v3done <- nil
	}()
	for i := range n {
		code, err := v5.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"b%d"}`, i))
		if err != nil || code != 0 {
			t.Fatalf("MQTT 5 publish %d: code %#x, %v", i, code, err)
		}
	}
	if err := <-v3done; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// 460 tokens beyond the burst at 20/s: 23 s for each account, in parallel.
	if want := time.Duration(float64(n-40) / 20 * 0.9 * float64(time.Second)); took < want {
		t.Fatalf("500 messages each took %s: the rate (20/s after a burst of 40) was not applied (want >= %s)", took, want)
	}
	t.Logf("2 x %d messages took %s", n, took)

	next := map[string]int{"a": 0, "b": 0}
	for _, e := range bob.Inbox.Collect(t, 2*n, 30*time.Second) {
		ct := e.Str("ct")
		if want := fmt.Sprintf("%s%d", ct[:1], next[ct[:1]]); ct != want {
			t.Fatalf("delivered %s, want %s next", ct, want)
		}
		next[ct[:1]]++
	}
	// History agrees: each sender's conversation holds all 500.
	api := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
	for peer, prefix := range map[string]string{"10001": "a", "10002": "b"} {
		count, before := 0, ""
		for {
			resp := api.Do(t, "GET", "/api/v1/conversations/"+peer+"/messages?limit=50&before="+before,
				mqtttest.Auth{Token: mqtttest.Token(t, "10021")}, nil)
			msgs := resp.List("messages")
			for _, m := range msgs {
				if want := fmt.Sprintf("%s%d", prefix, n-1-count); m["ct"] != want {
					t.Fatalf("history of %s: %v, want %s", peer, m["ct"], want)
				}
				count++
			}
			next, _ := resp.Body["next"].(string)
			if next == "" {
				break
			}
			before = next
		}
		if count != n {
			t.Fatalf("history of %s holds %d messages, want %d", peer, count, n)
		}
	}
}

// A sender held past limits.message_wait is refused: MQTT 5 with PUBACK
// 0x97, 3.1.1 by closing its connection without a PUBACK (its library
// resends after reconnecting). The refused message is stored nowhere.
func TestBackpressure_PastTheBound(t *testing.T) {
	cfg := mqtttest.Config(t)
	// A token every 5 s after a burst of 2 (the v5 client's SUBSCRIBE takes one).
	cfg.Limits.MessageRate, cfg.Limits.MessageBurst, cfg.Limits.MessageWait = 0.2, 2, time.Second
	b := mqtttest.Start(t, cfg)
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})

	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{Subscribe: true})
	if code, err := v5.Pub("im/sendmsg", `{"uid":10021,"msg":"v5 first"}`); err != nil || code != 0 {
		t.Fatalf("first: %#x %v", code, err)
	}
	if code, err := v5.Pub("im/sendmsg", `{"uid":10021,"msg":"v5 refused"}`); err != nil || code != 0x97 {
		t.Fatalf("second, past the bound: code %#x, %v; want 0x97", code, err)
	}
	if e := v5.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "rate_limited" {
		t.Fatalf("error envelope = %s", e.Raw)
	}

	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	v3.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"v3 first"}`)
	v3.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"v3 second"}`)
	tok := v3.Publish("im/sendmsg", 1, false, `{"uid":10021,"msg":"v3 refused"}`)
	if tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
		t.Fatal("3.1.1 publish past the bound was acknowledged")
	}
	deadline := time.Now().Add(wait)
	for v3.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatal("3.1.1 connection still open after a refused publish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := map[string]bool{}
	for _, e := range bob.Inbox.Collect(t, 3, wait) {
		got[e.Str("ct")] = true
	}
	if !got["v5 first"] || !got["v3 first"] || !got["v3 second"] {
		t.Fatalf("delivered %v", got)
	}
	bob.Inbox.None(t, 500*time.Millisecond) // neither refused message
}

// SUBSCRIBE counts against the account's message rate like a publish: a
// subscribe storm past limits.message_wait ends the connection (MQTT 5:
// DISCONNECT 0x96), while an operator account is exempt.
func TestBackpressure_SubscribeStorm(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.MessageRate, cfg.Limits.MessageBurst, cfg.Limits.MessageWait = 0.2, 2, time.Second
	b := mqtttest.Start(t, cfg)
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{})
	for i := range 2 { // the burst
		if code, err := v5.Sub(fmt.Sprintf("inbox/1000%d", i), 1); err != nil || code != 0x87 {
			t.Fatalf("subscribe %d: %#x %v", i, code, err)
		}
	}
	if _, err := v5.Sub("inbox/10002", 1); err == nil {
		t.Fatal("a subscribe past the bound was answered")
	}
	select {
	case d := <-v5.Disconnects:
		if d.ReasonCode != 0x96 {
			t.Fatalf("DISCONNECT %#x, want 0x96", d.ReasonCode)
		}
	case <-time.After(wait):
		t.Fatal("no DISCONNECT after the subscribe storm")
	}
	admin := mqtttest.MustV3(t, b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true})
	for i := range 5 {
		if err := admin.Sub(fmt.Sprintf("$SYS/x%d", i), 0); err != nil {
			t.Fatalf("operator subscribe %d: %v", i, err)
		}
	}
}
