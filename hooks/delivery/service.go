package delivery

import (
	"context"
	"fmt"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/inbox"
)

// The operations below are what users and back-ends can do to inboxes.
// MQTT requests (OnPublish) and the HTTP API both call them, so the rules
// live in one place. They return a *bridge.Error for the caller's faults
// (bad or forbidden requests); any other error is the broker's (internal).

// Actor is who performs an operation: an authenticated account and the
// profile stamped on what it sends.
type Actor struct {
	UID      string
	Role     acl.Role
	Nickname string
	Avatar   string
}

// MaxNoticeRecipients caps the uids of one targeted notice.
const MaxNoticeRecipients = 1000

func refusal(code, detail string) error { return &bridge.Error{Code: code, Detail: detail} }

// SendMessage sends a direct message and returns the recipient's copy
// (its ID is the msgid both parties see). It returns once both copies are
// durably stored.
func (h *Hook) SendMessage(ctx context.Context, from Actor, to, msg, extra, cid string) (inbox.Message, error) {
	switch {
	case !acl.ValidUID(to):
		return inbox.Message{}, refusal(bridge.CodeBadUID, "uid is not a valid uid")
	case to == from.UID:
		return inbox.Message{}, refusal(bridge.CodeBadUID, "cannot send a message to yourself")
	case msg == "":
		return inbox.Message{}, refusal(bridge.CodeEmptyMessage, "msg is empty")
	case h.opts.Limits.MaxContent > 0 && len(msg) > h.opts.Limits.MaxContent:
		return inbox.Message{}, refusal(bridge.CodeTooLarge, fmt.Sprintf("msg is over %d bytes", h.opts.Limits.MaxContent))
	}
	req := h.request([]inbox.Message{
		{UID: to, Kind: inbox.KindDirect, Peer: from.UID, Nickname: from.Nickname, Avatar: from.Avatar, Content: msg, Extra: extra},
		{UID: from.UID, Kind: inbox.KindSent, Peer: to, Content: msg, Extra: extra, CID: cid},
	})
	if req.Key = requestKey(from.UID, cid); req.Key != "" {
		req.Sum = contentSum(to, msg, extra)
	}
	r, err := h.submitAndNotify(ctx, req)
	if err != nil {
		return inbox.Message{}, err
	}
	out := r.Msgs
	if r.Duplicate {
		return out[0], nil // a resend: stored already, and announced then
	}
	if h.opts.EmitMessages && h.opts.Emitter != nil {
		h.opts.Emitter.Emit(events.Event{Type: events.TypeMessage, Data: map[string]any{
			"uid": to, "from": from.UID, "msgid": out[0].ID, "ct": msg, "extra": extra,
		}})
	}
	return out[0], nil
}

// DeleteMessage deletes a message by its sender: both copies leave history
// and the recipient's undelivered queue, and both parties get DelMsg.
// peer, when given, must be the message's recipient.
func (h *Hook) DeleteMessage(ctx context.Context, by Actor, msgid, peer string) error {
	store := h.opts.Store
	sent, ok, err := inbox.FindByID(ctx, store, by.UID, msgid)
	if err != nil {
		return err
	}
	switch {
	case ok && sent.Kind == inbox.KindDirect:
		return refusal(bridge.CodeForbidden, "only the sender may delete a message")
	case !ok || sent.Kind != inbox.KindSent || (peer != "" && peer != sent.Peer):
		return refusal(bridge.CodeNotFound, "no message "+clip(msgid)+" sent by you")
	}
	// Tell both sides first: if the broker dies before the deletes below,
	// the sender can delete again (its copy is still there).
	if _, err := h.submitAndNotify(ctx, h.request([]inbox.Message{
		{UID: sent.Peer, Kind: inbox.KindDelete, Peer: by.UID, Ref: sent.ID},
		{UID: by.UID, Kind: inbox.KindDelete, Peer: sent.Peer, Ref: sent.ID},
	})); err != nil {
		return err
	}
	recv, ok, err := inbox.FindByID(ctx, store, sent.Peer, sent.ID)
	if err != nil {
		return err
	}
	if ok && recv.Kind == inbox.KindDirect && recv.Peer == by.UID {
		if _, err := store.Delete(ctx, sent.Peer, recv.Seq); err != nil {
			return fmt.Errorf("delete recipient copy: %w", err)
		}
	}
	if _, err := store.Delete(ctx, by.UID, sent.Seq); err != nil {
		return fmt.Errorf("delete sender copy: %w", err)
	}
	return nil
}

