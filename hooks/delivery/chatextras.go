package delivery

import (
	"errors"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/bridge"
)

// typing relays im/typing: never stored, so a failure to reach the other
// nodes is not a "not stored, try again" but a plain failure.
func (h *Hook) typing(r *request) (packets.Packet, error) {
	ctx, cancel := h.requestContext()
	defer cancel()
	err := h.opts.Service.Typing(ctx, r.actor(), r.req.UID)
	var be *bridge.Error
	if err != nil && !errors.As(err, &be) {
		// Nothing was to be stored, so answer does not apply: there is no
		// outcome to be unsure of, and no reason to close the connection.
		h.opts.Log.Warn("typing signal not relayed", "uid", r.id.UID, "to", r.req.UID, "error", err)
		return h.refuse(r, bridge.CodeInternal, "typing signal not relayed")
	}
	return h.answer(r, err)
}

// editMsg handles im/editmsg: the new text is stored for both parties.
func (h *Hook) editMsg(r *request) (packets.Packet, error) {
	ctx, cancel := h.requestContext()
	defer cancel()
	return h.answer(r, h.opts.Service.EditMessage(ctx, r.actor(), r.req.UID, r.req.MsgID, r.req.Msg))
}
