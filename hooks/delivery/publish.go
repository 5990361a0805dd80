package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/logsafe"
	"github.com/inboxmq/inboxmq/messaging"
)

// methodTopics names the specific topic of each request, so a request that
// arrives on the generic "im" topic is authorized like its specific form.
var methodTopics = map[bridge.Method]string{
	bridge.MethodSendMsg:     "im/sendmsg",
	bridge.MethodDelMsg:      "im/delmsg",
	bridge.MethodConn:        "im/conn",
	bridge.MethodSystemAdmin: "im/systemadmin",
	bridge.MethodRead:        "im/read",
	bridge.MethodBlock:       "im/block",
	bridge.MethodUnblock:     "im/unblock",
	bridge.MethodTyping:      "im/typing",
	bridge.MethodEditMsg:     "im/editmsg",
}

// request is one client request being handled.
type request struct {
	cl  *mqtt.Client
	c   *conn // nil for anonymous clients
	id  *access.Identity
	pk  packets.Packet
	req bridge.Request
}

// OnPublish authorizes every client publish and handles the im/ requests.
// Its return value decides the ack (mochi v2.7.9 processPublish):
// CodeSuccessIgnore acks without routing; a packets.Code sends that reason
// code to an MQTT 5 QoS>0 publisher, in a PUBACK even for QoS 2, and any
// other client gets a normal ack; ErrRejectPacket sends no ack at all and
// leaves the connection open (3.1.1 libraries resend only after a
// reconnect, so notStored closes the connection too).
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the broker's own publishes (broadcasts)
	}
	r := &request{cl: cl, c: h.conn(cl), pk: pk}
	id, ok := h.opts.Identities.Identity(cl)
	if !ok {
		return h.refuse(r, bridge.CodeForbidden, "connection is not authenticated")
	}
	r.id = id
	if id.Role != acl.RoleAdmin && id.Role != acl.RoleService {
		if err := h.rates.Load().wait(id.UID); err != nil {
			if ok, held := h.refusals.Allow(cl.ID); ok {
				h.opts.Log.Info("request refused", "uid", id.UID, "client", id.ClientID, "topic", clip(pk.TopicName),
					"code", bridge.CodeRateLimited, "detail", err, "suppressed_before", held)
			}
			return h.notStored(r, bridge.CodeRateLimited, "too many messages, slow down", err)
		}
	}
	topic := pk.TopicName
	if strings.HasPrefix(topic, sysMarker) {
		r.pk.TopicName = strings.TrimPrefix(topic, sysMarker)
		return h.refuse(r, bridge.CodeForbidden, "publishing to $SYS is not allowed")
	}
	if !h.opts.Policy.CanPublish(id.Subject(), topic) {
		return h.refuse(r, bridge.CodeForbidden, "publishing to "+clip(topic)+" is not allowed")
	}
	if topic != "im" && !strings.HasPrefix(topic, "im/") {
		return pk, nil // a topic opened by the operator's rules: plain MQTT
	}
	if r.c == nil {
		// Not stored, and not the request's fault: it may be sent again.
		return h.notStored(r, bridge.CodeInternal, "connection is closing", errors.New("request on a closing connection"))
	}
	req, err := bridge.Parse(topic, pk.Payload, h.opts.Limits)
	r.req = req
	if err != nil {
		var be *bridge.Error
		if errors.As(err, &be) {
			return h.refuse(r, be.Code, be.Detail)
		}
		return h.refuse(r, bridge.CodeBadJSON, "unreadable request")
	}
	if t := methodTopics[req.Method]; t != topic && !h.opts.Policy.CanPublish(id.Subject(), t) {
		return h.refuse(r, bridge.CodeForbidden, "publishing to "+t+" is not allowed")
	}
	switch req.Method {
	case bridge.MethodSendMsg:
		return h.sendMsg(r)
	case bridge.MethodDelMsg:
		return h.delMsg(r)
	case bridge.MethodConn:
		return h.updateProfile(r)
	case bridge.MethodSystemAdmin:
		return h.systemAdmin(r)
	case bridge.MethodRead:
		return h.markRead(r)
	case bridge.MethodBlock, bridge.MethodUnblock:
		return h.block(r)
	case bridge.MethodTyping:
		return h.typing(r)
	case bridge.MethodEditMsg:
		return h.editMsg(r)
	}
	return h.refuse(r, bridge.CodeUnknownMethod, "unknown method")
}

