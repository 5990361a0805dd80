package delivery

import (
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet ids: the ids this hook gives inbox and broadcast deliveries, and
// the ones mochi confuses because it keeps one id space per client.

// mochi v2.7.9 keeps one inflight map per client and looks the client's own
// packet ids up in it, although the MQTT spec gives each direction its own
// id space:
//   - a SUBSCRIBE or UNSUBSCRIBE whose id equals an outbound message still
//     in flight is refused with 0x91 (packet identifier in use);
//   - an inbound QoS>0 PUBLISH deletes the outbound entry with its id.
// Inbox delivery keeps up to a window of outbound ids in flight, which makes
// both likely (paho numbers from 1 on every connection). The two hooks
// below undo the confusion without touching mochi.

// idSwap is a SUBSCRIBE/UNSUBSCRIBE id replaced for mochi's check.
type idSwap struct{ substitute, original uint16 }

// avoidIDClash gives a SUBSCRIBE or UNSUBSCRIBE whose id clashes with an
// outbound inflight message a free id; restoreID puts the client's id back
// into the SUBACK/UNSUBACK. Both run on the client's reader goroutine.
func (h *Hook) avoidIDClash(cl *mqtt.Client, pk *packets.Packet) {
	if _, clash := cl.State.Inflight.Get(pk.PacketID); !clash {
		return
	}
	for id := uint16(65535); id > 0; id-- {
		if _, used := cl.State.Inflight.Get(id); !used && id != pk.PacketID {
			h.swaps.Store(cl, idSwap{substitute: id, original: pk.PacketID})
			pk.PacketID = id
			return
		}
	}
}

func (h *Hook) restoreID(cl *mqtt.Client, pk *packets.Packet) {
	v, ok := h.swaps.Load(cl)
	if !ok {
		return
	}
	if s := v.(idSwap); s.substitute == pk.PacketID {
		h.swaps.Delete(cl)
		pk.PacketID = s.original
	}
}

// OnPacketEncode restores a swapped SUBACK/UNSUBACK id and puts right what
// mochi gets wrong on the wire: acks of client publishes (fixAck), the
// CONNACK's properties (completeConnack), wills' properties
// (restoreWillProperties).
//
// It runs for every packet mochi writes, below mochi's deepest frames. The
// fixes pass packets by value (816 bytes each way), which made this frame
// 2.4 KB: enough to take the reader goroutine of an idle client past 16 KB
// on every PINGRESP, doubling its stack to 32 KB until the next GC. So the
// fixes live out of line in fixEncoded, and a PINGRESP never reaches them.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack, packets.Publish, packets.Suback, packets.Unsuback, packets.Puback, packets.Pubrec:
		h.fixEncoded(cl, &pk)
	}
	return pk
}

// fixEncoded is OnPacketEncode's work; noinline keeps its frame out of
// OnPacketEncode's (see there). A SUBACK is encoded 13 KB deep in mochi's
// SUBSCRIBE path, so restoreID works in place; the fixes that copy
// packets are one call further, in fixByValue.
//
//go:noinline
func (h *Hook) fixEncoded(cl *mqtt.Client, pk *packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Suback, packets.Unsuback:
		h.restoreID(cl, pk)
	default:
		h.fixByValue(cl, pk)
	}
}

//go:noinline
func (h *Hook) fixByValue(cl *mqtt.Client, pk *packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		*pk = h.completeConnack(cl, *pk)
	case packets.Publish:
		*pk = restoreWillProperties(*pk, time.Now())
	case packets.Puback:
		*pk = h.fixAck(cl, *pk)
	case packets.Pubrec:
		*pk = h.withMsgID(cl, *pk)
	}
}

// OnPacketProcessed re-reserves an inbox packet id that an inbound publish
// with the same id removed from mochi's inflight map.
func (h *Hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp, packets.Pubrel:
		if f := h.flowOf(cl); f != nil {
			// mochi may have raised the send quota it keeps for the client:
			// back to 0 before it looks (see flow.go).
			cl.State.Inflight.DecreaseSendQuota()
		}
		return
	}
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	if c := h.conn(cl); c != nil {
		c.rereserve(pk.PacketID)
	}
}

// Inbox packet ids. Each connection keeps a block of ids at the top of
// the id space (65535 down). The pump takes ids from the block and an ack
// gives them back. The block grows to what the connection has in flight at
// once (at most a window per lane) and shrinks back to blockIdle ids when
// nothing is in flight.
//
// mochi must never hand out an id of the block for its own QoS 1
// publishes to the client (topics opened by ACL rules, retained messages):
// it numbers them 1, 2, 3... per connection, skipping ids in its inflight
// map. Reserving every block id in that map costs a quarter of the CPU of
// an offline drain (each entry is an 816-byte packet, and mochi copies
// every client's map once a second to expire entries), and mochi's counter
// only reaches the block after some 65,000 of its own publishes on one
// connection. So the block is reserved only from the moment mochi's
// counter comes within reserveMargin of it (mochiPublished, from
// OnQosPublish): from then on every block id is in the map, and a PUBACK
// for one is renumbered to 0 before mochi processes it (see OnPacketRead),
// so mochi finds nothing to delete and the reservation stays.

