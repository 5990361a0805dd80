package delivery

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The client's Receive Maximum (MQTT 5, [MQTT-3.3.4-7]): the server must
// never have more unacknowledged QoS 1 and 2 PUBLISHes outstanding to a
// client than the Receive Maximum it sent in CONNECT. A strict client
// disconnects with 0x93 when it gets more, and since the same messages come
// again at the next connection, it never gets past them.
//
// mochi v2.7.9 cannot be left to honour it: with the property set it can
// deadlock under load (Inflight.NextImmediate takes the inflight read lock
// twice, and a publisher waiting for the write lock in between blocks both
// forever), and a message it parks for quota is sent and forgotten at once,
// so its PUBACK never returns the quota and the client silently gets
// nothing more. So OnPacketRead hides the property from mochi (mochi then
// treats the client as unlimited, as it does 3.1.1 clients), and a flow per
// connection holds the client's limit for every sender to it together: the
// inbox lane, the broadcast lane, and mochi's own deliveries on opened
// topics.
//
// mochi's own deliveries are paced through mochi's own parking: the flow
// sets mochi's send quota to 0 with a maximum of 1, so mochi never writes a
// QoS>0 PUBLISH to the client itself. It keeps each in its inflight map
// marked for immediate sending (Expiry -1) and tells OnQosPublish, where the
// flow queues its packet id in order. The flow writes queued packets while
// the limit allows, and their PUBACKs are taken out of mochi's way (the
// entry deleted here, the PUBACK renumbered to 0), so mochi never raises the
// quota, never calls NextImmediate (no deadlock) and never sends past the
// limit. Packets that mochi may still raise the quota for (PUBCOMP, an
// inbound PUBREL) are followed by OnPacketProcessed, which sets it back to
// 0 before mochi looks at it. Should mochi still write one of its packets
// in that instant, OnPacketSent counts it as outstanding.
//
// MQTT 3.1.1 clients and MQTT 5 clients that send no Receive Maximum have
// no flow: their lanes are paced by the delivery window alone.

// flow is one connection's share of its client's Receive Maximum.
// Lock order: conn.mu, then flow.mu; flow never calls into conn with mu held.
type flow struct {
	cl  *mqtt.Client
	max int // the client's Receive Maximum

	mu       sync.Mutex
	lanes    int             // lane publishes reserved or unacknowledged
	queue    []uint16        // mochi's parked publishes, in order, not yet written
	out      map[uint16]bool // mochi's publishes written, not yet acknowledged
	writing  bool            // a goroutine is writing queued publishes
	retrying bool            // a retry of drain is scheduled
	closed   bool
	onRoom   func() // wakes the lanes' pump when room frees up; may be nil
}

func newFlow(cl *mqtt.Client, max int) *flow {
	return &flow{cl: cl, max: max, out: make(map[uint16]bool)}
}

// park makes mochi queue its QoS>0 publishes to the client instead of
// writing them: send quota 0, maximum 1 (see above).
func (f *flow) park() {
	f.cl.State.Inflight.ResetSendQuota(1)
	f.cl.State.Inflight.DecreaseSendQuota()
}

// roomLocked is how many more publishes may be outstanding. f.mu must be held.
func (f *flow) roomLocked() int { return f.max - f.lanes - len(f.out) }

