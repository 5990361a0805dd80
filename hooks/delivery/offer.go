package delivery

import (
	"encoding/json"

	"github.com/inboxmq/inboxmq/inbox"
)

// OfferLocal hands this node's connections of uid the entries another node
// just appended to uid's inbox, carried by its wake signal (EntryRouter):
// as for an append on this node, a caught-up connection sends them without
// reading the log. Entries that do not continue a connection's tail only
// raise what it knows of the log's end, so its pump reads the log for
// them; entries that cannot be decoded are a plain wake.
func (h *Hook) OfferLocal(uid string, entries []json.RawMessage) {
	conns := h.online(uid)
	if len(conns) == 0 {
		return // every node gets every signal: decode only for a connection here
	}
	msgs := make([]inbox.Message, len(entries))
	for i, raw := range entries {
		if err := json.Unmarshal(raw, &msgs[i]); err != nil || msgs[i].UID != uid || msgs[i].Seq == 0 {
			h.opts.Log.Warn("wake signal entry unreadable; reading the log", "uid", uid, "error", err)
			h.WakeLocal(uid)
			return
		}
	}
	for _, c := range conns {
		for _, m := range msgs {
			c.offer(laneInbox, m)
		}
		c.wake()
	}
}