// blockIdle is how many ids a connection keeps with nothing in flight.
const blockIdle = 4

// reserveMargin is how far below the lowest possible block id mochi's own
// ids may go before the block is reserved in its inflight map. mochi's
// counter moves by one per publish, so this is also how many publishes to
// one client may be numbered concurrently with the switch.
const reserveMargin = 1024

// reserveFrom is the lowest mochi packet id that makes a connection with
// lanes lanes and window window reserve its block.
func reserveFrom(lanes, window int) int { return 0xFFFF - lanes*window - reserveMargin }

// reservedForever is the Created time of a reservation: far in the future,
// so mochi's clean-up of inflight messages older than
// maximum_message_expiry_interval never removes one.
const reservedForever = int64(1) << 62

// reservation is what an inbox packet id leaves in mochi's inflight map:
// only the id (the payload lives in the log, and close() removes the
// entry before mochi could resend it).
func reservation(pid uint16) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		PacketID:    pid,
		Created:     reservedForever,
	}
}

// takeIDLocked returns a free inbox packet id, growing the block when none
// is free; ok is false when the block holds a window for each lane or the
// id space below it is used up. c.mu must be held.
func (c *conn) takeIDLocked() (pid uint16, ok bool) {
	if n := len(c.free); n > 0 {
		pid = c.free[n-1]
		c.free = c.free[:n-1]
		return pid, true
	}
	if len(c.block) >= c.d.window*len(c.lanes) {
		return 0, false
	}
	next := 0xFFFF
	if n := len(c.block); n > 0 {
		next = int(c.block[n-1]) - 1
	}
	for ; next > 0; next-- {
		// Ids mochi already has in flight (a session inherited with
		// unacknowledged publishes of mochi's own) are left to it.
		if _, used := c.cl.State.Inflight.Get(uint16(next)); !used {
			break
		}
	}
	if next <= 0 {
		return 0, false
	}
	pid = uint16(next)
	if c.reserving {
		c.reserveLocked(pid)
	}
	c.block = append(c.block, pid) // descending: block[0] is the highest
	return pid, true
}

// ownsIDLocked reports whether pid is in the block. c.mu must be held.
func (c *conn) ownsIDLocked(pid uint16) bool {
	n := len(c.block)
	return n > 0 && pid <= c.block[0] && pid >= c.block[n-1] && slices.Contains(c.block, pid)
}

// trimBlockLocked shrinks the block to keep ids and makes them all free:
// either nothing is in flight (an ack emptied the last window) or the
// connection is closing (keep 0, windows dropped). c.mu must be held.
func (c *conn) trimBlockLocked(keep int) {
	if len(c.block) <= keep {
		return
	}
	if c.reserving {
		for _, pid := range c.block[keep:] {
			c.cl.State.Inflight.Delete(pid)
		}
	}
	c.block = c.block[:keep]
	c.free = append(c.free[:0], c.block...)
}

// rereserve puts back a block id that an inbound publish with the same id
// took out of mochi's inflight map (see OnPacketProcessed).
func (c *conn) rereserve(pid uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !c.reserving || !c.ownsIDLocked(pid) {
		return
	}
	c.reserveLocked(pid)
}

// reserveLocked puts pid in mochi's inflight map unless mochi has it
// already. c.mu must be held.
func (c *conn) reserveLocked(pid uint16) {
	if _, used := c.cl.State.Inflight.Get(pid); !used {
		c.cl.State.Inflight.Set(reservation(pid))
	}
}

// mochiPublished is told the packet id of each of mochi's own QoS 1
// publishes to the connection (OnQosPublish, right after mochi took it).
// Once mochi's counter is within reserveMargin of the block, the block is
// reserved in mochi's inflight map for the rest of the connection.
func (c *conn) mochiPublished(pid uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reserving || c.closed || int(pid) < reserveFrom(len(c.lanes), c.d.window) {
		return
	}
	c.reserving = true
	for _, id := range c.block {
		c.reserveLocked(id)
	}
}

// OnQosPublish sees mochi's own QoS 1 publishes to a client; see mochiPublished.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if resends != 0 || pk.FixedHeader.Type != packets.Publish {
		return // a resend, or the ack mochi keeps for a publish from the client
	}
	if c := h.conn(cl); c != nil {
		c.mochiPublished(pk.PacketID)
	}
	if f := h.flowOf(cl); f != nil {
		f.queued(pk.PacketID)
	}
}
