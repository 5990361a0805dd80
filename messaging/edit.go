package messaging

import (
	"context"
	"fmt"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
)

// EditMessage replaces the text of a direct message by its sender, within
// Options.EditWindow of sending: both parties get EditMsg, and history
// shows the new text with the time of the edit (Message.Edited). to, when
// given, must be the message's recipient.
func (h *Service) EditMessage(ctx context.Context, by Actor, to, msgid, msg string) error {
	window := h.rules().EditWindow
	switch {
	case window <= 0:
		return refusal(bridge.CodeForbidden, "editing messages is turned off")
	case to != "" && !acl.ValidUID(to):
		return refusal(bridge.CodeBadUID, "uid is not a valid uid")
	case msg == "":
		return refusal(bridge.CodeEmptyMessage, "msg is empty")
	case h.opts.Limits.MaxContent > 0 && len(msg) > h.opts.Limits.MaxContent:
		return refusal(bridge.CodeTooLarge, fmt.Sprintf("msg is over %d bytes", h.opts.Limits.MaxContent))
	}
	store := h.opts.Store
	sent, ok, err := inbox.FindByID(ctx, store, by.UID, msgid)
	if err != nil {
		return err
	}
	switch {
	case ok && sent.Kind == inbox.KindDirect:
		return refusal(bridge.CodeForbidden, "only the sender may edit a message")
	case !ok || sent.Kind != inbox.KindSent || (to != "" && sent.Peer != to):
		return refusal(bridge.CodeNotFound, "no message "+clip(msgid)+" sent by you")
	case tooLate(sent, window, h.now()):
		return refusal(bridge.CodeTooLate, "messages can be edited only within "+window.String()+" of sending")
	}
	to = sent.Peer
	if err := h.checkNotBlocked(ctx, by.UID, to); err != nil {
		return err
	}
	// Announce first, as DeleteMessage does: if the broker dies before the
	// edits below, the sender edits again (its copy still reads the old
	// text). The copies then take the announcement's time as Edited, so
	// history and the EditMsg envelopes agree on when the edit happened.
	r, err := h.submitAndNotify(ctx, h.request([]inbox.Message{
		{UID: to, Kind: inbox.KindEdit, Peer: by.UID, Ref: sent.ID, Content: msg},
		{UID: by.UID, Kind: inbox.KindEdit, Peer: to, Ref: sent.ID, Content: msg},
	}))
	if err != nil {
		return err
	}
	at := h.now().UnixMilli()
	if len(r.Msgs) > 0 {
		at = r.Msgs[0].Time
	}
	recv, ok, err := inbox.FindByID(ctx, store, to, sent.ID)
	if err != nil {
		return err
	}
	if ok && recv.Kind == inbox.KindDirect && recv.Peer == by.UID {
		if _, err := store.Edit(ctx, to, recv.Seq, msg, at); err != nil {
			return fmt.Errorf("edit recipient copy: %w", err)
		}
	}
	if _, err := store.Edit(ctx, by.UID, sent.Seq, msg, at); err != nil {
		return fmt.Errorf("edit sender copy: %w", err)
	}
	return nil
}