// room is roomLocked for callers without f.mu. A nil flow is unlimited.
func (f *flow) room() int {
	if f == nil {
		return int(^uint(0) >> 1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.roomLocked()
}

// reserve takes up to n units of room for lane publishes and returns how
// many it took. A nil flow grants all.
func (f *flow) reserve(n int) int {
	if f == nil || n <= 0 {
		return n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := max(0, min(n, f.roomLocked()))
	f.lanes += k
	return k
}

// release gives back n units the lanes had outstanding: queued mochi
// publishes use them first (the lanes had the last turn), then the lanes'
// pump is woken for what is left.
func (f *flow) release(n int) {
	if f == nil || n <= 0 {
		return
	}
	f.mu.Lock()
	f.lanes -= n
	f.mu.Unlock()
	f.drain()
	f.mu.Lock()
	wake := f.onRoom
	if f.roomLocked() <= 0 {
		wake = nil
	}
	f.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// unreserve gives back n reserved units without writing anything (for
// callers holding conn.mu).
func (f *flow) unreserve(n int) {
	if f == nil || n <= 0 {
		return
	}
	f.mu.Lock()
	f.lanes -= n
	f.mu.Unlock()
}

// queued is told of each of mochi's own QoS>0 publishes to the client
// (OnQosPublish), in the order mochi numbered them.
func (f *flow) queued(pid uint16) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.queue = append(f.queue, pid)
	// mochi parks the packet only after telling OnQosPublish: drain a
	// moment later (one timer for a burst) rather than find it unparked.
	f.retryLocked()
	f.mu.Unlock()
}

// drain writes queued mochi publishes while there is room, in order, one
// writer at a time.
func (f *flow) drain() {
	f.mu.Lock()
	if f.writing || f.closed {
		f.mu.Unlock()
		return
	}
	f.writing = true
	for len(f.queue) > 0 && f.roomLocked() > 0 {
		pid := f.queue[0]
		if f.out[pid] {
			f.queue = f.queue[1:] // mochi wrote it itself (OnPacketSent)
			continue
		}
		pk, ok := f.cl.State.Inflight.Get(pid)
		switch {
		case !ok || pk.FixedHeader.Type != packets.Publish:
			f.queue = f.queue[1:] // acknowledged, expired or dropped meanwhile
			continue
		case pk.Expiry != -1:
			// mochi has numbered it but not yet parked it (the publisher
			// is between the two steps), or is writing it itself: look
			// again in a moment.
			f.retryLocked()
			f.writing = false
			f.mu.Unlock()
			return
		}
		f.queue = f.queue[1:]
		f.out[pid] = true
		f.mu.Unlock()
		pk.Expiry = 0 // not a property for the wire: the copy in the map keeps -1
		if err := f.cl.WritePacket(pk); err != nil {
			f.mu.Lock()
			f.writing = false
			f.mu.Unlock()
			return // the connection is closing; the session keeps the packet
		}
		f.mu.Lock()
	}
	f.writing = false
	f.mu.Unlock()
}

// retryLocked schedules drain shortly. f.mu must be held.
func (f *flow) retryLocked() {
	if f.retrying {
		return
	}
	f.retrying = true
	time.AfterFunc(time.Millisecond, func() {
		f.mu.Lock()
		f.retrying = false
		f.mu.Unlock()
		f.drain()
	})
}

// sentByMochi is told of a QoS>0 PUBLISH of mochi's own that mochi wrote
// (OnPacketSent): outstanding from now on, whoever wrote it.
func (f *flow) sentByMochi(pid uint16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.out[pid] && slices.Contains(f.queue, pid) {
		f.out[pid] = true
	}
}

// acked ends an outstanding mochi publish (PUBACK, PUBCOMP, or PUBREC with
// an error) and reports whether it was one.
func (f *flow) acked(pid uint16) bool {
	f.mu.Lock()
	ok := f.out[pid]
	delete(f.out, pid)
	wake := f.onRoom
	f.mu.Unlock()
	if ok {
		if wake != nil {
			wake() // the lanes first: mochi's queue had the last turn
		}
		f.drain()
	}
	return ok
}

func (f *flow) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

// Hook glue.

// flowOf returns cl's flow, or nil when the client set no Receive Maximum.
func (h *Hook) flowOf(cl *mqtt.Client) *flow {
	if v, ok := h.flows.Load(cl); ok {
		return v.(*flow)
	}
	return nil
}

// hideReceiveMaximum is OnPacketRead for CONNECT: it keeps the client's
// Receive Maximum for the flow and hides it from mochi.
func (h *Hook) hideReceiveMaximum(cl *mqtt.Client, pk *packets.Packet) {
	h.sweepUnestablished()
	if rm := pk.Properties.ReceiveMaximum; rm > 0 {
		h.receiveMax.Store(cl, int(rm))
	}
	pk.Properties.ReceiveMaximum = 0
}

// sweepUnestablished drops the per-client entries of connections that
// ended before their session was established (a refused CONNECT, a
// CONNACK that could not be written): mochi calls no OnDisconnect for
// them, so without this a client that sends CONNECT with a Receive Maximum
// and leaves would leave an entry behind each time. At most once a
// minute, from the CONNECT path.
func (h *Hook) sweepUnestablished() {
	now := time.Now().UnixNano()
	last := h.swept.Load()
	if now-last < int64(time.Minute) || !h.swept.CompareAndSwap(last, now) {
		return
	}
	for _, m := range []*sync.Map{&h.receiveMax, &h.flows, &h.stashes, &h.logins} {
		m.Range(func(k, _ any) bool {
			if k.(*mqtt.Client).Closed() {
				m.Delete(k)
			}
			return true
		})
	}
}

// startFlow runs in OnSessionEstablish, before mochi can deliver to the new
// connection: it makes its flow and parks mochi's publishes. An old
// connection's unacknowledged publishes of mochi's own are taken out of its
// map first, or mochi would copy them over and write them all at once
// (ignoring the limit) and reset the quota; restoreStash puts them back
// for the flow to send.
func (h *Hook) startFlow(cl *mqtt.Client) {
	v, ok := h.receiveMax.LoadAndDelete(cl)
	if !ok {
		return
	}
	f := newFlow(cl, v.(int))
	if old, ok := h.opts.Server.Clients.Get(cl.ID); ok && old != cl {
		var stash []packets.Packet
		for _, pk := range old.State.Inflight.GetAll(false) {
			if pk.Created == reservedForever {
				continue // an inbox packet id reservation: the log redelivers
			}
			if old.State.Inflight.Delete(pk.PacketID) {
				atomic.AddInt64(&h.opts.Server.Info.Inflight, -1)
				stash = append(stash, pk)
			}
		}
		if len(stash) > 0 {
			h.stashes.Store(cl, stash)
		}
	}
	f.park()
	h.flows.Store(cl, f)
}

// restoreStash runs in OnSessionEstablished: the old connection's
// unacknowledged publishes go back into the session, in the order mochi
// numbered them, and are resent within the limit. Outbound QoS 2 releases
// and inbound QoS 2 receipts go back as they were.
func (h *Hook) restoreStash(cl *mqtt.Client, f *flow) {
	f.park() // again: a takeover that copied a map reset mochi's quotas
	v, ok := h.stashes.LoadAndDelete(cl)
	if !ok {
		return
	}
	stash := v.([]packets.Packet)
	slices.SortStableFunc(stash, func(a, b packets.Packet) int {
		if a.Created != b.Created {
			return int(a.Created - b.Created)
		}
		return int(a.PacketID) - int(b.PacketID)
	})
	var resend []uint16
	for _, pk := range stash {
		if _, used := cl.State.Inflight.Get(pk.PacketID); used {
			// mochi gave the id to a new publish in the instant between
			// the takeover and now: the older packet cannot keep it.
			h.opts.Log.Warn("unacknowledged publish dropped at session takeover: packet id reused",
				"client", cl.ID, "packet_id", pk.PacketID, "topic", clip(pk.TopicName))
			continue
		}
		if pk.FixedHeader.Type == packets.Publish {
			pk.Expiry = -1
			pk.FixedHeader.Dup = true
			resend = append(resend, pk.PacketID)
		}
		cl.State.Inflight.Set(pk)
		atomic.AddInt64(&h.opts.Server.Info.Inflight, 1)
		if pk.FixedHeader.Type == packets.Pubrel {
			f.mu.Lock()
			f.out[pk.PacketID] = true // a QoS 2 publish still outstanding until PUBCOMP
			f.mu.Unlock()
			_ = cl.WritePacket(pk)
		}
	}
	f.mu.Lock()
	f.queue = append(resend, f.queue...)
	f.mu.Unlock()
	f.drain()
}

// flowAck handles the client's acks of mochi's own publishes for a client
// with a flow (OnPacketRead). A PUBACK is completed here and renumbered to
// 0, so mochi finds nothing and leaves its quota alone.
func (h *Hook) flowAck(cl *mqtt.Client, f *flow, pk *packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Puback:
		if old, ok := cl.State.Inflight.Get(pk.PacketID); ok && old.FixedHeader.Type == packets.Publish {
			if cl.State.Inflight.Delete(pk.PacketID) {
				atomic.AddInt64(&h.opts.Server.Info.Inflight, -1)
			}
			id := pk.PacketID
			pk.PacketID = 0
			f.acked(id)
		}
	case packets.Pubcomp:
		f.acked(pk.PacketID)
	case packets.Pubrec:
		if pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
			f.acked(pk.PacketID) // the QoS 2 flow ends here
		}
	}
}

// OnPacketSent sees mochi's writes; one of mochi's own QoS>0 publishes to
// a client with a flow counts as outstanding (see above).
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	if f := h.flowOf(cl); f != nil {
		f.sentByMochi(pk.PacketID)
	}
}