// actor is the requesting connection as an Actor, with its current profile.
func (r *request) actor() messaging.Actor {
	a := r.id.Identity
	if r.c != nil {
		a.Nickname, a.Avatar = r.c.profile()
	}
	return a
}

// requestContext bounds the store work of one request (redis.timeout):
// the client is told within it whether the request was stored.
func (h *Hook) requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.opts.RequestTimeout)
}

func (h *Hook) sendMsg(r *request) (packets.Packet, error) {
	ctx, cancel := h.requestContext()
	defer cancel()
	// A QoS 1 request's ack goes out with the sender's copy (ackcopy.go).
	together := r.c != nil && r.pk.FixedHeader.Qos == 1
	if together {
		r.c.holdWakes()
	}
	m, err := h.opts.Service.SendMessage(ctx, r.actor(), r.req.UID, r.req.Msg, r.req.Extra, r.req.CID)
	if together {
		if err == nil {
			v5 := r.cl.Properties.ProtocolVersion == 5
			r.c.ackAndSend(appendPuback(nil, r.pk.PacketID, v5, m.ID))
			return r.pk, packets.ErrRejectPacket // acked above: mochi must not ack again
		}
		r.c.releaseWakes()
	}
	if err == nil && r.c != nil && r.cl.Properties.ProtocolVersion == 5 && r.pk.FixedHeader.Qos > 0 {
		r.c.ackFor, r.c.ackMsgID = r.pk.PacketID, m.ID
	}
	return h.answer(r, err)
}

func (h *Hook) delMsg(r *request) (packets.Packet, error) {
	ctx, cancel := h.requestContext()
	defer cancel()
	return h.answer(r, h.opts.Service.DeleteMessage(ctx, r.actor(), r.req.MsgID, r.req.UID))
}

func (h *Hook) updateProfile(r *request) (packets.Packet, error) {
	if r.req.UID != "" && r.req.UID != r.id.UID {
		return h.refuse(r, bridge.CodeForbidden, "im/conn can only update your own profile")
	}
	if err := auth.CheckProfile(r.req.Nickname, r.req.Avatar); err != nil {
		return h.refuse(r, bridge.CodeBadField, err.Error())
	}
	h.opts.Service.UpdateProfile(r.id.UID, r.req.Nickname, r.req.Avatar)
	return r.pk, packets.CodeSuccessIgnore
}

func (h *Hook) systemAdmin(r *request) (packets.Packet, error) {
	n := messaging.Notice{Content: r.req.Msg, MsgType: r.req.MsgType, Event: r.req.Event, Ref: r.req.MsgID}
	if r.req.UID != "" {
		n.UIDs = []string{r.req.UID}
	}
	ctx, cancel := h.requestContext()
	defer cancel()
	_, err := h.opts.Service.SendNotice(ctx, r.actor(), n)
	return h.answer(r, err)
}

func (h *Hook) markRead(r *request) (packets.Packet, error) {
	ctx, cancel := h.requestContext()
	defer cancel()
	return h.answer(r, h.opts.Service.MarkRead(ctx, r.actor(), r.req.UID, r.req.MsgID))
}

// block changes the caller's block list (im/block, im/unblock).
func (h *Hook) block(r *request) (packets.Packet, error) {
	ctx, cancel := h.requestContext()
	defer cancel()
	change := h.opts.Service.Block
	if r.req.Method == bridge.MethodUnblock {
		change = h.opts.Service.Unblock
	}
	return h.answer(r, change(ctx, r.actor(), r.req.UID))
}

