package broker_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// With message_wait 0 a publish over the rate is refused at once.
func TestLimits_MessageRatePerAccount(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.MessageRate, cfg.Limits.MessageBurst, cfg.Limits.MessageWait = 5, 10, 0
	b := mqtttest.Start(t, cfg)
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	flood := mqtttest.MustV5(t, b.MQTTAddr(), "10666", mqtttest.Token(t, "10666"), mqtttest.V5Options{Subscribe: true})
	calm := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})

	accepted, limited := 0, 0
	for i := 0; i < 30; i++ {
		code, err := flood.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"flood %d"}`, i))
		switch {
		case err != nil:
			t.Fatal(err)
		case code == 0:
			accepted++
		case code == 0x97:
			limited++
		default:
			t.Fatalf("unexpected reason %#x", code)
		}
	}
	// The burst (10) less the token the inbox SUBSCRIBE took.
	if limited == 0 || accepted < 9 || accepted > 15 {
		t.Fatalf("accepted %d, limited %d: want about the burst (10, one taken by the SUBSCRIBE) accepted", accepted, limited)
	}
	if e := flood.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "rate_limited" {
		t.Fatalf("error envelope = %s", e.Raw)
	}
	// Another account is not slowed down by the flooder.
	calm.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"calm"}`)
	for {
		if e := bob.Inbox.Next(t, wait); e.Str("ct") == "calm" {
			break
		}
	}
	// Operators are exempt.
	for i := 0; i < 30; i++ {
		if out, err := mqtttest.MosquittoPub(b.MQTTAddr(), mqtttest.AdminName, mqtttest.AdminPassword, "im/systemadmin",
			fmt.Sprintf(`{"uid":10021,"content":"n%d"}`, i)); err != nil {
			t.Fatal(out, err)
		}
	}
}

// A client that never finishes CONNECT is dropped after connect_timeout;
// a connection flood from one address is cut to the per-IP rate.
func TestLimits_SlowlorisAndFlood(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.ConnectTimeout = time.Second
	cfg.Limits.ConnectionsPerIP = 5
	b := mqtttest.Start(t, cfg)

	slow, err := net.Dial("tcp", b.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte{0x10, 0x20, 0x00}); err != nil { // a CONNECT that never ends
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := slow.Read(make([]byte, 1)); err == nil || time.Since(start) > 4*time.Second {
		t.Fatalf("slow CONNECT not dropped in time: err %v after %s", err, time.Since(start))
	}

	// 40 connections at once: the burst (10) get a CONNACK, plus what
	// the rate (5 a second) refills while the listener works through them,
	// which on a loaded machine is a second or two.
	flood := time.Now()
	var (
		mu        sync.Mutex
		connected int
		wg        sync.WaitGroup
	)
	for i := 0; i < 40; i++ {
		uid := fmt.Sprint(20000 + i)
		token := mqtttest.Token(t, uid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mqtttest.ConnectV3(b.MQTTAddr(), uid, token, mqtttest.V3Options{Clean: true})
			if err != nil {
				return
			}
			mu.Lock()
			connected++
			mu.Unlock()
			t.Cleanup(func() { c.Disconnect(0) })
		}()
	}
	wg.Wait()
	allowed := 10 + int(5*time.Since(flood).Seconds()) + 1
	if connected < 5 || connected > allowed {
		t.Fatalf("%d of 40 flood connections accepted in %v, want at most %d", connected, time.Since(flood), allowed)
	}
}

func TestLimits_MaxSubscriptions(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.MaxSubscriptions = 3
	cfg.ACL.Rules = []string{"read public/#"}
	b := mqtttest.Start(t, cfg)
	c := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	for i, want := range []byte{1, 1, 0x87, 0x87} {
		code, err := c.Sub(fmt.Sprintf("public/%d", i), 1)
		if err != nil || code != want {
			t.Fatalf("subscription %d: %#x %v, want %#x", i, code, err, want)
		}
	}
	// Renewing an existing subscription is not a new one.
	if code, _ := c.Sub("public/0", 1); code != 1 {
		t.Fatalf("renewal refused: %#x", code)
	}
}

// mqtt.maximum_clients caps connections per node: the next one is refused
// (CONNACK "server unavailable" for 3.1.1), the others keep working.
func TestLimits_MaximumClientsPerNode(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.MQTT.MaximumClients = 2
	b := mqtttest.Start(t, cfg)
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	if c, err := mqtttest.ConnectV3(b.MQTTAddr(), "10031", mqtttest.Token(t, "10031"), mqtttest.V3Options{Clean: true}); err == nil {
		c.Disconnect(0)
		t.Fatal("a third connection was accepted with maximum_clients 2")
	}
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"still served"}`)
	checkSendMsg(t, bob.Inbox.Next(t, wait), "10001", "still served")
}

// Reload (what SIGHUP runs) applies new limits to connected clients
// without dropping them.
func TestReload_AppliesLimits(t *testing.T) {
	cfg := mqtttest.Config(t)
	b := mqtttest.Start(t, cfg)
	flood := mqtttest.MustV5(t, b.MQTTAddr(), "10666", mqtttest.Token(t, "10666"), mqtttest.V5Options{Subscribe: true})
	send := func() (limited int) {
		for i := 0; i < 20; i++ {
			code, err := flood.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i))
			if err != nil {
				t.Fatal(err)
			}
			if code == 0x97 {
				limited++
			}
		}
		return limited
	}
	if n := send(); n != 0 {
		t.Fatalf("%d limited before the reload (no limit configured)", n)
	}
	cfg.Limits.MessageRate, cfg.Limits.MessageBurst, cfg.Limits.MessageWait = 1, 5, 0
	if _, err := b.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if n := send(); n < 10 {
		t.Fatalf("only %d of 20 limited after reloading a 1/s limit with burst 5", n)
	}
}
