package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainedRecord is a retained message as stored: mochi's storable form,
// plus the absolute expiry, which that form leaves out (without it a
// retained message with a Message Expiry Interval would never expire
// after a restart).
//
// The publisher's protocol version is kept too: mochi applies Expiry only
// to packets of version 5, so a restored packet of version 0 would never
// expire in the running broker.
type retainedRecord struct {
	Msg    storage.Message `json:"m"`
	Expiry int64           `json:"e,omitempty"` // Unix s, 0: none
	Proto  byte            `json:"p,omitempty"` // the publisher's protocol version
}

func encodeRetained(cl *mqtt.Client, pk packets.Packet) ([]byte, error) {
	props := pk.Properties.Copy(false)
	return json.Marshal(retainedRecord{
		Expiry: pk.Expiry,
		Proto:  pk.ProtocolVersion,
		Msg: storage.Message{
			T:           storage.RetainedKey,
			FixedHeader: pk.FixedHeader,
			TopicName:   pk.TopicName,
			Payload:     pk.Payload,
			Created:     pk.Created,
			Client:      cl.ID,
			Origin:      pk.Origin,
			Properties: storage.MessageProperties{
				PayloadFormat:         props.PayloadFormat,
				PayloadFormatFlag:     props.PayloadFormatFlag,
				MessageExpiryInterval: props.MessageExpiryInterval,
				ContentType:           props.ContentType,
				ResponseTopic:         props.ResponseTopic,
				CorrelationData:       props.CorrelationData,
				User:                  props.User,
			},
		},
	})
}

func decodeRetained(b []byte) (packets.Packet, error) {
	var r retainedRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return packets.Packet{}, err
	}
	pk := r.Msg.ToPacket()
	pk.Expiry = r.Expiry
	pk.ProtocolVersion = r.Proto
	if pk.ProtocolVersion == 0 && pk.Expiry > 0 {
		pk.ProtocolVersion = 5 // a record written before Proto: only MQTT 5 sets an expiry
	}
	return pk, nil
}

// restoreRetained puts the stored retained messages back into the topic
// tree, leaving out those that expired while the broker was down.
func (h *Hook) restoreRetained(ctx context.Context, now time.Time) (int, error) {
	msgs, err := h.opts.Store.RetainedMessages(ctx)
	if err != nil {
		return 0, fmt.Errorf("sessions: restore retained messages: %w", err)
	}
	srv := h.opts.Server
	n := 0
	for topic, b := range msgs {
		pk, err := decodeRetained(b)
		if err != nil || pk.TopicName != topic {
			h.opts.Log.Error("stored retained message unreadable, skipped", "topic", topic, "error", err)
			continue
		}
		if pk.Expiry > 0 && pk.Expiry < now.Unix() {
			// Expired while the broker was down: mochi never sees it, so
			// its OnRetainedExpired would never remove it from the store.
			if err := h.opts.Store.DeleteRetained(ctx, topic); err != nil {
				h.opts.Log.Warn("expired retained message not removed from the store", "topic", topic, "error", err)
			}
			continue
		}
		srv.Topics.RetainMessage(pk)
		n++
	}
	atomic.StoreInt64(&srv.Info.Retained, int64(srv.Topics.Retained.Len()))
	return n, nil
}

// OnRetainMessage stores a retained message, or removes one an empty
// payload cleared, on the publisher's goroutine before its PUBACK.
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	ctx, cancel := h.ctx()
	defer cancel()
	if r == -1 || len(pk.Payload) == 0 {
		if err := h.opts.Store.DeleteRetained(ctx, pk.TopicName); err != nil {
			h.opts.Log.Error("retained message not removed from the store", "topic", pk.TopicName, "error", err)
		}
		return
	}
	b, err := encodeRetained(cl, pk)
	if err == nil {
		err = h.opts.Store.PutRetained(ctx, pk.TopicName, b)
	}
	if err != nil {
		h.opts.Log.Error("retained message not stored: it will not survive a restart", "topic", pk.TopicName, "error", err)
	}
}

// OnRetainedExpired removes a retained message mochi expired.
func (h *Hook) OnRetainedExpired(topic string) {
	ctx, cancel := h.ctx()
	defer cancel()
	if err := h.opts.Store.DeleteRetained(ctx, topic); err != nil {
		h.opts.Log.Error("expired retained message not removed from the store", "topic", topic, "error", err)
	}
}