// answer turns an operation's result into mochi's ack decision: success
// acks without routing; a *bridge.Error is the client's fault; anything
// else is the broker's, and then it matters whether the store may have
// kept the request.
func (h *Hook) answer(r *request, err error) (packets.Packet, error) {
	if err == nil {
		return r.pk, packets.CodeSuccessIgnore
	}
	var be *bridge.Error
	if errors.As(err, &be) {
		return h.refuse(r, be.Code, be.Detail)
	}
	h.opts.Log.Error("request failed", "uid", r.id.UID, "client", r.id.ClientID, "topic", clip(r.pk.TopicName),
		"stored", storedState(err), "error", err)
	if errors.Is(err, inbox.ErrNotStored) {
		return h.notStored(r, bridge.CodeInternal, "not stored, try again", fmt.Errorf("request not stored: %w", err))
	}
	return h.outcomeUnknown(r, err)
}

func storedState(err error) string {
	if errors.Is(err, inbox.ErrNotStored) {
		return "no"
	}
	return "unknown"
}

// outcomeUnknown answers a request the store may or may not have kept (a
// timeout after the write was sent). A failure code would be a lie if it
// was stored, and a resend after one would store it twice; a success would
// be a lie if it was not. So a QoS 1 or 2 sender of either protocol gets no
// acknowledgement and loses its connection (MQTT 5: DISCONNECT 0x80): its
// library sends the publish again after reconnecting, and the store answers
// a resend of a stored request (same cid) with the original message. A QoS
// 0 sender gets the Error envelope, as for any failure.
func (h *Hook) outcomeUnknown(r *request, cause error) (packets.Packet, error) {
	h.opts.Events.Rejected(bridge.CodeInternal)
	if r.pk.FixedHeader.Qos == 0 {
		if r.c != nil {
			r.c.writeTransient(bridge.ErrorEnvelope(&bridge.Error{Code: bridge.CodeInternal,
				Detail: "may not have been stored: send it again with the same cid"}, r.pk.TopicName, r.req.CID))
		}
		return r.pk, packets.CodeSuccessIgnore
	}
	h.opts.Log.Info("connection closed without an ack: the request may have been stored", "uid", r.id.UID,
		"client", r.id.ClientID, "error", cause)
	access.EndConnection(h.opts.Server, r.cl, packets.ErrUnspecifiedError)
	return r.pk, packets.ErrRejectPacket
}

// notStored answers a request that was not stored but may be if sent again
// (overload, a store failure): nobody is told a message was stored when it
// was not. An MQTT 5 QoS 1 sender gets a failure reason code. A 3.1.1
// sender cannot be told (its PUBACK has no code) and its library resends
// an unacknowledged publish only after reconnecting, so its connection is
// closed without a PUBACK (a socket close: 3.1.1 has no server DISCONNECT);
// the same goes for QoS 2, whose PUBREC mochi would not let us refuse.
// QoS 0 promises nothing: the Error envelope says it was dropped.
func (h *Hook) notStored(r *request, code, detail string, cause error) (packets.Packet, error) {
	h.opts.Events.Rejected(code)
	if r.c != nil {
		r.c.writeTransient(bridge.ErrorEnvelope(&bridge.Error{Code: code, Detail: detail}, r.pk.TopicName, r.req.CID))
	}
	switch {
	case r.pk.FixedHeader.Qos == 0:
		return r.pk, packets.CodeSuccessIgnore
	case r.cl.Properties.ProtocolVersion == 5 && r.pk.FixedHeader.Qos == 1:
		return r.pk, reasonCode(code)
	case r.cl.Properties.ProtocolVersion == 5:
		return h.refuseQoS2(r, reasonCode(code))
	}
	r.cl.Stop(cause)
	return r.pk, packets.ErrRejectPacket
}

// refuse answers bad or forbidden input: an Error envelope on the sender's
// inbox, a reason code for an MQTT 5 QoS 1 sender, a log line, and the
// connection stays up.
func (h *Hook) refuse(r *request, code, detail string) (packets.Packet, error) {
	h.opts.Events.Rejected(code)
	uid, client := "", r.cl.ID
	if r.id != nil {
		uid, client = r.id.UID, r.id.ClientID
	}
	if ok, held := h.refusals.Allow(r.cl.ID); ok {
		h.opts.Log.Info("request refused", "uid", uid, "client", client, "topic", clip(r.pk.TopicName),
			"code", code, "detail", detail, "suppressed_before", held)
	}
	if r.c != nil {
		r.c.writeTransient(bridge.ErrorEnvelope(&bridge.Error{Code: code, Detail: detail}, r.pk.TopicName, r.req.CID))
	}
	if r.cl.Properties.ProtocolVersion == 5 {
		switch r.pk.FixedHeader.Qos {
		case 1:
			return r.pk, reasonCode(code)
		case 2:
			return h.refuseQoS2(r, reasonCode(code))
		}
	}
	// A 3.1.1 ack has no code: acknowledged, not routed, and the Error
	// envelope says why.
	return r.pk, packets.CodeSuccessIgnore
}