// MarkRead marks by's conversation with peer read up to msgid and sends
// peer a ReadMsg receipt.
func (h *Hook) MarkRead(ctx context.Context, by Actor, peer, msgid string) error {
	if !acl.ValidUID(peer) || peer == by.UID {
		return refusal(bridge.CodeBadUID, "uid must be the peer whose messages you read")
	}
	m, ok, err := inbox.FindByID(ctx, h.opts.Store, by.UID, msgid)
	if err != nil {
		return err
	}
	if !ok || m.Thread() != peer {
		return refusal(bridge.CodeNotFound, "no message "+clip(msgid)+" in your conversation with "+peer)
	}
	if err := h.opts.Store.MarkRead(ctx, by.UID, peer, m.Seq); err != nil {
		return err
	}
	_, err = h.submitAndNotify(ctx, h.request([]inbox.Message{{UID: peer, Kind: inbox.KindReceipt, Peer: by.UID, Ref: m.ID}}))
	return err
}

// Notice is a system notice from an admin or a back-end service.
type Notice struct {
	UIDs    []string // recipients; none means everyone (the broadcast topic)
	Content string
	MsgType int
	Event   string
	Ref     string // the legacy msgid literal echoed in SystemNot ("0" when empty)
}

// SendNotice stores a notice (per recipient, or in the broadcast log) and
// delivers it. Only admin and service accounts may send notices.
func (h *Hook) SendNotice(ctx context.Context, by Actor, n Notice) error {
	switch {
	case by.Role != acl.RoleAdmin && by.Role != acl.RoleService:
		return refusal(bridge.CodeForbidden, "only admin and service accounts send notices")
	case n.Content == "":
		return refusal(bridge.CodeEmptyMessage, "content is empty")
	case h.opts.Limits.MaxContent > 0 && len(n.Content) > h.opts.Limits.MaxContent:
		return refusal(bridge.CodeTooLarge, fmt.Sprintf("content is over %d bytes", h.opts.Limits.MaxContent))
	case len(n.UIDs) > MaxNoticeRecipients:
		return refusal(bridge.CodeTooLarge, fmt.Sprintf("at most %d uids per notice", MaxNoticeRecipients))
	}
	if n.Ref == "" {
		n.Ref = "0"
	}
	if err := bridge.ValidateMsgIDLiteral(n.Ref); err != nil {
		return err
	}
	notice := inbox.Message{Kind: inbox.KindNotice, Content: n.Content, MsgType: n.MsgType, Event: n.Event, Ref: n.Ref, Peer: by.UID}
	if len(n.UIDs) == 0 {
		notice.UID = inbox.BroadcastInbox
		r, err := h.submitAndNotify(ctx, inbox.Request{Msgs: []inbox.Message{notice}})
		if err != nil {
			return err
		}
		h.opts.Log.Info("broadcast notice sent", "by", by.UID, "msgtype", n.MsgType, "seq", r.Msgs[0].Seq)
		return nil
	}
	msgs := make([]inbox.Message, 0, len(n.UIDs))
	seen := make(map[string]bool, len(n.UIDs))
	for _, uid := range n.UIDs {
		if !acl.ValidUID(uid) {
			return refusal(bridge.CodeBadUID, "uid "+clip(uid)+" is not a valid uid")
		}
		if !seen[uid] {
			seen[uid] = true
			m := notice
			m.UID = uid
			msgs = append(msgs, m)
		}
	}
	_, err := h.submitAndNotify(ctx, h.request(msgs))
	return err
}

// SendLiveNotice delivers a notice only to the connections online on this
// node now (uids, or everyone via broadcast); nothing is stored, so offline
// users never see it. Every node runs it for a notice from the back-end's
// Redis channel without needStore.
func (h *Hook) SendLiveNotice(n Notice) error {
	if n.Ref == "" {
		n.Ref = "0"
	}
	payload, err := bridge.AppendEnvelope(nil, inbox.Message{Kind: inbox.KindNotice, Content: n.Content,
		MsgType: n.MsgType, Event: n.Event, Ref: n.Ref})
	if err != nil {
		return err
	}
	if len(n.UIDs) == 0 {
		// Not in the broadcast log, so not through the lanes: mochi
		// publishes it to whoever is subscribed now, at QoS 0 like the
		// targeted live notices (at QoS 1 mochi would keep it in memory
		// for every subscriber that never acknowledges).
		if err := h.opts.Server.Publish(BroadcastTopic, payload, false, 0); err != nil {
			return fmt.Errorf("live broadcast: %w", err)
		}
		return nil
	}
	for _, uid := range n.UIDs {
		for _, c := range h.online(uid) {
			c.writeTransient(payload)
		}
	}
	return nil
}

// UpdateProfile changes the nickname and avatar stamped on what uid sends
// from its current connections.
func (h *Hook) UpdateProfile(uid, nickname, avatar string) {
	for _, c := range h.online(uid) {
		c.setProfile(nickname, avatar)
	}
}
