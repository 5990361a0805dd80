package main

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// sessionClient is a persistent-session client of either protocol that
// subscribes to its inbox only on its first connection, as paho,
// CocoaMQTT and MQTT.js do when the CONNACK says session present.
type sessionClient struct {
	uid, proto string
}

// connect connects the client; it subscribes to its inbox when first is set.
func (s sessionClient) connect(t *testing.T, addr string, first bool) (in *mqtttest.Inbox, present bool, closeIt func()) {
	t.Helper()
	tok := mqtttest.Token(t, s.uid)
	if s.proto == "v3" {
		c := mqtttest.MustV3(t, addr, s.uid, tok, mqtttest.V3Options{Subscribe: first})
		return c.Inbox, c.SessionPresent, func() { c.Disconnect(250) }
	}
	c := mqtttest.MustV5(t, addr, s.uid, tok, mqtttest.V5Options{SessionExpiry: 3600, Subscribe: first})
	return c.Inbox, c.Connack.SessionPresent, c.Close
}

// sendTo sends n numbered messages to uid and waits for each PUBACK.
func sendTo(t *testing.T, from *mqtttest.V3, uid string, n int) {
	t.Helper()
	for i := range n {
		from.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":%s,"msg":"m%d"}`, uid, i))
	}
}

// expectInOrder collects n messages m0..m{n-1}, in order, with increasing ids.
func expectInOrder(t *testing.T, in *mqtttest.Inbox, who string, n int) {
	t.Helper()
	prev := uint64(0)
	for i, e := range in.Collect(t, n, 60*time.Second) {
		id, _ := strconv.ParseUint(e.Str("msgid"), 10, 64)
		if e.Str("ct") != fmt.Sprintf("m%d", i) || id <= prev {
			t.Fatalf("%s: message %d = %s (previous id %d)", who, i, e.Raw, prev)
		}
		prev = id
	}
}

// 1,000 PUBACKed messages to persistent sessions of paho 3.1.1 and
// paho.golang MQTT 5 clients that never subscribe again: after SIGKILL or
// SIGTERM and a restart, session present = 1 and all 1,000 in order.
func TestBinary_SessionsSurviveKillAndTerm(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cfg := mqtttest.WriteConfig(t, t.TempDir())
			p := mqtttest.StartProcess(t, cfg)
			clients := []sessionClient{{"10021", "v3"}, {"10022", "v5"}}
			for _, c := range clients {
				_, _, closeIt := c.connect(t, p.MQTTAddr, true)
				closeIt()
			}
			alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
			for _, c := range clients {
				sendTo(t, alice, c.uid, 1000)
			}
			if sig == syscall.SIGKILL {
				p.Kill(t)
			} else if code := p.Stop(t, 30*time.Second); code != 0 {
				t.Fatalf("exit code %d after SIGTERM", code)
			}
			p2 := mqtttest.StartProcess(t, cfg)
			for _, c := range clients {
				in, present, closeIt := c.connect(t, p2.MQTTAddr, false)
				if !present {
					t.Fatalf("%s after %s: session present 0", c.proto, sig)
				}
				expectInOrder(t, in, c.proto, 1000)
				closeIt()
			}
		})
	}
}

// Two nodes on one Redis: a client's node is SIGKILLed while it is
// connected; it reconnects to the other node without subscribing and finds
// its session there: session present = 1, everything in order.
func TestCluster_SessionMovesToAnotherNode(t *testing.T) {
	r := redistest.Start(t, redistest.Config{AOF: true})
	nodes, _ := startNodes(t, 2, []string{r.Addr}, false)
	clients := []sessionClient{{"10021", "v3"}, {"10022", "v5"}}
	for _, c := range clients {
		_, present, _ := c.connect(t, nodes[0].MQTTAddr, true)
		if present {
			t.Fatalf("%s: a new session said session present", c.proto)
		}
	}
	nodes[0].Kill(t)
	alice := mqtttest.MustV3(t, nodes[1].MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	for _, c := range clients {
		sendTo(t, alice, c.uid, 1000)
	}
	for _, c := range clients {
		in, present, closeIt := c.connect(t, nodes[1].MQTTAddr, false)
		if !present {
			t.Fatalf("%s on the other node: session present 0", c.proto)
		}
		expectInOrder(t, in, c.proto, 1000)
		closeIt()
	}
}

// An MQTT 5 session that expires while the broker is down is gone when it
// comes back: session present 0, and its subscription no longer delivers.
func TestBinary_ExpiredSessionGoneAfterRestart(t *testing.T) {
	cfg := mqtttest.WriteConfig(t, t.TempDir())
	p := mqtttest.StartProcess(t, cfg)
	tok := mqtttest.Token(t, "10021")
	c := mqtttest.MustV5(t, p.MQTTAddr, "10021", tok, mqtttest.V5Options{SessionExpiry: 1, Subscribe: true})
	c.Close()
	if code := p.Stop(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	time.Sleep(1500 * time.Millisecond)
	p2 := mqtttest.StartProcess(t, cfg)
	c2 := mqtttest.MustV5(t, p2.MQTTAddr, "10021", tok, mqtttest.V5Options{SessionExpiry: 60})
	if c2.Connack.SessionPresent {
		t.Fatal("a session that expired while the broker was down came back")
	}
	alice := mqtttest.MustV3(t, p2.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"not subscribed"}`)
	c2.Inbox.None(t, 300*time.Millisecond)
}