// fixAck corrects two of mochi v2.7.9's acks of client publishes:
//   - a QoS 1 publish it routed is acknowledged with reason 0x01 ("granted
//     QoS 1", a SUBACK code, not a PUBACK one): MQTT.js reports every such
//     publish as failed and paho-python asserts. It becomes 0x00.
//   - a QoS 2 publish a hook refused with a reason code is answered with a
//     PUBACK carrying it, where MQTT 5 wants a PUBREC: refuseQoS2 marks
//     such ids, and their ack becomes the PUBREC (the client then ends the
//     exchange, as for any PUBREC of 0x80 or above).
//
// Properties are no longer echoed from the publish
// (Compatibilities.NoInheritedPropertiesOnAck, set by the broker).
func (h *Hook) fixAck(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.ReasonCode == packets.CodeGrantedQos1.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
	}
	pk = h.withMsgID(cl, pk)
	// Every PUBACK passes here: the map is looked at only while a refusal
	// waits for its ack.
	if h.qos2Waiting.Load() > 0 {
		if _, refused := h.qos2Refused.LoadAndDelete(qos2Key{cl, pk.PacketID}); refused {
			h.qos2Waiting.Add(-1)
			pk.FixedHeader.Type = packets.Pubrec
		}
	}
	return pk
}

// withMsgID adds to the MQTT 5 ack (PUBACK, or PUBREC for QoS 2) of a
// stored im/sendmsg the new message's id, as user property "msgid": the
// app has the id with the ack, without waiting for the MsgSent copy.
func (h *Hook) withMsgID(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	c := h.conn(cl)
	if c == nil || c.ackMsgID == "" || c.ackFor != pk.PacketID || pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
		return pk
	}
	pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: "msgid", Val: c.ackMsgID})
	c.ackFor, c.ackMsgID = 0, ""
	return pk
}

// qos2Key names a refused QoS 2 publish of one client.
type qos2Key struct {
	cl  *mqtt.Client
	pid uint16
}

// refuseQoS2 answers a QoS 2 publish of an MQTT 5 client with PUBREC and
// code (mochi writes a PUBACK; fixAck turns it).
func (h *Hook) refuseQoS2(r *request, code packets.Code) (packets.Packet, error) {
	if _, loaded := h.qos2Refused.LoadOrStore(qos2Key{r.cl, r.pk.PacketID}, struct{}{}); !loaded {
		h.qos2Waiting.Add(1)
	}
	return r.pk, code
}

// reasonCode maps an Error code to an MQTT 5 PUBACK reason code.
func reasonCode(code string) packets.Code {
	switch code {
	// blocked is a permission the recipient withdrew: the request is
	// well formed, and resending it will not help. 0x87 tells a client
	// library exactly that; 0x83 ("valid but not accepted") would read as
	// a fault of the broker's.
	case bridge.CodeForbidden, bridge.CodeBlocked:
		return packets.ErrNotAuthorized // 0x87
	case bridge.CodeRateLimited:
		return packets.ErrQuotaExceeded // 0x97
	case bridge.CodeUnknownTopic:
		return packets.ErrTopicNameInvalid // 0x90
	case bridge.CodeNotFound, bridge.CodeTooLate:
		return packets.ErrImplementationSpecificError // 0x83
	case bridge.CodeInternal:
		return packets.ErrUnspecifiedError // 0x80
	}
	return packets.ErrPayloadFormatInvalid // 0x99: the request itself is bad
}

// clip keeps client-controlled strings short in logs and envelopes.
func clip(s string) string { return logsafe.Clip(s) }
