package delivery

import (
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Workarounds for mochi v2.7.9 behaviour that would break inbox delivery or
// leave a client without an answer.

// sysMarker prefixes a publish to a $SYS topic: mochi drops such publishes
// without a PUBACK, so a QoS 1 client would wait forever. Marked, the
// publish reaches OnPublish, which refuses it like any forbidden topic.
const sysMarker = "$inboxmq-refused/"

// markSysPublish is called from OnPacketRead for inbound PUBLISH packets.
func markSysPublish(pk *packets.Packet) {
	if len(pk.TopicName) >= len(mqtt.SysPrefix) && strings.EqualFold(pk.TopicName[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
		pk.TopicName = sysMarker + pk.TopicName
	}
}

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

func (h *Hook) restoreID(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	v, ok := h.swaps.Load(cl)
	if !ok {
		return pk
	}
	if s := v.(idSwap); s.substitute == pk.PacketID {
		h.swaps.Delete(cl)
		pk.PacketID = s.original
	}
	return pk
}

// OnPacketEncode restores a swapped SUBACK/UNSUBACK id.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if t := pk.FixedHeader.Type; t == packets.Suback || t == packets.Unsuback {
		return h.restoreID(cl, pk)
	}
	return pk
}

// OnPacketProcessed re-reserves an inbox packet id that an inbound publish
// with the same id removed from mochi's inflight map.
func (h *Hook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	if c := h.conn(cl); c != nil {
		c.rereserve(pk.PacketID)
	}
}

// reservation is what an inbox packet leaves in mochi's inflight map: only
// its id (the payload lives in the log, and close() removes the entry before
// mochi could resend it).
func reservation(pid uint16, created int64) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		PacketID:    pid,
		Created:     created,
	}
}

func (c *conn) reserve(pid uint16, created int64) {
	if c.cl.State.Inflight.Set(reservation(pid, created)) {
		atomic.AddInt64(&c.h.opts.Server.Info.Inflight, 1)
	}
}

func (c *conn) rereserve(pid uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, p := range c.pending {
		if p.pid == pid && !p.acked {
			if _, ok := c.cl.State.Inflight.Get(pid); !ok {
				c.reserve(pid, p.created)
			}
			return
		}
	}
}
