package delivery

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// newIDTestConn is a conn with a real mochi client (its inflight map and
// NextPacketID), for the packet-id block alone.
func newIDTestConn(t *testing.T) (*conn, *Hook) {
	t.Helper()
	s := mqtt.New(nil)
	t.Cleanup(func() { _ = s.Close() })
	h := &Hook{opts: Options{Window: DefaultWindow, Server: s}}
	h.deps = newConnDeps(h)
	return &conn{d: h.deps, cl: s.NewClient(nil, "t", "10021", false)}, h
}

// The block stays out of mochi's inflight map while mochi's own ids are far
// from it, and is reserved there before they can reach it: across mochi's
// whole id space, NextPacketID never returns an id the pump has in flight.
func TestPacketIDs_BlockReservedOnlyNearMochiIDs(t *testing.T) {
	c, _ := newIDTestConn(t)
	inFlight := map[uint16]bool{}
	take := func() {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		pid, ok := c.takeIDLocked()
		if !ok {
			t.Fatal("no id")
		}
		inFlight[pid] = true
	}
	for range DefaultWindow {
		take()
	}
	if n := c.cl.State.Inflight.Len(); n != 0 {
		t.Fatalf("%d entries in mochi's inflight map before mochi's ids came near the block", n)
	}

	// mochi's own publishes, as publishToClient makes them: an id from
	// NextPacketID, the message in the inflight map, then OnQosPublish.
	for i := 0; i < 0xFFFF; i++ {
		id, err := c.cl.NextPacketID()
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if inFlight[uint16(id)] {
			t.Fatalf("publish %d: mochi took id %d, which the pump has in flight", i, id)
		}
		c.cl.State.Inflight.Set(reservation(uint16(id))) // stands for mochi's message
		c.mochiPublished(uint16(id))
		c.cl.State.Inflight.Delete(uint16(id)) // acknowledged at once
		if i == 100 {
			take() // the block grows while mochi publishes
			if n := c.cl.State.Inflight.Len(); n != 0 {
				t.Fatalf("%d entries in mochi's inflight map with mochi's ids at %d", n, id)
			}
		}
	}
	c.mu.Lock()
	reserving, block := c.reserving, len(c.block)
	c.mu.Unlock()
	if !reserving || c.cl.State.Inflight.Len() != block {
		t.Fatalf("reserving %v, %d entries in mochi's inflight map for a block of %d", reserving, c.cl.State.Inflight.Len(), block)
	}
	c.mu.Lock()
	c.trimBlockLocked(0)
	c.mu.Unlock()
	if n := c.cl.State.Inflight.Len(); n != 0 {
		t.Fatalf("%d entries left in mochi's inflight map after the block was released", n)
	}
}

// Once the block is reserved, a client SUBSCRIBE whose id equals an inbox
// id in flight would get 0x91 from mochi: it is given a free id for mochi's
// check, and the SUBACK goes back with the client's own id.
func TestPacketIDs_SubscribeIDSwappedWhileReserved(t *testing.T) {
	c, h := newIDTestConn(t)
	c.mochiPublished(0xFFFF - 10) // mochi's ids came near: reserve from now on
	c.mu.Lock()
	pid, ok := c.takeIDLocked()
	c.mu.Unlock()
	if !ok {
		t.Fatal("no id")
	}
	if _, reserved := c.cl.State.Inflight.Get(pid); !reserved {
		t.Fatalf("id %d not reserved in mochi's map", pid)
	}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: pid}
	h.avoidIDClash(c.cl, &sub)
	if sub.PacketID == pid {
		t.Fatalf("SUBSCRIBE keeps id %d, which mochi has in flight", pid)
	}
	if _, used := c.cl.State.Inflight.Get(sub.PacketID); used {
		t.Fatalf("substitute id %d is in flight too", sub.PacketID)
	}
	ack := h.OnPacketEncode(c.cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: sub.PacketID})
	if ack.PacketID != pid {
		t.Fatalf("SUBACK id %d, want the client's %d", ack.PacketID, pid)
	}
}

// mochi v2.7.9 deletes the outbound inflight entry with the id of an
// inbound QoS 1 publish (the client's id space). Once the block is
// reserved, such a publish must not leave a block id free for mochi's own
// publishes: OnPacketProcessed puts the reservation back. Before, nothing
// is reserved and nothing is put back.
func TestPacketIDs_ReservationRestoredAfterInboundPublish(t *testing.T) {
	c, h := newIDTestConn(t)
	h.conns.Store(c.cl, c)
	c.mu.Lock()
	pid, ok := c.takeIDLocked()
	c.mu.Unlock()
	if !ok {
		t.Fatal("no id")
	}
	inbound := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: pid}

	h.OnPacketProcessed(c.cl, inbound, nil)
	if _, reserved := c.cl.State.Inflight.Get(pid); reserved {
		t.Fatalf("id %d reserved before mochi's ids came near the block", pid)
	}

	c.mochiPublished(0xFFFF - 10)   // mochi's ids came near: reserve from now on
	c.cl.State.Inflight.Delete(pid) // what mochi does for the inbound publish
	h.OnPacketProcessed(c.cl, inbound, nil)
	if _, reserved := c.cl.State.Inflight.Get(pid); !reserved {
		t.Fatalf("id %d not reserved again after an inbound publish with the same id", pid)
	}
}
