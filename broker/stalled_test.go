package broker_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// stalledVictim connects uid over raw TCP, subscribes to its inbox and
// then never reads again.
func stalledVictim(t *testing.T, addr, uid string) net.Conn {
	t.Helper()
	conn, err := mqtttest.RawConnect(addr, packets.ConnectParams{ClientIdentifier: uid, Clean: true,
		Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if code, err := mqtttest.RawSubscribe(conn, "inbox/"+uid, 1); err != nil || code != 1 {
		t.Fatalf("SUBACK: %#x, %v", code, err)
	}
	return conn
}

// fill sends large messages to uid: with a delivery window of 250, some
// 30 MB for it, more than the socket buffers hold, so writes to a client
// that does not read block.
func fill(t *testing.T, addr, to string) {
	t.Helper()
	sender := mqtttest.MustV3(t, addr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	big := strings.Repeat("x", 60000)
	for i := range 250 {
		sender.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":%s,"msg":"%d %s","extra":"%s"}`, to, i, big, big))
	}
}

// closedWithin reads (and discards) what the broker sent until the socket
// closes, and fails when that takes longer than d.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	start := time.Now()
	n, err := io.Copy(io.Discard, conn)
	t.Logf("%s: drained %d bytes in %s: %v", what, n, time.Since(start), err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the socket was still open after %s", what, d)
	}
}

// A client that stops reading is disconnected after limits.write_timeout;
// the others are unaffected, and what it missed stays in the log.
func TestStalled_ClientThatStopsReadingIsDisconnected(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.WriteTimeout = time.Second
	cfg.Inbox.DeliveryWindow = 250
	b, logs := mqtttest.StartLogged(t, loggedConfigFrom(cfg))
	by := startBystanders(t, b.MQTTAddr())
	victim := stalledVictim(t, b.MQTTAddr(), "10021")
	fill(t, b.MQTTAddr(), "10021")
	logs.Wait(t, 10*time.Second, "disconnected: not reading", "uid=10021")
	closedWithin(t, victim, 5*time.Second, "after the write timeout")
	by.check(t)
}

// An admin kick closes the socket of a client that stopped reading at
// once: the Logout write is bounded, not left waiting on the full socket.
func TestStalled_KickClosesAtOnce(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Limits.WriteTimeout = time.Minute // not what ends it here
	cfg.Inbox.DeliveryWindow = 250
	b, _ := mqtttest.StartLogged(t, loggedConfigFrom(cfg))
	victim := stalledVictim(t, b.MQTTAddr(), "10021")
	fill(t, b.MQTTAddr(), "10021")
	api := mqtttest.HTTP{Base: "http://" + b.AdminAddr()} // the admin API
	resp := api.Do(t, "POST", "/api/v1/kick", mqtttest.Auth{User: mqtttest.AdminName, Password: mqtttest.AdminPassword},
		map[string]any{"uid": "10021", "reason": "kicked by the test"})
	if resp.Status != 200 {
		t.Fatalf("kick: %d %s", resp.Status, resp.Raw)
	}
	closedWithin(t, victim, 5*time.Second, "after the kick")
}

func loggedConfigFrom(cfg broker.Config) broker.Config {
	cfg.Log.Level = "info"
	return cfg
}
