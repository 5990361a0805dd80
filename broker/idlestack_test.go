package broker_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// TestIdleConnections_StacksStaySmall measures the goroutine stacks idle
// phones hold (persistent sessions subscribed to their inbox), with the GC
// off so that nothing shrinks them in between:
//   - connecting and subscribing may take mochi's reader goroutine to
//     32 KB (mochi's own SUBACK path needs just over 16 KB), but not to
//     64 KB: the store reads of those steps (Pebble needs about 15 KB of
//     stack per read) run off it (package shallow);
//   - once the GC has shrunk the readers back to 16 KB, a PINGREQ must not
//     grow them again (a 2.4 KB frame in the delivery hook's
//     OnPacketEncode once took every PINGRESP past 16 KB).
func TestIdleConnections_StacksStaySmall(t *testing.T) {
	const n = 100
	b := mqtttest.Start(t, mqtttest.Config(t)) // before the GC is turned off: New sets GOGC
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	stacks := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.StackInuse
	}
	perConn := func(after, before uint64) int64 { return (int64(after) - int64(before)) / n }

	before := stacks()
	conns := make([]net.Conn, n)
	for i := range conns {
		uid := fmt.Sprint(30000 + i)
		c, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{ClientIdentifier: uid,
			Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid)), Keepalive: 60})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if code, err := mqtttest.RawSubscribe(c, "inbox/"+uid, 1); err != nil || code != 1 {
			t.Fatalf("subscribe %s: code %d, %v", uid, code, err)
		}
		conns[i] = c
	}
	connected := stacks()
	// A reader at 32 KB and a writer at 4 KB make 36 KB; at 64 KB, 68 KB.
	if got := perConn(connected, before); got > 48<<10 {
		t.Errorf("after CONNECT and SUBSCRIBE: %d B of stack per idle connection, want at most 48 KiB", got)
	}

	if raceBuild {
		// The race detector's larger frames take mochi's own ping path
		// past 16 KB. `make test` runs this test once more without -race.
		t.Log("PINGREQ check not run: it needs a build without -race (go test -run TestIdleConnections_StacksStaySmall ./broker)")
		return
	}
	runtime.GC() // each GC halves a grown stack once: 32 -> 16 KB
	runtime.GC()
	shrunk := stacks()
	for _, c := range conns {
		if _, err := c.Write([]byte{0xc0, 0}); err != nil { // PINGREQ
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var resp [2]byte
		if _, err := io.ReadFull(c, resp[:]); err != nil || resp != [2]byte{0xd0, 0} {
			t.Fatalf("PINGRESP % x, %v", resp, err)
		}
	}
	pinged := stacks()
	t.Logf("stack per connection: %d B connected, %d B after two GCs, %d B after a PINGREQ",
		perConn(connected, before), perConn(shrunk, before), perConn(pinged, before))
	if got := perConn(pinged, shrunk); got > 4<<10 {
		t.Errorf("a PINGREQ grew the stacks by %d B per idle connection, want at most 4 KiB (none)", got)
	}
}
