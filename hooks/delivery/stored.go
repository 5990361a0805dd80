package delivery

import (
	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/messaging"
)

// The hook is the messaging service's delivery side: what the service
// stores, or sends live, reaches the connections through these methods.
var _ messaging.Delivery = (*Hook)(nil)

// Stored hands entries the messaging service stored to the connections of
// their inboxes (or of the broadcast log), and wakes other nodes.
func (h *Hook) Stored(out []inbox.Message) {
	if len(out) > 0 && out[0].UID == inbox.BroadcastInbox {
		h.offerBroadcasts(out)
		if h.wakes != nil {
			h.wakes.add(inbox.BroadcastInbox)
		}
		return
	}
	// One registry lookup per recipient inbox: hand its connections the new
	// entries, then wake them (per run of consecutive entries of one inbox).
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].UID == out[i].UID {
			j++
		}
		conns := h.online(out[i].UID)
		for _, c := range conns {
			for _, m := range out[i:j] {
				c.offer(laneInbox, m)
			}
			c.wake()
		}
		if h.wakes != nil {
			h.wakes.addEntries(out[i].UID, out[i:j])
		}
		i = j
	}
}

// Live delivers a notice that is not stored to the connections online on
// this node now.
func (h *Hook) Live(uids []string, envelope []byte) error {
	if len(uids) == 0 {
		// Not in the broadcast log, so not through the lanes: written at
		// QoS 0, like the targeted live notices, to every connection
		// subscribed to broadcast now. Not through mochi's routing, which
		// would also hand it to '#' and '+' subscribers of opened topics:
		// nothing on the broker's own topics is ever routed by mochi.
		h.mu.Lock()
		var all []*conn
		for _, list := range h.byUID {
			all = append(all, list...)
		}
		h.mu.Unlock()
		for _, c := range all {
			c.writeLive(laneBroadcast, envelope)
		}
		return nil
	}
	for _, uid := range uids {
		for _, c := range h.online(uid) {
			c.writeTransient(envelope)
		}
	}
	return nil
}

// ProfileChanged stamps a new nickname and avatar on what uid sends from
// its current connections.
func (h *Hook) ProfileChanged(uid, nickname, avatar string) {
	for _, c := range h.online(uid) {
		c.setProfile(nickname, avatar)
	}
}

// Pushed tells uid's connections that a push event went out for seq.
func (h *Hook) Pushed(uid string, seq uint64) {
	for _, c := range h.online(uid) {
		c.notePushed(seq)
	}
}

// emitPresence sends login and logout events for user connections.
func (h *Hook) emitPresence(typ string, c *conn, reason string) {
	if h.opts.Emitter == nil || c.id.Role == acl.RoleAnonymous {
		return
	}
	data := map[string]any{"uid": c.id.UID, "device": c.id.ClientID, "remote": c.cl.Net.Remote}
	if reason != "" {
		data["reason"] = reason
	}
	h.opts.Emitter.Emit(events.Event{Type: typ, Data: data})
}
